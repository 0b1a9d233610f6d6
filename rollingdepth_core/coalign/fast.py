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
       (`coalign_linalg`). It is solved approximately (the outer iteration converges only
       linearly anyway) by a few GMRES steps preconditioned with the factors of an earlier
       system (`coalign_krylov`); only when they fall short is the system factorised
       afresh, exactly and in time linear in the clip length, through the blocks'
       separators (`coalign_separator`). About one iteration in five to eight factorises;
    4. Anderson mixing of the iterates.
``delta`` shrinks in stages (`STAGES`) to 1e-3, the resolution of the reference's own
Adam steps (learning rate 1e-3): the exact (delta -> 0) fixed point can have a higher
objective than where the reference stops (golden case_a), the 1e-3 one has a lower one on
the golden and benchmark inputs (not on every clip: where the reference's Adam has not
settled after its 2000 steps it can end slightly lower, README, Co-alignment).
The early stages use an evenly spread subset of the optimisation pixels,
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

from ..errors import NumericalError
from ..hooks import Hooks
from ..types import Alignment
from .linalg.block_tridiagonal import (
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
from .linalg.krylov import PairPattern, gmres, pair_operator, pair_pattern
from .linalg.separator import SeparatorFactors, factor_with_separators, separator_layout
from .problem import AlignmentProblem, CoalignSettings
from .slots import FrameSlots, frame_slots

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
    Stage(1e-2, 512, 8, 1e-3),  # only a warm start: its fixed point is ~0.1 off in scale
    Stage(1e-3, 512, 20, 2e-4),  # 2e-4: a fifth of the reference's own Adam step (1e-3)
    Stage(1e-3, 0, 15, 2e-4),
)
ANDERSON_MEMORY = 5  # iterates remembered by the Anderson mixer
KRYLOV_TOLERANCE = 1e-1  # relative residual of the inexact Newton steps (3e-2 cost more
# factorisations for no fewer outer iterations: 8% slower at 96x64, 25% at 1000 frames)
KRYLOV_STEPS = 4  # GMRES steps before a fresh factorisation
SYSTEM_DTYPE = torch.float32  # of the Newton systems' factorisation (the outer loop corrects)
FRAME_CHUNK = 32  # frames processed together at least (bounds temporary memory)
CHUNK_VALUES = 150_000  # ... or more frames, up to this many slot values (stays in cache)
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
        gram_index: `q 2 2` position of each pair's block in the flattened `N R 2 R 2`
            Gram matrices of `frame_terms`.
        gram_factor: `q 1 1` float64, `[r == l] - 1 / m` (Jacobian block = Gram block x it).
    """

    slots: FrameSlots
    pairs: Tensor
    rows: Tensor
    cols: Tensor
    denominator: float
    gram_index: Tensor
    gram_factor: Tensor


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
    frame, slot_r, slot_l = pairs.unbind(1)
    num_slots = int(slots.mask.shape[1])
    unknown = torch.arange(2)
    row = (frame * num_slots + slot_r) * 2  # N R 2 R 2 flattened: ((f R + r) 2 + a) 2R + 2l + c
    gram_index = ((row[:, None, None] + unknown[None, :, None]) * 2 * num_slots
                  + 2 * slot_l[:, None, None] + unknown[None, None, :])
    gram_factor = (slot_r == slot_l).double() - 1.0 / slots.counts[frame]
    return StageData(
        slots=slots, pairs=pairs,
        rows=slots.snippet[frame, slot_r], cols=slots.snippet[frame, slot_l],
        denominator=denominator, gram_index=gram_index, gram_factor=gram_factor[:, None, None],
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
    with_objective: bool = True,
) -> tuple[Tensor, Tensor | None, float]:
    """Data-term contributions of a few frames.

    Per frame: target `T = mean_r x_r` and scale `mean |T|`; the same for `1 / clip(x)`.
    Absolute values become IRLS weights `1 / sqrt(e^2 + (delta scale)^2)`. The condition of
    slot `r` is `sum_p w_r e_r dx_r` with `dx = (value, 1)` (times the slope of `1 / x` for
    the depth term); its derivative with respect to slot `l`'s parameters is
    `sum_p w_r dx_r (delta_rl dx_l - dx_l / m)` (targets depend on every prediction), the
    Gram block `G_rl = sum_p w_r dx_r dx_l` times `delta_rl - 1 / m`.

    Args:
        values: `n R P` frame slots (0 where empty).
        mask: `n R` bool, filled slots.
        scales, shifts: `n R` per slot.
        smoothing: `delta`.
        settings: the objective's weights.
        denominator: the data terms' normaliser.
        with_jacobian: also return the Jacobian blocks.
        with_objective: also compute the objective (NaN otherwise).

    Returns:
        Per-slot conditions `n R 2` (float64), Gram matrices `n (R 2) (R 2)` (float32) or
        None, and the data terms' share of the objective.
    """
    dtype = values.dtype
    filled = mask.to(dtype)[..., None]  # n R 1
    share = 1.0 / filled.sum(1, keepdim=True)  # n 1 1: 1 / m
    aligned = torch.addcmul(shifts.to(dtype)[..., None], values, scales.to(dtype)[..., None])
    eps = settings.min_inverse_depth  # (aligned is 0 in empty slots)

    target = aligned.sum(1, keepdim=True) * share  # n 1 P
    scale = target.abs().mean(-1, keepdim=True).clamp_(min=1e-12)  # n 1 1
    resid = (aligned - target).mul_(filled)
    inverse = aligned.clamp(min=eps).reciprocal_().mul_(filled)
    target_depth = inverse.sum(1, keepdim=True) * share
    scale_depth = target_depth.abs().mean(-1, keepdim=True).clamp_(min=1e-12)
    resid_depth = (inverse - target_depth).mul_(filled)
    slope = torch.where(aligned > eps, -inverse.square(), 0.0)  # d(1 / x) / dx, 0 if clipped

    c1 = 1.0 / (scale * denominator)
    c2 = settings.depth_term_weight / (scale_depth * denominator)
    data = float("nan")
    if with_objective:
        data = float((resid.abs() * c1).sum(dtype=torch.float64)
                     + (resid_depth.abs() * c2).sum(dtype=torch.float64))
    w1 = resid.square().add_((smoothing * scale).square()).rsqrt_().mul_(c1)
    w2 = resid_depth.square().add_((smoothing * scale_depth).square()).rsqrt_().mul_(c2)
    pull = torch.addcmul(w1 * resid, w2 * resid_depth, slope)  # n R P
    conditions = torch.stack([(values * pull).sum(-1), pull.sum(-1)], -1).double()  # n R 2
    if not with_jacobian:
        return conditions, None, data

    basis = torch.stack([values, filled.expand_as(values)], 2)  # n R 2 P: d x / d(s, t)
    basis_depth = basis * slope[:, :, None]  # n R 2 P
    gram = torch.bmm((basis * w1[:, :, None]).flatten(1, 2), basis.flatten(1, 2).transpose(1, 2))
    gram.baddbmm_((basis_depth * w2[:, :, None]).flatten(1, 2),
                  basis_depth.flatten(1, 2).transpose(1, 2))
    return conditions, gram, data


def newton_system(
    data: StageData,
    scales: Tensor,
    shifts: Tensor,
    group_size: Tensor,
    smoothing: float,
    settings: CoalignSettings,
    with_jacobian: bool = True,
    with_objective: bool = True,
) -> NewtonSystem:
    """Conditions, Jacobian blocks and objective at `(scales, shifts)`, frames in chunks
    (`frame_chunk`).

    Args:
        data: the stage's slots and pair table (`stage_data`).
        scales, shifts: `K` float64.
        group_size: `K`, snippets in each snippet's group (the regulariser is a group mean).
        smoothing: `delta`, relative to each frame's scale.
        settings: the objective's weights.
        with_jacobian: also compute the Jacobian blocks.
        with_objective: also compute the objective (NaN otherwise; the iterations do not
            need it).
    """
    slots = data.slots
    slot_scales, slot_shifts = slots.gather(scales), slots.gather(shifts)  # N R
    conditions, grams, objective = [], [], 0.0
    chunk = frame_chunk(slots)
    for start in range(0, slots.num_frames, chunk):
        stop = min(start + chunk, slots.num_frames)
        cond, gram, part = frame_terms(
            slots.values[start:stop], slots.mask[start:stop], slot_scales[start:stop],
            slot_shifts[start:stop], smoothing, settings, data.denominator, with_jacobian,
            with_objective,
        )
        conditions.append(cond)
        objective += part
        grams.append(gram)
    gradient = slots.scatter(torch.cat(conditions))  # K 2
    blocks = None
    if with_jacobian:  # q 2 2
        blocks = torch.cat(grams).view(-1)[data.gram_index].double() * data.gram_factor

    scale_weight = settings.scale_reg_weight / group_size
    shift_weight = settings.shift_reg_weight / group_size
    below = torch.relu(1 - scales)
    gradient = gradient + torch.stack([-2 * scale_weight * below, 2 * shift_weight * shifts], -1)
    curvature = torch.stack(
        [2 * scale_weight * (scales < 1).to(torch.float64), 2 * shift_weight], -1
    )
    objective += float((scale_weight * below.square()).sum() + (shift_weight * shifts.square()).sum())
    return NewtonSystem(
        gradient=gradient, blocks=blocks,
        curvature=curvature, objective=objective,
    )


def frame_chunk(slots: FrameSlots) -> int:
    """Frames processed together: `FRAME_CHUNK`, or more while they hold at most
    `CHUNK_VALUES` slot values (a whole 250-frame clip at 96x64, where per-chunk overhead
    would dominate; larger chunks of larger frames fall out of the cache and are slower)."""
    per_frame = max(1, int(slots.values.shape[1]) * slots.num_pixels)
    return max(FRAME_CHUNK, CHUNK_VALUES // per_frame)


def factor_robustly(bands: Tensor, split: int | None = None) -> BlockFactors | SeparatorFactors:
    """Factorise the Newton system; if it is singular, add growing damping until it is not.

    Args:
        bands: `b 3 q q` block-tridiagonal bands.
        split: with bands in a `separator_layout`, its split: factorise through the
            separators (same answer, less work); None: plain block elimination.
    """
    for relative in (0.0, 1e-8, 1e-6, 1e-4, 1e-2):
        damped = add_damping(bands, relative) if relative else bands
        try:
            if split is None:
                return factor_block_tridiagonal(damped)
            return factor_with_separators(damped, split)
        except SingularSystem:
            logger.debug("singular Newton system; damping %g", relative)
    raise NumericalError(
        "The co-alignment Newton system stays singular; the snippet depths may be constant or "
        "degenerate. Try method='reference'."
    )


def inexact_step(pattern: PairPattern, system: NewtonSystem, layout: BlockLayout,
                 factors: BlockFactors | SeparatorFactors) -> Tensor | None:
    """`K 2` Newton step by GMRES preconditioned with earlier factors (`coalign_krylov`),
    or None when `KRYLOV_STEPS` steps do not reach `KRYLOV_TOLERANCE`. Works on the
    layout's `b q` vectors (no reordering per product)."""
    matvec = pair_operator(pattern, system.blocks, layout.to_blocks(system.curvature))
    step, converged = gmres(matvec, factors.solve, -layout.to_blocks(system.gradient),
                            KRYLOV_TOLERANCE, KRYLOV_STEPS)
    return layout.from_blocks(step) if converged and bool(torch.isfinite(step).all()) else None


def hold_common_scale(layout: BlockLayout, factors: BlockFactors | SeparatorFactors,
                      scales: Tensor, step: Tensor) -> Tensor:
    """The Newton step, re-solved with the mean scale fixed if it would exceed the ceiling.

    With `e` the mean-scale functional, the step of the bordered system
    `[J e; e^T 0] [x; mu] = [-g; b]` is `step - mu J^-1 e`, `b = SCALE_CEILING - mean(scales)`:
    every snippet's scale condition gets the same extra pull `mu`.

    Args:
        layout, factors: the Newton system's layout and (possibly an earlier system's)
            factorisation.
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
    layout, split = block_layout(first, span), None
    factors = None  # of an earlier Newton system (they precondition the later ones)
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
        if split is None:  # the pairs are the same in every stage (they ignore pixels)
            layout, split = separator_layout(layout, data.rows, data.cols)
            pattern = pair_pattern(data.rows, data.cols, layout)
        mixer = AndersonMixer(memory=ANDERSON_MEMORY)
        for _ in range(min(stage.max_iterations, budget - done)):
            hooks.check_cancel()
            system = newton_system(data, scales, shifts, group_size, stage.smoothing, settings,
                                   with_objective=False)
            step = None
            if factors is not None:
                step = inexact_step(pattern, system, layout, factors)
            if step is None:
                factors = factor_robustly(assemble(
                    layout, data.rows, data.cols, system.blocks, system.curvature, SYSTEM_DTYPE
                ), split)
                step = layout.from_blocks(factors.solve(-layout.to_blocks(system.gradient)))
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
