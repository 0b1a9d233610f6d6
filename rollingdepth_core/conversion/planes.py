"""Inverse depth -> linear Z between near and far planes given by the user (SPEC §8).

The clip's high percentile of inverse depth `d` is put at ``near`` and its low percentile at
``far``: `1/Z = a d + b` with `a = (1/near - 1/far) / (hi - lo)`, `b = 1/far - a lo`. Values
nearer than ``near`` or farther than ``far`` (including `a d + b <= 0`, beyond infinity) are
clamped to the planes and counted.
"""

from __future__ import annotations

import math

import torch

from ..errors import InvalidSettings
from ..types import DepthVideo
from .converted import ConvertedDepth, check_depth_video, robust_range
from .normalized import DEFAULT_PERCENTILES


def check_planes(near: float, far: float) -> None:
    """Raise ``InvalidSettings`` unless `0 < near < far < inf`."""
    if not (math.isfinite(near) and math.isfinite(far) and 0.0 < near < far):
        raise InvalidSettings(
            f"near and far planes must satisfy 0 < near < far (finite); got {near} and {far}."
        )


def z_from_planes(
    video: DepthVideo, near: float, far: float, low_percentile: float = DEFAULT_PERCENTILES[0],
    high_percentile: float = DEFAULT_PERCENTILES[1], units: str = "m",
) -> ConvertedDepth:
    """Linear Z with the clip's near percentile at ``near`` and far percentile at ``far``.

    Args:
        video: `N H W` affine-invariant inverse depth (larger = nearer).
        near, far: the planes, `0 < near < far`, in ``units``.
        low_percentile, high_percentile: which percentiles of `d` go to ``far`` and ``near``.
        units: a label for the values ("m", "cm", "ft", ...).

    Returns:
        `ConvertedDepth` of kind "z"; parameters hold `scale`, `shift` (`1/Z = scale d +
        shift`) and the counts clamped to each plane. The spread is propagated to first
        order, `a Z^2 spread_d`.
    """
    check_planes(near, far)
    check_depth_video(video)
    depth = video.inverse_depth.float()
    low, high = robust_range(depth, low_percentile, high_percentile)
    scale = (1.0 / near - 1.0 / far) / (high - low)
    shift = 1.0 / far - scale * low
    inverse = depth * scale + shift  # 1/Z
    beyond_far = inverse <= 1.0 / far
    nearer = inverse >= 1.0 / near
    values = torch.where(beyond_far, torch.full_like(inverse, far), 1.0 / inverse.clamp(min=1.0 / far))
    values = torch.where(nearer, torch.full_like(values, near), values)
    spread = None if video.spread is None else scale * values * values * video.spread.float()
    parameters = {
        "method": "planes", "near": near, "far": far, "units": units,
        "low_percentile": low_percentile, "high_percentile": high_percentile,
        "low": low, "high": high, "scale": scale, "shift": shift,
        "formula": "Z = 1 / (scale * d + shift), clamped to near..far",
        "clamped_to_far": int(beyond_far.sum()), "clamped_to_near": int(nearer.sum()),
        "beyond_infinity": int((inverse <= 0).sum()),
    }
    return ConvertedDepth(values, "z", units, parameters, spread, video.clip)
