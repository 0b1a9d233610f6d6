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
``delta`` shrinks in stages (`STAGES`) to 1e-3, the resolution of the reference's own
Adam steps (learning rate 1e-3): the exact (delta -> 0) fixed point can have a higher
objective than where the reference stops (golden case_a), the 1e-3 one has a lower one on
every input tried. The early stages use an evenly spread subset of the optimisation pixels,
the last one all of them. A stage ends when no parameter moves more than its tolerance.

Staying near the start. The data terms do not change when every scale and shift is
multiplied by one common factor, and the scale regulariser is zero above 1, so only the
weak shift penalty pins that common scale from above. Where the conditions push it up
there is no fixed point near the start: the reference's Adam drifts slowly (on a tiny-model
clip its mean scale is 1.05 after 500 steps, 1.22 after 2000, 2.04 after 8000), plain Newton
steps double it every iteration and Anderson mixing then extrapolated that run-off back
through zero (all scales collapsed, objective 20x the reference's). So:
    - `hold_common_scale`: a step may not raise the mean scale above `SCALE_CEILING` (the
      start); where it would, it is solved with that mean fixed (the drift along the
      common scale only raises the objective);
    - `limit_step`: no scale or shift moves more than `MAX_STEP` per iteration, and no scale
      shrinks below `MIN_SCALE_FRACTION` of its value;
    - `in_trust_region`: an Anderson extrapolation outside those limits is rejected (plain
      step, mixer restarted);
    - a result whose objective is `FALLBACK_MARGIN` worse than the start's (s = 1, t = 0) is
      replaced by the start, with a warning.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import torch
from torch import Tensor

from .coalign import AlignmentProblem, CoalignSettings, register_solver
from .coalign_linalg import (
    AndersonMixer,
    BlockFactors,
    BlockLayout,
    SingularSystem,
    add_damping,
    assemble,
    block_layout,
    factor_block_tridiagonal,
    flush_denormals,
)
from .coalign_slots import FrameSlots, frame_slots
from .errors import NumericalError
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
    Stage(1e-3, 0, 15, 1e-4),
)
ANDERSON_MEMORY = 5  # iterates remembered by the Anderson mixer
SYSTEM_DTYPE = torch.float32  # of the Newton systems' factorisation (the outer loop corrects)
FRAME_CHUNK = 32  # frames processed together (bounds temporary memory)
MAX_STEP = 0.5  # largest change of a scale or shift in one iteration
MIN_SCALE_FRACTION = 0.25  # one iteration keeps at least this fraction of every scale
SCALE_CEILING = 1.0  # largest mean scale (the start; nothing pins the common scale above)
FALLBACK_MARGIN = 0.1  # relative: a result this much worse than the start is not returned


@dataclass(frozen=True)
class StageData:
    """The data of one stage.

    Attributes:
        slots: frame-major predictions on the stage's pixels.
        pairs: `q 3` (frame, slot, slot) of every pair of filled slots of a frame.
        rows, cols: `q` snippet index of each pair's two slots.
        denominator: the data terms' normaliser (dense array size or predictions x pixels).
    """

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


@dataclass(frozen=True)
class NewtonSystem:
    """The smoothed stationarity conditions at the current parameters, and their Jacobian.

    Attributes:
        gradient: `K 2` float64, each snippet's condition (regulariser included).
        blocks: `q 2 2` float64, the Jacobian's snippet-pair blocks (one per row of the
            stage's pair table), or None when not asked for.
        curvature: `K 2` float64, the regulariser's second derivatives.
        objective: the SPEC §4 objective at these parameters, on these pixels.
    """

    gradient: Tensor
    blocks: Tensor | None
    curvature: Tensor
    objective: float


def frame_terms(
    values: Tensor,
    mask: Tensor,
    scales: Tensor,
    shifts: Tensor,
    smoothing: float,
    settings: CoalignSettings,
    denominator: float,
    with_jacobian: bool = True,
) -> tuple[Tensor, Tensor | None, float]:
    """Data-term contributions of a few frames.

    Per frame: target `T = mean_r x_r` and scale `mean |T|`; the same for `1 / clip(x)`.
    Absolute values become IRLS weights `1 / sqrt(e^2 + (delta scale)^2)`. The condition of
    slot `r` is `sum_p w_r e_r dx_r` with `dx = (value, 1)` (times the slope of `1 / x` for
    the depth term); its derivative with respect to slot `l`'s parameters is
    `sum_p w_r dx_r (delta_rl dx_l - dx_l / m)` (targets depend on every prediction).

    Args:
        values: `n R P` frame slots (0 where empty).
        mask: `n R` bool, filled slots.
        scales, shifts: `n R` per slot.
        smoothing: `delta`.
        settings: the objective's weights.
        denominator: the data terms' normaliser.
        with_jacobian: also return the Jacobian blocks.

    Returns:
        Per-slot conditions `n R 2` (float64), Jacobian `n R 2 R 2` (float64) or None, and
        the data terms' share of the objective.
    """
    dtype = values.dtype
    filled = mask.to(dtype)[..., None]  # n R 1
    counts = filled.sum(1)  # n 1
    aligned = values * scales.to(dtype)[..., None] + shifts.to(dtype)[..., None]  # 0 if empty
    eps = settings.min_inverse_depth

    target = aligned.sum(1) / counts  # n P
    scale = target.abs().mean(-1).clamp(min=1e-12)[:, None, None]  # n 1 1
    resid = (aligned - target[:, None]) * filled
    inverse = torch.reciprocal(aligned.clamp(min=eps)) * filled
    target_depth = inverse.sum(1) / counts
    scale_depth = target_depth.abs().mean(-1).clamp(min=1e-12)[:, None, None]
    resid_depth = (inverse - target_depth[:, None]) * filled
    slope = -inverse.square() * (aligned > eps).to(dtype)  # d(1 / x) / dx, 0 where clipped

    c1 = 1.0 / (scale * denominator)
    c2 = settings.depth_term_weight / (scale_depth * denominator)
    data = float((resid.abs() * c1).sum(dtype=torch.float64)
                 + (resid_depth.abs() * c2).sum(dtype=torch.float64))
    w1 = c1 * torch.rsqrt(resid.square() + (smoothing * scale).square())
    w2 = c2 * torch.rsqrt(resid_depth.square() + (smoothing * scale_depth).square())
    pull = w1 * resid + w2 * resid_depth * slope  # n R P
    basis = torch.stack([values, filled.expand_as(values)], 2)  # n R 2 P: d x / d(s, t)
    conditions = (basis * pull[:, :, None]).sum(-1).double()  # n R 2
    if not with_jacobian:
        return conditions, None, data

    n, r = mask.shape
    flat = basis.flatten(1, 2)  # n (R 2) P
    basis_depth = (basis * slope[:, :, None]).flatten(1, 2)
    gram = torch.bmm((basis * w1[:, :, None]).flatten(1, 2), flat.transpose(1, 2))
    gram += torch.bmm(basis_depth * w2.repeat_interleave(2, 1), basis_depth.transpose(1, 2))
    gram = gram.double().reshape(n, r, 2, r, 2)
    jacobian = -gram / counts.double()[:, :, None, None, None]
    eye = torch.eye(r, dtype=torch.float64)[None, :, None, :, None]
    return conditions, jacobian + eye * gram, data


def newton_system(
    data: StageData,
    scales: Tensor,
    shifts: Tensor,
    group_size: Tensor,
    smoothing: float,
    settings: CoalignSettings,
    with_jacobian: bool = True,
) -> NewtonSystem:
    """Conditions, Jacobian blocks and objective at `(scales, shifts)`, frames in chunks.

    Args:
        data: the stage's slots and pair table (`stage_data`).
        scales, shifts: `K` float64.
        group_size: `K`, snippets in each snippet's group (the regulariser is a group mean).
        smoothing: `delta`, relative to each frame's scale.
        settings: the objective's weights.
        with_jacobian: also compute the Jacobian blocks.
    """
    slots = data.slots
    slot_scales, slot_shifts = slots.gather(scales), slots.gather(shifts)  # N R
    conditions, blocks, objective = [], [], 0.0
    frame_of_pair = data.pairs[:, 0]
    for start in range(0, slots.num_frames, FRAME_CHUNK):
        stop = min(start + FRAME_CHUNK, slots.num_frames)
        cond, jac, part = frame_terms(
            slots.values[start:stop], slots.mask[start:stop], slot_scales[start:stop],
            slot_shifts[start:stop], smoothing, settings, data.denominator, with_jacobian,
        )
        conditions.append(cond)
        objective += part
        if jac is not None:
            lo, hi = torch.searchsorted(frame_of_pair, torch.tensor([start, stop])).tolist()
            frame, slot_r, slot_l = data.pairs[lo:hi].unbind(1)
            blocks.append(jac[frame - start, slot_r, :, slot_l, :])
    gradient = slots.scatter(torch.cat(conditions))  # K 2

    scale_weight = settings.scale_reg_weight / group_size
    shift_weight = settings.shift_reg_weight / group_size
    below = torch.relu(1 - scales)
    gradient = gradient + torch.stack([-2 * scale_weight * below, 2 * shift_weight * shifts], -1)
    curvature = torch.stack(
        [2 * scale_weight * (scales < 1).to(torch.float64), 2 * shift_weight], -1
    )
    objective += float((scale_weight * below.square()).sum() + (shift_weight * shifts.square()).sum())
    return NewtonSystem(
        gradient=gradient, blocks=torch.cat(blocks) if with_jacobian else None,
        curvature=curvature, objective=objective,
    )


def factor_robustly(bands: Tensor) -> BlockFactors:
    """Factorise the Newton system; if it is singular, add growing damping until it is not."""
    for relative in (0.0, 1e-8, 1e-6, 1e-4, 1e-2):
        try:
            return factor_block_tridiagonal(add_damping(bands, relative) if relative else bands)
        except SingularSystem:
            logger.debug("singular Newton system; damping %g", relative)
    raise NumericalError(
        "The co-alignment Newton system stays singular; the snippet depths may be constant or "
        "degenerate. Try method='reference'."
    )


def hold_common_scale(layout: BlockLayout, factors: BlockFactors, scales: Tensor,
                      step: Tensor) -> Tensor:
    """The Newton step, re-solved with the mean scale fixed if it would exceed the ceiling.

    With `e` the mean-scale functional, the step of the bordered system
    `[J e; e^T 0] [x; mu] = [-g; b]` is `step - mu J^-1 e`, `b = SCALE_CEILING - mean(scales)`:
    every snippet's scale condition gets the same extra pull `mu`.

    Args:
        layout, factors: the Newton system's layout and factorisation.
        scales: `K` float64, current scales.
        step: `K 2` float64, the Newton step (`J^-1 (-g)`).
    """
    room = SCALE_CEILING - float(scales.mean())
    if float(step[:, 0].mean()) <= room:
        return step
    unit = torch.zeros_like(step)
    unit[:, 0] = 1.0 / unit.shape[0]
    response = layout.from_blocks(factors.solve(layout.to_blocks(unit)))  # J^-1 e
    along = float(response[:, 0].mean())  # e^T J^-1 e
    if not (abs(along) > 0 and torch.isfinite(response).all()):
        return step
    logger.debug("mean scale held at %g", SCALE_CEILING)
    return step - (float(step[:, 0].mean()) - room) / along * response


def limit_step(scales: Tensor, shifts: Tensor, step: Tensor) -> Tensor:
    """``step`` (`K 2`) shortened so that no parameter moves more than `MAX_STEP` and every
    scale keeps at least `MIN_SCALE_FRACTION` of its value."""
    factor = 1.0
    longest = float(step.abs().max())
    if longest > MAX_STEP:
        factor = MAX_STEP / longest
    shrink = -step[:, 0] / scales  # relative decrease of each scale
    worst = float(shrink.max())
    if worst * factor > 1 - MIN_SCALE_FRACTION:
        factor = (1 - MIN_SCALE_FRACTION) / worst
    return step * factor if factor < 1 else step


def in_trust_region(theta: Tensor, mixed: Tensor, num_snippets: int) -> bool:
    """Whether an Anderson iterate stays within one `limit_step` move of ``theta`` and below
    the mean-scale ceiling (finite, scales not shrunk below `MIN_SCALE_FRACTION`)."""
    if not bool(torch.isfinite(mixed).all()):
        return False
    scales, new_scales = theta[:num_snippets], mixed[:num_snippets]
    return (
        float((mixed - theta).abs().max()) <= MAX_STEP * (1 + 1e-9)
        and bool((new_scales >= MIN_SCALE_FRACTION * scales).all())
        and float(new_scales.mean()) <= max(SCALE_CEILING, float(scales.mean())) + 1e-9
    )


def newton_pairs(slots: FrameSlots) -> Tensor:
    """`q 3` (frame, slot, slot) for every ordered pair of filled slots of each frame."""
    return (slots.mask[:, :, None] & slots.mask[:, None, :]).nonzero()


def pixel_subset(num_pixels: int, max_pixels: int) -> Tensor | None:
    """`max_pixels` evenly spread indices into `num_pixels` (None: use all)."""
    if max_pixels <= 0 or num_pixels <= max_pixels:
        return None
    return torch.linspace(0, num_pixels - 1, max_pixels, dtype=torch.float64).round().long().unique()


@register_solver("fast")
def solve_fast(problem: AlignmentProblem, settings: CoalignSettings, hooks: Hooks) -> Alignment:
    """The reference's fixed point by IRLS-Newton steps with Anderson mixing (module doc).

    ``settings.num_iterations`` caps the total number of iterations; progress counts
    iterations against the stages' caps; cancel is checked before every iteration.
    """
    with flush_denormals():
        return _solve_fast(problem, settings, hooks)


def _solve_fast(problem: AlignmentProblem, settings: CoalignSettings, hooks: Hooks) -> Alignment:
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
        if done >= budget:
            break
        data = stage_data(problem, settings, stage.max_pixels, torch.float32)
        mixer = AndersonMixer(memory=ANDERSON_MEMORY)
        for _ in range(min(stage.max_iterations, budget - done)):
            hooks.check_cancel()
            system = newton_system(data, scales, shifts, group_size, stage.smoothing, settings)
            factors = factor_robustly(assemble(
                layout, data.rows, data.cols, system.blocks, system.curvature, SYSTEM_DTYPE
            ))
            step = layout.from_blocks(factors.solve(-layout.to_blocks(system.gradient)))  # K 2
            step = limit_step(scales, shifts, hold_common_scale(layout, factors, scales, step))
            theta = torch.cat([scales, shifts])
            target = theta + torch.cat([step[:, 0], step[:, 1]])
            mixed = mixer.step(theta, target)
            if not in_trust_region(theta, mixed, num_snippets):
                mixer.reset()
                mixed = target
            scales, shifts = mixed[:num_snippets], mixed[num_snippets:]
            done += 1
            hooks.progress(done, total)
            if float(step.abs().max()) < stage.tolerance:
                break
        logger.debug("delta %g, %d pixels: %d iterations so far",
                     stage.smoothing, data.slots.num_pixels, done)
    final = data
    if final is None or final.slots.num_pixels != problem.num_pixels:
        final = stage_data(problem, settings, 0, torch.float32)
    objective = newton_system(final, scales, shifts, group_size, STAGES[-1].smoothing, settings,
                              with_jacobian=False).objective
    if done:
        start = newton_system(final, torch.ones_like(scales), torch.zeros_like(shifts),
                              group_size, STAGES[-1].smoothing, settings,
                              with_jacobian=False).objective
        if not objective <= start * (1 + FALLBACK_MARGIN):  # also catches NaN
            logger.warning(
                "fast co-alignment ended at objective %.5g, worse than the start's %.5g; "
                "falling back to the start (scales 1, shifts 0). method='reference' may do better.",
                objective, start,
            )
            scales, shifts, objective = torch.ones_like(scales), torch.zeros_like(shifts), start
    hooks.progress(total, total)
    return Alignment(
        scales=tuple(torch.split(scales.float(), sizes)),
        shifts=tuple(torch.split(shifts.float(), sizes)),
        offset=problem.offset,
        objective=objective,
        method="fast",
    )
