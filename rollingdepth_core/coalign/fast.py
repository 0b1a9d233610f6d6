"""The fast co-alignment solver ("fast", the default): the reference's answer by Newton steps.

What the reference computes. Its Adam loop differentiates the SPEC §4 loss with every
frame's target and scale held constant (they are detached). So it does not minimise the
loss: it heads for where each snippet's own problem, with the targets and frame scales held
fixed, is solved (a fixed point), and its steps of about its learning rate (1e-3) keep it
jittering around that point. This solver finds the fixed point directly, then lowers the
loss itself within the reference's step (`polish.py`). (The loss's true minimum lies
elsewhere: lower loss, worse temporal consistency; README, Co-alignment.)

How, per iteration (equations in `fast_system.py`):
    1. targets `T_i`, frame scales `mean |T_i|` and residuals for the inverse-depth term and
       for the depth term (`1 / x`, linearised around the current values);
    2. absolute values become weighted squares (iteratively reweighted least squares,
       weights `1 / sqrt(residual^2 + (delta * frame scale)^2)`);
    3. every snippet's stationarity condition, with the targets' dependence on all snippets
       kept, is then linear in the unknowns: one block-tridiagonal system
       (`linalg/block_tridiagonal.py`). It is solved approximately (the outer iteration
       converges only linearly anyway) by a few GMRES steps preconditioned with the
       factors of an earlier system (`linalg/krylov.py`); only when they fall short is the
       system factorised afresh, exactly and in time linear in the clip length, through
       the blocks' separators (`linalg/separator.py`). About one iteration in five to
       eight factorises;
    4. Anderson mixing of the iterates.
``delta`` shrinks in stages (`STAGES`) to 4e-4: the smoothing that the reference's own
jitter gives its L1 terms (its residuals move by ~5e-4 at frame scales 1.2-1.7). The
fixed point moves with ``delta`` by a few 1e-3 and the objective with it at first order
(issue 12: with 1e-3, 0.1-0.35 % above the reference on some tiny-model clips, below it on
others; no fixed point is a minimum of the objective). The early stages use an evenly
spread subset of the optimisation pixels, the last one all of them. A stage ends when no
parameter moves more than its tolerance. Then `polish` takes `POLISH_STEPS` descent steps
on the exact objective, none further than 1e-3 from the fixed point, on every clip (it
used to run only where the mean scale was held or the start won: settled fixed points
ended up to 0.07 % above the reference on tiny-model clips of 4 and 33 frames). That is
for an *anchored* answer: the last stage settled and none of its steps held the mean scale
(golden align_small and case_a are). Where the last stage hits its cap instead (few
optimisation pixels per frame: the iterates cycle and the reference's Adam wanders too) or
held the mean scale (the reference's Adam drifts the common scale up), the reference's
answer is not near ours and the objective decides: the best common map of the video
(`polish.common_map`), then up to `polish.WIDE_STEPS` steps within `polish.WIDE_RADIUS`.

Staying near the start. The data terms do not change when every scale and shift is
multiplied by one common factor, and the scale regulariser is zero above 1, so only the
weak shift penalty pins that common scale from above. Where the conditions push it up
there is no fixed point near the start: the reference's Adam drifts slowly (on a tiny-model
clip its mean scale is 1.05 after 500 steps, 1.22 after 2000, 2.04 after 8000), plain Newton
steps double it every iteration and Anderson mixing then extrapolated that run-off back
through zero (all scales collapsed, objective 20x the reference's). So:
    - `hold_common_scale`: a step may not raise the mean scale above `SCALE_CEILING` (the
      start); where it would, it is solved with that mean fixed (the objective along the
      reference's drift changes by a few 1e-4 only; the polish recovers that);
    - `limit_step`: no scale or shift moves more than `MAX_STEP` per iteration, and no scale
      shrinks below `MIN_SCALE_FRACTION` of its value;
    - `in_trust_region`: an Anderson extrapolation outside those limits is rejected (plain
      step, mixer restarted);
    - never worse than the start: where the fixed point's objective is higher than that of
      the start (scales 1, shifts 0), the start is polished and returned instead, with a
      warning (on nearly flat tiny-model clips the reference itself ends above its start:
      golden case_a 0.015088 against 0.014996).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, replace

import torch
from torch import Tensor

from ..hooks import Hooks
from ..types import Alignment
from .fast_system import NewtonSystem, frame_chunk, newton_system, stage_data
from .linalg.block_tridiagonal import (
    AndersonMixer,
    BlockFactors,
    BlockLayout,
    assemble,
    flush_denormals,
)
from .linalg.krylov import PairPattern, gmres, pair_operator, pair_pattern
from .linalg.separator import SeparatorFactors, separator_layout
from .newton_setup import factor_robustly, snippet_unknowns
from .polish import RADIUS, WIDE_RADIUS, WIDE_STEPS, ExactTerms, common_map, exact_objective, polish
from .problem import AlignmentProblem, CoalignSettings

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
    Stage(1e-3, 512, 20, 1e-3),  # the way to the last stage's fixed point
    # the smoothing the reference's own Adam jitter gives (its residuals move by ~5e-4 at
    # frame scales 1.2-1.7, issue 12); 3e-4: under a third of the reference's step (5e-4
    # ended 5.5e-3 from the reference's scales on golden align_small, 2e-4 costs 5 iterations)
    Stage(4e-4, 0, 15, 3e-4),
)
ANDERSON_MEMORY = 5  # iterates remembered by the Anderson mixer
KRYLOV_TOLERANCE = 1e-1  # relative residual of the inexact Newton steps (3e-2 cost more
# factorisations for no fewer outer iterations: 8% slower at 96x64, 25% at 1000 frames)
KRYLOV_STEPS = 4  # GMRES steps before a fresh factorisation
SYSTEM_DTYPE = torch.float32  # of the Newton systems' factorisation (the outer loop corrects)
MAX_STEP = 0.5  # largest change of a scale or shift in one iteration
MIN_SCALE_FRACTION = 0.25  # one iteration keeps at least this fraction of every scale
SCALE_CEILING = 1.0  # largest mean scale (the start; nothing pins the common scale above)
POLISH_STEPS = 12  # steps of the last stage, on the exact objective (`polish`)
FEW_PIXELS = 8  # optimisation pixels per frame below which `few_pixel_stages` are tried
FEW_PIXEL_SMOOTHINGS = (1e-2, 3e-3, 1e-3, 1e-4, 4e-4)  # last-stage smoothings tried there


def inexact_step(pattern: PairPattern, system: NewtonSystem, layout: BlockLayout,
                 factors: BlockFactors | SeparatorFactors) -> Tensor | None:
    """`K 2` Newton step by GMRES preconditioned with earlier factors (`linalg/krylov.py`),
    or None when `KRYLOV_STEPS` steps do not reach `KRYLOV_TOLERANCE`. Works on the
    layout's `b q` vectors (no reordering per product)."""
    matvec = pair_operator(pattern, system.blocks, layout.to_blocks(system.curvature))
    step, converged = gmres(matvec, factors.solve, -layout.to_blocks(system.gradient),
                            KRYLOV_TOLERANCE, KRYLOV_STEPS)
    return layout.from_blocks(step) if converged and bool(torch.isfinite(step).all()) else None


def hold_common_scale(layout: BlockLayout, factors: BlockFactors | SeparatorFactors,
                      scales: Tensor, step: Tensor) -> tuple[Tensor, bool]:
    """The Newton step, re-solved with the mean scale fixed if it would exceed the ceiling.

    With `e` the mean-scale functional, the step of the bordered system
    `[J e; e^T 0] [x; mu] = [-g; b]` is `step - mu J^-1 e`, `b = SCALE_CEILING - mean(scales)`:
    every snippet's scale condition gets the same extra pull `mu`.

    Args:
        layout, factors: the Newton system's layout and (possibly an earlier system's)
            factorisation.
        scales: `K` float64, current scales.
        step: `K 2` float64, the Newton step (`J^-1 (-g)`).

    Returns:
        The step and whether the mean scale was held.
    """
    room = SCALE_CEILING - float(scales.mean())
    if float(step[:, 0].mean()) <= room:
        return step, False
    unit = torch.zeros_like(step)
    unit[:, 0] = 1.0 / unit.shape[0]
    response = layout.from_blocks(factors.solve(layout.to_blocks(unit)))  # J^-1 e
    along = float(response[:, 0].mean())  # e^T J^-1 e
    if not (abs(along) > 0 and torch.isfinite(response).all()):
        return step, False
    logger.debug("mean scale held at %g", SCALE_CEILING)
    return step - (float(step[:, 0].mean()) - room) / along * response, True


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


def solve_fast(problem: AlignmentProblem, settings: CoalignSettings, hooks: Hooks) -> Alignment:
    """The reference's fixed point by IRLS-Newton steps with Anderson mixing (module doc).

    ``settings.num_iterations`` caps the total number of iterations; progress counts
    iterations against the stages' caps; cancel is checked before every iteration.
    With fewer than `FEW_PIXELS` optimisation pixels per frame, `few_pixel_stages`.
    """
    with flush_denormals():
        if problem.num_pixels >= FEW_PIXELS:
            return _solve_fast(problem, settings, hooks, STAGES)
        quiet = Hooks(check_cancel=hooks.check_cancel)
        candidates = [_solve_fast(problem, settings, quiet, stages)
                      for stages in few_pixel_stages()[:-1]]
        candidates.append(_solve_fast(problem, settings, hooks, few_pixel_stages()[-1]))
        best = min(candidates, key=lambda alignment: alignment.objective)
        logger.debug("few pixels: objectives %s", [c.objective for c in candidates])
        return best


def few_pixel_stages() -> list[tuple[Stage, ...]]:
    """The stage ladders tried on frames with very few optimisation pixels.

    With `P` pixels per frame a snippet's data terms have `n P` residuals for its 2 unknowns;
    with `P` below `FEW_PIXELS` (frames under about 30x40 pixels at the default subsample)
    the L1 conditions hold on whole sets of points, and which fixed point the iteration
    reaches depends on the smoothing path (as where the reference's Adam stops depends on
    its step count: its objective still moves by 5-10 % between 1000 and 8000 steps). The
    last stage is run at each smoothing of `FEW_PIXEL_SMOOTHINGS` and the objective picks.
    Each run costs milliseconds at that size.
    """
    return [STAGES[:-1] + (replace(STAGES[-1], smoothing=smoothing),)
            for smoothing in FEW_PIXEL_SMOOTHINGS]


def _solve_fast(problem: AlignmentProblem, settings: CoalignSettings, hooks: Hooks,
                stages: tuple[Stage, ...]) -> Alignment:
    unknowns = snippet_unknowns(problem)
    num_snippets, group_size = unknowns.num_snippets, unknowns.group_size
    layout, split = unknowns.layout, None
    factors = None  # of an earlier Newton system (they precondition the later ones)
    start_scales, start_shifts = unknowns.start()
    scales, shifts = start_scales, start_shifts
    budget = settings.num_iterations
    total = min(budget, sum(stage.max_iterations for stage in stages) + WIDE_STEPS)
    done = 0
    data = None
    settled = True  # whether the last stage ended by its tolerance (not by its cap)
    held = False  # whether a step of the last stage held the mean scale (`hold_common_scale`)
    for stage in stages:
        if done >= budget:
            break
        data = stage_data(problem, settings, stage.max_pixels, torch.float32)
        if split is None:  # the pairs are the same in every stage (they ignore pixels)
            layout, split = separator_layout(layout, data.rows, data.cols)
            pattern = pair_pattern(data.rows, data.cols, layout)
        mixer = AndersonMixer(memory=ANDERSON_MEMORY)
        held = False
        for _ in range(min(stage.max_iterations, budget - done)):
            hooks.check_cancel()
            system = newton_system(data, scales, shifts, group_size, stage.smoothing, settings)
            step = None
            if factors is not None:
                step = inexact_step(pattern, system, layout, factors)
            if step is None:
                factors = factor_robustly(assemble(
                    layout, data.rows, data.cols, system.blocks, system.curvature, SYSTEM_DTYPE
                ), split)
                step = layout.from_blocks(factors.solve(-layout.to_blocks(system.gradient)))
            step, held_now = hold_common_scale(layout, factors, scales, step)
            held = held or held_now
            step = limit_step(scales, shifts, step)
            theta = torch.cat([scales, shifts])
            target = theta + torch.cat([step[:, 0], step[:, 1]])
            mixed = mixer.step(theta, target)
            if not in_trust_region(theta, mixed, num_snippets):
                mixer.reset()
                mixed = target
            scales, shifts = mixed[:num_snippets], mixed[num_snippets:]
            done += 1
            hooks.progress(done, total)
            settled = float(step.abs().max()) < stage.tolerance
            if settled:
                break
        logger.debug("delta %g, %d pixels: %d iterations so far",
                     stage.smoothing, data.slots.num_pixels, done)
    final = data
    if final is None or final.slots.num_pixels != problem.num_pixels:
        final = stage_data(problem, settings, 0, torch.float32)
    chunk = frame_chunk(final.slots)

    def evaluate(scales: Tensor, shifts: Tensor, with_gradient: bool) -> ExactTerms:
        return exact_objective(final.slots, final.denominator, scales, shifts, group_size,
                               settings, chunk, with_gradient)

    objective = evaluate(scales, shifts, False).value
    start_won = False
    if done:
        start = evaluate(start_scales, start_shifts, False).value
        if not objective <= start:  # also catches NaN
            logger.warning(
                "fast co-alignment: the start (scales 1, shifts 0) has a lower objective "
                "(%.6g) than the solver's fixed point (%.6g); returning the start, polished. "
                "The snippets may already agree (nothing to align).", start, objective,
            )
            scales, shifts, objective = start_scales, start_shifts, start
            start_won = True

    def polish_step() -> None:
        nonlocal done
        hooks.check_cancel()
        done += 1
        hooks.progress(done, total)

    # anchored: at the fixed point the reference's Adam settles to (or at the start, where
    # that fixed point is worse), stay within its step; not settled, or the mean scale held
    # (the reference's Adam drifts): its answer is not near ours, the objective decides
    anchored = settled and not held
    steps, radius = (POLISH_STEPS, RADIUS) if anchored else (WIDE_STEPS, WIDE_RADIUS)
    steps = min(steps, budget - done)
    if steps > 0 and not anchored:
        logger.debug("not anchored (settled %s, mean scale held %s, start won %s): the common "
                     "map of the video by the objective", settled, held, start_won)
        scales, shifts, objective = common_map(evaluate, scales, shifts)
    if steps > 0:
        scales, shifts, objective = polish(evaluate, scales, shifts, steps, polish_step, radius)
    hooks.progress(total, total)
    return unknowns.alignment(scales, shifts, problem.offset, objective, "fast")
