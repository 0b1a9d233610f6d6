"""Frames -> RGB latents at the processing resolution (SPEC §3.1, §3.3), batch by batch."""

from __future__ import annotations

import hashlib
import logging

import torch
from torch import Tensor

from .errors import InvalidSettings
from .frames import check_frames, pad_to_multiple, processing_size, resize_frames
from .hooks import NO_HOOKS, Hooks
from .latents import encode_images
from .types import DepthModel, EncodedFrames

logger = logging.getLogger(__name__)


def frames_fingerprint(frames: Tensor) -> tuple:
    """A cheap summary of a clip (shape and a coarse sample of its pixels).

    Two clips with the same fingerprint are treated as the same frames when a later stage
    offers to reuse their latents.
    """
    n, _, h, w = frames.shape
    sample = frames[:, :, :: max(1, h // 7), :: max(1, w // 7)].float().cpu().contiguous()
    return (n, h, w, hashlib.sha1(sample.numpy().tobytes()).hexdigest())


@torch.no_grad()
def encode_frames(
    model: DepthModel,
    frames: Tensor,
    processing_resolution: int = 768,
    batch_size: int = 4,
    hooks: Hooks = NO_HOOKS,
    storage_device: torch.device | str = "cpu",
    size: tuple[int, int] | None = None,
) -> EncodedFrames:
    """Resize, pad and encode a clip, a batch of frames at a time.

    Only one batch of resized frames exists at a time, so memory does not grow with the
    clip beyond its latents.

    Args:
        model: the loaded checkpoint.
        frames: `N 3 H0 W0` RGB in -1..1 (any device; float).
        processing_resolution: longest side to process at; 0 keeps the input size.
        batch_size: frames per VAE call.
        hooks: progress per frame, cancel between batches.
        storage_device: where the latents are kept (the host by default).
        size: exact processing size `(H, W)`; overrides ``processing_resolution``.

    Returns:
        `EncodedFrames` with latents `N 4 h w` float32 of the padded frames.
    """
    check_frames(frames)
    if int(batch_size) != batch_size or batch_size < 1:
        raise InvalidSettings(f"batch_size must be a whole number >= 1; got {batch_size!r}.")
    input_size = (int(frames.shape[-2]), int(frames.shape[-1]))
    if size is None:
        size = processing_size(*input_size, processing_resolution)
    size = (int(size[0]), int(size[1]))
    if max(size) > 1024:
        logger.warning(
            "Processing at %dx%d may give less accurate depth than at 768-1024.", size[1], size[0]
        )
    total = int(frames.shape[0])
    chunks = []
    for start in range(0, total, batch_size):
        hooks.check_cancel()
        batch = pad_to_multiple(resize_frames(frames[start : start + batch_size].float(), size))
        chunks.append(encode_images(model.vae, batch, batch_size, out_device=storage_device))
        hooks.progress(min(start + batch_size, total), total)
    return EncodedFrames(
        latents=torch.cat(chunks), size=size, input_size=input_size,
        fingerprint=frames_fingerprint(frames) + (size,),
    )
