"""Frames -> RGB latents at the processing resolution (SPEC §3.1, §3.3), batch by batch."""

from __future__ import annotations

import logging

import torch
from torch import Tensor

from ..hooks import NO_HOOKS, Hooks
from ..io.frames import pad_to_multiple, padding_for, processing_size
from ..io.sources import FrameReader, FrameSource, as_source, clip_info
from ..model.vae_batches import encode_to_host
from ..runtime.batch_loop import ShrinkingBatch
from ..types import DepthModel, EncodedFrames, RunBatches, check_run_batches

logger = logging.getLogger(__name__)


@torch.no_grad()
def encode_frames(
    model: DepthModel,
    frames: Tensor | FrameSource,
    processing_resolution: int = 768,
    batches: RunBatches = RunBatches(),
    hooks: Hooks = NO_HOOKS,
    storage_device: torch.device | str = "cpu",
    size: tuple[int, int] | None = None,
) -> EncodedFrames:
    """Resize, pad and encode a clip, a batch of frames at a time.

    Only one batch of resized frames exists at a time (two while the next is read ahead
    on an accelerator), so memory does not grow with the clip beyond its latents. A batch
    that runs out of accelerator memory is halved and retried.

    Args:
        model: the loaded checkpoint.
        frames: `N 3 H0 W0` RGB in -1..1 (any device; float), or any clip `as_source`
            accepts: a `FrameSource`, an `N H W 3` uint8/float array, a video path, a
            ComfyUI VIDEO (decoded lazily at the processing size).
        processing_resolution: longest side to process at; 0 keeps the input size.
        batches: the run's batch sizes; ``batches.vae`` frames per VAE call.
        hooks: progress per frame, cancel between batches.
        storage_device: where the latents are kept (the host by default).
        size: exact processing size `(H, W)`; overrides ``processing_resolution``.

    Returns:
        `EncodedFrames` with latents `N 4 h w` float32 of the padded frames.
    """
    check_run_batches(batches)
    source = as_source(frames)
    input_size = source.input_size
    if size is None:
        size = processing_size(*input_size, processing_resolution)
    size = (int(size[0]), int(size[1]))
    if max(size) > 1024:
        logger.warning(
            "Processing at %dx%d may give less accurate depth than at 768-1024.", size[1], size[0]
        )
    pad_h, pad_w = padding_for(size)
    padded = (size[0] + pad_h, size[1] + pad_w)
    total = source.num_frames
    latents = torch.empty(
        total, 4, padded[0] // 8, padded[1] // 8, dtype=torch.float32, device=storage_device
    )
    pin = model.device.type == "cuda"  # pinned host memory: asynchronous host -> device copies

    def prepare(images: Tensor) -> Tensor:
        images = pad_to_multiple(images)  # b 3 H W, sides multiples of 8
        return images.pin_memory() if pin and images.device.type == "cpu" else images

    with FrameReader(source, size, prefetch=model.device.type != "cpu", prepare=prepare) as reader:
        encode_to_host(model, total, reader.read, ShrinkingBatch(batches.vae), latents, hooks)
    return EncodedFrames(
        latents=latents, size=size, input_size=input_size,
        fingerprint=source.fingerprint() + (size,), clip=clip_info(source),
    )
