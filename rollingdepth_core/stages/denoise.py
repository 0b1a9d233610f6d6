"""Batched one-step snippet inference (SPEC §3.5) and the shared UNet + DDIM step.

The UNet call convention of a snippet (`unet_velocity`): the `n` frames of each snippet sit
next to each other in the batch, `(s n)`, and the call passes
``cross_attention_kwargs={"num_frames": n}``, so that in every self-attention layer the
tokens of a snippet's frames form one sequence (`model.attention.fold_frames`). The input
is the RGB latents and the depth latents side by side on the channel axis (`(s n) 8 h w`).
"""

from __future__ import annotations

import logging

import torch
from einops import rearrange
from torch import Tensor

from ..errors import InvalidInput, NumericalError
from ..hooks import NO_HOOKS, Hooks
from ..model.latents import decode_depth
from ..model.noise import check_noise
from ..model.vae_batches import decode_on_device
from ..runtime.batch_loop import ShrinkingBatch, run_in_batches
from ..runtime.host_copies import HostCopier
from ..runtime.storage import host_empty
from ..types import (
    DepthModel,
    EncodedFrames,
    RunBatches,
    SnippetDepths,
    SnippetGroup,
    SnippetPlan,
    check_run_batches,
)

logger = logging.getLogger(__name__)


def storage_dtype_for(model_dtype: torch.dtype) -> torch.dtype:
    """Host dtype of snippet depths: float32 for fp32 runs, else float16 (half the memory)."""
    return torch.float32 if model_dtype == torch.float32 else torch.float16


@torch.no_grad()
def unet_velocity(
    model: DepthModel,
    rgb_latents: Tensor,
    depth_latents: Tensor,
    timestep: int | Tensor,
    num_frames: int,
) -> Tensor:
    """The UNet's prediction for a batch of snippets: the model's call convention.

    Args:
        model: the checkpoint (cross-frame attention installed by `load_model`).
        rgb_latents: `(s n) 4 h w`, the frames of each snippet next to each other, on the
            model's device and dtype.
        depth_latents: `(s n) 4 h w`, the current (noisy) depth latents, same layout.
        timestep: the diffusion timestep (0 .. 999).
        num_frames: `n`, frames per snippet: the frames of a snippet attend to each other in
            every self-attention layer; `n = 1` is the single-image model.

    Returns:
        `(s n) 4 h w`, the v-prediction (`scheduler.step` turns it into the next latents).
    """
    if rgb_latents.shape != depth_latents.shape or rgb_latents.shape[0] % num_frames:
        raise InvalidInput(
            f"rgb and depth latents must both be `(s n) 4 h w` with n = {num_frames}; got "
            f"{tuple(rgb_latents.shape)} and {tuple(depth_latents.shape)}."
        )
    sample = torch.cat([rgb_latents, depth_latents], dim=1)  # (s n) 8 h w
    t = torch.as_tensor(timestep, device=sample.device)
    return model.unet(
        sample, t, encoder_hidden_states=model.empty_text_embed,
        cross_attention_kwargs={"num_frames": num_frames},
    ).sample  # (s n) 4 h w


@torch.no_grad()
def denoise_step(
    model: DepthModel,
    scheduler,
    rgb_latents: Tensor,
    depth_latents: Tensor,
    timestep: int,
    num_frames: int,
) -> Tensor:
    """One UNet call (`unet_velocity`) and one DDIM step for a batch of snippets.

    Args:
        model: the checkpoint (cross-frame attention installed).
        scheduler: a `DDIMScheduler` with timesteps set.
        rgb_latents: `(s n) 4 h w` on the model's device and dtype.
        depth_latents: `(s n) 4 h w`, the current (noisy) depth latents.
        timestep: the current timestep.
        num_frames: `n`, frames per snippet; frames of a snippet attend to each other.

    Returns:
        `(s n) 4 h w`, the depth latents after `scheduler.step`.
    """
    velocity = unet_velocity(model, rgb_latents, depth_latents, timestep, num_frames)
    return scheduler.step(velocity, timestep, depth_latents).prev_sample


def check_plan_matches(plan: SnippetPlan, num_frames: int, what: str) -> None:
    """Raise ``InvalidInput`` when a plan was made for another number of frames."""
    if plan.num_frames != num_frames:
        raise InvalidInput(
            f"The snippet plan is for {plan.num_frames} frames but {what} has {num_frames}. "
            "Make the plan from the same video."
        )


@torch.no_grad()
def denoise_snippets(
    model: DepthModel,
    encoded: EncodedFrames,
    plan: SnippetPlan,
    noise: Tensor,
    batches: RunBatches = RunBatches(),
    hooks: Hooks = NO_HOOKS,
    storage_dir: str | None = None,
    return_latents: bool = False,
) -> SnippetDepths:
    """Initial depth of every snippet: one denoising step from the shared noise, decoded.

    Many snippets go through the UNet together (``batches.snippets``); results equal the
    one-at-a-time reference within float rounding. On out-of-memory the batch is halved and
    retried. Depths are moved to the host in a compact dtype as soon as they are decoded
    (asynchronously on CUDA, so the GPU does not wait for the host), so accelerator memory
    does not grow with the clip.

    Args:
        model: the checkpoint.
        encoded: RGB latents of the clip (`encode_frames`).
        plan: which frames form each snippet (`plan_snippets`), for the same clip.
        noise: `1 4 h w`, the shared noise (`make_noise`).
        batches: snippets per UNet call and frames per VAE decoder call.
        hooks: progress per snippet, cancel between batches.
        storage_dir: keep the snippet depths in temporary files in this folder
            (`runtime.storage.DiskTensor`, for very long clips) instead of in RAM.
        return_latents: also keep each snippet's depth latents (`SnippetDepths.latents`,
            per group `s n 4 h w` float32), the UNet step's output before decoding.

    Returns:
        `SnippetDepths`, per group `s n H W` at processing size.
    """
    check_run_batches(batches)
    check_plan_matches(plan, encoded.num_frames, "the encoded video")
    noise = check_noise(noise, tuple(encoded.latents.shape[-2:]))
    scheduler = model.make_scheduler()
    scheduler.set_timesteps(1)
    vae_batch = ShrinkingBatch(batches.vae)
    depths, latents, done = [], [], 0
    for group in plan.groups:
        group_depth, group_latents = _denoise_group(
            model, scheduler, encoded, group, noise, batches.snippets, vae_batch,
            Hooks(lambda d, _, offset=done: hooks.progress(offset + d, plan.num_snippets),
                  hooks.check_cancel),
            storage_dir, return_latents,
        )
        done += group.num_snippets
        depths.append(group_depth)
        latents.append(group_latents)
    return SnippetDepths(
        plan=plan, depths=tuple(depths), encoded=encoded, noise=noise,
        latents=tuple(latents) if return_latents else None,
    )


def _denoise_group(
    model: DepthModel,
    scheduler,
    encoded: EncodedFrames,
    group: SnippetGroup,
    noise: Tensor,
    snippets_per_batch: int,
    vae_batch: ShrinkingBatch,
    hooks: Hooks,
    storage_dir: str | None,
    keep_latents: bool,
):
    """Denoise and decode the snippets of one dilation; `(s n H W depths, s n 4 h w or None)`."""
    device, dtype = model.device, model.dtype
    timestep = int(scheduler.timesteps[0])
    noise = noise.to(device, dtype)
    n, size = group.snippet_length, encoded.size
    store = storage_dtype_for(dtype)
    depths = host_empty((group.num_snippets, n, *size), store, storage_dir)
    latents = (
        host_empty((group.num_snippets, n, *encoded.latents.shape[1:]), torch.float32, storage_dir)
        if keep_latents else None
    )
    name = f"snippet depths (dilation {group.dilation})"

    def store_depth(host: Tensor, start: int, stop: int) -> None:
        depth = rearrange(host, "(b n) H W -> b n H W", n=n)
        check_finite_depth(depth, group.indices[start:stop], name, dtype)
        depths[start:stop] = depth

    def store_latents(host: Tensor, start: int, stop: int) -> None:
        latents[start:stop] = rearrange(host, "(b n) c h w -> b n c h w", n=n)

    with HostCopier(device) as copier:

        def work(start: int, stop: int) -> None:
            frames = group.indices[start:stop].flatten()  # (b n)
            rgb = encoded.latents[frames].to(device, dtype)  # (b n) 4 h w
            start_latents = noise.expand(rgb.shape[0], -1, -1, -1)
            depth_latents = denoise_step(model, scheduler, rgb, start_latents, timestep, n)
            depth = decode_on_device(model, depth_latents, size, vae_batch, store, decode_depth)
            copier.submit(depth, lambda host: store_depth(host, start, stop))
            if latents is not None:
                copier.submit(depth_latents.float(), lambda host: store_latents(host, start, stop))

        run_in_batches(group.num_snippets, snippets_per_batch, work, device, hooks, "snippets")
    return depths, latents


def check_finite_depth(depth: Tensor, frame_of: Tensor | None, what: str, dtype: torch.dtype) -> None:
    """Raise ``NumericalError`` naming the frames whose depth holds NaN or inf.

    Args:
        depth: `... H W` with leading dims matching ``frame_of`` (or `N H W`).
        frame_of: frame index of each leading entry, or None when the first dim is frames.
    """
    bad = ~torch.isfinite(depth.flatten(-2)).all(-1)
    if not bool(bad.any()):
        return
    frames = frame_of[bad] if frame_of is not None else bad.nonzero().flatten()
    frames = sorted(set(frames.flatten().tolist()))
    name = str(dtype).replace("torch.", "")
    raise NumericalError(
        f"NaN or infinite values in {what} at frames {frames[:10]}{' ...' if len(frames) > 10 else ''} "
        f"(dtype {name}). Try dtype fp32 (or bf16) or the 'paper' preset."
    )


def check_fits(
    model: DepthModel, source, plan: SnippetPlan, processing_resolution: int,
    snippets_per_batch: int, vae_batch_size: int, storage_dir: str | None,
) -> None:
    """Refuse, before encoding, a clip whose snippet depths and batches cannot fit in free memory."""
    from ..io.frames import processing_size
    from ..runtime.memory_estimate import architecture_of, check_memory, estimate_run_memory

    size = processing_size(*source.input_size, processing_resolution)
    estimate = estimate_run_memory(
        source.num_frames, size, plan.num_snippets * plan.snippet_length, model.dtype, model.device,
        architecture_of(model), source.input_size, snippets_on_disk=storage_dir is not None,
        weights_loaded=True, snippets_per_batch=snippets_per_batch, vae_batch_size=vae_batch_size,
        snippet_length=plan.snippet_length,
    )
    check_memory(estimate, model.device, f"{source.num_frames} frame(s) at {size[1]}x{size[0]}",
                 "Lower processing_resolution or snippets_per_batch, or process fewer frames.")


def predict_snippets(
    model: DepthModel,
    frames,
    plan: SnippetPlan,
    processing_resolution: int = 768,
    seed: int = 0,
    noise: Tensor | None = None,
    batches: RunBatches = RunBatches(),
    hooks: Hooks = NO_HOOKS,
    storage_dir: str | None = None,
) -> SnippetDepths:
    """Encode a clip and denoise every snippet of ``plan`` (one call for a graph node).

    Progress counts frames encoded plus snippets denoised.

    Args:
        frames: `N 3 H W` RGB in -1..1, or any clip `sources.as_source` accepts (a
            `FrameSource`, an `N H W 3` array, a video path, a ComfyUI VIDEO).
        plan: snippet plan for the same `N`.
        processing_resolution: longest side to process at (0 keeps the input size).
        seed: seed of the shared noise; ``noise`` overrides it.
        batches: the run's batch sizes (resolved by the caller, e.g. `resolve_run_batches`).
        storage_dir: keep snippet depths in temporary files there.

    Returns:
        `SnippetDepths` (carrying the RGB latents and noise for refinement).
    """
    from ..io.sources import as_source
    from ..model.noise import make_noise
    from .encode import encode_frames

    check_run_batches(batches)
    source = as_source(frames)
    check_plan_matches(plan, source.num_frames, "the video")
    check_fits(model, source, plan, processing_resolution, batches.snippets, batches.vae, storage_dir)
    total = source.num_frames + plan.num_snippets
    encode_hooks = Hooks(lambda done, _: hooks.progress(done, total), hooks.check_cancel)
    encoded = encode_frames(model, source, processing_resolution, batches, encode_hooks)
    latent_size = tuple(encoded.latents.shape[-2:])
    noise = make_noise(latent_size, seed) if noise is None else check_noise(noise, latent_size)
    offset = encoded.num_frames
    denoise_hooks = Hooks(lambda done, _: hooks.progress(offset + done, total), hooks.check_cancel)
    return denoise_snippets(model, encoded, plan, noise, batches, denoise_hooks, storage_dir)
