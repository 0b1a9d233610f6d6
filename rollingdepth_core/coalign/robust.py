"""An outlier-robust co-alignment objective ("robust"; an option, never the default).

Why. The reference objective (SPEC §4) measures every prediction against the mean of its
frame after subtracting the clip's global minimum, and penalises shifts hard (10 t^2) and
scales below 1. A single extreme pixel moves the global minimum, which changes what a
shift costs; the snippets' scales then drift between parts of a clip (golden/README §7:
2-4 % AbsRel within parts, 13 % over the clip).

What this solver minimises instead:

    E = sum over frames i, pairs of predictions r < l of i, pixels p of
            rho((x_rp - x_lp) / mu_rl),     x = s d + t,  mu_rl = (s_r + s_l) / 2

with the Cauchy loss `rho(e) = c^2 / 2 log(1 + (e / c)^2)` (c from the residuals' median,
so outlier pixels and hallucinated blobs get almost no weight). Predictions of the same
pixel must agree with each other, relative to their own scale, so shrinking a part of the
clip earns nothing. Nothing depends on the global minimum, and there is no penalty on the
parameters: E is unchanged by one common scale and shift, which are fixed afterwards
(geometric mean of the scales 1, mean shift 0).

How: iteratively reweighted least squares; the weighted problem is linear in the unknowns
and its normal equations are block tridiagonal (`linalg/block_tridiagonal.py`), as in the fast solver.
Squares first (closed form), then L1-like weights, then Cauchy. Pixels: an evenly spread
subset of the optimisation pixels (robust statistics need few).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import torch
from torch import Tensor

from ..hooks import Hooks
from ..types import Alignment
from .linalg.block_tridiagonal import assemble, flush_denormals
from .newton_setup import factor_robustly, pixel_subset, snippet_unknowns
from .problem import AlignmentProblem, CoalignSettings, objective_value
from .slots import FrameSlots, frame_slots

logger = logging.getLogger(__name__)

MAX_PIXELS = 512  # optimisation pixels per frame used by this solver
CAUCHY_WIDTH = 2.0  # Cauchy c in robust standard deviations of the residuals
MIN_SCALE = 1e-3
DAMPING = 1e-9  # relative Levenberg damping (the common scale and shift are free)
MAX_HALVINGS = 8  # step halvings of the line search


@dataclass(frozen=True)
class Phase:
    """One phase of reweighting: ``loss`` in {"l2", "l1", "cauchy"}."""

    loss: str
    max_iterations: int
    tolerance: float


PHASES = (Phase("l2", 3, 1e-4), Phase("l1", 10, 1e-4), Phase("cauchy", 12, 1e-5))


def frame_pairs(slots: FrameSlots) -> Tensor:
    """`q 3` (frame, slot r, slot l), r < l, for every pair of predictions of a frame."""
    both = slots.mask[:, :, None] & slots.mask[:, None, :]
    return torch.triu(both, diagonal=1).nonzero()


def pair_residuals(slots: FrameSlots, pairs: Tensor, scales: Tensor, shifts: Tensor
                   ) -> tuple[Tensor, Tensor]:
    """Relative disagreements `(x_r - x_l) / mu_rl`, `q P`, and `mu_rl`, `q`."""
    frame, slot_r, slot_l = pairs.unbind(1)
    k_r, k_l = slots.snippet[frame, slot_r], slots.snippet[frame, slot_l]
    v_r, v_l = slots.values[frame, slot_r], slots.values[frame, slot_l]  # q P
    s_r, s_l = scales[k_r].float()[:, None], scales[k_l].float()[:, None]
    t_r, t_l = shifts[k_r].float()[:, None], shifts[k_l].float()[:, None]
    mu = ((scales[k_r] + scales[k_l]) / 2).float()
    return (s_r * v_r + t_r - s_l * v_l - t_l) / mu[:, None], mu


def loss_weights(resid: Tensor, loss: str, width: float) -> Tensor:
    """IRLS weights `rho'(e) / e` of the residuals for ``loss``."""
    if loss == "l2":
        return torch.ones_like(resid)
    if loss == "l1":
        return torch.rsqrt(resid.square() + (1e-3 * width) ** 2)
    return 1 / (1 + (resid / width).square())


def weighted_energy(resid: Tensor, loss: str, width: float) -> float:
    """Mean loss of the residuals: squares, smoothed absolute values or Cauchy."""
    if loss == "l2":
        return float(resid.square().mean() / 2)
    if loss == "l1":
        return float(torch.sqrt(resid.square() + (1e-3 * width) ** 2).mean())
    return float((width**2 / 2 * torch.log1p((resid / width).square())).mean())


def residual_width(resid: Tensor) -> float:
    """Robust standard deviation (1.4826 x median |e|) of the residuals, sampled."""
    flat = resid.reshape(-1)
    if flat.numel() > 1_000_000:
        flat = flat[:: flat.numel() // 1_000_000]
    return max(1.4826 * float(flat.abs().median()), 1e-6)


def normal_equations(slots: FrameSlots, pairs: Tensor, resid: Tensor, mu: Tensor,
                     weights: Tensor) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    """Gradient and Gauss-Newton blocks of `sum w e^2 / 2` at fixed weights.

    With `e = (x_r - x_l) / mu`, `mu = (s_r + s_l) / 2`: `de/d(s_r, t_r) = (d_r - e / 2, 1) / mu`
    and `de/d(s_l, t_l) = -(d_l + e / 2, 1) / mu`. Both vanish along a common scale or shift,
    so the system is singular only there (a tiny damping picks the nearest such point).

    Returns:
        gradient `K 2`; block rows and cols `q'`; blocks `q' 2 2` (the pairs in both orders
        and their diagonal contributions).
    """
    frame, slot_r, slot_l = pairs.unbind(1)
    k_r, k_l = slots.snippet[frame, slot_r], slots.snippet[frame, slot_l]
    a = slots.values[frame, slot_r] - resid / 2  # q P
    b = slots.values[frame, slot_l] + resid / 2
    w = weights / mu[:, None].square()
    we = weights * resid / mu[:, None]
    num = slots.num_snippets
    gradient = torch.zeros(num, 2, dtype=torch.float64, device=resid.device)
    gradient.index_add_(0, k_r, torch.stack([(we * a).sum(-1), we.sum(-1)], -1).double())
    gradient.index_add_(0, k_l, -torch.stack([(we * b).sum(-1), we.sum(-1)], -1).double())

    def block(x: Tensor, y: Tensor) -> Tensor:  # sum_p w (x, 1) (y, 1)^T, q 2 2
        return torch.stack([
            torch.stack([(w * x * y).sum(-1), (w * x).sum(-1)], -1),
            torch.stack([(w * y).sum(-1), w.sum(-1)], -1),
        ], -2).double()

    cross = -block(a, b)
    rows = torch.cat([k_r, k_l, k_r, k_l])
    cols = torch.cat([k_r, k_l, k_l, k_r])
    blocks = torch.cat([block(a, a), block(b, b), cross, cross.transpose(1, 2)])
    return gradient, rows, cols, blocks


def fix_gauge(scales: Tensor, shifts: Tensor) -> tuple[Tensor, Tensor]:
    """Remove the free common scale and shift: geometric-mean scale 1, mean shift 0."""
    scales = scales.clamp(min=MIN_SCALE)
    common = torch.exp(torch.log(scales).mean())
    scales, shifts = scales / common, shifts / common
    return scales, shifts - shifts.mean()


def solve_robust(problem: AlignmentProblem, settings: CoalignSettings, hooks: Hooks) -> Alignment:
    """Minimise the robust pairwise objective (module doc) by reweighted least squares.

    ``settings`` supplies the optimisation pixels (border, subsample), the iteration cap
    (``num_iterations``) and, for the returned `Alignment.objective`, the SPEC §4
    objective's weights; its regulariser weights are not part of the robust objective.
    """
    with flush_denormals():
        return _solve_robust(problem, settings, hooks)


def _solve_robust(problem: AlignmentProblem, settings: CoalignSettings, hooks: Hooks) -> Alignment:
    unknowns = snippet_unknowns(problem)
    layout = unknowns.layout
    slots = frame_slots(problem.values, problem.indices, problem.num_frames,
                        pixel_subset(problem.num_pixels, MAX_PIXELS, problem.device))
    pairs = frame_pairs(slots)
    scales, shifts = unknowns.start()
    budget = settings.num_iterations
    total = min(budget, sum(phase.max_iterations for phase in PHASES))
    done, width, energy = 0, 1.0, float("nan")
    for phase in PHASES:
        for _ in range(min(phase.max_iterations, budget - done)):
            hooks.check_cancel()
            if pairs.numel() == 0:
                break
            resid, mu = pair_residuals(slots, pairs, scales, shifts)
            if phase.loss != "cauchy" or done == 0:
                width = CAUCHY_WIDTH * residual_width(resid)
            weights = loss_weights(resid, phase.loss, width)
            gradient, rows, cols, blocks = normal_equations(slots, pairs, resid, mu, weights)
            level = float(blocks[: len(pairs)].diagonal(dim1=1, dim2=2).mean())
            diagonal = torch.full_like(gradient, DAMPING * max(level, 1e-30))
            factors = factor_robustly(assemble(layout, rows, cols, blocks, diagonal))
            step = layout.from_blocks(factors.solve(-layout.to_blocks(gradient)))
            current = energy = weighted_energy(resid, phase.loss, width)
            for _ in range(MAX_HALVINGS):
                trial_s, trial_t = fix_gauge(scales + step[:, 0], shifts + step[:, 1])
                trial, _ = pair_residuals(slots, pairs, trial_s, trial_t)
                if weighted_energy(trial, phase.loss, width) <= current:
                    break
                step = step / 2
            scales, shifts = trial_s, trial_t
            done += 1
            hooks.progress(done, total)
            if float(step.abs().max()) < phase.tolerance:
                break
        logger.debug("robust %s: energy %.6g (c = %.4g) after %d iterations",
                     phase.loss, energy, width, done)
    hooks.progress(total, total)
    sizes = list(unknowns.group_sizes)
    objective = objective_value(problem, torch.split(scales.float(), sizes),
                                torch.split(shifts.float(), sizes), settings)
    return unknowns.alignment(scales, shifts, problem.offset, objective, "robust")
