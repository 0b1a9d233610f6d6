"""Frame-major view of the co-alignment data: each frame's predictions side by side.

A frame is predicted by at most `R = sum over groups of n` snippets (one per group and
position in the snippet; 9 for dilations 1/10/25 and `n = 3`). Stacking them per frame
gives `N R P` values plus an `N R` table of which snippet each slot belongs to. This is the
sparse prediction list `m P` reordered by frame with empty slots only at the clip ends
(the reference instead builds dense `rows N P` arrays, mostly zeros, every iteration).
Memory is linear in the clip length.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

from ..errors import InvalidInput


@dataclass(frozen=True)
class FrameSlots:
    """Predictions grouped by frame.

    Attributes:
        values: `N R P`, the prediction of slot `r` of frame `i` (0 in empty slots).
        snippet: `N R` int64, global snippet index of each slot (groups in plan order), -1
            where empty.
        mask: `N R` bool, the slot holds a prediction.
        counts: `N` float, predictions per frame.
        group_sizes: snippets per group (global index = group offset + index in group).
    """

    values: Tensor
    snippet: Tensor
    mask: Tensor
    counts: Tensor
    group_sizes: tuple[int, ...]

    @property
    def num_snippets(self) -> int:
        return sum(self.group_sizes)

    @property
    def num_frames(self) -> int:
        return int(self.values.shape[0])

    @property
    def num_pixels(self) -> int:
        return int(self.values.shape[-1])

    def gather(self, per_snippet: Tensor) -> Tensor:
        """Per-snippet `K` values -> per-slot `N R` (0 in empty slots)."""
        return per_snippet[self.snippet.clamp(min=0)] * self.mask.to(per_snippet.dtype)

    def scatter(self, per_slot: Tensor) -> Tensor:
        """Per-slot `N R ...` values summed per snippet -> `K ...`."""
        out = per_slot.new_zeros((self.num_snippets, *per_slot.shape[2:]))
        return out.index_add_(0, self.snippet[self.mask], per_slot[self.mask])


@dataclass(frozen=True)
class SlotTable:
    """Which predictions each frame has, without their values.

    Attributes:
        group: `N R` int64 group of each slot (-1 where empty).
        local: `N R` int64 snippet index inside its group.
        position: `N R` int64 position of the frame inside that snippet.
        counts: `N` int64 predictions per frame.
    """

    group: Tensor
    local: Tensor
    position: Tensor
    counts: Tensor

    def predictions(self, frame: int) -> list[tuple[int, int, int]]:
        """`(group, snippet, position)` of every prediction of ``frame``."""
        filled = self.group[frame] >= 0
        return list(zip(self.group[frame][filled].tolist(), self.local[frame][filled].tolist(),
                        self.position[frame][filled].tolist(), strict=True))


def slot_table(indices: tuple[Tensor, ...], num_frames: int) -> SlotTable:
    """Invert per-group `s n` frame indices into per-frame slots (`R = sum of n`).

    The table is made on the indices' device. Raises ``InvalidInput`` when a frame is in
    no snippet or an index is out of range.
    """
    num_slots = sum(int(idx.shape[1]) for idx in indices)
    device = indices[0].device
    group = torch.full((num_frames, num_slots), -1, dtype=torch.int64, device=device)
    local = torch.zeros(num_frames, num_slots, dtype=torch.int64, device=device)
    position = torch.zeros(num_frames, num_slots, dtype=torch.int64, device=device)
    slot = 0
    for g, idx in enumerate(indices):
        if idx.numel() and (int(idx.min()) < 0 or int(idx.max()) >= num_frames):
            raise InvalidInput(f"snippet indices of group {g} leave the clip of {num_frames} frames.")
        for j in range(idx.shape[1]):
            frames = idx[:, j]
            if frames.numel() and int(torch.bincount(frames, minlength=num_frames).max()) > 1:
                raise InvalidInput("a frame appears twice in one snippet position (stride must be 1).")
            group[frames, slot] = g
            local[frames, slot] = torch.arange(idx.shape[0], device=device)
            position[frames, slot] = j
            slot += 1
    counts = (group >= 0).sum(1)
    if bool((counts == 0).any()):
        missing = (counts == 0).nonzero().flatten()[:10].tolist()
        raise InvalidInput(f"frames {missing} are in no snippet; every frame must be covered.")
    return SlotTable(group=group, local=local, position=position, counts=counts)


def frame_slots(
    values: tuple[Tensor, ...],
    indices: tuple[Tensor, ...],
    num_frames: int,
    pixels: Tensor | None = None,
    dtype: torch.dtype = torch.float32,
) -> FrameSlots:
    """Reorder per-group predictions `s n P` (frames `s n`) into frame-major slots.

    Args:
        values: per group `s n P`.
        indices: per group `s n` int64 frame indices (stride-1 snippets: each column holds
            every frame at most once).
        num_frames: `N`.
        pixels: optional `P'` int64 subset of the pixel axis to keep.
        dtype: dtype of the returned values.

    Returns:
        `FrameSlots` with `R = sum of n over groups`.
    """
    if len(values) != len(indices) or not values:
        raise InvalidInput(f"need one index table per group; got {len(values)} and {len(indices)}.")
    for v, idx in zip(values, indices, strict=True):
        if v.shape[:2] != idx.shape:
            raise InvalidInput(f"values {tuple(v.shape)} do not match indices {tuple(idx.shape)}.")
    table = slot_table(indices, num_frames)
    filled = table.group >= 0
    offsets = torch.tensor([0] + [int(idx.shape[0]) for idx in indices],
                           device=table.group.device).cumsum(0)
    snippet = torch.where(filled, offsets[table.group.clamp(min=0)] + table.local, -1)
    num_pixels = int(values[0].shape[-1]) if pixels is None else int(pixels.numel())
    out = torch.zeros(num_frames, snippet.shape[1], num_pixels, dtype=dtype, device=values[0].device)
    for g, v in enumerate(values):
        here = filled & (table.group == g)
        rows = v[table.local[here], table.position[here]]  # q P
        out[here] = (rows if pixels is None else rows[:, pixels]).to(dtype)
    mask = filled
    counts = table.counts.to(torch.float64)
    return FrameSlots(
        values=out, snippet=snippet, mask=mask, counts=counts,
        group_sizes=tuple(int(idx.shape[0]) for idx in indices),
    )
