"""VAE encoding and decoding of many frames: batched, out-of-memory safe, copies overlapped.

Each helper runs the VAE a batch at a time through `run_in_batches` (a batch that runs
out of accelerator memory is halved and retried) and hands results to the host with
`HostCopier`, so the accelerator never waits for the host between batches.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import Tensor

from ..hooks import NO_HOOKS, Hooks
from ..io.frames import crop_to
from ..runtime.batch_loop import run_in_batches
from ..runtime.host_copies import HostCopier
from ..types import DepthModel
from .latents import decode_depth, encode_images


@dataclass
class VaeBatch:
    """Frames per VAE call, shrunk for good once a batch ran out of memory."""

    size: int

    def run(self, num_items: int, work: Callable[[int, int], None], device) -> None:
        """``work`` over `0 .. num_items` in batches of at most ``size`` (OOM-safe)."""
        asked = min(self.size, num_items)
        used = run_in_batches(num_items, asked, work, device, what="VAE frames")
        if used < asked:
            self.size = used


@torch.no_grad()
def decode_on_device(
    model: DepthModel, latents: Tensor, size: tuple[int, int], batch: VaeBatch, dtype: torch.dtype,
    decode: Callable[[torch.nn.Module, Tensor], Tensor] = decode_depth,
) -> Tensor:
    """Decode depth latents where the model is, ``batch.size`` frames per VAE call.

    Args:
        latents: `b 4 h w` (scaled), on the model's device.
        size: `(H, W)` to crop the decoded depth to (undoes the padding).
        batch: frames per call (halved on out-of-memory).
        dtype: dtype of the result.
        decode: ``decode(vae, latents)`` -> `b H' W'` float32 (`latents.decode_depth`).

    Returns:
        `b H W` on the model's device: the mean of the 3 decoded channels.
    """
    out = torch.empty(latents.shape[0], *size, device=latents.device, dtype=dtype)

    def work(start: int, stop: int) -> None:
        out[start:stop] = crop_to(decode(model.vae, latents[start:stop]), size).to(dtype)

    batch.run(latents.shape[0], work, model.device)
    return out


@torch.no_grad()
def decode_depth_to_host(
    model: DepthModel,
    latents: Tensor,
    size: tuple[int, int],
    batch_size: int,
    dtype: torch.dtype = torch.float32,
    hooks: Hooks = NO_HOOKS,
) -> Tensor:
    """Decode `N 4 h w` depth latents (host or device) into `N H W` ``dtype`` on the host."""
    num_frames = int(latents.shape[0])
    out = torch.empty(num_frames, *size, dtype=dtype)
    device = model.device
    with HostCopier(device) as copier:

        def work(start: int, stop: int) -> None:
            depth = crop_to(decode_depth(model.vae, latents[start:stop]), size).to(dtype)
            copier.submit(depth, lambda host: out[start:stop].copy_(host))

        run_in_batches(num_frames, batch_size, work, device, hooks, "frames")
    return out


@torch.no_grad()
def encode_to_host(
    model: DepthModel,
    num_frames: int,
    read: Callable[[int, int], Tensor],
    batch_size: int,
    out: Tensor,
    hooks: Hooks = NO_HOOKS,
) -> Tensor:
    """Encode frames ``read(start, stop)`` (`b 3 H W`, -1..1, padded) into ``out``.

    Args:
        num_frames: `N`.
        read: gives the images of frames `start .. stop - 1`, on any device.
        batch_size: frames per VAE call (halved on out-of-memory).
        out: `N 4 h w` float32, where the latents go (host or device).
        hooks: progress per frame, cancel between batches.

    Returns:
        ``out``, filled.
    """
    device = model.device
    with HostCopier(device) as copier:

        def work(start: int, stop: int) -> None:
            images = read(start, stop).to(device, non_blocking=True)
            latents = encode_images(model.vae, images, stop - start)  # b 4 h w float32
            if out.device == latents.device:
                out[start:stop] = latents
            else:
                copier.submit(latents, lambda host: out[start:stop].copy_(host))

        run_in_batches(num_frames, batch_size, work, device, hooks, "frames")
    return out
