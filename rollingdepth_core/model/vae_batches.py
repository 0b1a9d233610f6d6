"""VAE encoding and decoding of many frames: batched, out-of-memory safe, copies overlapped.

Every batched VAE loop of the stages is here: `encode_to_host` (frames or depth -> latents)
and `decode_batches` (depth latents -> depth), with `decode_on_device` and
`decode_depth_to_host` as its two ways of collecting the result. Each runs the VAE a
`runtime.batch_loop.ShrinkingBatch` at a time (a batch that runs out of accelerator memory is
halved and retried, and later batches stay at the smaller size) and hands results to the host with
`HostCopier`, so the accelerator never waits for the host between batches.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import Tensor

from ..hooks import NO_HOOKS, Hooks
from ..io.frames import crop_to
from ..runtime.batch_loop import ShrinkingBatch
from ..runtime.host_copies import HostCopier
from ..types import DepthModel
from .latents import decode_depth, encode_images

Decode = Callable[[torch.nn.Module, Tensor], Tensor]
"""``decode(vae, latents)``: `b 4 h w` -> `b H' W'` float32 (`latents.decode_depth`)."""
Encode = Callable[[torch.nn.Module, Tensor, int], Tensor]
"""``encode(vae, images, batch)`` -> `b 4 h w` float32 (`latents.encode_images` / `encode_depth`)."""


@torch.no_grad()
def decode_batches(
    model: DepthModel,
    latents: Tensor,
    size: tuple[int, int],
    batch: ShrinkingBatch,
    dtype: torch.dtype,
    deliver: Callable[[int, int, Tensor], None],
    hooks: Hooks = NO_HOOKS,
    decode: Decode = decode_depth,
) -> None:
    """Decode depth latents ``batch.size`` frames per VAE call: the one batched-decode loop.

    Args:
        latents: `N 4 h w` (scaled), on the host or the model's device.
        size: `(H, W)` to crop the decoded depth to (undoes the padding).
        batch: frames per call (halved on out-of-memory).
        dtype: dtype of the delivered depth.
        deliver: ``deliver(start, stop, depth)`` with `depth` `b H W` on the model's device,
            the mean of the 3 decoded channels of frames `start .. stop - 1`; it must copy
            what it keeps.
        hooks: progress per frame, cancel between batches.
        decode: the single VAE call (`latents.decode_depth`).
    """

    def work(start: int, stop: int) -> None:
        depth = crop_to(decode(model.vae, latents[start:stop]), size).to(dtype)  # b H W
        deliver(start, stop, depth)

    batch.run(int(latents.shape[0]), work, model.device, hooks, "VAE frames")


@torch.no_grad()
def decode_on_device(
    model: DepthModel, latents: Tensor, size: tuple[int, int], batch: ShrinkingBatch, dtype: torch.dtype,
    decode: Decode = decode_depth,
) -> Tensor:
    """`decode_batches` into one `b H W` ``dtype`` tensor on the model's device."""
    out = torch.empty(latents.shape[0], *size, device=model.device, dtype=dtype)

    def keep(start: int, stop: int, depth: Tensor) -> None:
        out[start:stop] = depth

    decode_batches(model, latents, size, batch, dtype, keep, decode=decode)
    return out


@torch.no_grad()
def decode_depth_to_host(
    model: DepthModel,
    latents: Tensor,
    size: tuple[int, int],
    batch: ShrinkingBatch,
    dtype: torch.dtype = torch.float32,
    hooks: Hooks = NO_HOOKS,
) -> Tensor:
    """`decode_batches` of `N 4 h w` latents (host or device) into `N H W` ``dtype`` on the host."""
    out = torch.empty(int(latents.shape[0]), *size, dtype=dtype)
    with HostCopier(model.device) as copier:

        def keep(start: int, stop: int, depth: Tensor) -> None:
            copier.submit(depth, lambda host: out[start:stop].copy_(host))

        decode_batches(model, latents, size, batch, dtype, keep, hooks)
    return out


@torch.no_grad()
def encode_to_host(
    model: DepthModel,
    num_frames: int,
    read: Callable[[int, int], Tensor],
    batch: ShrinkingBatch,
    out: Tensor,
    hooks: Hooks = NO_HOOKS,
    encode: Encode | None = None,
) -> Tensor:
    """Encode what ``read(start, stop)`` gives, ``batch.size`` frames per VAE call, into ``out``.

    Args:
        num_frames: `N`.
        read: the images of frames `start .. stop - 1` (`b 3 H W`, -1..1, padded; or
            `b H W` depth for `latents.encode_depth`), on any device.
        batch: frames per VAE call (halved on out-of-memory).
        out: `N 4 h w` float32, where the latents go (host or device).
        hooks: progress per frame, cancel between batches.
        encode: the VAE encoder call (default `latents.encode_images`; `encode_depth` for depth).

    Returns:
        ``out``, filled.
    """
    device = model.device
    encode = encode_images if encode is None else encode
    with HostCopier(device) as copier:

        def work(start: int, stop: int) -> None:
            images = read(start, stop).to(device, non_blocking=True)
            latents = encode(model.vae, images, stop - start)  # b 4 h w float32
            if out.device == latents.device:
                out[start:stop] = latents
            else:
                copier.submit(latents, lambda host: out[start:stop].copy_(host))

        batch.run(num_frames, work, device, hooks, "frames")
    return out
