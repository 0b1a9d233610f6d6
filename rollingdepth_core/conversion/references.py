"""Reference depth to fit to: a few known distances, or a metric depth map or video.

Both become *samples*: pairs (our inverse depth `d`, the reference's Z) at the same place,
which `fit.fit_inverse_depth` turns into one scale and shift for the clip.

Points are ``frame, x, y, distance``: the frame number as the plate names it (or the index
for clips without numbers), the pixel column and row in the plate's stored pixels (origin
top-left, pixel centres at whole numbers; ``origin="bottom-left"`` for Nuke-style rows), and
Z in the output units (along the optical axis, not along the ray).
"""

from __future__ import annotations

import math
import os
import re
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import Tensor

from ..errors import InvalidInput, InvalidSettings

ORIGINS = ("top-left", "bottom-left")
MAX_MAP_SAMPLES = 1 << 20


@dataclass(frozen=True)
class ReferencePoint:
    """One known distance: frame index in the clip, pixel position (x right, y down), Z."""

    frame: int
    x: float
    y: float
    distance: float


def parse_points(
    text: str, frame_numbers: tuple[int, ...] | None = None, size: tuple[int, int] | None = None,
    origin: str = "top-left",
) -> list[ReferencePoint]:
    """Points from text: one ``frame x y distance`` per line (commas or spaces; ``#`` comments;
    ``;`` also separates points, so ``"1001,10,20,3.5; 1050,40,22,7"`` works on one line).

    Args:
        text: the points.
        frame_numbers: the clip's frame numbers (frame -> index); None = frames are indices.
        size: `(H, W)` of the pixels the coordinates refer to (for checks and ``origin``).
        origin: "top-left" (row 0 at the top) or "bottom-left" (Nuke: row 0 at the bottom).

    Raises:
        InvalidSettings: a malformed line, a frame not in the clip, a point outside the
            picture, a distance that is not > 0.
    """
    if origin not in ORIGINS:
        raise InvalidSettings(f"origin must be one of {', '.join(ORIGINS)}; got {origin!r}.")
    index_of = {n: i for i, n in enumerate(frame_numbers)} if frame_numbers is not None else None
    points = []
    lines = [part for line in text.splitlines() for part in line.split("#", 1)[0].split(";")]
    for number, line in enumerate(lines, 1):
        fields = [f for f in re.split(r"[,\s]+", line.strip()) if f]
        if not fields:
            continue
        if len(fields) != 4:
            raise InvalidSettings(
                f"reference point {number} must be 'frame x y distance'; got {line.strip()!r}."
            )
        try:
            frame, x, y, distance = int(fields[0]), float(fields[1]), float(fields[2]), float(fields[3])
        except ValueError:
            raise InvalidSettings(f"reference point {number} is not numbers: {line.strip()!r}.") from None
        if not (math.isfinite(distance) and distance > 0):
            raise InvalidSettings(f"reference point {number}: distance must be > 0; got {fields[3]}.")
        if index_of is not None:
            if frame not in index_of:
                first, last = frame_numbers[0], frame_numbers[-1]
                raise InvalidSettings(
                    f"reference point {number}: frame {frame} is not in the clip (frames {first}-{last})."
                )
            frame = index_of[frame]
        if size is not None:
            height, width = size
            if not (-0.5 <= x <= width - 0.5 and -0.5 <= y <= height - 0.5):
                raise InvalidSettings(
                    f"reference point {number}: ({x}, {y}) is outside the {width}x{height} picture."
                )
            if origin == "bottom-left":
                y = height - 1 - y
        points.append(ReferencePoint(frame, x, y, distance))
    if not points:
        raise InvalidSettings("no reference points given ('frame x y distance' per line).")
    return points


def read_points(path: str | os.PathLike, **kwargs) -> list[ReferencePoint]:
    """`parse_points` of a text/CSV file (a header line starting with a letter is skipped)."""
    path = Path(path)
    if not path.is_file():
        raise InvalidSettings(f"reference points file {path} does not exist.")
    lines = path.read_text().splitlines()
    if lines and re.match(r"\s*[A-Za-z]", lines[0]):
        lines = lines[1:]
    return parse_points("\n".join(lines), **kwargs)


def sample_at(frame: Tensor, x: Tensor, y: Tensor, size: tuple[int, int]) -> Tensor:
    """Bilinear values of `H' W'` ``frame`` at pixel positions given in a `H W` ``size`` grid."""
    height, width = size
    grid_x = (x + 0.5) / width * 2 - 1  # align_corners=False convention: pixel centres
    grid_y = (y + 0.5) / height * 2 - 1
    grid = torch.stack([grid_x, grid_y], dim=-1).float()[None, None]  # 1 1 P 2
    values = F.grid_sample(frame[None, None].float(), grid, mode="bilinear", padding_mode="border",
                           align_corners=False)
    return values[0, 0, 0]


def samples_from_points(
    inverse_depth: Tensor, points: list[ReferencePoint], size: tuple[int, int] | None = None
) -> tuple[Tensor, Tensor]:
    """Our inverse depth at each point, and the point's Z.

    Args:
        inverse_depth: `N H W`.
        points: from `parse_points` (frame indices).
        size: `(H, W)` grid of the points' coordinates (the plate's stored pixels); None =
            the depth's own size.

    Returns:
        `P` inverse depth `d` and `P` Z, float64.
    """
    num_frames = int(inverse_depth.shape[0])
    size = size or (int(inverse_depth.shape[-2]), int(inverse_depth.shape[-1]))
    bad = [p.frame for p in points if not 0 <= p.frame < num_frames]
    if bad:
        raise InvalidSettings(
            f"reference points on frames {bad} are outside the clip of {num_frames} frames."
        )
    d = torch.empty(len(points), dtype=torch.float64)
    for frame in sorted({p.frame for p in points}):
        chosen = [i for i, p in enumerate(points) if p.frame == frame]
        x = torch.tensor([points[i].x for i in chosen], dtype=torch.float64)
        y = torch.tensor([points[i].y for i in chosen], dtype=torch.float64)
        d[chosen] = sample_at(inverse_depth[frame], x, y, size).double()
    z = torch.tensor([p.distance for p in points], dtype=torch.float64)
    return d, z


def samples_from_depth_maps(
    inverse_depth: Tensor, reference: Tensor, frames: list[int] | tuple[int, ...] | None = None,
    max_samples: int = MAX_MAP_SAMPLES,
) -> tuple[Tensor, Tensor]:
    """Pairs (our `d`, reference Z) over every valid pixel of metric depth maps.

    Args:
        inverse_depth: `N H W` (ours).
        reference: `M H' W'` (or `H' W'`) metric Z, a tensor or anything indexable like one
            (`io.depth_sources.DepthMapFiles`: maps read one at a time); pixels that are not
            finite and > 0 are ignored (sky, holes). Our depth is resized to its size.
        frames: the clip frame index of each reference map (default: 0 .. M - 1, M = N).
        max_samples: about this many pairs (every k-th pixel, k from the maps' size) enter
            the fit, at most twice as many.

    Returns:
        `S` inverse depth and `S` Z, float64.
    """
    if reference.ndim == 2:
        reference = reference[None]
    if reference.ndim != 3 or reference.shape[0] == 0:
        raise InvalidInput(f"reference depth must be `M H W` or `H W`; got {tuple(reference.shape)}.")

    count = int(reference.shape[0])
    frames = list(range(count)) if frames is None else list(frames)
    if len(frames) != count:
        raise InvalidInput(f"{count} reference maps but {len(frames)} frame indices.")
    num_frames = int(inverse_depth.shape[0])
    if any(not 0 <= f < num_frames for f in frames):
        raise InvalidInput(f"reference frames {frames} are outside the clip of {num_frames} frames.")
    size = (int(reference.shape[-2]), int(reference.shape[-1]))
    step = max(1, (count * size[0] * size[1]) // max_samples)
    ds, zs = [], []
    offset = 0
    for i, frame in enumerate(frames):
        z = torch.as_tensor(reference[i]).double()  # one map at a time (they may be files on disk)
        valid = _valid(z)
        ours = inverse_depth[frame].float()
        if tuple(ours.shape) != size:
            ours = F.interpolate(ours[None, None], size=size, mode="bilinear", align_corners=False)[0, 0]
        d = ours.double()[valid]
        z = z[valid]
        keep = slice((-offset) % step, None, step)
        ds.append(d[keep])
        zs.append(z[keep])
        offset += int(valid.sum())
    return torch.cat(ds), torch.cat(zs)


def _valid(z: Tensor) -> Tensor:
    return torch.isfinite(z) & (z > 0)
