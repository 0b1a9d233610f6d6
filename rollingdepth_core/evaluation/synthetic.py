"""Synthetic inverse-depth videos with known ground truth, for benchmarks and tests.

The scene (metres; x right, y up, z forward): a ground plane, left, right and back walls,
a slanted panel near the far end and a sphere. A pinhole camera (focal length 0.8 W,
1.4 m high) moves 7.5 m forward with a sideways sway and a slow yaw, **stands still** for
a stretch of the clip, and near the end closes in on the panel. During 58-82 % of the clip
the sphere (radius 0.6 m) crosses the view 1.6 m in front of the camera, so the nearest
inverse depth of a frame jumps from about 0.3 to 1.0 within a few frames. Events are
placed at fractions of the clip, so any length and size gives the same story.

`render_inverse_depth` ray-casts frames; `evaluation/snippet_simulation.py` turns them into
model-like snippet predictions.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import Tensor

from ..errors import InvalidSettings

CAMERA_HEIGHT = 1.4
TRAVEL = 7.5  # metres forward over the clip
STILL = (0.30, 0.42)  # fraction of the clip where the camera stands still
SPHERE_TIME = (0.58, 0.82)  # fraction of the clip where the sphere crosses the view
SPHERE_RADIUS = 0.6
SPHERE_AHEAD = 1.6
WALL_X = 3.5
BACK_Z = 14.0
PANEL_CENTRE = (1.3, 1.3, 10.0)
PANEL_HALF = (1.1, 1.3)  # half width, half height
PANEL_YAW = math.radians(-35.0)


@dataclass(frozen=True)
class CameraPose:
    """Camera centre `(x, y, z)` and yaw (radians, positive turns right)."""

    position: tuple[float, float, float]
    yaw: float


def camera_pose(frame: int, num_frames: int) -> CameraPose:
    """Where the camera is at ``frame`` (the path is the same for every clip length)."""
    u = frame / max(1, num_frames - 1)  # 0..1 along the clip
    still_start, still_end = STILL
    moving = 1.0 - (still_end - still_start)
    progress = (min(u, still_start) + max(0.0, u - still_end)) / moving  # 0..1, flat when still
    x = 0.6 * math.sin(2 * math.pi * progress)
    z = TRAVEL * progress
    yaw = 0.15 * math.sin(math.pi * progress)
    return CameraPose(position=(x, CAMERA_HEIGHT, z), yaw=yaw)


def sphere_centre(frame: int, num_frames: int, pose: CameraPose) -> tuple[float, float, float] | None:
    """Centre of the sphere at ``frame`` (world), or None when it is out of the scene."""
    u = frame / max(1, num_frames - 1)
    start, end = SPHERE_TIME
    if not start <= u <= end:
        return None
    lateral = -2.2 + 4.4 * (u - start) / (end - start)  # left to right, camera-relative
    cos, sin = math.cos(pose.yaw), math.sin(pose.yaw)
    x0, y0, z0 = pose.position
    return (x0 + cos * lateral + sin * SPHERE_AHEAD, y0 - 0.2, z0 - sin * lateral + cos * SPHERE_AHEAD)


def _rays(height: int, width: int, yaw: float) -> Tensor:
    """World directions `3 H W` of every pixel's ray, scaled to unit camera depth."""
    focal = 0.8 * width
    cols = (torch.arange(width, dtype=torch.float64) + 0.5 - width / 2) / focal
    rows = (torch.arange(height, dtype=torch.float64) + 0.5 - height / 2) / focal
    x = cols[None, :].expand(height, width)
    y = -rows[:, None].expand(height, width)
    z = torch.ones(height, width, dtype=torch.float64)
    cos, sin = math.cos(yaw), math.sin(yaw)
    return torch.stack([cos * x + sin * z, y, -sin * x + cos * z])


def _nearest(distance: Tensor, candidate: Tensor) -> Tensor:
    """Keep the smaller positive hit distance."""
    hit = torch.isfinite(candidate) & (candidate > 1e-6)
    return torch.where(hit & (candidate < distance), candidate, distance)


def render_frame(frame: int, num_frames: int, height: int, width: int) -> Tensor:
    """Ray-cast one frame.

    Returns:
        `H W` float32 inverse depth (1 / camera z-distance in metres; larger = nearer).
    """
    pose = camera_pose(frame, num_frames)
    d = _rays(height, width, pose.yaw)  # 3 H W, camera depth along the ray = t
    ox, oy, oz = pose.position
    inf = torch.full((height, width), float("inf"), dtype=torch.float64)
    with torch.no_grad():
        t = _nearest(inf, torch.where(d[1] < 0, -oy / d[1], inf))  # ground
        t = _nearest(t, torch.where(d[0] < 0, (-WALL_X - ox) / d[0], inf))  # left wall
        t = _nearest(t, torch.where(d[0] > 0, (WALL_X - ox) / d[0], inf))  # right wall
        t = _nearest(t, torch.where(d[2] > 0, (BACK_Z - oz) / d[2], inf))  # back wall
        t = _nearest(t, _panel_hits(d, pose.position))
        centre = sphere_centre(frame, num_frames, pose)
        if centre is not None:
            t = _nearest(t, _sphere_hits(d, pose.position, centre))
    return (1.0 / t.clamp(max=BACK_Z * 4)).float()


def _panel_hits(d: Tensor, origin: tuple[float, float, float]) -> Tensor:
    """Distances to the slanted rectangular panel (inf where missed)."""
    cx, cy, cz = PANEL_CENTRE
    normal = (math.sin(PANEL_YAW), 0.0, math.cos(PANEL_YAW))
    across = (math.cos(PANEL_YAW), 0.0, -math.sin(PANEL_YAW))
    facing = normal[0] * d[0] + normal[2] * d[2]
    offset = normal[0] * (cx - origin[0]) + normal[2] * (cz - origin[2])
    t = offset / facing
    px, py, pz = (origin[0] + t * d[0] - cx, origin[1] + t * d[1] - cy, origin[2] + t * d[2] - cz)
    inside = ((px * across[0] + pz * across[2]).abs() <= PANEL_HALF[0]) & (py.abs() <= PANEL_HALF[1])
    return torch.where(inside & (facing.abs() > 1e-9), t, torch.full_like(t, float("inf")))


def _sphere_hits(d: Tensor, origin: tuple[float, float, float], centre: tuple[float, float, float]) -> Tensor:
    """Distances to the sphere's near surface (inf where missed)."""
    oc = [o - c for o, c in zip(origin, centre, strict=True)]
    a = d[0] ** 2 + d[1] ** 2 + d[2] ** 2
    b = oc[0] * d[0] + oc[1] * d[1] + oc[2] * d[2]
    c = sum(v * v for v in oc) - SPHERE_RADIUS**2
    disc = b * b - a * c
    t = (-b - disc.clamp(min=0).sqrt()) / a
    return torch.where(disc >= 0, t, torch.full_like(t, float("inf")))


def render_inverse_depth(num_frames: int, height: int, width: int, out=None) -> Tensor:
    """Ground-truth inverse depth of the whole clip.

    Args:
        num_frames, height, width: clip size (>= 1 each).
        out: optional writable `N H W` array (a tensor or `DiskTensor`) to fill frame by
            frame; by default a new float32 tensor.

    Returns:
        ``out`` (or the new `N H W` float32 tensor), inverse depth in 1/m.
    """
    for name, value in (("num_frames", num_frames), ("height", height), ("width", width)):
        if int(value) != value or value < 1:
            raise InvalidSettings(f"{name} must be a whole number >= 1; got {value!r}.")
    if out is None:
        out = torch.empty(num_frames, height, width)
    elif tuple(out.shape) != (num_frames, height, width):
        raise InvalidSettings(f"out must be {(num_frames, height, width)}; got {tuple(out.shape)}.")
    for frame in range(num_frames):
        out[frame] = render_frame(frame, num_frames, height, width)
    return out
