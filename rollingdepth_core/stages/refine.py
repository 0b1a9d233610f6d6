"""Coarse-to-fine refinement of a co-aligned depth video (SPEC §5)."""

from __future__ import annotations

import logging
from collections.abc import Callable

import torch
from torch import Tensor

from ..coalign.merge import normalize_depth, spread_in_units_of
from ..errors import InvalidInput, InvalidSettings
from ..hooks import NO_HOOKS, Hooks
from ..io.frames import LATENT_FACTOR, check_finite, pad_to_multiple
from ..model.latents import encode_depth
from ..model.noise import check_noise
from ..model.vae_batches import decode_depth_to_host, encode_to_host
from ..runtime.batch_loop import ShrinkingBatch, run_in_batches
from ..runtime.host_copies import HostCopier
from ..types import DepthModel, DepthVideo, EncodedFrames, RunBatches, check_run_batches
from .denoise import check_finite_depth, denoise_step
from .snippets import effective_snippet_length, refine_dilations, snippet_indices

logger = logging.getLogger(__name__)


def refine_timesteps(scheduler, num_steps: int) -> list[int]:
    """Timesteps of refinement: the second half of `set_timesteps(2 K)` (SPEC §5.2)."""
    total = 2 * num_steps
    limit = scheduler.config.num_train_timesteps
    if total > limit:
        raise InvalidSettings(
            f"refine steps must be at most {limit // 2}; got {num_steps}."
        )
    scheduler.set_timesteps(total)
    return [int(t) for t in scheduler.timesteps[num_steps:]]


def refine_schedule(
    scheduler, num_frames: int, num_steps: int, start_dilation: int = 6, snippet_length: int = 3,
    cap_dilation: bool = True,
) -> tuple[list[int], list[Tensor]]:
    """Each refinement step's timestep and snippets, coarse to fine (SPEC §5.4).

    Returns:
        `(timesteps, plans)`: K timesteps and K `s n` frame-index tensors (stride 1, the
        step's dilation).
    """
    timesteps = refine_timesteps(scheduler, num_steps)
    length = effective_snippet_length(num_frames, snippet_length)
    dilations = refine_dilations(num_steps, start_dilation, num_frames, length, cap_dilation)
    logger.debug("Refinement timesteps %s, dilations %s", timesteps, dilations)
    return timesteps, [snippet_indices(num_frames, length, d) for d in dilations]


StepCallback = Callable[[int, int, Tensor], None]
"""``on_step(step, timestep, latents)`` after each refinement step: `step` 0 .. K-1, the
step's DDIM timestep, and the frames' latents after it (`N 4 h w` float32 on the host; keep a
copy only if you need it later)."""


@torch.no_grad()
def refine_latents(
    model: DepthModel,
    rgb_latents: Tensor,
    depth_latents: Tensor,
    noise: Tensor,
    num_steps: int = 10,
    start_dilation: int = 6,
    snippet_length: int = 3,
    cap_dilation: bool = True,
    batches: RunBatches = RunBatches(),
    hooks: Hooks = NO_HOOKS,
    on_step: StepCallback | None = None,
) -> Tensor:
    """Refinement in latent space: noise to about T/2, then K coarse-to-fine DDIM steps.

    In each step every snippet is denoised from the previous step's latents; a frame's new
    latent is the mean over the snippets that contain it.

    Args:
        model: the checkpoint.
        rgb_latents: `N 4 h w` (host or device).
        depth_latents: `N 4 h w`, the encoded co-aligned depth.
        noise: `1 4 h w`, the shared noise of the run.
        num_steps: `K` >= 1.
        start_dilation: dilation of the first step (capped like snippet dilations).
        snippet_length: frames per refinement snippet.
        cap_dilation: cap the start dilation to the clip.
        batches: ``batches.snippets`` snippets per UNet call.
        hooks: progress per snippet over all steps, cancel between batches.
        on_step: called after every step with its latents (see `StepCallback`).

    Returns:
        `N 4 h w` float32 refined latents, on the host.

    Latents stay on the host; each batch moves only its snippets' latents to the device
    and its results come back asynchronously, so device memory does not grow with `N`.
    """
    if num_steps < 1:
        raise InvalidSettings(f"refine steps must be >= 1 here; got {num_steps}.")
    check_run_batches(batches)
    scheduler = model.make_scheduler()
    timesteps, plans = refine_schedule(
        scheduler, int(rgb_latents.shape[0]), num_steps, start_dilation, snippet_length, cap_dilation
    )
    length = int(plans[0].shape[1])
    latents = add_refine_noise(
        model, scheduler, depth_latents, noise, timesteps[0], batches.snippets * length
    )
    total, done = sum(p.shape[0] for p in plans), 0
    for step, (timestep, indices) in enumerate(zip(timesteps, plans, strict=True)):
        summed, count = refine_step_sums(
            model, scheduler, rgb_latents, latents, indices, timestep, batches.snippets, hooks,
            progress_offset=done, progress_total=total,
        )
        done += indices.shape[0]
        latents = summed / count[:, None, None, None]
        if on_step is not None:
            on_step(step, timestep, latents)
    return latents


@torch.no_grad()
def add_refine_noise(
    model: DepthModel,
    scheduler,
    depth_latents: Tensor,
    noise: Tensor,
    timestep: int,
    batch_frames: int,
) -> Tensor:
    """Depth latents noised to ``timestep`` with the shared noise (SPEC §5.3), on the host.

    Args:
        depth_latents: `N 4 h w` (host or device); any range of a clip's frames.
        noise: `1 4 h w`, the same for every frame.
        timestep: the first refinement timestep.
        batch_frames: frames per batch on the device (elementwise: batching changes nothing).

    Returns:
        `N 4 h w` float32 on the host.
    """
    device, dtype = model.device, model.dtype
    noise = noise.to(device, dtype)
    at = torch.tensor(timestep)
    latents = torch.empty(depth_latents.shape, dtype=torch.float32)  # N 4 h w, host
    with HostCopier(device) as copier:

        def work(start: int, stop: int) -> None:
            noisy = scheduler.add_noise(
                depth_latents[start:stop].to(device, dtype), noise.expand(stop - start, -1, -1, -1), at,
            ).float()
            copier.submit(noisy, lambda host: latents[start:stop].copy_(host))

        run_in_batches(int(depth_latents.shape[0]), batch_frames, work, device)
    return latents


@torch.no_grad()
def refine_step_sums(
    model: DepthModel,
    scheduler,
    rgb_latents: Tensor,
    latents: Tensor,
    indices: Tensor,
    timestep: int,
    snippets_per_batch: int,
    hooks: Hooks = NO_HOOKS,
    progress_offset: int = 0,
    progress_total: int | None = None,
) -> tuple[Tensor, Tensor]:
    """One refinement step over the snippets ``indices`` (all of a step's, or any part of them):
    each snippet denoised one DDIM step from ``latents``, summed per frame.

    The step's new latents are ``summed / count`` over all of its snippets; sums and counts
    of disjoint parts of the snippets add up (the farm shards a step that way).

    Args:
        rgb_latents: `N 4 h w` (host or device).
        latents: `N 4 h w` float32 on the host, the depth latents before the step.
        indices: `s n` frame indices of the snippets to denoise.
        timestep: this step's DDIM timestep.
        snippets_per_batch: snippets per UNet call (resolved).
        hooks: progress per snippet, cancel between batches.

    Returns:
        `(summed, count)`: `N 4 h w` float32 sums of the snippets' new latents per frame, and
        `N` float32 counts of snippets per frame, on the host.
    """
    device, dtype = model.device, model.dtype
    num_frames, length = int(latents.shape[0]), int(indices.shape[1])
    summed = torch.zeros_like(latents)
    count = torch.bincount(indices.flatten(), minlength=num_frames).float()
    with HostCopier(device) as copier:

        def work(start: int, stop: int) -> None:
            frames = indices[start:stop].flatten()  # (b n)
            rgb = rgb_latents[frames].to(device, dtype)
            current = latents[frames].to(device, dtype)
            new = denoise_step(model, scheduler, rgb, current, timestep, length).float()
            copier.submit(new, lambda host: summed.index_add_(0, frames, host))

        run_in_batches(
            indices.shape[0], snippets_per_batch, work, device, hooks, "snippets",
            progress_offset=progress_offset, progress_total=progress_total,
        )
    return summed, count


@torch.no_grad()
def encode_depth_latents(model: DepthModel, normalized: Tensor, batch: ShrinkingBatch) -> Tensor:
    """Latents of a depth video as the VAE sees it (a grey image, `latents.encode_depth`), for
    refinement (SPEC §5.1).

    Args:
        normalized: `N H W` inverse depth in -1..1 (`normalize_depth` over the whole clip);
            any range of a clip's frames.
        batch: frames per VAE call (halved for good on out-of-memory).

    Returns:
        `N 4 h w` float32 on the host.
    """
    pin = model.device.type == "cuda"

    def read(start: int, stop: int) -> Tensor:  # b H' W', padded
        padded = pad_to_multiple(normalized[start:stop, None])[:, 0]
        return padded.pin_memory() if pin and padded.device.type == "cpu" else padded

    num_frames = int(normalized.shape[0])
    height, width = (-(-int(s) // LATENT_FACTOR) for s in normalized.shape[-2:])
    return encode_to_host(
        model, num_frames, read, batch,
        torch.empty((num_frames, 4, height, width), dtype=torch.float32), encode=encode_depth,
    )


@torch.no_grad()
def refine_depth(
    model: DepthModel,
    encoded: EncodedFrames,
    depth: Tensor,
    noise: Tensor,
    num_steps: int = 10,
    start_dilation: int = 6,
    snippet_length: int = 3,
    cap_dilation: bool = True,
    batches: RunBatches = RunBatches(),
    hooks: Hooks = NO_HOOKS,
    on_step: StepCallback | None = None,
) -> Tensor:
    """Refine a depth video with the diffusion model (SPEC §5).

    The depth is min-max normalised to -1..1 over the clip first (a no-op for co-aligned
    depth), so any inverse-depth video can be refined.

    Args:
        model: the checkpoint.
        encoded: RGB latents of the same clip at the same processing size.
        depth: `N H W` inverse depth at ``encoded.size`` (larger = nearer).
        noise: `1 4 h w`, the shared noise.
        num_steps: refinement steps `K` >= 1.
        start_dilation, snippet_length, cap_dilation: the coarse-to-fine schedule.
        batches: snippets per UNet call and frames per VAE call.
        hooks: progress per snippet, cancel between batches.
        on_step: called after every step with its latents (see `StepCallback`).

    Returns:
        `N H W` float32 refined inverse depth, not normalised (roughly -1..1).
    """
    check_run_batches(batches)
    if depth.ndim != 3:
        raise InvalidInput(f"depth must be `N H W`; got shape {tuple(depth.shape)}.")
    if depth.shape[0] != encoded.num_frames or tuple(depth.shape[-2:]) != encoded.size:
        raise InvalidInput(
            f"depth is {tuple(depth.shape)} but the frames were encoded as "
            f"{encoded.num_frames} x {encoded.size}. Resize the depth to the processing size."
        )
    check_finite(depth[:, None], "depth")
    noise = check_noise(noise, tuple(encoded.latents.shape[-2:]))
    vae_batch = ShrinkingBatch(batches.vae)
    normalized = normalize_depth(depth)  # N H W in -1..1
    depth_latents = encode_depth_latents(model, normalized, vae_batch)
    latents = refine_latents(
        model, encoded.latents, depth_latents, noise, num_steps, start_dilation,
        snippet_length, cap_dilation, batches, hooks, on_step,
    )
    refined = decode_depth_to_host(model, latents, encoded.size, vae_batch, torch.float32)
    check_finite_depth(refined, None, "refined depth", model.dtype)
    return refined


def refine_video(
    model: DepthModel,
    frames,
    depth: DepthVideo,
    num_steps: int = 10,
    start_dilation: int = 6,
    snippet_length: int = 3,
    cap_dilation: bool = True,
    seed: int = 0,
    noise: Tensor | None = None,
    processing_resolution: int = 0,
    batches: RunBatches = RunBatches(),
    hooks: Hooks = NO_HOOKS,
) -> DepthVideo:
    """Refine any inverse-depth video of a clip (one call for a graph node).

    The frames are processed at the depth's size (``processing_resolution`` 0) or at the
    given resolution (the depth is then resized to it). The RGB latents carried by ``depth``
    are reused when they belong to these frames at this size; otherwise the frames are
    encoded again.

    Args:
        frames: `N 3 H0 W0` RGB in -1..1, or any clip `sources.as_source` accepts (a
            `FrameSource`, an `N H W 3` array, a video path, a ComfyUI VIDEO).
        depth: inverse depth of the same `N` frames (any range; normalised to -1..1 first).
        num_steps: refinement steps `K` >= 1.
        seed: seed of the noise (use the snippet seed to match the reference); ``noise``
            overrides it.
        batches: the run's batch sizes (resolved by the caller, e.g. `resolve_run_batches`).

    Returns:
        Refined depth video at the processing size; a spread carried by ``depth`` comes
        along, scaled into the refined video's units (`spread_in_units_of`).
    """
    from ..io.frames import processing_size, resize_depth
    from ..io.sources import as_source
    from ..model.noise import make_noise
    from .encode import encode_frames

    check_run_batches(batches)
    source = as_source(frames)
    if depth.num_frames != source.num_frames:
        raise InvalidInput(
            f"The depth video has {depth.num_frames} frames but the video has "
            f"{source.num_frames}. Connect the frames the depth was made from."
        )
    if processing_resolution == 0:
        size = depth.size
    else:
        size = processing_size(*source.input_size, processing_resolution)
    encoded = depth.encoded
    reusable = (
        encoded is not None and encoded.size == size
        and encoded.fingerprint == source.fingerprint() + (size,)
    )
    if not reusable:
        encoded = encode_frames(model, source, batches=batches, size=size)
    inverse_depth = resize_depth(depth.inverse_depth.float(), size)
    latent_size = tuple(encoded.latents.shape[-2:])
    noise = make_noise(latent_size, seed) if noise is None else check_noise(noise, latent_size)
    refined = refine_depth(
        model, encoded, inverse_depth, noise, num_steps, start_dilation, snippet_length,
        cap_dilation, batches, hooks,
    )
    spread = None if depth.spread is None else spread_in_units_of(depth.spread, depth.inverse_depth, refined)
    return DepthVideo(
        inverse_depth=refined, encoded=encoded, spread=spread, clip=depth.clip or encoded.clip
    )
