"""VAE encoding of frames and depth, and decoding of depth latents (SPEC §1, golden §2).

Latents are the posterior **mean** (no sampling) times 0.18215. Depth is the mean of the
three decoded channels; nothing is clipped.
"""

from __future__ import annotations

import torch
from einops import repeat
from torch import Tensor

from ..hooks import NO_HOOKS, Hooks

LATENT_SCALE = 0.18215  # the reference's scale for both RGB and depth latents


@torch.no_grad()
def encode_images(
    vae, images: Tensor, batch_size: int = 4, hooks: Hooks = NO_HOOKS,
    out_device: torch.device | str | None = None,
) -> Tensor:
    """Encode images to scaled latents, ``batch_size`` images per VAE call.

    Args:
        vae: diffusers `AutoencoderKL`.
        images: `N 3 H W` in -1..1, sides multiples of 8 (any device/dtype).
        batch_size: images per VAE call.
        hooks: progress per image, cancel between batches.
        out_device: where the latents are collected (default: the VAE's device).

    Returns:
        `N 4 h w` float32, `h = H / 8`.
    """
    param = next(vae.parameters())
    out_device = param.device if out_device is None else torch.device(out_device)
    total = images.shape[0]
    chunks = []
    for start in range(0, total, batch_size):
        hooks.check_cancel()
        batch = images[start : start + batch_size].to(param.device, param.dtype)
        moments = vae.encoder(batch)
        if vae.quant_conv is not None:
            moments = vae.quant_conv(moments)
        mean = moments[:, :4]  # b 4 h w, the posterior mean
        chunks.append((mean * LATENT_SCALE).float().to(out_device))
        hooks.progress(min(start + batch_size, total), total)
    return torch.cat(chunks)


def encode_depth(
    vae, depth: Tensor, batch_size: int = 4, hooks: Hooks = NO_HOOKS,
    out_device: torch.device | str | None = None,
) -> Tensor:
    """Encode depth `N H W` (-1..1, sides multiples of 8) as a grey 3-channel image.

    How refinement puts a depth video into latent space (SPEC §5.1).

    Returns:
        `N 4 h w` float32.
    """
    return encode_images(
        vae, repeat(depth, "N H W -> N c H W", c=3), batch_size, hooks, out_device
    )


@torch.no_grad()
def decode_depth(vae, latents: Tensor) -> Tensor:
    """Decode depth latents in one VAE call.

    Args:
        latents: `b 4 h w` (scaled, any device/dtype).

    Returns:
        `b H W` float32 on the VAE's device, mean of the 3 decoded channels.
    """
    param = next(vae.parameters())
    z = latents.to(param.device, param.dtype) / LATENT_SCALE
    if vae.post_quant_conv is not None:
        z = vae.post_quant_conv(z)
    return vae.decoder(z).float().mean(dim=1)  # b H W, float32
