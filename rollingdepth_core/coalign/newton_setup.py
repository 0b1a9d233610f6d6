"""What the two Newton-type solvers (`fast`, `robust`) share: their unknowns and start, the
pixel subsets of their early iterations, and a factorisation that survives singular systems.

Both solve for one scale and one shift per snippet, numbered group by group in plan order
(the order of `AlignmentProblem.values`), start from scales 1 and shifts 0, and solve
block-tridiagonal systems whose blocks follow the snippets' first frames (`linalg/`).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import torch
from torch import Tensor

from ..errors import NumericalError
from ..types import Alignment
from .linalg.block_tridiagonal import (
    BlockFactors,
    BlockLayout,
    SingularSystem,
    add_damping,
    block_layout,
    factor_block_tridiagonal,
)
from .linalg.separator import SeparatorFactors, factor_with_separators
from .problem import AlignmentProblem

logger = logging.getLogger(__name__)

DAMPING_LEVELS = (0.0, 1e-8, 1e-6, 1e-4, 1e-2)  # relative damping tried, in order


@dataclass(frozen=True)
class SnippetUnknowns:
    """The unknowns of a problem: one scale and one shift per snippet, all groups in a row.

    Attributes:
        group_sizes: snippets per group (plan order).
        group_size: `K` float64, the size of each snippet's group (the regulariser is a mean
            over the group).
        layout: the block-tridiagonal layout (blocks `(n - 1) g_max` frames wide).
        device: where the problem's tensors are.
    """

    group_sizes: tuple[int, ...]
    group_size: Tensor
    layout: BlockLayout
    device: torch.device

    @property
    def num_snippets(self) -> int:
        """`K`."""
        return sum(self.group_sizes)

    def start(self) -> tuple[Tensor, Tensor]:
        """Scales 1 and shifts 0, `K` float64 each (the reference's start)."""
        ones = torch.ones(self.num_snippets, dtype=torch.float64, device=self.device)
        return ones, torch.zeros_like(ones)

    def alignment(self, scales: Tensor, shifts: Tensor, offset: float, objective: float,
                  method: str) -> Alignment:
        """`K` scales and shifts as an `Alignment` (per group, float32, on the host)."""
        return Alignment(
            scales=tuple(torch.split(scales.float().cpu(), list(self.group_sizes))),
            shifts=tuple(torch.split(shifts.float().cpu(), list(self.group_sizes))),
            offset=offset, objective=objective, method=method,
        )


def snippet_unknowns(problem: AlignmentProblem) -> SnippetUnknowns:
    """The unknowns of ``problem`` and their block layout (on the problem's device)."""
    sizes = tuple(int(v.shape[0]) for v in problem.values)
    device = problem.device
    group_size = torch.cat([
        torch.full((s,), float(s), dtype=torch.float64, device=device) for s in sizes
    ])
    first = torch.cat([idx[:, 0] for idx in problem.indices])
    span = max(int((idx[:, -1] - idx[:, 0]).max()) for idx in problem.indices)
    return SnippetUnknowns(group_sizes=sizes, group_size=group_size,
                           layout=block_layout(first, span), device=device)


def pixel_subset(num_pixels: int, max_pixels: int, device: torch.device | str = "cpu"
                 ) -> Tensor | None:
    """`max_pixels` evenly spread indices into `num_pixels` (None: use all)."""
    if max_pixels <= 0 or num_pixels <= max_pixels:
        return None
    spread = torch.linspace(0, num_pixels - 1, max_pixels, dtype=torch.float64, device=device)
    return spread.round().long().unique()


def factor_robustly(bands: Tensor, split: int | None = None) -> BlockFactors | SeparatorFactors:
    """Factorise a Newton system; if it is singular, add growing damping until it is not.

    Args:
        bands: `b 3 q q` block-tridiagonal bands.
        split: with bands in a `separator_layout`, its split: factorise through the
            separators (same answer, less work); None: plain block elimination.

    Raises:
        NumericalError: still singular with the largest damping (`DAMPING_LEVELS`).
    """
    for relative in DAMPING_LEVELS:
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
