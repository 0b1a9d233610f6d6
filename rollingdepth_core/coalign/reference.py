"""The reference co-alignment solver: Adam on the SPEC §4 objective (parity path)."""

from __future__ import annotations

import torch

from ..hooks import Hooks
from ..types import Alignment
from .problem import AlignmentProblem, CoalignSettings, objective

PROGRESS_EVERY = 20  # iterations between progress/cancel calls


def solve_adam(problem: AlignmentProblem, settings: CoalignSettings, hooks: Hooks) -> Alignment:
    """Adam from s = 1, t = 0 for ``settings.num_iterations`` steps, as the reference.

    The loss history holds the loss *before* each update (as the reference records it).
    """
    scales = [torch.ones(v.shape[0], requires_grad=True) for v in problem.values]
    shifts = [torch.zeros(v.shape[0], requires_grad=True) for v in problem.values]
    optimizer = torch.optim.Adam(
        scales + shifts, lr=settings.learning_rate, betas=settings.adam_betas
    )
    history = torch.zeros(settings.num_iterations, dtype=torch.float64)
    for i in range(settings.num_iterations):
        if i % PROGRESS_EVERY == 0:
            hooks.check_cancel()
            hooks.progress(i, settings.num_iterations)
        optimizer.zero_grad()
        loss = objective(problem, tuple(scales), tuple(shifts), settings)
        loss.backward()
        optimizer.step()
        history[i] = loss.detach()
    hooks.progress(settings.num_iterations, settings.num_iterations)
    with torch.no_grad():
        final = float(objective(problem, tuple(scales), tuple(shifts), settings))
    return Alignment(
        scales=tuple(s.detach().clone() for s in scales),
        shifts=tuple(t.detach().clone() for t in shifts),
        offset=problem.offset,
        objective=final,
        method="reference",
        loss_history=history,
    )
