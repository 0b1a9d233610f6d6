"""The fast co-alignment solver ("fast", the default): the reference's answer by Newton steps.

What the reference computes. Its Adam loop differentiates the SPEC §4 loss with every
frame's target and scale held constant (they are detached). So it does not minimise the
loss: it stops where each snippet's own problem, with the targets and frame scales held
fixed, is solved (a fixed point). This solver finds that same point directly. (The loss's
true minimum lies elsewhere: lower loss, worse temporal consistency; README, Co-alignment.)

How, per iteration:
    1. targets `T_i`, frame scales `mean |T_i|` and residuals for the inverse-depth term and
       for the depth term (`1 / x`, linearised around the current values);
    2. absolute values become weighted squares (iteratively reweighted least squares,
       weights `1 / sqrt(residual^2 + (delta * frame scale)^2)`);
    3. every snippet's stationarity condition, with the targets' dependence on all snippets
       kept, is then linear in the unknowns: one block-tridiagonal system
       (`coalign_linalg`), solved exactly in time linear in the clip length;
    4. Anderson mixing of the iterates.
``delta`` shrinks in stages (`STAGES`); the early stages use an evenly spread subset of
the optimisation pixels, the last one all of them. A stage ends when no parameter moves
more than its tolerance.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import torch
from torch import Tensor

from .coalign import AlignmentProblem, CoalignSettings, register_solver
from .coalign_linalg import AndersonMixer, assemble, block_layout, factor_block_tridiagonal
from .coalign_slots import FrameSlots, frame_slots
from .hooks import Hooks
from .types import Alignment

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class Stage:
    """One continuation stage of the fast solver.

    Attributes:
        smoothing: `delta`; residuals well below `delta * frame scale` count as squares.
        max_pixels: optimisation pixels per frame (an evenly spread subset); 0 = all.
        max_iterations: iteration cap of the stage.
        tolerance: the stage ends when no scale or shift moves more than this.
    """

    smoothing: float
    max_pixels: int
    max_iterations: int
    tolerance: float


STAGES = (
    Stage(1e-2, 512, 20, 1e-3),
    Stage(1e-3, 512, 20, 1e-4),
    Stage(1e-4, 0, 10, 1e-5),
)
ANDERSON_MEMORY = 5
SYSTEM_DTYPE = torch.float64


@dataclass(frozen=True)
class Linearisation:
    """The smoothed stationarity conditions at the current parameters.

    Attributes:
        gradient: `K 2` float64, each snippet's condition (regulariser included).
        curvature: `K 2` float64, the regulariser's second derivatives.
        objective: the SPEC §4 objective at these parameters, on these pixels.
        weights: `N R P`, IRLS weights of the inverse-depth term.
        weights_depth: `N R P`, IRLS weights of the depth term.
        slope: `N R P`, derivative of `1 / clip(x)` at the aligned values.
    """

    gradient: Tensor
    curvature: Tensor
    objective: float
    weights: Tensor
    weights_depth: Tensor
    slope: Tensor


def linearise(
    slots: FrameSlots,
    scales: Tensor,
    shifts: Tensor,
    group_size: Tensor,
    smoothing: float,
    settings: CoalignSettings,
    denominator: float,
) -> Linearisation:
    """Residuals, IRLS weights and the snippets' conditions at `(scales, shifts)`.

    Args:
        slots: frame-major predictions `N R P` (min-subtracted).
        scales, shifts: `K` float64.
        group_size: `K`, snippets in each snippet's group (the regulariser is a group mean).
        smoothing: `delta`, relative to each frame's scale.
        settings: the objective's weights.
        denominator: the data terms' normaliser (dense array size or predictions x pixels).
    """
    values = slots.values
    dtype = values.dtype
    mask = slots.mask.to(dtype)[..., None]  # N R 1
    aligned = (values * slots.gather(scales).to(dtype)[..., None]
               + slots.gather(shifts).to(dtype)[..., None]) * mask  # N R P
    counts = slots.counts.to(dtype)[:, None]
    eps = settings.min_inverse_depth

    target = aligned.sum(1) / counts  # N P
    scale = target.abs().mean(-1).clamp(min=1e-12)  # N
    resid = (aligned - target[:, None]) * mask
    inverse = torch.reciprocal(aligned.clamp(min=eps)) * mask
    target_depth = inverse.sum(1) / counts
    scale_depth = target_depth.abs().mean(-1).clamp(min=1e-12)
    resid_depth = (inverse - target_depth[:, None]) * mask
    slope = -inverse.square() * (aligned > eps).to(dtype)  # d(1 / x) / dx, 0 where clipped

    c1 = (1.0 / (scale * denominator))[:, None, None]
    c2 = (settings.depth_term_weight / (scale_depth * denominator))[:, None, None]
    data = float((resid.abs() * c1).sum(dtype=torch.float64)
                 + (resid_depth.abs() * c2).sum(dtype=torch.float64))
    w1 = c1 * torch.rsqrt(resid.square() + (smoothing * scale)[:, None, None].square())
    w2 = c2 * torch.rsqrt(resid_depth.square() + (smoothing * scale_depth)[:, None, None].square())

    # condition of slot r: sum_p w e d(aligned)/d(scale, shift), d/d(s, t) = (value, 1)
    pull = w1 * resid + w2 * resid_depth * slope  # N R P
    per_slot = torch.stack([(pull * values).sum(-1), pull.sum(-1)], -1)  # N R 2
    gradient = slots.scatter(per_slot.to(torch.float64))  # K 2

    scale_weight = settings.scale_reg_weight / group_size
    shift_weight = settings.shift_reg_weight / group_size
    below = torch.relu(1 - scales)
    gradient = gradient + torch.stack([-2 * scale_weight * below, 2 * shift_weight * shifts], -1)
    curvature = torch.stack(
        [2 * scale_weight * (scales < 1).to(torch.float64), 2 * shift_weight], -1
    )
    reg = float((scale_weight * below.square()).sum() + (shift_weight * shifts.square()).sum())
    return Linearisation(gradient, curvature, data + reg, w1, w2, slope)


def pair_blocks(slots: FrameSlots, pair_index: Tensor, lin: Linearisation) -> Tensor:
    """The Newton system's 2x2 blocks, one per pair of filled slots of a frame.

    The condition of slot `r` is `sum_p w_r e_r d_r` with `e_r = x_r - mean_l x_l` and
    `d = (value, 1)` (times the slope of `1 / x` for the depth term), so its derivative with
    respect to the parameters of slot `l` is `sum_p w_r d_r (delta_rl d_l - d_l / m)`.

    Args:
        slots: frame-major predictions `N R P`.
        pair_index: `q 3` (frame, slot r, slot l), from `newton_pairs`.
        lin: weights and slopes from `linearise`.

    Returns:
        `q 2 2` float64.
    """
    values, slope = slots.values, lin.slope
    ones = slots.mask.to(values.dtype)[..., None].expand_as(values)
    w1, w2 = lin.weights, lin.weights_depth
    # left/right factors, `N R 2 (2 P)`: parameter, then (inverse term | depth term) pixels
    left = torch.cat([
        torch.stack([w1 * values, w1], 2), torch.stack([w2 * slope * values, w2 * slope], 2)
    ], -1)
    right = torch.cat([
        torch.stack([values, ones], 2), torch.stack([slope * values, slope], 2)
    ], -1)
    n, r = slots.mask.shape
    gram = torch.bmm(left.flatten(1, 2), right.flatten(1, 2).transpose(1, 2))  # N (R 2) (R 2)
    gram = gram.to(torch.float64).reshape(n, r, 2, r, 2)
    frame, slot_r, slot_l = pair_index.unbind(1)
    blocks = -gram[frame, slot_r, :, slot_l, :] / slots.counts[frame, None, None]
    same = (slot_r == slot_l)[:, None, None]
    return blocks + torch.where(same, gram[frame, slot_r, :, slot_r, :], 0.0)


def newton_pairs(slots: FrameSlots) -> Tensor:
    """`q 3` (frame, slot, slot) for every ordered pair of filled slots of each frame."""
    return (slots.mask[:, :, None] & slots.mask[:, None, :]).nonzero()


def pixel_subset(num_pixels: int, max_pixels: int) -> Tensor | None:
    """`max_pixels` evenly spread indices into `num_pixels` (None: use all)."""
    if max_pixels <= 0 or num_pixels <= max_pixels:
        return None
    return torch.linspace(0, num_pixels - 1, max_pixels).round().long().unique()


@dataclass(frozen=True)
class StageData:
    """The data of one stage: slots on its pixels and the Newton system's sparsity."""

    slots: FrameSlots
    pairs: Tensor
    rows: Tensor
    cols: Tensor
    denominator: float


def stage_data(problem: AlignmentProblem, settings: CoalignSettings, max_pixels: int,
               dtype: torch.dtype) -> StageData:
    """Frame slots on a pixel subset, the pair table and the data terms' normaliser."""
    pixels = pixel_subset(problem.num_pixels, max_pixels)
    slots = frame_slots(problem.values, problem.indices, problem.num_frames, pixels, dtype)
    pairs = newton_pairs(slots)
    if settings.dense_normalization:
        denominator = float(problem.num_rows * problem.num_frames * slots.num_pixels)
    else:
        denominator = float(slots.mask.sum()) * slots.num_pixels
    return StageData(
        slots=slots, pairs=pairs,
        rows=slots.snippet[pairs[:, 0], pairs[:, 1]], cols=slots.snippet[pairs[:, 0], pairs[:, 2]],
        denominator=denominator,
    )


@register_solver("fast")
def solve_fast(problem: AlignmentProblem, settings: CoalignSettings, hooks: Hooks) -> Alignment:
    """The reference's fixed point by IRLS-Newton steps with Anderson mixing (module doc).

    ``settings.num_iterations`` caps the total number of iterations; progress counts
    iterations against the stages' caps; cancel is checked before every iteration.
    """
    sizes = [int(v.shape[0]) for v in problem.values]
    group_size = torch.cat([torch.full((s,), float(s), dtype=torch.float64) for s in sizes])
    num_snippets = sum(sizes)
    first = torch.cat([idx[:, 0] for idx in problem.indices])
    span = max(int((idx[:, -1] - idx[:, 0]).max()) for idx in problem.indices)
    layout = block_layout(first, span)
    scales = torch.ones(num_snippets, dtype=torch.float64)
    shifts = torch.zeros(num_snippets, dtype=torch.float64)
    budget = settings.num_iterations
    total = min(budget, sum(stage.max_iterations for stage in STAGES))
    done = 0
    data = None
    for stage in STAGES:
        data = stage_data(problem, settings, stage.max_pixels, torch.float32)
        mixer = AndersonMixer(memory=ANDERSON_MEMORY)
        for _ in range(min(stage.max_iterations, budget - done)):
            hooks.check_cancel()
            lin = linearise(data.slots, scales, shifts, group_size, stage.smoothing, settings,
                            data.denominator)
            blocks = pair_blocks(data.slots, data.pairs, lin)
            factors = factor_block_tridiagonal(
                assemble(layout, data.rows, data.cols, blocks, lin.curvature, SYSTEM_DTYPE)
            )
            step = layout.from_blocks(factors.solve(-layout.to_blocks(lin.gradient)))  # K 2
            theta = torch.cat([scales, shifts])
            theta = mixer.step(theta, theta + torch.cat([step[:, 0], step[:, 1]]))
            scales, shifts = theta[:num_snippets], theta[num_snippets:]
            done += 1
            hooks.progress(done, total)
            if float(step.abs().max()) < stage.tolerance:
                break
        logger.debug("delta %g, %d pixels: %d iterations so far",
                     stage.smoothing, data.slots.num_pixels, done)
    final = data
    if final is None or final.slots.num_pixels != problem.num_pixels:
        final = stage_data(problem, settings, 0, torch.float32)
    objective = linearise(final.slots, scales, shifts, group_size, STAGES[-1].smoothing,
                          settings, final.denominator).objective
    hooks.progress(total, total)
    return Alignment(
        scales=tuple(torch.split(scales.float(), sizes)),
        shifts=tuple(torch.split(shifts.float(), sizes)),
        offset=problem.offset,
        objective=objective,
        method="fast",
    )
