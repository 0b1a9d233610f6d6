"""The whole method, end to end: frames -> snippets -> co-alignment -> refinement."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from contextlib import contextmanager
from dataclasses import dataclass, field

from torch import Tensor

from .coalign.merge import spread_in_units_of
from .coalign.methods import DEFAULT_METHOD, coalign_depth
from .coalign.problem import CoalignSettings
from .hooks import NO_HOOKS, Hooks, weighted_stage_hooks
from .io.frames import resize_depth
from .io.sources import FrameSource, as_source
from .model.noise import check_noise, make_noise
from .presets import Preset
from .runtime.batch_sizes import BatchSize, resolve_run_batches
from .stages.denoise import denoise_snippets
from .stages.encode import encode_frames
from .stages.refine import refine_depth
from .types import (
    DEFAULT_SNIPPETS_PER_BATCH,
    DEFAULT_VAE_BATCH_SIZE,
    Alignment,
    DepthModel,
    DepthVideo,
    RunBatches,
    SnippetDepths,
    SnippetPlan,
)
from .validation import check_run
from .wording import API, Wording

logger = logging.getLogger(__name__)

STAGES = ("encode", "denoise", "coalign", "refine")


# Relative cost of the work per frame at one size (FLOPs of the published architecture,
# `bench.flops`): VAE encoder, UNet per snippet frame, VAE decoder.
ENCODE_COST, UNET_FRAME_COST, DECODE_COST = 38.1, 28.5, 87.2
COALIGN_SHARE = 0.02  # co-alignment and merge, a small fraction of encoding + denoising


def _no_stage_hooks(stage: str) -> Hooks:
    return NO_HOOKS


def stage_costs(plan: SnippetPlan, settings: Preset) -> dict[str, float]:
    """Relative cost of each stage of a run, in the order they run (for one weighted progress).

    Encoding is a VAE encoder pass per frame; denoising a UNet pass and a VAE decode per
    snippet frame; refinement a UNet pass per snippet frame and step (one stride-1 snippet
    per frame) plus encoding the depth and decoding the result.
    """
    frames = plan.num_frames
    encode = frames * ENCODE_COST
    denoise = plan.num_snippets * plan.snippet_length * (UNET_FRAME_COST + DECODE_COST)
    costs = {"encode": encode, "denoise": denoise, "coalign": COALIGN_SHARE * (encode + denoise)}
    if settings.refine_steps > 0:
        length = min(settings.refine_snippet_length, frames)
        costs["refine"] = frames * (
            ENCODE_COST + DECODE_COST + settings.refine_steps * length * UNET_FRAME_COST
        )
    return costs


@dataclass(frozen=True)
class DepthResult:
    """Everything one end-to-end run produced.

    Attributes:
        depth: the final depth video (`N H W` inverse depth; input size if restored).
        coaligned: the co-aligned video before refinement (processing size, -1..1).
        snippets: the snippet depths.
        alignment: the co-alignment parameters.
        timings: seconds per stage.
    """

    depth: DepthVideo
    coaligned: DepthVideo
    snippets: SnippetDepths
    alignment: Alignment
    timings: dict[str, float] = field(default_factory=dict)


def estimate_depth(
    model: DepthModel,
    frames: Tensor | FrameSource,
    settings: Preset,
    seed: int = 0,
    noise: Tensor | None = None,
    coalign_method: str = DEFAULT_METHOD,
    coalign_settings: CoalignSettings = CoalignSettings(),
    snippets_per_batch: BatchSize = DEFAULT_SNIPPETS_PER_BATCH,
    vae_batch_size: BatchSize = DEFAULT_VAE_BATCH_SIZE,
    restore_size: bool = False,
    hooks_for: Callable[[str], Hooks] | Hooks = _no_stage_hooks,
    storage_dir: str | None = None,
    spread: bool = False,
    wording: Wording = API,
    batches: RunBatches | None = None,
) -> DepthResult:
    """Depth of a whole clip with RollingDepth.

    Args:
        model: the loaded checkpoint (its dtype is used; ``settings.dtype`` matters when
            loading).
        frames: `N 3 H W` RGB in -1..1, or any clip `sources.as_source` accepts (a
            `FrameSource`, an `N H W 3` array, a video path, a ComfyUI VIDEO), read a
            batch at a time at the processing size.
        settings: a preset (`PRESETS[...]`, possibly changed with `dataclasses.replace`),
            or a preset's name ("fast").
        seed: seed of the shared noise (ignored when ``noise`` is given).
        noise: explicit `1 4 h w` noise instead of a seed.
        coalign_method: co-alignment solver name.
        coalign_settings: co-alignment settings.
        snippets_per_batch: snippets per UNet call, or "auto" / `AutoBatch` (free memory).
        vae_batch_size: frames per VAE call, or "auto" / `AutoBatch`.
            Both are resolved once, here, before any stage runs.
        restore_size: return depth at the input size instead of the processing size.
        hooks_for: ``hooks_for(stage)`` gives the hooks of each stage in `STAGES` (one
            progress per stage); or one `Hooks`: a single progress over the whole run,
            each stage weighted by its cost (`stage_costs`).
        storage_dir: keep snippet depths in temporary files in this folder
            (`runtime.storage.DiskTensor`: flat host memory on very long clips).
        spread: also give every pixel's spread (``result.depth.spread``, `N H W`): the
            standard deviation of its co-aligned predictions, computed during the merge, in
            the units of ``result.depth`` (carried through refinement and resizing).
        wording: how messages name the settings (the command line and the nodes pass
            theirs; see `validation`).
        batches: batch sizes resolved by the caller already (a ComfyUI node does so after
            ComfyUI freed memory); overrides ``snippets_per_batch`` and ``vae_batch_size``.

    Every argument is checked, and the run's memory estimated against what is free,
    before the first frame is encoded (`validation.check_run`).

    Returns:
        `DepthResult`; ``result.depth.inverse_depth`` is `N H W` float32 (larger = nearer).
    """
    source = as_source(frames)
    if batches is not None:
        snippets_per_batch, vae_batch_size = batches.snippets, batches.vae
    settings, plan = check_run(
        model, source, settings, seed, coalign_method, coalign_settings, snippets_per_batch,
        vae_batch_size, restore_size, storage_dir, hooks_for, noise, wording, spread,
    )
    if isinstance(hooks_for, Hooks):  # one progress for the whole run
        hooks_for = weighted_stage_hooks(hooks_for, stage_costs(plan, settings))
    logger.info("Snippet plan: %s", "; ".join(line.strip() for line in plan.describe().splitlines()))
    if batches is None:
        batches = resolve_run_batches(
            model, source.input_size, settings.processing_resolution, plan.snippet_length,
            snippets_per_batch, vae_batch_size,
        )

    timings: dict[str, float] = {}
    with timed(timings, "encode"):
        encoded = encode_frames(
            model, source, settings.processing_resolution, batches, hooks_for("encode")
        )
    latent_size = tuple(encoded.latents.shape[-2:])
    noise = make_noise(latent_size, seed) if noise is None else check_noise(noise, latent_size)
    logger.info(
        "Encoded %d frames at %dx%d.", encoded.num_frames, encoded.size[1], encoded.size[0]
    )
    with timed(timings, "denoise"):
        snippets = denoise_snippets(
            model, encoded, plan, noise, batches, hooks_for("denoise"), storage_dir
        )
    logger.info("Predicted %d snippets.", plan.num_snippets)
    with timed(timings, "coalign"):
        coaligned, alignment = coalign_depth(
            snippets, coalign_method, coalign_settings, hooks_for("coalign"), spread=spread
        )

    depth = coaligned
    if settings.refine_steps > 0:
        with timed(timings, "refine"):
            refined = refine_depth(
                model, encoded, coaligned.inverse_depth, noise, settings.refine_steps,
                settings.refine_start_dilation, settings.refine_snippet_length,
                settings.cap_dilation, batches, hooks_for("refine"),
            )
        carried = None if coaligned.spread is None else spread_in_units_of(
            coaligned.spread, coaligned.inverse_depth, refined
        )
        depth = DepthVideo(inverse_depth=refined, encoded=encoded, spread=carried, clip=encoded.clip)
        logger.info("Refined with %d steps.", settings.refine_steps)
    if restore_size and depth.size != encoded.input_size:
        depth = DepthVideo(
            inverse_depth=resize_depth(depth.inverse_depth, encoded.input_size),
            spread=None if depth.spread is None else resize_depth(depth.spread, encoded.input_size),
            clip=encoded.clip,
        )
    return DepthResult(
        depth=depth, coaligned=coaligned, snippets=snippets, alignment=alignment,
        timings=timings,
    )


@contextmanager
def timed(timings: dict[str, float], stage: str):
    """Record the seconds the ``with`` block took as ``timings[stage]``."""
    tic = time.perf_counter()
    yield
    timings[stage] = time.perf_counter() - tic
