"""Block-tridiagonal solves through the blocks' separators (nested elimination).

In the co-alignment systems (`block_tridiagonal.py`), block `i` couples to block `i + 1` only
through its *separator*: the snippets of block `i` that share a frame with a snippet of
block `i + 1` (with dilations 1/10/25 and `n = 3`: every dilation-25 snippet of the block,
20 dilation-10 ones and 2 dilation-1 ones, 144 of the 300 unknowns). Everything else in a
block, its *interior*, couples only to its own block and to the previous block's separator.
So:

    1. every block's interior is eliminated at once (one batched factorisation): each
       leaves a small update on the separators next to it (a Schur complement);
    2. the separators form a block-tridiagonal system of their own, blocks half as large,
       solved by block elimination;
    3. the interiors follow from the separators (batched).

The answer is the one `factor_block_tridiagonal` gives, for a fraction of the work: the
sequential part runs on the separators only, everything else is batched.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

from .block_tridiagonal import PARAMS, BlockLayout, SingularSystem


def separator_layout(layout: BlockLayout, rows: Tensor, cols: Tensor) -> tuple[BlockLayout, int]:
    """Reorder every block: interior snippets first, separator snippets after a fixed split.

    Args:
        layout: the block layout of the system.
        rows, cols: `q` int64 snippet pairs that have a Jacobian block (both orders).

    Returns:
        The reordered `BlockLayout` (same blocks; positions `0 ..` interior, `split ..`
        separator, padding in between) and the split in unknowns. A snippet is in its
        block's separator when it is paired with a snippet of the next block; the last
        block has no next one, so its last snippets stand in for one (any choice is exact).
        A single block is all interior.
    """
    nb = layout.num_blocks
    ahead = layout.block[cols] > layout.block[rows]
    on_separator = torch.zeros_like(layout.block, dtype=torch.bool)
    on_separator[rows[ahead]] = True
    if nb > 1:
        last = (layout.block == nb - 1).nonzero().flatten()
        last = last[torch.argsort(layout.local[last])]
        width = int(torch.bincount(layout.block[on_separator], minlength=nb).max())
        on_separator[last[max(0, last.numel() - width):]] = True
    key = layout.block * 2 + on_separator.long()  # (block, side), interior side first
    order = torch.argsort(key * (layout.block.numel() + 1) + layout.local)
    counts = torch.bincount(key, minlength=2 * nb)
    starts = torch.cumsum(counts, 0) - counts
    rank = torch.empty_like(layout.block)
    rank[order] = torch.arange(layout.block.numel(), device=key.device) - starts[key[order]]
    interior = int(counts[0::2].max())
    local = rank + on_separator.long() * interior
    snippets = interior + int(counts[1::2].max())
    return BlockLayout(block=layout.block, local=local, num_blocks=nb,
                       block_snippets=snippets), PARAMS * interior


def _inverse_each(matrices: Tensor, what: str) -> Tensor:
    """Inverses of `b n n` matrices, one call per matrix.

    (A single batched factorisation gave invalid pivots on these sparse matrices with MKL
    and more than one thread, torch 2.13; per-matrix calls are exact and cost the same here.)
    Raises `SingularSystem` naming ``what`` when one is singular.
    """
    inverses = []
    for index, matrix in enumerate(matrices):
        inverse, info = torch.linalg.inv_ex(matrix)
        if int(info) != 0 or not bool(torch.isfinite(inverse).all()):
            raise SingularSystem(f"{what} {index} of {len(matrices)} is singular")
        inverses.append(inverse)
    return torch.stack(inverses)


@dataclass(frozen=True)
class SeparatorFactors:
    """A block-tridiagonal matrix factorised through its separators (module doc).

    Explicit inverses of small blocks: the fast solver applies one factorisation many
    times (`krylov.py`), and a solve is then only matrix products.

    Attributes:
        split: unknowns `0 .. split` of every block are its interior, the rest its separator.
        interior_inverse: `b i i`.
        coupling: `b i 2s`, the interior's inverse times its coupling to the previous
            block's separator and to its own.
        feed: `b 2s i`, the previous block's separator's and the own separator's coupling
            to the interior.
        pivot_inverse: `b s s`, the separators' reduced system after block elimination:
            inverses of its eliminated diagonal blocks,
        pivot_lower: `b s s`, ... those inverses times the coupling to the previous block,
        reduced_upper: `b s s`, ... and times the coupling to the next (last one unused).
    """

    split: int
    interior_inverse: Tensor
    coupling: Tensor
    feed: Tensor
    pivot_inverse: Tensor
    pivot_lower: Tensor
    reduced_upper: Tensor

    def solve(self, rhs: Tensor) -> Tensor:
        """Solve for `b q` right-hand sides; returns `b q` float64."""
        rhs = rhs.to(self.interior_inverse.dtype)
        r_int, r_sep = rhs[:, :self.split], rhs[:, self.split:]
        y = _apply(self.interior_inverse, r_int)  # b i
        width = r_sep.shape[1]
        pushed = _apply(self.feed, y)  # b 2s: onto previous and own separator
        reduced = r_sep - pushed[:, width:]
        reduced[:-1] -= pushed[1:, :width]
        x_sep = self._solve_separators(reduced) if width else reduced
        x_near = torch.cat([_previous(x_sep), x_sep], 1)  # b 2s
        x_int = y - _apply(self.coupling, x_near)
        return torch.cat([x_int, x_sep], 1).to(torch.float64)

    def _solve_separators(self, rhs: Tensor) -> Tensor:
        """Block forward elimination and back substitution on the separators (`b s`)."""
        scaled = _apply(self.pivot_inverse, rhs)  # b s
        forward = [scaled[0]]
        for b in range(1, rhs.shape[0]):
            forward.append(scaled[b] - self.pivot_lower[b] @ forward[-1])
        out = [forward[-1]]
        for b in range(rhs.shape[0] - 2, -1, -1):
            out.append(forward[b] - self.reduced_upper[b] @ out[-1])
        return torch.stack(out[::-1])


def _apply(matrices: Tensor, vectors: Tensor) -> Tensor:
    """`b r c` matrices times `b c` vectors -> `b r` (bmm with one column is ~5x slower)."""
    return (matrices * vectors[:, None, :]).sum(-1)


def _previous(per_block: Tensor) -> Tensor:
    """`b ...` -> the same of block `i - 1` at `i` (zeros at block 0)."""
    return torch.cat([torch.zeros_like(per_block[:1]), per_block[:-1]])


def factor_with_separators(bands: Tensor, split: int) -> SeparatorFactors:
    """Factorise `b 3 q q` block-tridiagonal bands through their separators.

    Args:
        bands: in a `separator_layout` (interior unknowns `0 .. split` of each block).
        split: from `separator_layout`.

    Raises `SingularSystem` when an interior or the separators' system is singular.
    """
    lower, diag, upper = bands[:, 0], bands[:, 1], bands[:, 2]
    i, s = slice(None, split), slice(split, None)
    interior_inverse = _inverse_each(diag[:, i, i], "interior")
    upper_before = _previous(upper)  # block i - 1 -> block i
    to_near = torch.cat([lower[:, i, s], diag[:, i, s]], 2)  # interior -> [previous, own] sep.
    feed = torch.cat([upper_before[:, s, i], diag[:, s, i]], 1)  # [previous, own] sep. -> int.
    coupling = torch.bmm(interior_inverse, to_near)  # b i 2s
    schur = torch.bmm(feed, coupling)  # b 2s 2s
    width = bands.shape[-1] - split
    before, own = slice(None, width), slice(width, None)
    sep_diag = diag[:, s, s] - schur[:, own, own]
    sep_diag[:-1] -= schur[1:, before, before]
    sep_lower = lower[:, s, s] - schur[:, own, before]
    sep_upper = upper[:, s, s] - torch.cat([schur[1:, before, own], schur[:1, before, own] * 0])
    pivots_inverse, pivots_lower, reduced_upper = [], [], []
    for b in range(bands.shape[0] if width else 0):  # block elimination of the separators
        pivot = sep_diag[b] if b == 0 else sep_diag[b] - sep_lower[b] @ reduced_upper[-1]
        pivots_inverse.append(_inverse_each(pivot[None], f"separator block {b}: block")[0])
        pivots_lower.append(pivots_inverse[-1] @ sep_lower[b])
        reduced_upper.append(pivots_inverse[-1] @ sep_upper[b])
    empty = sep_diag.new_zeros(bands.shape[0], width, width)
    return SeparatorFactors(
        split, interior_inverse, coupling, feed,
        *(torch.stack(m) if width else empty for m in (pivots_inverse, pivots_lower, reduced_upper)),
    )
