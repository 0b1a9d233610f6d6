"""The fast solver's last stage: a few descent steps on the exact objective (issue 12).

Why it is needed. The fast solver's Newton stages find a fixed point of the *detached*,
*smoothed* conditions (targets and frame scales held constant, absolute values smoothed
by `delta`), which is what the reference's Adam loop follows. No such point is a minimum
of the SPEC §4 objective itself: there the objective still changes at first order, by
about 0.1 % per 1e-3 of parameter change on the tiny-model clips. The reference's Adam
does not stop at one point either: its steps of about its learning rate (1e-3) keep every
parameter jittering around a fixed point (measured: residuals move by ~5e-4), and where
it stops after 2000 steps is one sample of that jitter. So a fixed point alone ends a few
1e-4 above or below the reference, by chance (up to 0.07 % above on 174 random
tiny-model clips); on clips where Adam drifts along the common scale (the data terms do
not change when every scale and shift is multiplied by one factor) the fixed point that
holds the mean scale at 1 ends up to 0.27 % above.

What it does. Starting from the fixed point, it descends the exact objective: targets
and frame scales depend on the parameters, absolute values are not smoothed
(`exact_objective`). The steps are resilient propagation's (Rprop, Riedmiller and Braun):
each parameter moves against the sign of its own derivative by its own step, which grows
while that sign holds and halves when it flips. Only signs count, as in the reference's
own Adam steps, and the objective's kinks (it is a sum of absolute values) do not throw
it. The best point seen is returned, so never one above the start. No parameter moves
further than `RADIUS` (the reference's learning rate) from where the stage started, so
the answer stays within the reference's own resolution of the fixed point and the merged
video within SPEC §6 of the reference's.

Where the fixed-point iteration does not settle, or held the mean scale, there is no such
point to stay near. Not settling happens on frames with few optimisation pixels (tens per
frame, frames under about 100x70 at the default subsample): the L1 conditions then hold on
whole sets of points and the iterates cycle among them, while the reference's Adam wanders
and drifts the common scale (to 2.7-2.8 on two tiny-model clips). Where the mean scale is
held, Adam drifts it up, and a larger common scale lifts the scales that sit below 1 out
of the scale regulariser (the data terms do not see it). There `fast` first takes the
best common map of the video (`common_map`: a search along exactly that direction, which
per-parameter steps cannot follow), then `WIDE_STEPS` steps within `WIDE_RADIUS`, and the
objective decides: with the narrow radius only it ended 0.15 % (18 frames of 70x50), 0.08 %
(9 frames of 63x55) and 0.27 % (90 frames of 55x41) above the reference there; now 0.2 %
below the first two and at or below it on all (issue 12, `tests/coalign/test_fast_tiny_models.py`).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import Tensor

from .problem import CoalignSettings
from .slots import FrameSlots

RADIUS = 1e-3  # farthest any scale or shift may move: the reference's Adam step (lr)
FIRST_STEP = RADIUS / 8  # every parameter's first step
SMALLEST_STEP = RADIUS / 256  # the steps' lower bound; the upper one is half the radius
STEP_FACTORS = (0.5, 1.2)  # a step halves when its gradient's sign flips, grows while it holds
WIDE_RADIUS = 1e-2  # the radius where the answer is not anchored (module doc, `fast.py`)
WIDE_STEPS = 50  # steps at most there (one evaluation with gradient each)


@dataclass(frozen=True)
class ExactTerms:
    """The SPEC §4 objective and its gradient at given parameters.

    Attributes:
        value: the objective (data terms on the slots' pixels, plus the regulariser).
        gradient: `K 2` float64, d value / d(scale, shift) of every snippet, or None.
    """

    value: float
    gradient: Tensor | None


def exact_frame_terms(
    values: Tensor,
    mask: Tensor,
    scales: Tensor,
    shifts: Tensor,
    settings: CoalignSettings,
    denominator: float,
    with_gradient: bool = True,
) -> tuple[float, Tensor | None]:
    """Data terms of a few frames and their exact gradient per slot.

    Per frame and term (the aligned values `x`, then `y = 1 / clip(x)`): target
    `T = mean_r y_r`, frame scale `c = mean_p |T_p|`, spread `A = sum_rp |y_rp - T_p|`, term
    `w A / (c D)`. Its derivative with respect to `y_rp` (slot `r` filled, `m` filled slots) is
    `w / (c D) (sign(e_rp) - sum_l sign(e_lp) / m - A sign(T_p) / (c m P))`; the depth term's
    is chained through `dy / dx = -y^2` (0 where `x` is clipped).

    Args:
        values: `n R P` frame slots (0 where empty).
        mask: `n R` bool, filled slots.
        scales, shifts: `n R` per slot.
        settings: the objective's weights.
        denominator: `D`, the data terms' normaliser.
        with_gradient: also return the gradient.

    Returns:
        The data terms' share of the objective and the per-slot gradient `n R 2` float64
        (d / d scale, d / d shift), or None.
    """
    dtype = values.dtype
    filled = mask.to(dtype)[..., None]  # n R 1
    share = 1.0 / filled.sum(1, keepdim=True)  # n 1 1: 1 / m
    num_pixels = values.shape[-1]
    aligned = torch.addcmul(shifts.to(dtype)[..., None], values, scales.to(dtype)[..., None])
    inverse = aligned.clamp(min=settings.min_inverse_depth).reciprocal_().mul_(filled)
    value, slope_of_terms = 0.0, None
    for term, weight in ((aligned, 1.0), (inverse, settings.depth_term_weight)):
        target = term.sum(1, keepdim=True) * share  # n 1 P
        frame_scale = target.abs().mean(-1, keepdim=True).clamp_(min=1e-12)  # n 1 1
        resid = (term - target).mul_(filled)  # n R P
        spread = resid.abs().sum((1, 2), keepdim=True)  # n 1 1
        unit = weight / (frame_scale * denominator)  # n 1 1
        value += float((spread * unit).sum(dtype=torch.float64))
        if not with_gradient:
            continue
        signs = resid.sign()
        slope = (signs - signs.sum(1, keepdim=True) * share
                 - (spread * share / (frame_scale * num_pixels)) * target.sign())
        slope = slope.mul_(filled).mul_(unit)  # d term / d y, n R P
        if term is inverse:  # chain through y = 1 / clip(x)
            slope = slope * torch.where(aligned > settings.min_inverse_depth, -inverse.square(), 0.0)
        slope_of_terms = slope if slope_of_terms is None else slope_of_terms + slope
    if slope_of_terms is None:
        return value, None
    gradient = torch.stack([(values * slope_of_terms).sum(-1), slope_of_terms.sum(-1)], -1)
    return value, gradient.double()


def exact_objective(
    slots: FrameSlots,
    denominator: float,
    scales: Tensor,
    shifts: Tensor,
    group_size: Tensor,
    settings: CoalignSettings,
    frame_chunk: int,
    with_gradient: bool = True,
) -> ExactTerms:
    """The SPEC §4 objective (and its gradient) on the slots' pixels, frames in chunks.

    Args:
        slots: frame-major predictions.
        denominator: the data terms' normaliser (`fast.StageData.denominator`).
        scales, shifts: `K` float64.
        group_size: `K`, snippets in each snippet's group (the regulariser is a group mean).
        settings: the objective's weights.
        frame_chunk: frames per chunk.
        with_gradient: also compute the gradient.
    """
    slot_scales, slot_shifts = slots.gather(scales), slots.gather(shifts)  # N R
    value, parts = 0.0, []
    for start in range(0, slots.num_frames, frame_chunk):
        stop = min(start + frame_chunk, slots.num_frames)
        part, gradient = exact_frame_terms(
            slots.values[start:stop], slots.mask[start:stop], slot_scales[start:stop],
            slot_shifts[start:stop], settings, denominator, with_gradient,
        )
        value += part
        parts.append(gradient)
    scale_weight = settings.scale_reg_weight / group_size
    shift_weight = settings.shift_reg_weight / group_size
    below = torch.relu(1 - scales)
    value += float((scale_weight * below.square()).sum() + (shift_weight * shifts.square()).sum())
    if not with_gradient:
        return ExactTerms(value, None)
    gradient = slots.scatter(torch.cat(parts)) + torch.stack(
        [-2 * scale_weight * below, 2 * shift_weight * shifts], -1)
    return ExactTerms(value, gradient)


COMMON_STEPS = (0.1, 0.05)  # first steps of the common map's search: relative scale, shift
COMMON_SMALLEST = 1e-4  # the search ends when its steps fall below this fraction of the first
COMMON_EVALUATIONS = 40  # objective evaluations of the search at most


def common_map(
    evaluate: Callable[[Tensor, Tensor, bool], ExactTerms],
    scales: Tensor,
    shifts: Tensor,
) -> tuple[Tensor, Tensor, float]:
    """The best affine map of the whole aligned video, `x -> a x + b` (every snippet's
    scale times `a`, shift times `a` plus `b`), by a compass search on `(log a, b)`.

    Why. The data terms measure disagreement relative to each frame's scale, so `a` leaves
    them unchanged and `b` changes them only through the frame scales; the regulariser
    depends on both. Neither the detached conditions nor the reference's Adam pin these two
    directions down where the fixed-point iteration does not settle (very few optimisation
    pixels per frame: the L1 conditions then hold on a whole set of points), so there the
    objective itself decides. The normalised video (-1..1) does not change at all.

    Args:
        evaluate: `(scales, shifts, with_gradient) -> ExactTerms`.
        scales, shifts: `K` float64.

    Returns:
        Scales, shifts and the objective there; never higher than at the start.
    """
    best = evaluate(scales, shifts, False).value
    log_gain, offset = 0.0, 0.0
    step_gain, step_offset = COMMON_STEPS
    evaluations = 1
    moves = ((1, 0), (-1, 0), (0, 1), (0, -1))
    while evaluations < COMMON_EVALUATIONS and step_gain >= COMMON_STEPS[0] * COMMON_SMALLEST:
        for sign_gain, sign_offset in moves:
            trial_gain = log_gain + sign_gain * step_gain
            trial_offset = offset + sign_offset * step_offset
            gain = math.exp(trial_gain)
            value = evaluate(scales * gain, shifts * gain + trial_offset, False).value
            evaluations += 1
            if value < best:
                best, log_gain, offset = value, trial_gain, trial_offset
                break
        else:
            step_gain, step_offset = step_gain / 2, step_offset / 2
    gain = math.exp(log_gain)
    return scales * gain, shifts * gain + offset, best


def polish(
    evaluate: Callable[[Tensor, Tensor, bool], ExactTerms],
    scales: Tensor,
    shifts: Tensor,
    max_steps: int,
    on_step: Callable[[], None] = lambda: None,
    radius: float = RADIUS,
) -> tuple[Tensor, Tensor, float]:
    """Resilient descent (Rprop) on the exact objective within ``radius`` of the start; the
    best point seen is returned (module doc).

    The variant without backtracking (iRprop-, as `torch.optim.Rprop` steps): where a
    derivative's sign flips, that parameter's step halves and it waits one step. Written out
    here because building a `torch.optim` optimiser costs ~1.4 s the first time in a process
    (it imports the compiler stack), five times the whole fast solve at 96x64.

    Args:
        evaluate: `(scales, shifts, with_gradient) -> ExactTerms`.
        scales, shifts: `K` float64, the start.
        max_steps: descent steps (one evaluation with gradient each).
        on_step: called before every step (progress, cancel).
        radius: farthest any scale or shift may move from the start (`RADIUS`, or
            `WIDE_RADIUS` where the answer is not anchored).

    Returns:
        Scales, shifts and the objective there; never higher than at the start.
    """
    start = torch.stack([scales, shifts], -1)  # K 2
    terms = evaluate(scales, shifts, True)
    best, best_value = start, terms.value
    current = start
    size = torch.full_like(start, FIRST_STEP)  # K 2, every parameter's own step
    previous = torch.zeros_like(start)  # K 2, the signs of the last step (0: waited)
    shrink, grow = STEP_FACTORS
    for step in range(max_steps):
        on_step()
        signs = terms.gradient.to(start.dtype).sign()
        agreement = signs * previous
        size = torch.where(agreement > 0, size * grow, torch.where(agreement < 0, size * shrink, size))
        size = size.clamp(SMALLEST_STEP, radius / 2)
        signs = torch.where(agreement < 0, 0.0, signs)  # flipped: wait one step
        current = start + (current - size * signs - start).clamp(-radius, radius)
        previous = signs
        terms = evaluate(current[:, 0], current[:, 1], step + 1 < max_steps)  # no gradient after the last
        if terms.value < best_value:  # also refuses NaN
            best, best_value = current, terms.value
    return best[:, 0], best[:, 1], best_value
