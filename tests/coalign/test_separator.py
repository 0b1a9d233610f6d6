"""Block-tridiagonal solves through the blocks' separators (`coalign/linalg/separator.py`)."""

from __future__ import annotations

import pytest
import torch
from test_block_tridiagonal import dense, random_system

from rollingdepth_core.coalign.linalg.block_tridiagonal import SingularSystem, assemble, block_layout
from rollingdepth_core.coalign.linalg.separator import factor_with_separators, separator_layout


@pytest.mark.parametrize(("width", "seed"), [(7, 0), (7, 3), (12, 1), (100, 2)])
def test_separator_solve_equals_dense_solve(width, seed):
    first, rows, cols, blocks, diagonal = random_system(width=7, seed=seed)
    layout, split = separator_layout(block_layout(first, width), rows, cols)
    bands = assemble(layout, rows, cols, blocks, diagonal)
    rhs = torch.randn(len(first), 2, dtype=torch.float64, generator=torch.Generator().manual_seed(1))
    solution = layout.from_blocks(factor_with_separators(bands, split).solve(layout.to_blocks(rhs)))
    expected = torch.linalg.solve(dense(rows, cols, blocks, diagonal), rhs.reshape(-1))
    torch.testing.assert_close(solution.reshape(-1), expected, atol=1e-10, rtol=0)


def test_separator_layout_puts_every_next_block_pair_on_the_separator():
    first, rows, cols, _, _ = random_system(width=7)
    plain = block_layout(first, 7)
    layout, split = separator_layout(plain, rows, cols)
    assert split % 2 == 0 and 0 < split < layout.block_size
    assert torch.equal(layout.block, plain.block)
    ahead = layout.block[cols] > layout.block[rows]
    assert bool((2 * layout.local[rows[ahead]] >= split).all())
    position = layout.block * layout.block_snippets + layout.local
    assert position.unique().numel() == len(first)  # no two snippets share a position


def test_single_block_is_all_interior():
    first, rows, cols, _, _ = random_system(width=7)
    layout, split = separator_layout(block_layout(first, 100), rows, cols)
    assert layout.num_blocks == 1 and split == layout.block_size


def test_float32_with_two_threads_solves_to_float32_accuracy():
    first, rows, cols, blocks, diagonal = random_system(num_snippets=120, width=7, seed=5)
    layout, split = separator_layout(block_layout(first, 7), rows, cols)
    bands = assemble(layout, rows, cols, blocks, diagonal, torch.float32)
    rhs = torch.randn(len(first), 2, dtype=torch.float64, generator=torch.Generator().manual_seed(2))
    threads = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        solution = layout.from_blocks(factor_with_separators(bands, split).solve(layout.to_blocks(rhs)))
    finally:
        torch.set_num_threads(threads)
    expected = torch.linalg.solve(dense(rows, cols, blocks, diagonal), rhs.reshape(-1))
    torch.testing.assert_close(solution.reshape(-1), expected, atol=1e-5, rtol=0)


def test_singular_interior_raises():
    first, rows, cols, blocks, diagonal = random_system(width=7)
    layout, split = separator_layout(block_layout(first, 7), rows, cols)
    bands = assemble(layout, rows, cols, blocks, diagonal)
    bands[0, 1, :split, :split] = 0.0
    with pytest.raises(SingularSystem):
        factor_with_separators(bands, split)
