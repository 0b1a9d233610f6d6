"""Block-tridiagonal systems and Anderson mixing used by the co-alignment solvers."""

from __future__ import annotations

import pytest
import torch

from rollingdepth_core.coalign.linalg.block_tridiagonal import (
    AndersonMixer,
    SingularSystem,
    add_damping,
    assemble,
    block_layout,
    factor_block_tridiagonal,
    flush_denormals,
    flushing_denormals,
    solve_block_tridiagonal,
)


def random_system(num_snippets: int = 40, width: int = 7, seed: int = 0):
    """Random snippet-pair blocks between snippets whose first frames are <= width apart."""
    generator = torch.Generator().manual_seed(seed)
    first = torch.sort(torch.randint(0, 60, (num_snippets,), generator=generator)).values
    near = (first[:, None] - first[None, :]).abs() <= width
    rows, cols = near.nonzero().unbind(1)
    blocks = 0.1 * torch.randn(len(rows), 2, 2, generator=generator, dtype=torch.float64)
    diagonal = 5 + torch.rand(num_snippets, 2, generator=generator, dtype=torch.float64)
    return first, rows, cols, blocks, diagonal


def dense(rows, cols, blocks, diagonal) -> torch.Tensor:
    k = diagonal.shape[0]
    matrix = torch.zeros(k, 2, k, 2, dtype=torch.float64)
    for r, c, b in zip(rows.tolist(), cols.tolist(), blocks, strict=True):
        matrix[r, :, c, :] += b
    matrix = matrix.reshape(2 * k, 2 * k)
    return matrix + torch.diag(diagonal.reshape(-1))


def test_block_layout_groups_by_first_frame():
    first = torch.tensor([0, 3, 9, 10, 11, 25])
    layout = block_layout(first, 10)
    assert layout.block.tolist() == [0, 0, 0, 1, 1, 2]
    assert layout.local.tolist() == [0, 1, 2, 0, 1, 0]
    assert (layout.num_blocks, layout.block_snippets, layout.block_size) == (3, 3, 6)
    values = torch.arange(12, dtype=torch.float64).reshape(6, 2)
    assert torch.equal(layout.from_blocks(layout.to_blocks(values)), values)


@pytest.mark.parametrize("width", [7, 100])
def test_block_solve_equals_dense_solve(width):
    first, rows, cols, blocks, diagonal = random_system(width=7)
    layout = block_layout(first, width)
    bands = assemble(layout, rows, cols, blocks, diagonal)
    rhs = torch.randn(len(first), 2, dtype=torch.float64, generator=torch.Generator().manual_seed(1))
    solution = layout.from_blocks(solve_block_tridiagonal(bands, layout.to_blocks(rhs)))
    expected = torch.linalg.solve(dense(rows, cols, blocks, diagonal), rhs.reshape(-1))
    torch.testing.assert_close(solution.reshape(-1), expected, atol=1e-10, rtol=0)


def test_float32_factors_solve_to_float32_accuracy():
    first, rows, cols, blocks, diagonal = random_system()
    layout = block_layout(first, 7)
    bands = assemble(layout, rows, cols, blocks, diagonal, dtype=torch.float32)
    assert bands.dtype == torch.float32
    rhs = torch.ones(len(first), 2, dtype=torch.float64)
    solution = layout.from_blocks(factor_block_tridiagonal(bands).solve(layout.to_blocks(rhs)))
    expected = torch.linalg.solve(dense(rows, cols, blocks, diagonal), rhs.reshape(-1))
    assert solution.dtype == torch.float64
    torch.testing.assert_close(solution.reshape(-1), expected, atol=1e-5, rtol=0)


def test_pairs_too_far_apart_are_rejected():
    layout = block_layout(torch.tensor([0, 5, 30]), 5)
    with pytest.raises(ValueError, match="widen the blocks"):
        assemble(layout, torch.tensor([0]), torch.tensor([2]), torch.ones(1, 2, 2),
                 torch.ones(3, 2))


def test_singular_system_raises_and_damping_fixes_it():
    layout = block_layout(torch.tensor([0, 1]), 5)
    zero = torch.zeros(2, 2, dtype=torch.float64)
    bands = assemble(layout, torch.tensor([0]), torch.tensor([0]), torch.zeros(1, 2, 2), zero)
    bands[:, 1] = 0.0  # a zero matrix (assemble gives padding a unit diagonal)
    with pytest.raises(SingularSystem):
        factor_block_tridiagonal(bands)
    bands[0, 1, 0, 0] = 2.0
    damped = add_damping(bands, 0.5)
    assert float(damped[0, 1].diagonal().sum()) > float(bands[0, 1].diagonal().sum())
    factor_block_tridiagonal(damped)


def test_anderson_mixing_beats_plain_iteration_on_a_linear_map():
    generator = torch.Generator().manual_seed(0)
    q, _ = torch.linalg.qr(torch.randn(30, 30, generator=generator, dtype=torch.float64))
    contraction = q @ torch.diag(torch.linspace(0.5, 0.99, 30, dtype=torch.float64)) @ q.T
    offset = torch.randn(30, generator=generator, dtype=torch.float64)
    fixed = torch.linalg.solve(torch.eye(30, dtype=torch.float64) - contraction, offset)

    def iterations(memory: int) -> int:
        mixer, x = AndersonMixer(memory=memory), torch.zeros(30, dtype=torch.float64)
        for i in range(1, 2000):
            x = mixer.step(x, contraction @ x + offset)
            if float((x - fixed).abs().max()) < 1e-8:
                return i
        return 2000

    plain, mixed = iterations(0), iterations(10)
    assert plain > 1000
    assert mixed < 100  # 70 here; plain iteration needs about 1,800


def test_flush_denormals_restores_the_previous_mode():
    for before in (False, True):
        torch.set_flush_denormal(before)
        with flush_denormals():
            assert flushing_denormals()
            assert float(torch.tensor([1e-310], dtype=torch.float64) * 1.0) == 0.0
        assert flushing_denormals() == before
    torch.set_flush_denormal(False)
