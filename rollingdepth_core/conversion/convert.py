"""One entry point for the depth conversions, with settings checked before any work.

``convert_depth(video, DepthConversion(mode="planes", near=1, far=100))`` is what the CLI and
the ComfyUI node call; the functions of `normalized`, `planes` and `fit` are the pieces.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import Tensor

from ..errors import InvalidSettings
from ..types import DepthVideo
from .converted import ConvertedDepth, check_percentiles, from_depth_video
from .fit import DepthFit, fit_inverse_depth, z_from_fit
from .normalized import DEFAULT_PERCENTILES, normalized_depth
from .planes import check_planes, z_from_planes
from .references import ReferencePoint, samples_from_depth_maps, samples_from_points

MODES = ("inverse_depth", "normalized", "planes", "fit")


@dataclass(frozen=True)
class DepthConversion:
    """What to turn the model's inverse depth into.

    Attributes:
        mode: "inverse_depth" (as it is), "normalized" (0..1, near = 1), "planes" (linear Z
            between ``near`` and ``far``) or "fit" (linear Z fitted to reference depth).
        near, far: the planes of "planes", in ``units``.
        low_percentile, high_percentile: the clip-wide percentiles of "normalized" and
            "planes" (mapped to far and near).
        units: units of Z ("m" by default; a label, nothing is rescaled).
        max_depth: "fit": clamp pixels farther than this instead of failing on pixels the
            fit puts at or beyond infinity (None: fail).
    """

    mode: str = "inverse_depth"
    near: float = 1.0
    far: float = 100.0
    low_percentile: float = DEFAULT_PERCENTILES[0]
    high_percentile: float = DEFAULT_PERCENTILES[1]
    units: str = "m"
    max_depth: float | None = None

    def check(self) -> None:
        """Raise ``InvalidSettings`` for settings that cannot work (before any heavy work)."""
        if self.mode not in MODES:
            raise InvalidSettings(f"depth conversion must be one of {', '.join(MODES)}; got {self.mode!r}.")
        check_percentiles(self.low_percentile, self.high_percentile)
        if self.mode == "planes":
            check_planes(self.near, self.far)
        if self.max_depth is not None and not (math.isfinite(self.max_depth) and self.max_depth > 0):
            raise InvalidSettings(f"max_depth must be a finite distance > 0; got {self.max_depth}.")
        if not self.units or not self.units.strip():
            raise InvalidSettings("units must be a label such as 'm' or 'cm'.")


def convert_depth(
    video: DepthVideo,
    conversion: DepthConversion = DepthConversion(),
    points: list[ReferencePoint] | None = None,
    points_size: tuple[int, int] | None = None,
    reference: Tensor | None = None,
    reference_frames: list[int] | None = None,
) -> tuple[ConvertedDepth, DepthFit | None]:
    """Convert a depth video as ``conversion`` says.

    Args:
        video: `N H W` affine-invariant inverse depth.
        conversion: the settings.
        points: "fit": known distances (`references.parse_points`).
        points_size: `(H, W)` of the pixel grid the points refer to (the plate); None = the
            depth's size.
        reference: "fit": metric Z maps `M H W` (or `H W`), invalid pixels <= 0 or NaN.
        reference_frames: the clip frame index of each reference map (default 0 .. M - 1).

    Returns:
        The converted depth and, for "fit", the `DepthFit` (its residuals are the report).
    """
    conversion.check()
    mode = conversion.mode
    if mode != "fit" and (points or reference is not None):
        raise InvalidSettings(f"reference depth is only used by the 'fit' conversion, not {mode!r}.")
    if mode == "inverse_depth":
        return from_depth_video(video), None
    if mode == "normalized":
        return normalized_depth(video, conversion.low_percentile, conversion.high_percentile), None
    if mode == "planes":
        return z_from_planes(
            video, conversion.near, conversion.far, conversion.low_percentile,
            conversion.high_percentile, conversion.units,
        ), None
    if not points and reference is None:
        raise InvalidSettings(
            "the 'fit' conversion needs reference depth: points 'frame x y distance' or metric depth maps."
        )
    ds, zs, what = [], [], []
    if points:
        d, z = samples_from_points(video.inverse_depth, points, points_size)
        ds.append(d)
        zs.append(z)
        what.append(f"{len(points)} point{'s' if len(points) > 1 else ''}")
    if reference is not None:
        d, z = samples_from_depth_maps(video.inverse_depth, reference, reference_frames)
        ds.append(d)
        zs.append(z)
        maps = 1 if reference.ndim == 2 else int(reference.shape[0])
        what.append(f"metric depth ({maps} map{'s' if maps > 1 else ''})")
    fit = fit_inverse_depth(torch.cat(ds), torch.cat(zs), conversion.units, " + ".join(what))
    return z_from_fit(video, fit, conversion.max_depth), fit
