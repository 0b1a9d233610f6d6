"""The authors' way of running RollingDepth, rebuilt from our stages for side-by-side timing.

As in the reference release: the whole clip is moved to the device and encoded four frames
per VAE call; then one UNet call per snippet, each snippet decoded right away (VAE batch
4) and kept on the device; co-alignment; refinement one snippet per UNet call with every
latent on the device. The arithmetic is ours (same functions), so outputs must equal our
batched path to float rounding; only batching and data placement differ.
"""

from __future__ import annotations

import torch
from einops import repeat
from torch import Tensor

from ..coalign.merge import normalize_depth
from ..coalign.methods import coalign_depth
from ..coalign.problem import CoalignSettings
from ..io.frames import crop_to, pad_to_multiple, processing_size
from ..io.sources import FrameSource
from ..model.latents import decode_depth, encode_images
from ..model.noise import make_noise
from ..presets import Preset
from ..stages.denoise import denoise_step, storage_dtype_for
from ..stages.refine import refine_timesteps
from ..stages.snippets import effective_snippet_length, plan_snippets, refine_dilations, snippet_indices
from ..types import DepthModel, SnippetDepths
from .timing import StageClock

VAE_BATCH = 4  # the reference's default VAE batch


def _decode(model: DepthModel, latents: Tensor, size: tuple[int, int], dtype: torch.dtype) -> Tensor:
    """`b 4 h w` -> `b H W` ``dtype`` on the device, VAE_BATCH frames per call."""
    chunks = [
        crop_to(decode_depth(model.vae, latents[i : i + VAE_BATCH]), size).to(dtype)
        for i in range(0, latents.shape[0], VAE_BATCH)
    ]
    return torch.cat(chunks)


@torch.no_grad()
def run_reference_style(
    model: DepthModel,
    source: FrameSource,
    settings: Preset,
    seed: int,
    coalign_method: str,
    coalign_settings: CoalignSettings,
    clock: StageClock,
) -> dict:
    """Depth of a clip the reference's way; returns depth, snippet depths and the plan.

    Returns:
        ``{"depth": N H W float32 host, "snippets": per group s n H W host, "plan": ...}``
    """
    device, dtype = model.device, model.dtype
    num_frames = source.num_frames
    size = processing_size(*source.input_size, settings.processing_resolution)
    plan = plan_snippets(num_frames, settings.dilations, settings.snippet_length, settings.cap_dilation)

    with clock.stage("encode"):
        frames = pad_to_multiple(source.read(0, num_frames, size)).to(device, dtype)  # N 3 H W
        rgb = encode_images(model.vae, frames, VAE_BATCH).to(dtype)  # N 4 h w, on the device
        del frames
    noise = make_noise(tuple(rgb.shape[-2:]), seed).to(device, dtype)
    scheduler = model.make_scheduler()
    scheduler.set_timesteps(1)
    timestep = int(scheduler.timesteps[0])

    store = storage_dtype_for(dtype)  # fp16 for half-precision runs, as the reference keeps them
    with clock.stage("denoise"):
        groups = []
        for group in plan.groups:
            n = group.snippet_length
            depths = []
            for frames_of_snippet in group.indices:  # one UNet call per snippet
                start = noise.expand(n, -1, -1, -1)
                latents = denoise_step(model, scheduler, rgb[frames_of_snippet], start, timestep, n)
                depths.append(_decode(model, latents, size, store))  # n H W, stays on the device
            groups.append(torch.stack(depths))  # s n H W

    with clock.stage("align"):
        snippets = SnippetDepths(plan=plan, depths=tuple(g.to("cpu", store) for g in groups))
        with torch.enable_grad():  # the reference solver is gradient descent
            video, _alignment = coalign_depth(snippets, coalign_method, coalign_settings)
    depth = video.inverse_depth
    if settings.refine_steps > 0:
        with clock.stage("refine"):
            depth = _refine(model, rgb, video.inverse_depth, noise, settings, size)
    return {"depth": depth, "snippets": snippets.depths, "plan": plan}


def _refine(
    model: DepthModel, rgb: Tensor, depth: Tensor, noise: Tensor, settings: Preset,
    size: tuple[int, int],
) -> Tensor:
    """Refinement with every latent on the device and one snippet per UNet call."""
    device, dtype = model.device, model.dtype
    num_frames = rgb.shape[0]
    steps = settings.refine_steps
    images = repeat(pad_to_multiple(normalize_depth(depth)[:, None]), "N 1 H W -> N c H W", c=3)
    depth_latents = encode_images(model.vae, images.to(device, dtype), VAE_BATCH).to(dtype)
    scheduler = model.make_scheduler()
    timesteps = refine_timesteps(scheduler, steps)
    length = effective_snippet_length(num_frames, settings.refine_snippet_length)
    dilations = refine_dilations(
        steps, settings.refine_start_dilation, num_frames, length, settings.cap_dilation
    )
    latents = scheduler.add_noise(
        depth_latents, noise.expand(num_frames, -1, -1, -1), torch.tensor(timesteps[0])
    )
    for timestep, dilation in zip(timesteps, dilations, strict=True):
        indices = snippet_indices(num_frames, length, dilation).to(device)
        summed = torch.zeros_like(latents, dtype=torch.float32)
        for frames_of_snippet in indices:
            new = denoise_step(
                model, scheduler, rgb[frames_of_snippet], latents[frames_of_snippet], timestep, length
            )
            summed.index_add_(0, frames_of_snippet, new.float())
        count = torch.bincount(indices.flatten(), minlength=num_frames).float()
        latents = (summed / count[:, None, None, None]).to(dtype)
    return _decode(model, latents, size, torch.float32).cpu()
