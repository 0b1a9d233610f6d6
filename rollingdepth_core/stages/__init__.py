"""The method's steps, in the order data flows through them: snippet planning (`snippets`),
frames to RGB latents (`encode`), one UNet step per snippet (`denoise`) and, after
co-alignment, coarse-to-fine refinement (`refine`)."""
