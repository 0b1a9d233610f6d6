"""Depth from other sources (another model, a depth video on disk) as RollingDepth inverse depth.

RollingDepth works with affine-invariant inverse depth (larger = nearer). Other tools write
either that (disparity, "near = bright") or depth ("near = dark"); this module turns both into
the former, so any depth video can be refined or saved like our own.
"""

from __future__ import annotations

import torch
from torch import Tensor

from ..errors import InvalidInput, InvalidSettings

DEPTH_KINDS = ("inverse_depth", "depth")


def to_inverse_depth(values: Tensor, kind: str = "inverse_depth", near_limit: float = 0.01) -> Tensor:
    """Inverse depth `N H W` from depth values of another source.

    Args:
        values: `N H W`, finite; "depth" values must be >= 0.
        kind: "inverse_depth" (larger = nearer, returned as float32 unchanged) or "depth"
            (larger = farther).
        near_limit: for "depth", the nearest depth kept, as a fraction of the clip's largest
            depth; nearer values (and 0) are clipped to it before taking `1 / depth`, so the
            result spans at most a factor `1 / near_limit`.

    Returns:
        `N H W` float32 inverse depth (a new tensor).
    """
    if kind not in DEPTH_KINDS:
        raise InvalidSettings(f"Unknown depth kind {kind!r}. Choose one of {', '.join(DEPTH_KINDS)}.")
    if values.ndim != 3 or values.shape[0] == 0:
        raise InvalidInput(f"depth values must be `N H W` with N >= 1; got {tuple(values.shape)}.")
    if not bool(torch.isfinite(values).all()):
        raise InvalidInput("depth values contain NaN or infinite values; fix the source first.")
    values = values.float()
    if kind == "inverse_depth":
        return values.clone()
    if not 0.0 < near_limit <= 1.0:
        raise InvalidSettings(f"near_limit must be in (0, 1]; got {near_limit}.")
    if float(values.min()) < 0:
        raise InvalidInput(
            f"depth values must be >= 0 (smallest is {float(values.min()):.4g}). If the source is "
            "inverse depth or disparity, choose 'inverse_depth' instead."
        )
    farthest = float(values.max())
    if farthest == 0.0:
        raise InvalidInput("depth values are all 0; the source holds no depth.")
    return 1.0 / (values / farthest).clamp(min=near_limit)
