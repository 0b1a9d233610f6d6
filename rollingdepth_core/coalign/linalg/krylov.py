"""Inexact Newton steps for the fast co-alignment solver: GMRES with an earlier factorisation.

The fast solver's outer iteration (reweighted least squares) converges linearly, so its
linear systems need not be solved exactly. From one iteration to the next the Newton
system changes little, so the factorisation of an earlier one is a good preconditioner:
a few GMRES steps with it (each one product with the sparse Jacobian and one solve with
the old factors) reach the accuracy that matters, for a fraction of a new factorisation.
When they do not, the caller factorises afresh.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import Tensor

from .block_tridiagonal import PARAMS, BlockLayout

LinearMap = Callable[[Tensor], Tensor]


@dataclass(frozen=True)
class PairPattern:
    """Where the `q 2 2` snippet-pair blocks go in a CSR matrix on a block layout's unknowns.

    Unknowns are numbered as in the layout's flattened `b q` vectors, so products need no
    reordering between the solver's factors and the Jacobian (padding rows stay empty).

    Attributes:
        crow, col: the CSR structure (duplicate entries are summed by products).
        order: `4q` positions in the flattened blocks, in CSR order.
        shape: `(b, q)` of the layout.
    """

    crow: Tensor
    col: Tensor
    order: Tensor
    shape: tuple[int, int]


def pair_pattern(rows: Tensor, cols: Tensor, layout: BlockLayout) -> PairPattern:
    """The CSR pattern of snippet pairs `rows`, `cols` (`q` int64 each); once per layout."""
    start = layout.block * layout.block_size + PARAMS * layout.local  # K: first unknown
    unknown = torch.arange(PARAMS, device=rows.device)
    row = (start[rows][:, None, None] + unknown[None, :, None]).expand(-1, PARAMS, PARAMS)
    col = (start[cols][:, None, None] + unknown[None, None, :]).expand(-1, PARAMS, PARAMS)
    row, col = row.reshape(-1), col.reshape(-1)
    size = layout.num_blocks * layout.block_size
    order = torch.argsort(row * size + col)
    crow = torch.zeros(size + 1, dtype=torch.int64, device=rows.device)
    crow[1:] = torch.cumsum(torch.bincount(row, minlength=size), 0)
    return PairPattern(crow=crow, col=col[order], order=order,
                       shape=(layout.num_blocks, layout.block_size))


def pair_operator(pattern: PairPattern, blocks: Tensor, diagonal: Tensor) -> LinearMap:
    """`x -> J x` for the sparse Jacobian of snippet-pair blocks plus a diagonal.

    Args:
        pattern: from `pair_pattern`.
        blocks: `q 2 2` float64 (`fast_system.newton_system`).
        diagonal: `b q` float64, added to each unknown's diagonal entry (0 in padding).

    Returns:
        A map on `b q` float64 tensors in the layout (a CSR product: ~7x faster than
        batched 2x2 blocks).
    """
    size = pattern.shape[0] * pattern.shape[1]
    with warnings.catch_warnings():  # "sparse CSR support is in beta"
        warnings.simplefilter("ignore", UserWarning)
        matrix = torch.sparse_csr_tensor(pattern.crow, pattern.col,
                                         blocks.reshape(-1)[pattern.order], (size, size),
                                         device=blocks.device)

    def product(vector: Tensor) -> Tensor:
        return (matrix @ vector.reshape(-1)).reshape(vector.shape) + diagonal * vector

    return product


def gmres(
    matvec: LinearMap,
    precondition: LinearMap,
    rhs: Tensor,
    tolerance: float,
    max_steps: int,
) -> tuple[Tensor, bool]:
    """Right-preconditioned GMRES started from `precondition(rhs)`.

    The small least-squares problem is kept in Python floats with Givens rotations
    (`torch.linalg.lstsq` is not bit-reproducible between calls with MKL).

    Args:
        matvec: `x -> A x` on float64 tensors.
        precondition: `x -> M^-1 x`, an approximate inverse of `A`.
        rhs: float64 right-hand side `b`.
        tolerance: stop when `|b - A x| <= tolerance |b|`.
        max_steps: most Krylov steps.

    Returns:
        The approximate solution and whether it met the tolerance.
    """
    start = precondition(rhs)
    residual = rhs - matvec(start)
    target = tolerance * float(rhs.norm())
    beta = float(residual.norm())
    if beta <= target:
        return start, True
    basis, directions = [residual / beta], []
    columns: list[list[float]] = []  # of the triangular factor R
    rotations: list[tuple[float, float]] = []
    projected = [beta]  # Q^T beta e1
    for step in range(max_steps):
        directions.append(precondition(basis[step]))
        w = matvec(directions[step])
        column = []
        for vector in basis:  # modified Gram-Schmidt
            coefficient = float((w * vector).sum())
            w = w - coefficient * vector
            column.append(coefficient)
        norm = float(w.norm())
        column.append(norm)
        for i, (c, s) in enumerate(rotations):
            column[i], column[i + 1] = c * column[i] + s * column[i + 1], c * column[i + 1] - s * column[i]
        radius = math.hypot(column[step], column[step + 1])
        if radius == 0.0:
            break
        c, s = column[step] / radius, column[step + 1] / radius
        rotations.append((c, s))
        column[step], column[step + 1] = radius, 0.0
        projected.append(-s * projected[step])
        projected[step] *= c
        columns.append(column[:step + 1])
        converged = abs(projected[step + 1]) <= target
        if converged or norm <= 1e-300 or step == max_steps - 1:
            if not converged:
                break
            coefficients = [0.0] * (step + 1)  # back substitution R y = Q^T beta e1
            for i in range(step, -1, -1):
                total = projected[i] - sum(columns[k][i] * coefficients[k]
                                           for k in range(i + 1, step + 1))
                coefficients[i] = total / columns[i][i]
            update = sum(y * z for y, z in zip(coefficients, directions, strict=True))
            return start + update, True
        basis.append(w / norm)
    return start, False
