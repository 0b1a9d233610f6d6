"""Depth for display: clip-wide normalisation and colour maps (grey, Spectral, OpenCV maps)."""

from __future__ import annotations

import numpy as np
import torch
from torch import Tensor

from ..errors import InvalidInput, InvalidSettings

# ColorBrewer "Spectral" (11 classes), the colours matplotlib's Spectral interpolates.
_SPECTRAL = (
    "9e0142", "d53e4f", "f46d43", "fdae61", "fee08b", "ffffbf",
    "e6f598", "abdda4", "66c2a5", "3288bd", "5e4fa2",
)
_OPENCV_MAPS = ("viridis", "inferno", "magma", "plasma", "cividis", "turbo", "jet", "bone", "hot")
COLORMAPS = ("gray", "Spectral", "Spectral_r", *_OPENCV_MAPS)
# Other spellings of the same maps (matplotlib's names, as in the authors' `--cmap Greys_r`).
COLORMAP_ALIASES = {"Greys_r": "gray", "grey": "gray"}


def is_colormap(name: object) -> bool:
    """True when ``name`` is one of `COLORMAPS` or `COLORMAP_ALIASES`."""
    return isinstance(name, str) and (name in COLORMAPS or name in COLORMAP_ALIASES)


def _spectral_lut() -> np.ndarray:
    anchors = np.array([[int(c[i : i + 2], 16) for i in (0, 2, 4)] for c in _SPECTRAL], float)
    x = np.linspace(0, 1, len(anchors))
    t = np.linspace(0, 1, 256)
    return np.stack([np.interp(t, x, anchors[:, k]) for k in range(3)], axis=1) / 255.0


def colormap_lut(name: str) -> Tensor:
    """`256 3` float32 RGB lookup table of colour map ``name`` (one of `COLORMAPS`, or an alias)."""
    name = COLORMAP_ALIASES.get(name, name) if isinstance(name, str) else name
    if name == "gray":
        lut = np.repeat(np.linspace(0, 1, 256)[:, None], 3, axis=1)
    elif name in ("Spectral", "Spectral_r"):
        lut = _spectral_lut()
        lut = lut[::-1] if name == "Spectral_r" else lut
    elif name in _OPENCV_MAPS:
        import cv2

        code = getattr(cv2, f"COLORMAP_{name.upper()}")
        bgr = cv2.applyColorMap(np.arange(256, dtype=np.uint8)[:, None], code)[:, 0]
        lut = bgr[:, ::-1] / 255.0
    else:
        raise InvalidSettings(f"Unknown colour map {name!r}. Choose one of {', '.join(COLORMAPS)}.")
    return torch.from_numpy(np.ascontiguousarray(lut)).float()


def display_range(
    depth: Tensor, low_percentile: float = 0.0, high_percentile: float = 100.0
) -> tuple[float, float]:
    """The clip-wide values shown as the two ends of a colour map.

    Args:
        depth: `N H W`, any range.
        low_percentile, high_percentile: clip-wide percentiles (0 and 100: min and max).

    Returns:
        `(low, high)` over the finite values.
    """
    if depth.ndim != 3 or depth.shape[0] == 0:
        raise InvalidInput(f"depth must be `N H W` with N >= 1; got {tuple(depth.shape)}.")
    if not 0.0 <= low_percentile < high_percentile <= 100.0:
        raise InvalidSettings(
            f"percentiles must satisfy 0 <= low < high <= 100; got {low_percentile}, {high_percentile}."
        )
    depth = depth.float()
    finite = depth[torch.isfinite(depth)]
    if finite.numel() == 0:
        raise InvalidInput("depth holds no finite values.")
    if low_percentile == 0.0 and high_percentile == 100.0:
        return float(finite.min()), float(finite.max())
    sample = finite[:: max(1, finite.numel() // 4_000_000)]  # quantile needs < 16M values
    return float(torch.quantile(sample, low_percentile / 100.0)), float(
        torch.quantile(sample, high_percentile / 100.0)
    )


def normalize_for_display(
    depth: Tensor, *, invert: bool = False, low_percentile: float = 0.0, high_percentile: float = 100.0
) -> Tensor:
    """Map a depth video to 0..1 with ONE range for the whole clip (no per-frame flicker).

    Args:
        depth: `N H W`, any range.
        invert: flip so that larger input values become darker.
        low_percentile, high_percentile: clip-wide percentiles mapped to 0 and 1
            (0 and 100: min and max); values outside are clamped.

    Returns:
        `N H W` float32 in 0..1.
    """
    lo, hi = display_range(depth, low_percentile, high_percentile)
    scaled = ((depth.float() - lo) / max(hi - lo, 1e-12)).clamp(0.0, 1.0)
    scaled = torch.nan_to_num(scaled, nan=0.0)
    return 1.0 - scaled if invert else scaled


def apply_colormap(values: Tensor, name: str = "gray") -> Tensor:
    """Colour values in 0..1 with a colour map (linear interpolation in its 256-entry table).

    Args:
        values: `N H W` in 0..1.

    Returns:
        `N H W 3` float32 RGB in 0..1.
    """
    lut = colormap_lut(name)
    position = values.float().clamp(0, 1) * 255.0
    low = position.floor().long().clamp(max=254)
    frac = (position - low)[..., None]
    return lut[low] * (1 - frac) + lut[low + 1] * frac


def colorize_depth(
    depth: Tensor,
    colormap: str = "gray",
    *,
    invert: bool = False,
    low_percentile: float = 0.0,
    high_percentile: float = 100.0,
) -> Tensor:
    """A depth video as RGB images: one range for the whole clip, then a colour map.

    Args:
        depth: `N H W`, any range (inverse depth: larger = nearer = brighter in "gray").
        colormap: one of `COLORMAPS`.
        invert: flip first, so that nearer becomes darker.
        low_percentile, high_percentile: clip-wide percentiles mapped to the ends of the map.

    Returns:
        `N H W 3` float32 RGB in 0..1.
    """
    colormap_lut(colormap)  # unknown names fail before any work
    values = normalize_for_display(
        depth, invert=invert, low_percentile=low_percentile, high_percentile=high_percentile
    )
    return apply_colormap(values, colormap)
