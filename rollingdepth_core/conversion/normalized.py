"""Inverse depth -> normalised 0..1 (near = 1), one range for the whole clip (SPEC §8)."""

from __future__ import annotations

from ..types import DepthVideo
from .converted import ConvertedDepth, check_depth_video, robust_range

DEFAULT_PERCENTILES = (1.0, 99.0)


def normalized_depth(
    video: DepthVideo, low_percentile: float = DEFAULT_PERCENTILES[0],
    high_percentile: float = DEFAULT_PERCENTILES[1],
) -> ConvertedDepth:
    """`(d - lo) / (hi - lo)` clipped to 0..1, with `lo`, `hi` clip-wide percentiles of `d`.

    Args:
        video: `N H W` affine-invariant inverse depth (larger = nearer).
        low_percentile, high_percentile: the percentiles mapped to 0 (far) and 1 (near);
            0 and 100 are the clip's min and max.

    Returns:
        `ConvertedDepth` of kind "normalized" (spread divided by `hi - lo`).
    """
    check_depth_video(video)
    depth = video.inverse_depth.float()
    low, high = robust_range(depth, low_percentile, high_percentile)
    width = high - low
    values = ((depth - low) / width).clamp_(0.0, 1.0)
    spread = None if video.spread is None else video.spread.float() / width
    parameters = {
        "method": "normalized", "low": low, "high": high,
        "low_percentile": low_percentile, "high_percentile": high_percentile,
        "formula": "(d - low) / (high - low), clipped to 0..1",
    }
    return ConvertedDepth(values, "normalized", "", parameters, spread, video.clip)
