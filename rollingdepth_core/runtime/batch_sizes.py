"""Batch sizes from free accelerator memory (SPEC §3.5: many snippets per call).

The activation memory of one item (a snippet for the UNet, a frame for the VAE) is
estimated from the architecture and the processing size, or measured on the device with
two small calls (`calibrate`). The batch is the largest that fits the budget: free
memory (minus a reserve), optionally capped by a total memory limit. On a CPU the given
defaults are used. If an estimate is too optimistic, `run_in_batches` still halves the
batch on out-of-memory errors.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass

import torch

from ..errors import InvalidSettings
from ..io.frames import padded_size
from ..types import DEFAULT_SNIPPETS_PER_BATCH, DEFAULT_VAE_BATCH_SIZE, DepthModel, RunBatches
from . import devices

logger = logging.getLogger(__name__)

AUTO = "auto"
GIB = 1 << 30
# Peak live activations of one frame, in elements per (first block's channels x pixels),
# measured on the RollingDepth architecture (SD2 UNet at its latent size, SD VAE at image
# size) with `bench.memtrack.LiveBytes`; attention runs fused (flash / memory-efficient).
UNET_ACTIVATIONS = 26.0
DECODER_ACTIVATIONS = 6.0
ENCODER_ACTIVATIONS = 5.1
ALLOCATOR_OVERHEAD = 1.3  # caching-allocator rounding, fragmentation, library workspaces
DEFAULT_RESERVE = GIB // 2  # left free for the rest of the process (and other models)
# Caps of automatic batches: beyond them a GPU is saturated at 768-1024 and bigger batches
# only cost memory (a 768 x 432 frame is 1.5 TFLOP in the UNet and 3.2 TFLOP in the decoder).
MAX_SNIPPETS = 32
MAX_VAE_FRAMES = 16


@dataclass(frozen=True)
class AutoBatch:
    """Choose a batch size automatically (pass it, or the string "auto", as a batch size).

    Attributes:
        memory_limit: total bytes this process may hold on the device, weights included
            (e.g. ``10 * GIB`` to share the GPU with other models); None: all free memory.
        maximum: largest batch (None: the stage's own cap, where bigger stops paying off).
        measure: calibrate on the device with two small calls instead of estimating.
        reserve: bytes of free memory always left untouched.
    """

    memory_limit: int | None = None
    maximum: int | None = None
    measure: bool = True
    reserve: int = DEFAULT_RESERVE


BatchSize = int | str | AutoBatch


@dataclass(frozen=True)
class MemoryModel:
    """Peak activation bytes of a call on `b` items: ``fixed + per_item * b``."""

    per_item: int
    fixed: int = 0

    def fit(self, budget: int, maximum: int) -> int:
        """Largest batch in `1 .. maximum` whose activations fit ``budget`` bytes."""
        if self.per_item <= 0:
            return maximum
        return int(max(1, min(maximum, (budget - self.fixed) // self.per_item)))


def dtype_bytes(dtype: torch.dtype) -> int:
    return torch.empty((), dtype=dtype).element_size()


def unet_memory(model: DepthModel, latent_size: tuple[int, int], snippet_length: int) -> MemoryModel:
    """Estimated UNet activations per snippet of ``snippet_length`` frames."""
    base = int(model.unet.config.block_out_channels[0])
    pixels = int(latent_size[0]) * int(latent_size[1])
    per_frame = UNET_ACTIVATIONS * base * pixels * dtype_bytes(model.dtype)
    return MemoryModel(per_item=int(per_frame * snippet_length * ALLOCATOR_OVERHEAD))


def vae_memory(model: DepthModel, padded_size: tuple[int, int]) -> MemoryModel:
    """Estimated VAE activations per frame (the larger of encoding and decoding)."""
    channels = model.vae.config.block_out_channels
    pixels = int(padded_size[0]) * int(padded_size[1])
    decoder = DECODER_ACTIVATIONS * int(channels[0]) * pixels
    encoder = ENCODER_ACTIVATIONS * int(channels[0]) * pixels
    per_frame = max(decoder, encoder) * dtype_bytes(model.dtype)
    return MemoryModel(per_item=int(per_frame * ALLOCATOR_OVERHEAD))


def activation_budget(
    device: torch.device | str, memory_limit: int | None = None, reserve: int = DEFAULT_RESERVE
) -> int | None:
    """Bytes available for activations on ``device``, or None when unknown (CPU).

    Free memory minus ``reserve``; with ``memory_limit`` (total bytes this process may hold
    on the device, weights included) at most ``memory_limit`` minus what is allocated now.
    """
    free = devices.free_memory(device)
    if free is None:
        return None
    budget = free - reserve
    if memory_limit is not None:
        budget = min(budget, memory_limit - (devices.allocated_memory(device) or 0))
    return max(0, int(budget))


def calibrate(run: Callable[[int], None], device: torch.device | str, sizes=(1, 2)) -> MemoryModel | None:
    """Measure peak memory of ``run(b)`` for two batch sizes and fit ``fixed + per_item * b``.

    Returns None where peak memory cannot be measured (CPU).
    """
    peaks = []
    for size in sizes:
        devices.empty_cache(device)
        before = devices.allocated_memory(device)
        devices.reset_peak_memory(device)
        run(size)
        devices.synchronize(device)
        peak = devices.peak_memory(device)
        if peak is None or before is None:
            return None
        peaks.append(peak - before)
    per_item = max(1, (peaks[1] - peaks[0]) // (sizes[1] - sizes[0]))
    fixed = max(0, peaks[0] - per_item * sizes[0])
    return MemoryModel(per_item=int(per_item * ALLOCATOR_OVERHEAD), fixed=int(fixed))


def check_batch_size(value, name: str) -> None:
    """Raise ``InvalidSettings`` unless ``value`` is a whole number >= 1, "auto" or `AutoBatch`."""
    if isinstance(value, AutoBatch) or (isinstance(value, str) and value == AUTO):
        return
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise InvalidSettings(f"{name} must be a whole number >= 1 or 'auto'; got {value!r}.")


def resolve_batch_size(
    value: BatchSize,
    estimate: Callable[[], MemoryModel],
    device: torch.device | str,
    default: int,
    maximum: int,
    name: str,
    measure: Callable[[], MemoryModel | None] | None = None,
) -> int:
    """``value`` itself, or for "auto" / `AutoBatch` the largest batch that fits in memory.

    Args:
        value: a batch size, "auto" or an `AutoBatch`.
        estimate: the analytic memory model (used when nothing is measured).
        device: where the work runs.
        default: used where free memory is unknown (CPU).
        maximum: never more than this, unless ``value.maximum`` says otherwise.
        name: for messages.
        measure: calibration on the device (see `calibrate`), used if ``value.measure``.
    """
    check_batch_size(value, name)
    if not isinstance(value, (str, AutoBatch)):
        return int(value)
    policy = value if isinstance(value, AutoBatch) else AutoBatch()
    maximum = policy.maximum or maximum
    if activation_budget(device, policy.memory_limit, policy.reserve) is None:
        return min(default, maximum)
    model = (measure() if measure is not None and policy.measure else None) or estimate()
    budget = activation_budget(device, policy.memory_limit, policy.reserve)
    size = model.fit(budget, maximum)
    logger.info(
        "Automatic %s: %d (%.2f GiB for activations, %.1f MiB per item).",
        name, size, budget / GIB, model.per_item / (1 << 20),
    )
    return size


@torch.no_grad()
def _unet_probe(model: DepthModel, latent_size: tuple[int, int], snippet_length: int):
    def run(num_snippets: int) -> None:
        sample = torch.zeros(
            num_snippets * snippet_length, 8, *latent_size, device=model.device, dtype=model.dtype
        )
        model.unet(
            sample, torch.tensor(999, device=model.device),
            encoder_hidden_states=model.empty_text_embed,
            cross_attention_kwargs={"num_frames": snippet_length},
        )

    return run


@torch.no_grad()
def _vae_probe(model: DepthModel, padded_size: tuple[int, int]):
    def run(num_frames: int) -> None:
        vae, (height, width) = model.vae, padded_size
        images = torch.zeros(num_frames, 3, height, width, device=model.device, dtype=model.dtype)
        vae.encoder(images)
        latents = torch.zeros(
            num_frames, 4, height // 8, width // 8, device=model.device, dtype=model.dtype
        )
        vae.decoder(latents)

    return run


def snippet_batch_size(
    model: DepthModel,
    latent_size: tuple[int, int],
    snippet_length: int,
    value: BatchSize = AUTO,
    default: int = DEFAULT_SNIPPETS_PER_BATCH,
    maximum: int = MAX_SNIPPETS,
    name: str = "snippets_per_batch",
) -> int:
    """Snippets per UNet call: ``value``, or for "auto" / `AutoBatch` what fits in memory.

    Args:
        latent_size: `(h, w)` of the latents.
        snippet_length: frames per snippet `n`.
        default: the batch where free memory is unknown (CPU).
        name: the argument's name, for messages.
    """
    return resolve_batch_size(
        value, lambda: unet_memory(model, latent_size, snippet_length), model.device, default,
        maximum, name,
        lambda: calibrate(_unet_probe(model, latent_size, snippet_length), model.device),
    )


def vae_batch_size(
    model: DepthModel,
    padded_size: tuple[int, int],
    value: BatchSize = AUTO,
    default: int = DEFAULT_VAE_BATCH_SIZE,
    maximum: int = MAX_VAE_FRAMES,
    name: str = "vae_batch_size",
) -> int:
    """Frames per VAE call (encoding and decoding): ``value``, or for "auto" what fits.

    Args:
        padded_size: `(H, W)` of the padded frames (multiples of 8).
        default: the batch where free memory is unknown (CPU).
        name: the argument's name, for messages.
    """
    return resolve_batch_size(
        value, lambda: vae_memory(model, padded_size), model.device, default, maximum, name,
        lambda: calibrate(_vae_probe(model, padded_size), model.device),
    )


def resolve_run_batches(
    model: DepthModel,
    input_size: tuple[int, int],
    processing_resolution: int,
    snippet_length: int,
    snippets: BatchSize = AUTO,
    vae_frames: BatchSize = AUTO,
) -> RunBatches:
    """Both batch sizes of a whole run, resolved once (calibration runs at most once each).

    Call it at the top of a run (the pipeline, a node, the CLI, a benchmark) with the model
    where it will run, and pass the result to every stage.

    Args:
        model: the checkpoint, on the device it will run on.
        input_size: `(H0, W0)` of the frames.
        processing_resolution: longest side to process at (0: the input size).
        snippet_length: frames per snippet.
        snippets, vae_frames: snippets per UNet call and frames per VAE call, each a number,
            "auto" or an `AutoBatch` (where free memory is unknown, "auto" gives
            `DEFAULT_SNIPPETS_PER_BATCH` / `DEFAULT_VAE_BATCH_SIZE`).

    Returns:
        `RunBatches(snippets per UNet call, frames per VAE call)`.
    """
    padded = padded_size(input_size, processing_resolution)
    latent = (padded[0] // 8, padded[1] // 8)
    return RunBatches(
        snippets=snippet_batch_size(model, latent, snippet_length, snippets),
        vae=vae_batch_size(model, padded, vae_frames),
    )


def run_activation_bytes(
    model: DepthModel,
    input_size: tuple[int, int],
    processing_resolution: int,
    snippet_length: int,
    snippets: BatchSize,
    vae_frames: BatchSize,
    default_snippets: int = DEFAULT_SNIPPETS_PER_BATCH,
    default_vae_frames: int = DEFAULT_VAE_BATCH_SIZE,
) -> int:
    """Estimated peak activation bytes of one run's largest call (UNet or VAE), weights excluded.

    For a host that manages device memory itself (ComfyUI frees this much, evicting its own
    models, before the run). "auto" batches count as ``default_snippets`` /
    ``default_vae_frames``: an automatic batch then grows into whatever is free after that.

    Args:
        input_size: `(H0, W0)` of the frames.
        processing_resolution: longest side to process at (0: the input size).
        snippet_length: frames per snippet.
        snippets, vae_frames: snippets per UNet call and frames per VAE call (number, "auto"
            or `AutoBatch`).
    """
    check_batch_size(snippets, "snippets_per_batch")
    check_batch_size(vae_frames, "vae_batch_size")
    snippets = snippets if isinstance(snippets, int) else default_snippets
    vae_frames = vae_frames if isinstance(vae_frames, int) else default_vae_frames
    padded = padded_size(input_size, processing_resolution)
    unet = unet_memory(model, (padded[0] // 8, padded[1] // 8), snippet_length)
    vae = vae_memory(model, padded)
    return int(max(unet.fixed + unet.per_item * snippets, vae.fixed + vae.per_item * vae_frames))
