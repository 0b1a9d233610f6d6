"""Frames in, files out: frame sources (tensors, arrays, video files, ComfyUI VIDEO), frame
checks and resizing, video files, exports, colour maps and adapters for other depth."""
