"""The reference co-alignment solver: Adam on the SPEC §4 objective (parity path)."""

from __future__ import annotations

import logging

import torch

from ..hooks import Hooks
from ..types import Alignment
from .problem import AlignmentProblem, CoalignSettings, objective

logger = logging.getLogger(__name__)

PROGRESS_EVERY = 20  # iterations between progress/cancel calls


def solve_adam(problem: AlignmentProblem, settings: CoalignSettings, hooks: Hooks) -> Alignment:
    """Adam from s = 1, t = 0 for ``settings.num_iterations`` steps, as the reference.

    Runs where the problem's values are (the model's device when the snippets stay there,
    as in the authors' release). With ``settings.tolerance`` > 0 it stops after the first
    step whose loss changed by less than that fraction of the previous loss (0, the
    default, runs every step: the reference's behaviour).

    The loss history holds the loss *before* each update (as the reference records it).
    """
    device = problem.device
    scales = [torch.ones(v.shape[0], device=device, requires_grad=True) for v in problem.values]
    shifts = [torch.zeros(v.shape[0], device=device, requires_grad=True) for v in problem.values]
    optimizer = torch.optim.Adam(
        scales + shifts, lr=settings.learning_rate, betas=settings.adam_betas
    )
    history = torch.zeros(settings.num_iterations, dtype=torch.float64, device="cpu")  # returned
    steps = settings.num_iterations
    for i in range(settings.num_iterations):
        if i % PROGRESS_EVERY == 0:
            hooks.check_cancel()
            hooks.progress(i, settings.num_iterations)
        optimizer.zero_grad()
        loss = objective(problem, tuple(scales), tuple(shifts), settings)
        loss.backward()
        optimizer.step()
        history[i] = loss.detach()
        if settings.tolerance > 0 and i > 0 and _settled(history[i - 1], history[i], settings.tolerance):
            steps = i + 1
            logger.debug("Adam stopped after %d of %d steps (tolerance %g).", steps,
                         settings.num_iterations, settings.tolerance)
            break
    hooks.progress(settings.num_iterations, settings.num_iterations)
    with torch.no_grad():
        final = float(objective(problem, tuple(scales), tuple(shifts), settings))
    return Alignment(
        scales=tuple(s.detach().cpu().clone() for s in scales),
        shifts=tuple(t.detach().cpu().clone() for t in shifts),
        offset=problem.offset,
        objective=final,
        method="reference",
        loss_history=history[:steps],
    )


def _settled(previous: torch.Tensor, current: torch.Tensor, tolerance: float) -> bool:
    """Whether the loss changed by less than ``tolerance`` of its previous value."""
    return abs(float(current) - float(previous)) < tolerance * abs(float(previous))
