"""The whole method, end to end: frames -> snippets -> co-alignment -> refinement."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from torch import Tensor

from .coalign.merge import spread_in_units_of
from .coalign.methods import coalign_depth
from .coalign.problem import CoalignSettings
from .hooks import NO_HOOKS, Hooks
from .io.frames import resize_depth
from .io.sources import FrameSource, as_source
from .model.noise import check_noise, make_noise
from .presets import Preset
from .runtime.batch_sizes import BatchSize, resolve_run_batches
from .stages.denoise import denoise_snippets
from .stages.encode import encode_frames
from .stages.refine import refine_depth
from .types import Alignment, DepthModel, DepthVideo, SnippetDepths
from .validation import check_run
from .wording import API, Wording

logger = logging.getLogger(__name__)

STAGES = ("encode", "denoise", "coalign", "refine")


def _no_stage_hooks(stage: str) -> Hooks:
    return NO_HOOKS


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
    coalign_method: str = "fast",
    coalign_settings: CoalignSettings = CoalignSettings(),
    snippets_per_batch: BatchSize = 8,
    vae_batch_size: BatchSize = 4,
    restore_size: bool = False,
    hooks_for: Callable[[str], Hooks] = _no_stage_hooks,
    storage_dir: str | None = None,
    spread: bool = False,
    wording: Wording = API,
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
        restore_size: return depth at the input size instead of the processing size.
        hooks_for: ``hooks_for(stage)`` gives the hooks of each stage in `STAGES`.
        storage_dir: keep snippet depths in memory-mapped temporary files in this folder
            (flat host memory on very long clips).
        spread: also give every pixel's spread (``result.depth.spread``, `N H W`): the
            standard deviation of its co-aligned predictions, computed during the merge, in
            the units of ``result.depth`` (carried through refinement and resizing).
        wording: how messages name the settings (the command line and the nodes pass
            theirs; see `validation`).

    Every argument is checked, and the run's memory estimated against what is free,
    before the first frame is encoded (`validation.check_run`).

    Returns:
        `DepthResult`; ``result.depth.inverse_depth`` is `N H W` float32 (larger = nearer).
    """
    source = as_source(frames)
    settings, plan = check_run(
        model, source, settings, seed, coalign_method, coalign_settings, snippets_per_batch,
        vae_batch_size, restore_size, storage_dir, hooks_for, noise, wording,
    )
    timings: dict[str, float] = {}
    logger.info("Snippet plan: %s", "; ".join(line.strip() for line in plan.describe().splitlines()))

    snippets_per_batch, vae_batch_size = resolve_run_batches(
        model, source.input_size, settings.processing_resolution, plan.snippet_length,
        snippets_per_batch, vae_batch_size,
    )
    tic = time.perf_counter()
    encoded = encode_frames(
        model, source, settings.processing_resolution, vae_batch_size, hooks_for("encode")
    )
    timings["encode"] = time.perf_counter() - tic
    latent_size = tuple(encoded.latents.shape[-2:])
    noise = make_noise(latent_size, seed) if noise is None else check_noise(noise, latent_size)
    logger.info(
        "Encoded %d frames at %dx%d.", encoded.num_frames, encoded.size[1], encoded.size[0]
    )

    tic = time.perf_counter()
    snippets = denoise_snippets(
        model, encoded, plan, noise, snippets_per_batch, vae_batch_size, hooks_for("denoise"),
        storage_dir,
    )
    timings["denoise"] = time.perf_counter() - tic
    logger.info("Predicted %d snippets.", plan.num_snippets)

    tic = time.perf_counter()
    coaligned, alignment = coalign_depth(
        snippets, coalign_method, coalign_settings, hooks_for("coalign"), spread=spread
    )
    timings["coalign"] = time.perf_counter() - tic

    depth = coaligned
    if settings.refine_steps > 0:
        tic = time.perf_counter()
        refined = refine_depth(
            model, encoded, coaligned.inverse_depth, noise, settings.refine_steps,
            settings.refine_start_dilation, settings.refine_snippet_length,
            settings.cap_dilation, snippets_per_batch, vae_batch_size, hooks_for("refine"),
        )
        timings["refine"] = time.perf_counter() - tic
        carried = None if coaligned.spread is None else spread_in_units_of(
            coaligned.spread, coaligned.inverse_depth, refined
        )
        depth = DepthVideo(inverse_depth=refined, encoded=encoded, spread=carried, clip=encoded.clip)
        logger.info("Refined with %d steps.", settings.refine_steps)
    if restore_size and depth.size != encoded.input_size:
        depth = DepthVideo(
            inverse_depth=resize_depth(depth.inverse_depth, encoded.input_size),
            encoded=None,
            spread=None if depth.spread is None else resize_depth(depth.spread, encoded.input_size),
            clip=encoded.clip,
        )
    return DepthResult(
        depth=depth, coaligned=coaligned, snippets=snippets, alignment=alignment,
        timings=timings,
    )

