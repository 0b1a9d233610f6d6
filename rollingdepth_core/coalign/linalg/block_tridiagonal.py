"""Numerics shared by the co-alignment solvers: block-tridiagonal systems, Anderson mixing.

Two snippets interact only when they share a frame, so only when their first frames are at
most `(n - 1) g_max` apart. Ordering the unknowns (one scale and one shift per snippet) by
the snippet's first frame, in blocks of that width, makes every Newton system of the
co-alignment solvers block tridiagonal: it is stored as `b 3 q q` bands (coupling to the
previous block, the block itself, the next block) and solved in time and memory linear in
the clip length. `AndersonMixer` accelerates the solvers' fixed-point iterations.
"""

from __future__ import annotations

from contextlib import contextmanager
from dataclasses import dataclass
from itertools import pairwise

import torch
from torch import Tensor

PARAMS = 2  # unknowns per snippet: scale, shift


@dataclass(frozen=True)
class BlockLayout:
    """Where each snippet's unknowns sit in the block-tridiagonal system.

    Attributes:
        block: `K` int64, block of each snippet.
        local: `K` int64, position of each snippet inside its block.
        num_blocks: `b`.
        block_snippets: largest number of snippets in one block.
    """

    block: Tensor
    local: Tensor
    num_blocks: int
    block_snippets: int

    @property
    def block_size(self) -> int:
        """`q`, unknowns per block (padded)."""
        return PARAMS * self.block_snippets

    def to_blocks(self, per_snippet: Tensor) -> Tensor:
        """`K 2` -> `b q` (zeros in padding)."""
        out = per_snippet.new_zeros(self.num_blocks, self.block_snippets, PARAMS)
        out[self.block, self.local] = per_snippet
        return out.reshape(self.num_blocks, self.block_size)

    def from_blocks(self, blocks: Tensor) -> Tensor:
        """`b q` -> `K 2`."""
        return blocks.reshape(self.num_blocks, self.block_snippets, PARAMS)[self.block, self.local]


def block_layout(first_frames: Tensor, width: int) -> BlockLayout:
    """Group snippets by first frame into blocks of ``width`` frames.

    Args:
        first_frames: `K` int64, first frame of each snippet.
        width: at least the largest distance between the first frames of two snippets that
            share a frame, `(n - 1) g_max` (values below 1 are raised to 1).

    Returns:
        The `BlockLayout`; with one block the system is simply dense.
    """
    width = max(1, int(width))
    block = first_frames // width
    num_blocks = int(block.max()) + 1
    count = torch.arange(first_frames.numel(), device=first_frames.device)
    order = torch.argsort(block * (first_frames.numel() + 1) + count)
    local = torch.empty_like(block)
    sizes = torch.bincount(block, minlength=num_blocks)
    starts = torch.cumsum(sizes, 0) - sizes
    local[order] = count - starts[block[order]]
    return BlockLayout(block=block, local=local, num_blocks=num_blocks,
                       block_snippets=int(sizes.max()))


def assemble(
    layout: BlockLayout, rows: Tensor, cols: Tensor, values: Tensor, diagonal: Tensor,
    dtype: torch.dtype = torch.float64,
) -> Tensor:
    """Sum 2x2 snippet-pair blocks into block-tridiagonal bands.

    Args:
        layout: from `block_layout`.
        rows, cols: `q` int64 snippet pairs (their blocks must be at most one apart).
        values: `q 2 2` float64, `values[j, a, c]` is added to the entry (unknown `a` of
            snippet `rows[j]`, unknown `c` of snippet `cols[j]`).
        diagonal: `K 2` float64, added to each unknown's diagonal entry.
        dtype: dtype of the bands.

    Returns:
        `b 3 q q` bands: `[:, 0]` couples block `i` to `i - 1`, `[:, 1]` to itself,
        `[:, 2]` to `i + 1`. Padding unknowns get a unit diagonal.
    """
    nb, q = layout.num_blocks, layout.block_size
    bands = torch.zeros(nb, 3, q, q, dtype=dtype, device=values.device)
    row_block, col_block = layout.block[rows], layout.block[cols]
    band = col_block - row_block + 1
    if bool(((band < 0) | (band > 2)).any()):
        raise ValueError("a snippet pair spans more than neighbouring blocks; widen the blocks.")
    arange = torch.arange(PARAMS, device=rows.device)
    i = PARAMS * layout.local[rows][:, None, None] + arange[None, :, None]  # q 2 1
    j = PARAMS * layout.local[cols][:, None, None] + arange[None, None, :]  # q 1 2
    flat = ((row_block[:, None, None] * 3 + band[:, None, None]) * q + i) * q + j
    bands.view(-1).index_add_(0, flat.reshape(-1), values.reshape(-1).to(dtype))
    diag = layout.to_blocks(diagonal.to(dtype))  # b q
    used = layout.to_blocks(torch.ones_like(diagonal, dtype=dtype)) > 0
    diag = torch.where(used, diag, torch.ones_like(diag))
    bands[:, 1].diagonal(dim1=-2, dim2=-1).add_(diag)
    return bands


class SingularSystem(ArithmeticError):
    """A block of the system could not be factorised (add damping and retry)."""


def add_damping(bands: Tensor, relative: float) -> Tensor:
    """A copy of ``bands`` with ``relative`` x the mean absolute diagonal added to it."""
    diag = bands[:, 1].diagonal(dim1=-2, dim2=-1)
    level = float(diag.abs().mean()) or 1.0
    damped = bands.clone()
    damped[:, 1].diagonal(dim1=-2, dim2=-1).add_(relative * level)
    return damped


@dataclass(frozen=True)
class BlockFactors:
    """A block-tridiagonal matrix after block elimination (see `factor_block_tridiagonal`).

    Attributes:
        lower: `b q q`, the sub-diagonal blocks.
        lu, pivots: LU factors of the reduced diagonal blocks.
        reduced_upper: `b-1 q q`, reduced super-diagonal blocks `M_i^-1 U_i`.
    """

    lower: Tensor
    lu: Tensor
    pivots: Tensor
    reduced_upper: Tensor

    def solve(self, rhs: Tensor) -> Tensor:
        """Solve for `b q` right-hand sides (forward elimination, back substitution)."""
        nb = rhs.shape[0]
        rhs = rhs.to(self.lu.dtype)
        reduced: list[Tensor] = []
        for b in range(nb):
            right = rhs[b][:, None]
            if b > 0:
                right = right - self.lower[b] @ reduced[-1]
            reduced.append(torch.linalg.lu_solve(self.lu[b], self.pivots[b], right))
        out = [reduced[-1]]
        for b in range(nb - 2, -1, -1):
            out.append(reduced[b] - self.reduced_upper[b] @ out[-1])
        return torch.stack(out[::-1])[..., 0].to(torch.float64)


def factor_block_tridiagonal(bands: Tensor) -> BlockFactors:
    """Block elimination (block Thomas algorithm) of a `b 3 q q` block-tridiagonal matrix.

    Each reduced diagonal block is factorised with partial pivoting; the systems of
    co-alignment are dominated by their diagonal blocks, so no pivoting across blocks is
    needed. Factor once, then `BlockFactors.solve` costs only matrix-vector products.
    Raises `SingularSystem` when a reduced block is singular.
    """
    nb, q = bands.shape[0], bands.shape[-1]
    lower, diag, upper = bands[:, 0], bands[:, 1], bands[:, 2]
    lus, pivots, reduced_upper = [], [], []
    for b in range(nb):
        block = diag[b]
        if b > 0:
            block = block - lower[b] @ reduced_upper[-1]
        lu, piv, info = torch.linalg.lu_factor_ex(block)
        if int(info) != 0 or not bool(torch.isfinite(lu).all()):
            raise SingularSystem(f"block {b} of {nb} is singular")
        lus.append(lu)
        pivots.append(piv)
        if b < nb - 1:
            reduced_upper.append(torch.linalg.lu_solve(lu, piv, upper[b]))
    empty = bands.new_zeros(0, q, q)
    return BlockFactors(
        lower=lower, lu=torch.stack(lus), pivots=torch.stack(pivots),
        reduced_upper=torch.stack(reduced_upper) if reduced_upper else empty,
    )


def solve_block_tridiagonal(bands: Tensor, rhs: Tensor) -> Tensor:
    """Solve a `b 3 q q` block-tridiagonal system for `b q` right-hand sides."""
    return factor_block_tridiagonal(bands).solve(rhs)


def flushing_denormals() -> bool:
    """Whether the CPU currently flushes denormal floats to zero."""
    return bool((torch.tensor([1e-310], dtype=torch.float64, device="cpu") * 1.0)[0] == 0)


@contextmanager
def flush_denormals():
    """Flush denormal floats to zero inside the block (then restore the previous mode).

    The eliminations above produce values that decay along the clip; once they become
    denormal, CPU arithmetic on them is up to ~100x slower. Zero is exact enough here.
    """
    previous = flushing_denormals()
    torch.set_flush_denormal(True)
    try:
        yield
    finally:
        torch.set_flush_denormal(previous)


@dataclass
class AndersonMixer:
    """Anderson acceleration of a fixed-point iteration `x -> g(x)` (type II, least squares).

    Keeps the last ``memory`` iterates and residuals `g(x) - x` and returns the combination
    whose linearised residual is smallest. Restarts when a residual grows ``restart_ratio``
    times larger than the smallest seen since the last restart.

    Attributes:
        memory: how many differences to keep (0: plain iteration).
        restart_ratio: growth of the residual that triggers a restart.
    """

    memory: int = 5
    restart_ratio: float = 10.0

    def __post_init__(self) -> None:
        self._xs: list[Tensor] = []
        self._rs: list[Tensor] = []
        self._best = float("inf")

    def reset(self) -> None:
        self._xs, self._rs, self._best = [], [], float("inf")

    def step(self, x: Tensor, gx: Tensor) -> Tensor:
        """Next iterate from the current one and its image ``gx``."""
        residual = gx - x
        norm = float(residual.norm())
        if norm > self.restart_ratio * self._best:
            self.reset()
        self._best = min(self._best, norm)
        self._xs.append(x)
        self._rs.append(residual)
        if len(self._xs) > self.memory + 1:
            self._xs.pop(0)
            self._rs.pop(0)
        if self.memory == 0 or len(self._xs) < 2:
            return gx
        d_r = torch.stack([b - a for a, b in pairwise(self._rs)], 1)
        d_x = torch.stack([b - a for a, b in pairwise(self._xs)], 1)
        gram = d_r.T @ d_r
        gram = gram + 1e-12 * gram.diagonal().max() * torch.eye(
            gram.shape[0], dtype=gram.dtype, device=gram.device)
        gamma = torch.linalg.solve(gram, d_r.T @ residual)
        if not bool(torch.isfinite(gamma).all()):
            self.reset()
            return gx
        return gx - (d_x + d_r) @ gamma
