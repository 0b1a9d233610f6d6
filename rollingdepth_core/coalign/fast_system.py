"""The fast solver's equations: its data per stage, and the smoothed, detached stationarity
conditions with their Jacobian (one Newton system per iteration, `fast.py`).

Slots (`slots.py`) hold every frame's predictions side by side, so everything per frame is
a batched tensor operation on `n R P`; the Jacobian's snippet-pair blocks are read out of
per-frame Gram matrices (`StageData.gram_index`).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

from .newton_setup import pixel_subset
from .problem import AlignmentProblem, CoalignSettings
from .slots import FrameSlots, frame_slots

FRAME_CHUNK = 32  # frames processed together at least (bounds temporary memory)
CHUNK_VALUES = 150_000  # ... or more frames, up to this many slot values (stays in cache)


@dataclass(frozen=True)
class StageData:
    """The data of one stage.

    Attributes:
        slots: frame-major predictions on the stage's pixels.
        pairs: `q 3` (frame, slot, slot) of every pair of filled slots of a frame.
        rows, cols: `q` snippet index of each pair's two slots.
        denominator: the data terms' normaliser (dense array size or predictions x pixels).
        gram_index: `q 2 2` position of each pair's block in the flattened `N R 2 R 2`
            Gram matrices of `frame_terms`.
        gram_factor: `q 1 1` float64, `[r == l] - 1 / m` (Jacobian block = Gram block x it).
    """

    slots: FrameSlots
    pairs: Tensor
    rows: Tensor
    cols: Tensor
    denominator: float
    gram_index: Tensor
    gram_factor: Tensor


def stage_data(problem: AlignmentProblem, settings: CoalignSettings, max_pixels: int,
               dtype: torch.dtype) -> StageData:
    """Frame slots on a pixel subset, the pair table and the data terms' normaliser."""
    pixels = pixel_subset(problem.num_pixels, max_pixels, problem.device)
    slots = frame_slots(problem.values, problem.indices, problem.num_frames, pixels, dtype)
    pairs = newton_pairs(slots)
    if settings.dense_normalization:
        denominator = float(problem.num_rows * problem.num_frames * slots.num_pixels)
    else:
        denominator = float(slots.mask.sum()) * slots.num_pixels
    frame, slot_r, slot_l = pairs.unbind(1)
    num_slots = int(slots.mask.shape[1])
    unknown = torch.arange(2, device=pairs.device)
    row = (frame * num_slots + slot_r) * 2  # N R 2 R 2 flattened: ((f R + r) 2 + a) 2R + 2l + c
    gram_index = ((row[:, None, None] + unknown[None, :, None]) * 2 * num_slots
                  + 2 * slot_l[:, None, None] + unknown[None, None, :])
    gram_factor = (slot_r == slot_l).double() - 1.0 / slots.counts[frame]
    return StageData(
        slots=slots, pairs=pairs,
        rows=slots.snippet[frame, slot_r], cols=slots.snippet[frame, slot_l],
        denominator=denominator, gram_index=gram_index, gram_factor=gram_factor[:, None, None],
    )


@dataclass(frozen=True)
class NewtonSystem:
    """The smoothed stationarity conditions at the current parameters, and their Jacobian.

    Attributes:
        gradient: `K 2` float64, each snippet's condition (regulariser included).
        blocks: `q 2 2` float64, the Jacobian's snippet-pair blocks (one per row of the
            stage's pair table), or None when not asked for.
        curvature: `K 2` float64, the regulariser's second derivatives.
    """

    gradient: Tensor
    blocks: Tensor | None
    curvature: Tensor


def frame_terms(
    values: Tensor,
    mask: Tensor,
    scales: Tensor,
    shifts: Tensor,
    smoothing: float,
    settings: CoalignSettings,
    denominator: float,
    with_jacobian: bool = True,
) -> tuple[Tensor, Tensor | None]:
    """Data-term contributions of a few frames.

    Per frame: target `T = mean_r x_r` and scale `mean |T|`; the same for `1 / clip(x)`.
    Absolute values become IRLS weights `1 / sqrt(e^2 + (delta scale)^2)`. The condition of
    slot `r` is `sum_p w_r e_r dx_r` with `dx = (value, 1)` (times the slope of `1 / x` for
    the depth term); its derivative with respect to slot `l`'s parameters is
    `sum_p w_r dx_r (delta_rl dx_l - dx_l / m)` (targets depend on every prediction), the
    Gram block `G_rl = sum_p w_r dx_r dx_l` times `delta_rl - 1 / m`.

    Args:
        values: `n R P` frame slots (0 where empty).
        mask: `n R` bool, filled slots.
        scales, shifts: `n R` per slot.
        smoothing: `delta`.
        settings: the objective's weights.
        denominator: the data terms' normaliser.
        with_jacobian: also return the Jacobian blocks.

    Returns:
        Per-slot conditions `n R 2` (float64) and Gram matrices `n (R 2) (R 2)` (float32)
        or None.
    """
    dtype = values.dtype
    filled = mask.to(dtype)[..., None]  # n R 1
    share = 1.0 / filled.sum(1, keepdim=True)  # n 1 1: 1 / m
    aligned = torch.addcmul(shifts.to(dtype)[..., None], values, scales.to(dtype)[..., None])
    eps = settings.min_inverse_depth  # (aligned is 0 in empty slots)

    target = aligned.sum(1, keepdim=True) * share  # n 1 P
    frame_scale = target.abs().mean(-1, keepdim=True).clamp_(min=1e-12)  # n 1 1
    resid = (aligned - target).mul_(filled)  # n R P
    reciprocal = aligned.clamp(min=eps).reciprocal_().mul_(filled)  # the depth term's 1 / x
    depth_target = reciprocal.sum(1, keepdim=True) * share
    depth_frame_scale = depth_target.abs().mean(-1, keepdim=True).clamp_(min=1e-12)
    depth_resid = (reciprocal - depth_target).mul_(filled)
    # d(1 / x) / dx, 0 where x is clipped
    reciprocal_slope = torch.where(aligned > eps, -reciprocal.square(), 0.0)

    # what one unit of absolute residual costs in each term: 1 / (frame scale x normaliser)
    inverse_unit = 1.0 / (frame_scale * denominator)  # n 1 1
    depth_unit = settings.depth_term_weight / (depth_frame_scale * denominator)
    # IRLS weights: |e| ~ e^2 / sqrt(e^2 + (delta frame scale)^2)
    inverse_weight = resid.square().add_((smoothing * frame_scale).square()).rsqrt_()
    inverse_weight.mul_(inverse_unit)  # n R P
    depth_weight = depth_resid.square().add_((smoothing * depth_frame_scale).square()).rsqrt_()
    depth_weight.mul_(depth_unit)
    # d(smoothed data terms) / d(aligned value), per slot and pixel
    loss_slope = torch.addcmul(inverse_weight * resid, depth_weight * depth_resid,
                               reciprocal_slope)  # n R P
    conditions = torch.stack([(values * loss_slope).sum(-1), loss_slope.sum(-1)], -1)
    if not with_jacobian:
        return conditions.double(), None

    basis = torch.stack([values, filled.expand_as(values)], 2)  # n R 2 P: d x / d(s, t)
    depth_basis = basis * reciprocal_slope[:, :, None]  # n R 2 P: d(1 / x) / d(s, t)
    gram = torch.bmm((basis * inverse_weight[:, :, None]).flatten(1, 2),
                     basis.flatten(1, 2).transpose(1, 2))  # n (R 2) (R 2)
    gram.baddbmm_((depth_basis * depth_weight[:, :, None]).flatten(1, 2),
                  depth_basis.flatten(1, 2).transpose(1, 2))
    return conditions.double(), gram


def newton_system(
    data: StageData,
    scales: Tensor,
    shifts: Tensor,
    group_size: Tensor,
    smoothing: float,
    settings: CoalignSettings,
    with_jacobian: bool = True,
) -> NewtonSystem:
    """Conditions and Jacobian blocks at `(scales, shifts)`, frames in chunks (`frame_chunk`).

    Args:
        data: the stage's slots and pair table (`stage_data`).
        scales, shifts: `K` float64.
        group_size: `K`, snippets in each snippet's group (the regulariser is a group mean).
        smoothing: `delta`, relative to each frame's scale.
        settings: the objective's weights.
        with_jacobian: also compute the Jacobian blocks.
    """
    slots = data.slots
    slot_scales, slot_shifts = slots.gather(scales), slots.gather(shifts)  # N R
    conditions, grams = [], []
    chunk = frame_chunk(slots)
    for start in range(0, slots.num_frames, chunk):
        stop = min(start + chunk, slots.num_frames)
        cond, gram = frame_terms(
            slots.values[start:stop], slots.mask[start:stop], slot_scales[start:stop],
            slot_shifts[start:stop], smoothing, settings, data.denominator, with_jacobian,
        )
        conditions.append(cond)
        grams.append(gram)
    gradient = slots.scatter(torch.cat(conditions))  # K 2
    blocks = None
    if with_jacobian:  # q 2 2
        blocks = torch.cat(grams).view(-1)[data.gram_index].double() * data.gram_factor

    scale_weight = settings.scale_reg_weight / group_size
    shift_weight = settings.shift_reg_weight / group_size
    below = torch.relu(1 - scales)
    gradient = gradient + torch.stack([-2 * scale_weight * below, 2 * shift_weight * shifts], -1)
    curvature = torch.stack(
        [2 * scale_weight * (scales < 1).to(torch.float64), 2 * shift_weight], -1
    )
    return NewtonSystem(gradient=gradient, blocks=blocks, curvature=curvature)


def frame_chunk(slots: FrameSlots) -> int:
    """Frames processed together: `FRAME_CHUNK`, or more while they hold at most
    `CHUNK_VALUES` slot values (a whole 250-frame clip at 96x64, where per-chunk overhead
    would dominate; larger chunks of larger frames fall out of the cache and are slower)."""
    per_frame = max(1, int(slots.values.shape[1]) * slots.num_pixels)
    return max(FRAME_CHUNK, CHUNK_VALUES // per_frame)


def newton_pairs(slots: FrameSlots) -> Tensor:
    """`q 3` (frame, slot, slot) for every ordered pair of filled slots of each frame."""
    return (slots.mask[:, :, None] & slots.mask[:, None, :]).nonzero()
