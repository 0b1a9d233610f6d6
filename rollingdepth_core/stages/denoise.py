"""Batched one-step snippet inference (SPEC §3.5) and the shared UNet + DDIM step."""

from __future__ import annotations

import logging

import torch
from einops import rearrange
from torch import Tensor

from ..errors import InvalidInput, NumericalError
from ..hooks import NO_HOOKS, Hooks
from ..model.latents import decode_depth
from ..model.noise import check_noise
from ..model.vae_batches import VaeBatch, decode_depth_to_host, decode_on_device
from ..runtime import batch_sizes as autobatch
from ..runtime.batch_loop import run_in_batches
from ..runtime.batch_sizes import BatchSize
from ..runtime.host_copies import HostCopier
from ..runtime.storage import host_empty
from ..types import DepthModel, EncodedFrames, SnippetDepths, SnippetPlan

logger = logging.getLogger(__name__)


def storage_dtype_for(model_dtype: torch.dtype) -> torch.dtype:
    """Host dtype of snippet depths: float32 for fp32 runs, else float16 (half the memory)."""
    return torch.float32 if model_dtype == torch.float32 else torch.float16


@torch.no_grad()
def denoise_step(
    model: DepthModel,
    scheduler,
    rgb_latents: Tensor,
    depth_latents: Tensor,
    timestep: int,
    num_frames: int,
) -> Tensor:
    """One UNet call and one DDIM step for a batch of snippets.

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
    sample = torch.cat([rgb_latents, depth_latents], dim=1)  # (s n) 8 h w
    t = torch.tensor(timestep, device=sample.device)
    velocity = model.unet(
        sample, t, encoder_hidden_states=model.empty_text_embed,
        cross_attention_kwargs={"num_frames": num_frames},
    ).sample  # (s n) 4 h w
    return scheduler.step(velocity, timestep, depth_latents).prev_sample


def decode_to_host(
    model: DepthModel, latents: Tensor, size: tuple[int, int], batch_size: int,
    dtype: torch.dtype,
) -> Tensor:
    """Decode `b 4 h w` latents, ``batch_size`` per VAE call; `b H W` on the host, cropped."""
    return decode_depth_to_host(model, latents, size, batch_size, dtype)


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
    snippets_per_batch: BatchSize = 8,
    decode_batch_size: BatchSize = 8,
    hooks: Hooks = NO_HOOKS,
    storage_dir: str | None = None,
) -> SnippetDepths:
    """Initial depth of every snippet: one denoising step from the shared noise, decoded.

    Many snippets go through the UNet together (``snippets_per_batch``); results equal the
    one-at-a-time reference within float rounding. On out-of-memory the batch is halved and
    retried. Depths are moved to the host in a compact dtype as soon as they are decoded
    (asynchronously on CUDA, so the GPU does not wait for the host), so accelerator memory
    does not grow with the clip.

    Args:
        model: the checkpoint.
        encoded: RGB latents of the clip (`encode_frames`).
        plan: which frames form each snippet (`plan_snippets`), for the same clip.
        noise: `1 4 h w`, the shared noise (`make_noise`).
        snippets_per_batch: snippets per UNet call, or "auto" / `AutoBatch` (free memory).
        decode_batch_size: frames per VAE decoder call, or "auto" / `AutoBatch`.
        hooks: progress per snippet, cancel between batches.
        storage_dir: keep the snippet depths in temporary files in this folder (memory
            mapped, for very long clips) instead of in RAM.

    Returns:
        `SnippetDepths`, per group `s n H W` at processing size.
    """
    check_plan_matches(plan, encoded.num_frames, "the encoded video")
    latent_size = tuple(encoded.latents.shape[-2:])
    noise = check_noise(noise, latent_size)
    device, dtype = model.device, model.dtype
    scheduler = model.make_scheduler()
    scheduler.set_timesteps(1)
    timestep = int(scheduler.timesteps[0])
    noise_on_device = noise.to(device, dtype)
    store = storage_dtype_for(dtype)
    height, width = encoded.size
    snippets_per_batch = autobatch.snippet_batch_size(
        model, latent_size, plan.snippet_length, snippets_per_batch
    )
    vae_batch = VaeBatch(
        autobatch.vae_batch_size(
            model, encoded.padded_size, decode_batch_size, default=8, name="decode_batch_size"
        )
    )
    total, done = plan.num_snippets, 0
    depths = []
    for group in plan.groups:
        n = group.snippet_length
        out = host_empty((group.num_snippets, n, height, width), store, storage_dir)
        name = f"snippet depths (dilation {group.dilation})"

        def store_batch(host: Tensor, start: int, stop: int, out=out, name=name, group=group,
                        n=n) -> None:
            depth = rearrange(host, "(b n) H W -> b n H W", n=n)
            check_finite_depth(depth, group.indices[start:stop], name, dtype)
            out[start:stop] = depth

        with HostCopier(device) as copier:

            def work(start: int, stop: int, indices=group.indices, n=n, copier=copier,
                     store_batch=store_batch) -> None:
                frames = indices[start:stop].flatten()  # (b n)
                rgb = encoded.latents[frames].to(device, dtype)  # (b n) 4 h w
                start_latents = noise_on_device.expand(rgb.shape[0], -1, -1, -1)
                latents = denoise_step(model, scheduler, rgb, start_latents, timestep, n)
                depth = decode_on_device(
                    model, latents, (height, width), vae_batch, store, decode_depth
                )
                copier.submit(depth, lambda host: store_batch(host, start, stop))

            run_in_batches(
                group.num_snippets, snippets_per_batch, work, device, hooks, "snippets",
                progress_offset=done, progress_total=total,
            )
        done += group.num_snippets
        depths.append(out)
    return SnippetDepths(plan=plan, depths=tuple(depths), encoded=encoded, noise=noise)


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
    snippets_per_batch: BatchSize, vae_batch_size: BatchSize, storage_dir: str | None,
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
    snippets_per_batch: BatchSize = 8,
    vae_batch_size: BatchSize = 4,
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
        storage_dir: keep snippet depths in memory-mapped temporary files there.

    Returns:
        `SnippetDepths` (carrying the RGB latents and noise for refinement).
    """
    from ..io.sources import as_source
    from ..model.noise import make_noise
    from .encode import encode_frames

    source = as_source(frames)
    check_plan_matches(plan, source.num_frames, "the video")
    check_fits(model, source, plan, processing_resolution, snippets_per_batch, vae_batch_size, storage_dir)
    # resolved once for the whole run, exactly as `estimate_depth` does (same batches, same sums)
    snippets_per_batch, vae_batch_size = autobatch.resolve_run_batches(
        model, source.input_size, processing_resolution, plan.snippet_length,
        snippets_per_batch, vae_batch_size,
    )
    total = source.num_frames + plan.num_snippets
    encode_hooks = Hooks(lambda done, _: hooks.progress(done, total), hooks.check_cancel)
    encoded = encode_frames(model, source, processing_resolution, vae_batch_size, encode_hooks)
    latent_size = tuple(encoded.latents.shape[-2:])
    noise = make_noise(latent_size, seed) if noise is None else check_noise(noise, latent_size)
    offset = encoded.num_frames
    denoise_hooks = Hooks(lambda done, _: hooks.progress(offset + done, total), hooks.check_cancel)
    return denoise_snippets(
        model, encoded, plan, noise, snippets_per_batch, vae_batch_size, denoise_hooks,
        storage_dir,
    )
