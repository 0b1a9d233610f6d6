"""Co-alignment by name (SPEC §4): pick a solver, run it, merge and normalise.

Solvers live in their own modules and are listed here explicitly: "fast" (default,
`fast.py`), "reference" (the authors' Adam loop, `reference.py`) and "robust" (a
different, outlier-robust objective, `robust.py`).
"""

from __future__ import annotations

import logging

import torch

from ..errors import InvalidInput, InvalidSettings
from ..hooks import NO_HOOKS, Hooks
from ..runtime.devices import check_device
from ..types import Alignment, DepthVideo, SnippetDepths
from . import fast, reference, robust
from .merge import merge_aligned, merge_with_spread, normalization_scale, normalize_depth
from .problem import CoalignSettings, Solver, prepare_problem, snippets_device

logger = logging.getLogger(__name__)

DEFAULT_METHOD = "fast"  # the default of `coalign` / `coalign_depth` (node menus read it)

SOLVERS: dict[str, Solver] = {
    "fast": fast.solve_fast,
    "reference": reference.solve_adam,
    "robust": robust.solve_robust,
}


def checked_device(snippets: SnippetDepths, device: torch.device | str | None) -> torch.device:
    """Where co-alignment computes: ``device`` checked to exist here, or where the snippet
    depths are. Raises InvalidInput when ``snippets`` is not a `SnippetDepths`,
    InvalidSettings for an unknown or missing device (before any work)."""
    if not isinstance(snippets, SnippetDepths):
        raise InvalidInput(
            f"snippets must be SnippetDepths (from denoise_snippets); got {type(snippets).__name__}."
        )
    return snippets_device(snippets) if device is None else check_device(device)


def coalign(
    snippets: SnippetDepths,
    method: str = DEFAULT_METHOD,
    settings: CoalignSettings = CoalignSettings(),
    hooks: Hooks = NO_HOOKS,
    device: torch.device | str | None = None,
) -> Alignment:
    """Find one scale and shift per snippet that make the snippets agree (SPEC §4).

    Args:
        snippets: decoded snippet depths (`denoise_snippets`), per group `s n H W`.
        method: a solver name from `SOLVERS`: "fast" (default; the reference's answer in
            ~30 Newton steps, never above its objective on the clips measured), "reference"
            (the authors' Adam loop, for parity) or "robust" (an outlier-robust objective,
            see `robust.py`).
        settings: objective and solver settings.
        hooks: progress per iteration, cancel between iterations.
        device: where the solver computes (the optimisation pixels are copied there);
            default: where the snippet depths are (`problem.snippets_device`; the CPU for
            depths on disk).

    Returns:
        `Alignment`: scales and shifts per group (`s` float32, on the CPU), the subtracted
        offset and the objective value.
    """
    device = checked_device(snippets, device)
    if not isinstance(settings, CoalignSettings):
        raise InvalidSettings(f"settings must be a CoalignSettings; got {type(settings).__name__}.")
    if not isinstance(method, str) or method not in SOLVERS:
        raise InvalidSettings(
            f"Unknown co-alignment method {method!r}. Choose one of {', '.join(sorted(SOLVERS))}."
        )
    # Solvers may use autograd; ComfyUI runs every node under torch.inference_mode(), where
    # autograd is off and tensors made there can never join a graph. Outside it, ops on those
    # tensors give normal ones, so the problem is prepared here too.
    with torch.inference_mode(False), torch.enable_grad():
        problem = prepare_problem(snippets, settings, device)
        alignment = SOLVERS[method](problem, settings, hooks)
    logger.info(
        "Co-aligned %d snippets (%s): objective %.5f.",
        snippets.plan.num_snippets, method, alignment.objective,
    )
    return alignment


def coalign_depth(
    snippets: SnippetDepths,
    method: str = DEFAULT_METHOD,
    settings: CoalignSettings = CoalignSettings(),
    hooks: Hooks = NO_HOOKS,
    spread: bool = False,
    device: torch.device | str | None = None,
) -> tuple[DepthVideo, Alignment]:
    """Co-align, merge and normalise to -1..1: the depth video refinement consumes.

    Args:
        snippets, method, settings, hooks, device: as `coalign` (the merge computes on
            ``device`` too; the video comes back on the CPU).
        spread: also compute every pixel's spread (`merge_with_spread`: the standard
            deviation of its aligned predictions, in the normalised units of the result),
            in the same pass; costs one more `N H W` float32 video.

    Returns:
        The depth video (`N H W` in -1..1, carrying the snippets' latents and noise for
        refinement, the spread when asked, and the clip's `ClipInfo` when known) and the
        alignment.
    """
    device = checked_device(snippets, device)
    alignment = coalign(snippets, method, settings, hooks, device)
    encoded = snippets.encoded
    clip = encoded.clip if encoded is not None else None
    if not spread:
        merged = merge_aligned(snippets, alignment, device=device)
        return DepthVideo(inverse_depth=normalize_depth(merged), encoded=encoded, clip=clip), alignment
    merged, spreads = merge_with_spread(snippets, alignment, device=device)
    spreads.mul_(normalization_scale(merged))  # into the units of the normalised video
    video = DepthVideo(
        inverse_depth=normalize_depth(merged), encoded=encoded, spread=spreads, clip=clip
    )
    return video, alignment


def available_methods() -> tuple[str, ...]:
    """Names of every co-alignment solver, sorted (for menus and CLI choices)."""
    return tuple(sorted(SOLVERS))
