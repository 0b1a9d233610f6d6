"""Inexact Newton steps of the fast solver: the sparse Jacobian product and GMRES."""

from __future__ import annotations

import torch
from test_block_tridiagonal import dense, random_system

from rollingdepth_core.coalign.linalg.block_tridiagonal import block_layout
from rollingdepth_core.coalign.linalg.krylov import gmres, pair_operator, pair_pattern


def test_pair_operator_equals_the_dense_product():
    first, rows, cols, blocks, diagonal = random_system(width=7)
    rows, cols = torch.cat([rows, rows[:5]]), torch.cat([cols, cols[:5]])  # duplicates add up
    blocks = torch.cat([blocks, blocks[:5]])
    vector = torch.randn(len(first), 2, dtype=torch.float64,
                         generator=torch.Generator().manual_seed(3))
    layout = block_layout(first, 7)
    operator = pair_operator(pair_pattern(rows, cols, layout), blocks, layout.to_blocks(diagonal))
    product = layout.from_blocks(operator(layout.to_blocks(vector)))
    expected = dense(rows, cols, blocks, diagonal) @ vector.reshape(-1)
    torch.testing.assert_close(product.reshape(-1), expected, atol=1e-12, rtol=0)


def linear_problem(seed: int = 0):
    generator = torch.Generator().manual_seed(seed)
    matrix = torch.eye(60, dtype=torch.float64) + 0.3 * torch.randn(
        60, 60, dtype=torch.float64, generator=generator) / 60 ** 0.5
    rhs = torch.randn(30, 2, dtype=torch.float64, generator=generator)
    return (lambda x: (matrix @ x.reshape(-1)).reshape(x.shape)), matrix, rhs


def test_gmres_reaches_the_tolerance_and_is_reproducible():
    matvec, matrix, rhs = linear_problem()
    solutions = [gmres(matvec, lambda x: x, rhs, 1e-8, 40) for _ in range(3)]
    solution, converged = solutions[0]
    assert converged
    expected = torch.linalg.solve(matrix, rhs.reshape(-1)).reshape(rhs.shape)
    torch.testing.assert_close(solution, expected, atol=1e-7, rtol=0)
    assert all(torch.equal(solution, other) for other, _ in solutions)


def test_gmres_with_the_exact_inverse_needs_no_step_and_reports_failure():
    matvec, matrix, rhs = linear_problem(1)
    inverse = torch.linalg.inv(matrix)
    exact = gmres(matvec, lambda x: (inverse @ x.reshape(-1)).reshape(x.shape), rhs, 1e-8, 0)
    assert exact[1]
    assert not gmres(matvec, lambda x: x, rhs, 1e-12, 2)[1]
