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


SIZES = ("plate", "depth")


def output_size_of(video: DepthVideo, size: str = "plate") -> tuple[int, int]:
    """`(H, W)` to convert at: the plate's stored size ("plate", when the clip says it), or
    the depth's own size ("depth")."""
    if size not in SIZES:
        raise InvalidSettings(f"output size must be one of {', '.join(SIZES)}; got {size!r}.")
    stored = video.clip.stored_size if video.clip is not None else None
    return tuple(stored) if size == "plate" and stored else video.size


def resize_video(video: DepthVideo, size: tuple[int, int]) -> DepthVideo:
    """The depth (and its spread) resized to `(H, W)` (bilinear, in inverse depth)."""
    from ..io.frames import resize_depth

    if tuple(size) == video.size:
        return video
    spread = None if video.spread is None else resize_depth(video.spread.float(), size)
    return DepthVideo(resize_depth(video.inverse_depth.float(), size), None, spread, video.clip)


def convert_clip(
    video: DepthVideo,
    conversion: DepthConversion = DepthConversion(),
    size: str = "plate",
    points_text: str = "",
    points_origin: str = "top-left",
    reference: Tensor | None = None,
    reference_frames: list[int] | None = None,
) -> tuple[ConvertedDepth, str]:
    """Convert a clip's depth for output: at the plate's size, points read in plate pixels.

    Args:
        video: `N H W` inverse depth (its `clip` gives frame numbers and the plate size).
        conversion: the settings.
        size: "plate" (the plate's stored size when known) or "depth" (as it is).
        points_text: "fit": ``frame x y distance`` lines; frames are the clip's frame
            numbers, x/y pixels of the plate (``points_origin`` top-left or bottom-left).
        reference, reference_frames: "fit": metric Z maps (see `convert_depth`).

    Returns:
        The converted depth and a report (what the values are, parameters, fit residuals).
    """
    from .references import parse_points

    conversion.check()
    target = output_size_of(video, size)
    points = None
    if points_text.strip():
        numbers = video.clip.numbers_for(video.num_frames) if video.clip is not None else None
        grid = video.clip.stored_size if video.clip is not None and video.clip.stored_size else video.size
        points = parse_points(points_text, numbers, grid, points_origin)
        if tuple(grid) != tuple(target):  # points refer to the plate's pixels: rescale
            scale_y, scale_x = target[0] / grid[0], target[1] / grid[1]
            points = [
                ReferencePoint(p.frame, (p.x + 0.5) * scale_x - 0.5, (p.y + 0.5) * scale_y - 0.5, p.distance)
                for p in points
            ]
    resized = resize_video(video, target)
    converted, fit = convert_depth(resized, conversion, points, None, reference, reference_frames)
    lines = [f"{converted.meaning()}, {target[1]}x{target[0]}, {converted.num_frames} frames"]
    lines.append(f"parameters: {converted.describe().split('; ', 1)[1]}")
    if fit is not None:
        lines.append(fit.describe())
    return converted, "\n".join(lines)
