"""Merge (SPEC §4.5-4.6): every frame's aligned predictions averaged, then normalised to -1..1.

`merge_with_spread` also gives each pixel's spread (SPEC §8) in the same pass.
"""

from __future__ import annotations

import torch
from torch import Tensor

from ..errors import InvalidInput, InvalidSettings
from ..hooks import NO_HOOKS, Hooks
from ..types import Alignment, SnippetDepths
from .problem import check_snippet_depths
from .slots import slot_table


@torch.no_grad()
def merge_aligned(
    snippets: SnippetDepths,
    alignment: Alignment,
    chunk: int = 4,
    hooks: Hooks = NO_HOOKS,
    out=None,
) -> Tensor:
    """Average every frame's aligned predictions at full resolution (SPEC §4.5).

    Streams frame by frame: each step reads the (at most `R`) predictions of ``chunk``
    frames from their storage (fp16 tensors or `DiskTensor`s), aligns them in float32 and
    writes their mean. Memory is the output plus `R x chunk` frames.

    Args:
        snippets: the snippet depths that were aligned.
        alignment: scales, shifts and offset from `coalign`.
        chunk: frames per step.
        hooks: progress per frame, cancel between steps.
        out: optional writable `N H W` array to fill (e.g. a `DiskTensor`); default a new
            float32 tensor.

    Returns:
        ``out`` or the new `N H W` float32 tensor, in min-subtracted units (the reference's
        raw merged video).
    """
    return _merge(snippets, alignment, chunk, hooks, out, None)[0]


@torch.no_grad()
def merge_with_spread(
    snippets: SnippetDepths,
    alignment: Alignment,
    chunk: int = 4,
    hooks: Hooks = NO_HOOKS,
    out=None,
    spread_out=None,
) -> tuple[Tensor, Tensor]:
    """`merge_aligned` that also gives every pixel's spread, in the same single pass.

    The spread of pixel `p` of frame `i` is the standard deviation of its `R_i` aligned
    predictions `s_k x_k + t_k` (SPEC §8; population form, divided by `R_i`), in the same
    units as the merged value. Sums and sums of squares are accumulated in float64 while
    the predictions of a chunk are in memory, so the snippets are read once, as for the
    mean. A pixel predicted once (only at the ends of very short clips) has spread 0.

    Args:
        snippets, alignment, chunk, hooks, out: as `merge_aligned` (same mean, bit for bit).
        spread_out: optional writable `N H W` array for the spread; default a new tensor.

    Returns:
        `(merged, spread)`, both `N H W` float32.
    """
    return _merge(snippets, alignment, chunk, hooks, out, spread_out, with_spread=True)


def _check_out(array, shape: tuple[int, int, int], name: str):
    if array is None:
        return torch.empty(shape)
    if tuple(array.shape) != shape:
        raise InvalidInput(f"{name} must be {shape}; got {tuple(array.shape)}.")
    return array


def _merge(snippets, alignment, chunk, hooks, out, spread_out, with_spread: bool = False):
    check_snippet_depths(snippets, finite=False)
    groups = snippets.plan.groups
    if len(alignment.scales) != len(snippets.depths) or any(
        s.shape[0] != d.shape[0] for s, d in zip(alignment.scales, snippets.depths, strict=False)
    ):
        raise InvalidInput("The alignment was made for other snippet depths (counts differ).")
    if chunk < 1:
        raise InvalidSettings(f"chunk must be >= 1 frame; got {chunk}.")
    num_frames = snippets.plan.num_frames
    height, width = snippets.size
    shape = (num_frames, height, width)
    out = _check_out(out, shape, "out")
    spread_out = _check_out(spread_out, shape, "spread_out") if with_spread else None
    table = slot_table(tuple(g.indices for g in groups), num_frames)  # per frame: its slots
    for start in range(0, num_frames, chunk):
        hooks.check_cancel()
        stop = min(start + chunk, num_frames)
        total = torch.zeros(stop - start, height, width)
        if with_spread:
            sums = torch.zeros(stop - start, height, width, dtype=torch.float64)
            squares = torch.zeros_like(sums)
        for group, depth in enumerate(snippets.depths):
            here = table.group[start:stop] == group  # b R
            frames = here.nonzero()[:, 0]
            local, position = table.local[start:stop][here], table.position[start:stop][here]
            values = depth[local, position].float() - alignment.offset  # q H W
            scales = alignment.scales[group][local].float()[:, None, None]
            shifts = alignment.shifts[group][local].float()[:, None, None]
            aligned = values * scales + shifts  # q H W
            total.index_add_(0, frames, aligned)
            if with_spread:
                wide = aligned.double()
                sums.index_add_(0, frames, wide)
                squares.index_add_(0, frames, wide * wide)
        counts = table.counts[start:stop, None, None]
        out[start:stop] = total / counts.float()
        if with_spread:
            mean = sums / counts.double()
            variance = (squares / counts.double() - mean * mean).clamp_(min=0.0)
            spread_out[start:stop] = variance.sqrt_().float()
        hooks.progress(stop, num_frames)
    return out, spread_out


def normalize_depth(depth: Tensor) -> Tensor:
    """Min-max normalise a whole clip to -1..1 (one min and max over all frames).

    Args:
        depth: `N H W`.

    Returns:
        `N H W` float32 in -1..1 (all zeros for a constant clip).
    """
    depth = depth.float()
    shifted = depth - depth.min()
    top = shifted.max()
    if float(top) == 0.0:
        return torch.zeros_like(depth)
    return shifted.div_(top).mul_(2.0).sub_(1.0)  # in place: one video-sized buffer, not three


def normalization_scale(depth: Tensor) -> float:
    """The factor `normalize_depth` multiplies differences by: `2 / (max - min)` (0 if constant).

    Spreads (standard deviations) of ``depth`` times this are in normalised units.
    """
    low, high = float(depth.min()), float(depth.max())
    return 0.0 if high == low else 2.0 / (high - low)


@torch.no_grad()
def spread_in_units_of(spread: Tensor, before: Tensor, after: Tensor, samples: int = 1 << 18) -> Tensor:
    """Carry a spread from one depth video to another of the same frames (e.g. refined).

    The two videos differ by roughly an affine map, `after ~ a * before + b`; `a` is fitted
    by least squares on up to ``samples`` evenly spread pixels, and the spread is scaled by
    `|a|` (standard deviations ignore the shift) and resized to ``after``'s size.

    Args:
        spread: `N H W`, in the units of ``before``.
        before: `N H W` depth the spread belongs to.
        after: `N H' W'` depth in the units wanted.

    Returns:
        `N H' W'` float32.
    """
    from ..io.frames import resize_depth

    if tuple(spread.shape) != tuple(before.shape) or before.shape[0] != after.shape[0]:
        raise InvalidInput(
            f"spread {tuple(spread.shape)}, depth {tuple(before.shape)} and new depth "
            f"{tuple(after.shape)} must be the same frames (and the first two the same size)."
        )
    size = tuple(after.shape[-2:])
    moved = resize_depth(before.float(), size) if tuple(before.shape[-2:]) != size else before.float()
    step = max(1, moved.numel() // samples)
    x = moved.reshape(-1)[::step].double()
    y = after.float().reshape(-1)[::step].double()
    x_centred = x - x.mean()
    denominator = float((x_centred * x_centred).sum())
    scale = 0.0 if denominator == 0.0 else abs(float((x_centred * (y - y.mean())).sum()) / denominator)
    carried = resize_depth(spread.float(), size) if tuple(spread.shape[-2:]) != size else spread.float()
    return carried * scale
