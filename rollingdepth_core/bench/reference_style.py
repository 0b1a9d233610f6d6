"""The authors' way of running RollingDepth, rebuilt from our stages for side-by-side timing.

What the authors' release (prs-eth/RollingDepth @ c233765, `rollingdepth_pipeline.py` and
`depth_aligner.py`, default options) does where it matters for time, and so what this does:

- encode: the whole clip is moved to the device and encoded, 4 frames per VAE call
  (`max_vae_bs = 4`);
- snippets: per dilation, one UNet call per snippet, the latents kept on the device; then
  the latents of ALL snippets of that dilation are decoded together, 4 frames per VAE call
  (`decode_depth` on `(b n)` frames, so batches cross snippet boundaries), and the depths
  stay on the device (`unload_snippet` off);
- co-alignment on the model's device (`DepthAligner(device=...)`: minimum, crop, subsample
  and the Adam loop where the snippets are), then the full-resolution merge on the CPU
  (`merge_scaled_triplets(device=cpu)` copies every snippet to the host) and the min-max
  normalisation there;
- refinement: the co-aligned video back to the device, encoded 4 frames per call; each step
  one UNet call per snippet with every latent on the device; decoded 4 frames per call.

The arithmetic is ours (same functions), so the outputs equal our batched path to float
rounding; only batching and data placement differ.
"""

from __future__ import annotations

import torch
from einops import rearrange, repeat
from torch import Tensor

from ..coalign.merge import merge_aligned, normalize_depth
from ..coalign.methods import coalign
from ..coalign.problem import CoalignSettings
from ..io.frames import crop_to, pad_to_multiple, processing_size
from ..io.sources import FrameSource
from ..model.latents import decode_depth, encode_images
from ..model.noise import make_noise
from ..presets import Preset
from ..stages.denoise import denoise_step, storage_dtype_for
from ..stages.refine import refine_timesteps
from ..stages.snippets import effective_snippet_length, plan_snippets, refine_dilations, snippet_indices
from ..types import Alignment, DepthModel, DepthVideo, SnippetDepths
from .timing import StageClock

VAE_BATCH = 4  # the reference's `max_vae_bs`: frames per VAE call, encoding and decoding
SOLVERS_ON_DEVICE = ("reference",)  # the Adam loop runs where the snippets are, as the authors'


def decode_frames(model: DepthModel, latents: Tensor, size: tuple[int, int], dtype: torch.dtype) -> Tensor:
    """`m 4 h w` -> `m H W` ``dtype`` on the device, `VAE_BATCH` frames per call."""
    chunks = [
        crop_to(decode_depth(model.vae, latents[i : i + VAE_BATCH]), size).to(dtype)
        for i in range(0, latents.shape[0], VAE_BATCH)
    ]
    return torch.cat(chunks)


def predict_group(
    model: DepthModel, scheduler, rgb: Tensor, noise: Tensor, indices: Tensor, timestep: int,
    size: tuple[int, int], dtype: torch.dtype,
) -> Tensor:
    """One dilation the authors' way: one UNet call per snippet, then every frame of every
    snippet decoded `VAE_BATCH` at a time.

    Args:
        rgb: `N 4 h w` RGB latents on the device. noise: `1 4 h w` on the device.
        indices: `s n` frame indices of the group's snippets.

    Returns:
        `s n H W` depths on the device, in ``dtype``.
    """
    n = int(indices.shape[1])
    start = noise.expand(n, -1, -1, -1)
    latents = torch.stack([  # s n 4 h w, on the device
        denoise_step(model, scheduler, rgb[frames], start, timestep, n) for frames in indices
    ])
    depths = decode_frames(model, rearrange(latents, "s n c h w -> (s n) c h w"), size, dtype)
    return rearrange(depths, "(s n) H W -> s n H W", n=n)


def coalign_on_device(
    snippets: SnippetDepths, method: str, settings: CoalignSettings
) -> tuple[DepthVideo, Alignment]:
    """Co-alignment the authors' way: solve where the snippet depths are, merge on the CPU.

    Args:
        snippets: per group `s n H W` on the model's device.

    Returns:
        The co-aligned video (`N H W` float32 in -1..1, on the CPU) and the alignment.
    """
    on_device = method in SOLVERS_ON_DEVICE
    solve_from = snippets if on_device else _to_host(snippets)
    with torch.enable_grad():  # the reference solver is gradient descent
        alignment = coalign(solve_from, method, settings)
    host = _to_host(snippets) if on_device else solve_from  # the merge copies them to the host
    merged = merge_aligned(host, alignment)
    return DepthVideo(inverse_depth=normalize_depth(merged)), alignment


def _to_host(snippets: SnippetDepths) -> SnippetDepths:
    return SnippetDepths(plan=snippets.plan, depths=tuple(d.to("cpu") for d in snippets.depths))


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
        groups = tuple(
            predict_group(model, scheduler, rgb, noise, group.indices, timestep, size, store)
            for group in plan.groups
        )
    snippets = SnippetDepths(plan=plan, depths=groups)  # on the device

    with clock.stage("align"):
        video, _alignment = coalign_on_device(snippets, coalign_method, coalign_settings)
    depth = video.inverse_depth
    if settings.refine_steps > 0:
        with clock.stage("refine"):
            depth = _refine(model, rgb, video.inverse_depth, noise, settings, size)
    return {"depth": depth, "snippets": _to_host(snippets).depths, "plan": plan}


def _refine(
    model: DepthModel, rgb: Tensor, depth: Tensor, noise: Tensor, settings: Preset,
    size: tuple[int, int],
) -> Tensor:
    """Refinement with every latent on the device and one snippet per UNet call."""
    num_frames = rgb.shape[0]
    steps = settings.refine_steps
    images = repeat(pad_to_multiple(normalize_depth(depth)[:, None]), "N 1 H W -> N c H W", c=3)
    depth_latents = encode_images(model.vae, images.to(model.device, model.dtype), VAE_BATCH).to(model.dtype)
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
        indices = snippet_indices(num_frames, length, dilation).to(model.device)
        summed = torch.zeros_like(latents, dtype=torch.float32)
        for frames_of_snippet in indices:
            new = denoise_step(
                model, scheduler, rgb[frames_of_snippet], latents[frames_of_snippet], timestep, length
            )
            summed.index_add_(0, frames_of_snippet, new.float())
        count = torch.bincount(indices.flatten(), minlength=num_frames).float()
        latents = (summed / count[:, None, None, None]).to(model.dtype)
    return decode_frames(model, latents, size, torch.float32).cpu()

