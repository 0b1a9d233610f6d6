"""Merge (SPEC §4.5-4.6): every frame's aligned predictions averaged, then normalised to -1..1."""

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
    if out is None:
        out = torch.empty(num_frames, height, width)
    elif tuple(out.shape) != (num_frames, height, width):
        raise InvalidInput(f"out must be {(num_frames, height, width)}; got {tuple(out.shape)}.")
    table = slot_table(tuple(g.indices for g in groups), num_frames)  # per frame: its slots
    for start in range(0, num_frames, chunk):
        hooks.check_cancel()
        stop = min(start + chunk, num_frames)
        total = torch.zeros(stop - start, height, width)
        for group, depth in enumerate(snippets.depths):
            here = table.group[start:stop] == group  # b R
            frames = here.nonzero()[:, 0]
            local, position = table.local[start:stop][here], table.position[start:stop][here]
            values = depth[local, position].float() - alignment.offset  # q H W
            scales = alignment.scales[group][local].float()[:, None, None]
            shifts = alignment.shifts[group][local].float()[:, None, None]
            total.index_add_(0, frames, values * scales + shifts)
        out[start:stop] = total / table.counts[start:stop, None, None].float()
        hooks.progress(stop, num_frames)
    return out


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
