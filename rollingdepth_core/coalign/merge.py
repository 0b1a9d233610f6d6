"""Merge (SPEC §4.5-4.6): every frame's aligned predictions averaged, then normalised to -1..1.

`merge_with_spread` also gives each pixel's spread (SPEC §8) in the same pass.
"""

from __future__ import annotations

import torch
from torch import Tensor

from ..errors import InvalidInput, InvalidSettings
from ..hooks import NO_HOOKS, Hooks
from ..types import Alignment, SnippetDepths
from .problem import check_snippet_depths, snippets_device
from .slots import slot_table


@torch.no_grad()
def merge_aligned(
    snippets: SnippetDepths,
    alignment: Alignment,
    chunk: int = 4,
    hooks: Hooks = NO_HOOKS,
    out=None,
    device: torch.device | str | None = None,
) -> Tensor:
    """Average every frame's aligned predictions at full resolution (SPEC §4.5).

    Frame `i` of the result is `mean_k (s_k (x_k - offset) + t_k)` over the predictions of
    the frame (every snippet and position that holds it, all dilations pooled, equal
    weight). This is the merge with a given alignment: any scales and shifts of the
    right shapes work, not only a solver's.

    Streams frame by frame: each step reads the (at most `R`) predictions of ``chunk``
    frames from their storage (fp16 tensors or `DiskTensor`s), aligns them in float32 on
    ``device`` and writes their mean into ``out``. Memory is the output plus `R x chunk`
    frames.

    Args:
        snippets: the snippet depths, per group `s n H W`.
        alignment: per group `s` scales and shifts and the offset (from `coalign`, or made
            by hand as `Alignment(scales, shifts, offset, objective, method)`).
        chunk: frames per step.
        hooks: progress per frame, cancel between steps.
        out: optional writable `N H W` array to fill (e.g. a `DiskTensor`); default a new
            float32 tensor on the CPU.
        device: where the arithmetic runs; default where the snippet depths are.

    Returns:
        ``out`` or the new `N H W` float32 tensor, in min-subtracted units (the reference's
        raw merged video).
    """
    return _merge(snippets, alignment, chunk, hooks, out, None, device=device)[0]


@torch.no_grad()
def merge_with_spread(
    snippets: SnippetDepths,
    alignment: Alignment,
    chunk: int = 4,
    hooks: Hooks = NO_HOOKS,
    out=None,
    spread_out=None,
    device: torch.device | str | None = None,
) -> tuple[Tensor, Tensor]:
    """`merge_aligned` that also gives every pixel's spread, in the same single pass.

    The spread of pixel `p` of frame `i` is the standard deviation of its `R_i` aligned
    predictions `s_k x_k + t_k` (SPEC §8; population form, divided by `R_i`), in the same
    units as the merged value. Sums and sums of squares are accumulated in float64 while
    the predictions of a chunk are in memory, so the snippets are read once, as for the
    mean. A pixel predicted once (only at the ends of very short clips) has spread 0.

    Args:
        snippets, alignment, chunk, hooks, out, device: as `merge_aligned` (same mean, bit
            for bit).
        spread_out: optional writable `N H W` array for the spread; default a new tensor.

    Returns:
        `(merged, spread)`, both `N H W` float32.
    """
    return _merge(snippets, alignment, chunk, hooks, out, spread_out, with_spread=True,
                  device=device)


def _check_out(array, shape: tuple[int, int, int], name: str):
    if array is None:
        return torch.empty(shape, device="cpu")  # results live on the host (`DepthVideo`)
    if tuple(array.shape) != shape:
        raise InvalidInput(f"{name} must be {shape}; got {tuple(array.shape)}.")
    return array


def _merge(snippets, alignment, chunk, hooks, out, spread_out, with_spread: bool = False,
           device: torch.device | str | None = None):
    check_snippet_depths(snippets, finite=False)
    device = snippets_device(snippets) if device is None else torch.device(device)
    groups = snippets.plan.groups
    if (len(alignment.scales) != len(snippets.depths)
            or len(alignment.shifts) != len(snippets.depths)
            or any(s.shape != (d.shape[0],) or t.shape != (d.shape[0],) for s, t, d in
                   zip(alignment.scales, alignment.shifts, snippets.depths, strict=True))):
        raise InvalidInput(
            "The alignment was made for other snippet depths: it needs one scale and one shift "
            f"per snippet ({[int(d.shape[0]) for d in snippets.depths]} per group); got "
            f"{[tuple(s.shape) for s in alignment.scales]} scales and "
            f"{[tuple(t.shape) for t in alignment.shifts]} shifts."
        )
    scales_on = [s.to(device=device, dtype=torch.float32) for s in alignment.scales]
    shifts_on = [t.to(device=device, dtype=torch.float32) for t in alignment.shifts]
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
        total = torch.zeros(stop - start, height, width, device=device)
        if with_spread:
            sums = torch.zeros(stop - start, height, width, dtype=torch.float64, device=device)
            squares = torch.zeros_like(sums)
        for group, depth in enumerate(snippets.depths):
            here = table.group[start:stop] == group  # b R
            frames = here.nonzero()[:, 0].to(device)
            local, position = table.local[start:stop][here], table.position[start:stop][here]
            # read where the depths are (host, disk or device), align on `device`
            values = depth[local, position].to(device=device, dtype=torch.float32)  # q H W
            values -= alignment.offset
            on_device = local.to(device)
            scales = scales_on[group][on_device][:, None, None]
            shifts = shifts_on[group][on_device][:, None, None]
            aligned = values * scales + shifts  # q H W
            total.index_add_(0, frames, aligned)
            if with_spread:
                wide = aligned.double()
                sums.index_add_(0, frames, wide)
                squares.index_add_(0, frames, wide * wide)
        counts = table.counts[start:stop, None, None].to(device)
        out[start:stop] = _to_array(total / counts.float(), out)
        if with_spread:
            mean = sums / counts.double()
            variance = (squares / counts.double() - mean * mean).clamp_(min=0.0)
            spread_out[start:stop] = _to_array(variance.sqrt_().float(), spread_out)
        hooks.progress(stop, num_frames)
    return out, spread_out


def _to_array(values: Tensor, array) -> Tensor:
    """``values`` on the device of ``array`` (a tensor), or on the host (a `DiskTensor`)."""
    return values.to(array.device if isinstance(array, Tensor) else "cpu")


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
