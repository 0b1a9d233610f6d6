"""Co-alignment (SPEC §4): one scale and shift per snippet, then a streamed merge.

The objective is the reference's; solvers live in their own modules and are picked by
name (`SOLVERS`). Everything here works on per-group tensors `s n P` and frame indices
`s n`, never on a dense `rows N P` array.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import Tensor

from .errors import InvalidInput, InvalidSettings
from .hooks import NO_HOOKS, Hooks
from .refine import normalize_depth
from .types import Alignment, DepthVideo, SnippetDepths

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class CoalignSettings:
    """Settings of the co-alignment objective and its solvers (reference defaults).

    Attributes:
        subsample: keep every n-th pixel in both axes for the optimisation.
        border: pixels cropped at every border before subsampling.
        num_iterations: Adam iterations (reference solver) / iteration cap (others).
        learning_rate: Adam step size.
        adam_betas: Adam betas.
        depth_term_weight: weight of the depth (1 / inverse depth) term.
        scale_reg_weight: weight of `mean(relu(1 - s)^2)` per group.
        shift_reg_weight: weight of `mean(t^2)` per group.
        min_inverse_depth: values are clipped to this before taking 1 / x.
        dense_normalization: divide the data terms by the size of the reference's dense
            `rows N P` array, empty cells included (needed for parity); otherwise by the
            number of predictions.
        tolerance: relative objective change that stops iterative solvers early (0: never).
    """

    subsample: int = 10
    border: int = 2
    num_iterations: int = 2000
    learning_rate: float = 1e-3
    adam_betas: tuple[float, float] = (0.5, 0.9)
    depth_term_weight: float = 1.0
    scale_reg_weight: float = 0.1
    shift_reg_weight: float = 10.0
    min_inverse_depth: float = 1e-3
    dense_normalization: bool = True
    tolerance: float = 0.0

    def __post_init__(self) -> None:
        if self.subsample < 1:
            raise InvalidSettings(f"subsample must be >= 1; got {self.subsample}.")
        if self.border < 0:
            raise InvalidSettings(f"border must be >= 0; got {self.border}.")
        if self.num_iterations < 0:
            raise InvalidSettings(f"num_iterations must be >= 0; got {self.num_iterations}.")


@dataclass(frozen=True)
class AlignmentProblem:
    """What a solver sees: subsampled, min-subtracted snippet values and their frames.

    Attributes:
        values: per group `s n P` float32 (`P` optimisation pixels), global minimum subtracted.
        indices: per group `s n` int64 frame indices.
        num_frames: `N`.
        offset: the subtracted global minimum.
    """

    values: tuple[Tensor, ...]
    indices: tuple[Tensor, ...]
    num_frames: int
    offset: float

    @property
    def num_rows(self) -> int:
        """Rows of the reference's dense array: snippet length summed over groups."""
        return sum(int(v.shape[1]) for v in self.values)

    @property
    def num_pixels(self) -> int:
        return int(self.values[0].shape[-1])


def global_minimum(snippets: SnippetDepths) -> float:
    """Smallest value over all snippets and pixels (border included), as the reference."""
    return min(float(d.min()) for d in snippets.depths)


def optimisation_pixels(depth: Tensor, border: int, subsample: int) -> Tensor:
    """Border crop then strided subsampling of `... H W` (reference: `[b:-b, b:-b][::f, ::f]`).

    A border that would leave nothing is not applied.
    """
    height, width = depth.shape[-2:]
    if border > 0 and height > 2 * border and width > 2 * border:
        depth = depth[..., border:-border, border:-border]
    return depth[..., ::subsample, ::subsample]


def prepare_problem(snippets: SnippetDepths, settings: CoalignSettings) -> AlignmentProblem:
    """Subtract the global minimum, crop, subsample and flatten every group to `s n P`."""
    check_snippet_depths(snippets)
    offset = global_minimum(snippets)
    values = tuple(
        (optimisation_pixels(d, settings.border, settings.subsample).float() - offset).flatten(-2)
        for d in snippets.depths
    )
    indices = tuple(g.indices for g in snippets.plan.groups)
    return AlignmentProblem(values, indices, snippets.plan.num_frames, offset)


def check_snippet_depths(snippets: SnippetDepths) -> None:
    """Raise ``InvalidInput`` for snippet depths that do not match their plan or are not finite."""
    groups = snippets.plan.groups
    if len(groups) == 0 or len(snippets.depths) != len(groups):
        raise InvalidInput(
            f"snippet depths hold {len(snippets.depths)} groups but the plan has {len(groups)}."
        )
    for group, depth in zip(groups, snippets.depths, strict=False):
        if depth.ndim != 4 or tuple(depth.shape[:2]) != tuple(group.indices.shape):
            raise InvalidInput(
                f"snippet depths of dilation {group.dilation} must be `s n H W` with s n = "
                f"{tuple(group.indices.shape)}; got {tuple(depth.shape)}."
            )
        if not bool(torch.isfinite(depth).all()):
            raise InvalidInput(f"snippet depths of dilation {group.dilation} contain NaN or inf.")


def frame_means(values: Tensor, frames: Tensor, num_frames: int) -> Tensor:
    """Per-frame mean of predictions.

    Args:
        values: `m P`, one row per prediction.
        frames: `m` frame index of each row.

    Returns:
        `N P`.
    """
    sums = torch.zeros(num_frames, values.shape[-1], dtype=values.dtype, device=values.device)
    sums.index_add_(0, frames, values)
    counts = torch.bincount(frames, minlength=num_frames).to(values.dtype)
    return sums / counts[:, None]


def objective(
    problem: AlignmentProblem,
    scales: tuple[Tensor, ...],
    shifts: tuple[Tensor, ...],
    settings: CoalignSettings,
) -> Tensor:
    """The reference co-alignment loss at the given parameters (differentiable).

    Per frame, the target is the mean of its aligned predictions (a constant), each residual
    is divided by the frame's mean |target|; the same on `1 / clip(x, min)`; plus per group
    `w_s mean(relu(1 - s)^2) + w_t mean(t^2)`.

    Args:
        problem: `prepare_problem` output.
        scales, shifts: per group `s`.

    Returns:
        Scalar loss.
    """
    aligned = torch.cat([
        (v * s[:, None, None] + t[:, None, None]).flatten(0, 1)
        for v, s, t in zip(problem.values, scales, shifts, strict=False)
    ])  # m P
    frames = torch.cat([i.flatten() for i in problem.indices])  # m
    if settings.dense_normalization:
        denominator = problem.num_rows * problem.num_frames * problem.num_pixels
    else:
        denominator = aligned.numel()
    data = _relative_l1(aligned, frames, problem.num_frames)
    inverse = 1.0 / aligned.clamp(min=settings.min_inverse_depth)
    data = data + settings.depth_term_weight * _relative_l1(inverse, frames, problem.num_frames)
    return data / denominator + regulariser(scales, shifts, settings)


def _relative_l1(aligned: Tensor, frames: Tensor, num_frames: int) -> Tensor:
    """Sum of |x - target| / mean|target| over predictions and pixels (targets detached)."""
    with torch.no_grad():
        target = frame_means(aligned, frames, num_frames)  # N P
        scale = target.abs().mean(-1)  # N
    return ((aligned - target[frames]).abs() / scale[frames, None]).sum()


def regulariser(
    scales: tuple[Tensor, ...], shifts: tuple[Tensor, ...], settings: CoalignSettings
) -> Tensor:
    """Sum over groups of `w_s mean(relu(1 - s)^2) + w_t mean(t^2)`."""
    return sum(
        settings.scale_reg_weight * torch.relu(1 - s).square().mean()
        + settings.shift_reg_weight * t.square().mean()
        for s, t in zip(scales, shifts, strict=False)
    )


def objective_value(
    problem: AlignmentProblem, scales: tuple[Tensor, ...], shifts: tuple[Tensor, ...],
    settings: CoalignSettings,
) -> float:
    """`objective` as a float, without autograd."""
    with torch.no_grad():
        return float(objective(problem, tuple(s.float() for s in scales),
                               tuple(t.float() for t in shifts), settings))


Solver = Callable[[AlignmentProblem, CoalignSettings, Hooks], Alignment]
SOLVERS: dict[str, Solver] = {}


def register_solver(name: str) -> Callable[[Solver], Solver]:
    """Decorator: make a solver selectable as ``coalign(..., method=name)``."""

    def add(solver: Solver) -> Solver:
        SOLVERS[name] = solver
        return solver

    return add


def coalign(
    snippets: SnippetDepths,
    method: str = "reference",
    settings: CoalignSettings = CoalignSettings(),
    hooks: Hooks = NO_HOOKS,
) -> Alignment:
    """Find one scale and shift per snippet that make the snippets agree (SPEC §4).

    Args:
        snippets: decoded snippet depths (`denoise_snippets`).
        method: a solver name from `SOLVERS` ("reference" is the authors' Adam loop).
        settings: objective and solver settings.
        hooks: progress per iteration, cancel between iterations.

    Returns:
        `Alignment` (scales and shifts per group, the subtracted offset, objective value).
    """
    from . import coalign_adam  # noqa: F401  (registers the reference solver)

    if method not in SOLVERS:
        raise InvalidSettings(
            f"Unknown co-alignment method {method!r}. Choose one of {', '.join(sorted(SOLVERS))}."
        )
    # Solvers may use autograd; ComfyUI runs every node under torch.inference_mode(), where
    # autograd is off and tensors made there can never join a graph. Outside it, ops on those
    # tensors give normal ones, so the problem is prepared here too.
    with torch.inference_mode(False), torch.enable_grad():
        problem = prepare_problem(snippets, settings)
        alignment = SOLVERS[method](problem, settings, hooks)
    logger.info(
        "Co-aligned %d snippets (%s): objective %.5f.",
        snippets.plan.num_snippets, method, alignment.objective,
    )
    return alignment


@torch.no_grad()
def merge_aligned(
    snippets: SnippetDepths, alignment: Alignment, chunk: int = 64, hooks: Hooks = NO_HOOKS
) -> Tensor:
    """Average every frame's aligned predictions at full resolution (SPEC §4.5).

    Streams over snippets ``chunk`` at a time from their compact storage; memory is the
    output plus one chunk.

    Returns:
        `N H W` float32, in min-subtracted units (the reference's raw merged video).
    """
    check_snippet_depths(snippets)
    if len(alignment.scales) != len(snippets.depths) or any(
        s.shape[0] != d.shape[0] for s, d in zip(alignment.scales, snippets.depths, strict=False)
    ):
        raise InvalidInput("The alignment was made for other snippet depths (counts differ).")
    num_frames = snippets.plan.num_frames
    height, width = snippets.size
    total = torch.zeros(num_frames, height, width)
    count = torch.zeros(num_frames)
    num_snippets = snippets.plan.num_snippets
    done = 0
    for depth, group, scales, shifts in zip(
        snippets.depths, snippets.plan.groups, alignment.scales, alignment.shifts, strict=False
    ):
        for start in range(0, depth.shape[0], chunk):
            hooks.check_cancel()
            stop = min(start + chunk, depth.shape[0])
            values = depth[start:stop].float() - alignment.offset  # b n H W
            aligned = values * scales[start:stop, None, None, None].float() + shifts[
                start:stop, None, None, None
            ].float()
            frames = group.indices[start:stop].flatten()
            total.index_add_(0, frames, aligned.flatten(0, 1))
            count.index_add_(0, frames, torch.ones(frames.shape[0]))
            done += stop - start
            hooks.progress(done, num_snippets)
    return total / count[:, None, None]


def coalign_depth(
    snippets: SnippetDepths,
    method: str = "reference",
    settings: CoalignSettings = CoalignSettings(),
    hooks: Hooks = NO_HOOKS,
) -> tuple[DepthVideo, Alignment]:
    """Co-align, merge and normalise to -1..1: the depth video refinement consumes.

    Returns:
        The depth video (`N H W` in -1..1, carrying the snippets' latents and noise for
        refinement) and the alignment.
    """
    alignment = coalign(snippets, method, settings, hooks)
    merged = merge_aligned(snippets, alignment)
    video = DepthVideo(
        inverse_depth=normalize_depth(merged), encoded=snippets.encoded
    )
    return video, alignment


DEFAULT_METHOD = "reference"  # keep equal to the default of `coalign` / `coalign_depth`


def available_methods() -> tuple[str, ...]:
    """Names of every registered co-alignment solver, sorted (for menus and CLI choices).

    Imports the solver modules first, so the list is complete without running `coalign`.
    """
    from . import coalign_adam  # noqa: F401  (registers the reference solver)

    return tuple(sorted(SOLVERS))
