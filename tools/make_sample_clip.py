"""Write the small sample clip the example workflows run on, and its true depth as a video.

A procedural scene (no randomness): a textured floor and back wall, a shaded ball rolling
from left to right and a checkered box sliding towards the camera. Because the scene is
made here, its depth is known exactly; the depth video (grey, nearer = brighter, one range
for the clip) stands in for "depth from another depth node" in the stage-swap workflow.

    PYTHONPATH=. python tools/make_sample_clip.py [--out workflows/input] [--frames 100] [--size 128x72]
"""

from __future__ import annotations

import argparse
import logging
from pathlib import Path

import numpy as np

from rollingdepth_core.io.colormaps import colorize_depth
from rollingdepth_core.io.export import save_video

logger = logging.getLogger(__name__)

NAME = "rollingdepth_sample"
FPS = 12.0


def render(num_frames: int, width: int, height: int) -> tuple[np.ndarray, np.ndarray]:
    """`N H W 3` RGB in 0..1 and `N H W` depth (distance along the view axis) of the scene."""
    ys, xs = np.mgrid[0:height, 0:width].astype(np.float64)
    u = (xs + 0.5) / width * 2 - 1  # -1..1 left to right
    v = (ys + 0.5) / height * 2 - 1  # -1..1 top to bottom
    aspect = width / height
    rgb_frames, depth_frames = [], []
    for i in range(num_frames):
        t = i / max(1, num_frames - 1)
        # floor: y = 1 below the camera, visible where v > horizon; back wall at z = 8
        horizon = -0.05
        floor_z = np.where(v > horizon, 1.0 / np.maximum(v - horizon, 1e-3), np.inf)
        depth = np.minimum(floor_z, 8.0)
        on_floor = floor_z < 8.0
        floor_x = u * aspect * depth
        tiles = (np.floor(floor_x * 1.5) + np.floor(depth * 1.5 + t * 3)) % 2
        wall = 0.55 + 0.25 * np.sin(u * 9 + t * 2) * np.cos(v * 5)
        rgb = np.stack([
            np.where(on_floor, 0.35 + 0.3 * tiles, wall * 0.6),
            np.where(on_floor, 0.30 + 0.25 * tiles, wall * 0.75),
            np.where(on_floor, 0.25 + 0.2 * tiles, wall),
        ], axis=-1)
        # checkered box sliding towards the camera on the right
        box_z = 6.0 - 3.0 * t
        box_u, box_v = 0.45 * 4 / box_z, 0.6 * 4 / box_z
        in_box = (np.abs(u - 0.5) < box_u) & (np.abs(v - 0.25) < box_v) & (box_z < depth)
        checker = (np.floor((u - 0.5) / box_u * 3) + np.floor((v - 0.25) / box_v * 3)) % 2
        depth = np.where(in_box, box_z, depth)
        rgb[in_box] = np.stack([0.9 - 0.5 * checker, 0.3 + 0.4 * checker, 0.2 + 0.1 * checker], -1)[in_box]
        # shaded ball rolling left to right, bobbing
        centre_u, centre_v, ball_z, radius = -0.7 + 1.2 * t, 0.2 + 0.1 * np.sin(t * 6), 3.0, 0.32
        du, dv = (u - centre_u) * aspect, v - centre_v
        dist2 = du**2 + dv**2
        bulge = np.sqrt(np.clip(radius**2 - dist2, 0, None))
        surface_z = ball_z - bulge * 2.0
        in_ball = (dist2 < radius**2) & (surface_z < depth)
        light = np.clip((-du - dv + bulge) / (radius * 1.8), 0.15, 1.0)
        depth = np.where(in_ball, surface_z, depth)
        rgb[in_ball] = (np.stack([0.2 + 0.8 * light, 0.45 * light, 0.9 * light], -1))[in_ball]
        rgb_frames.append(np.clip(rgb, 0, 1))
        depth_frames.append(depth)
    return np.stack(rgb_frames).astype(np.float32), np.stack(depth_frames).astype(np.float32)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, default=Path("workflows/input"))
    parser.add_argument("--frames", type=int, default=100)
    parser.add_argument("--size", default="128x72", help="WIDTHxHEIGHT")
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    width, height = (int(s) for s in args.size.lower().split("x"))
    rgb, depth = render(args.frames, width, height)
    import torch

    preview = colorize_depth(torch.from_numpy(1.0 / depth), "gray").numpy()  # nearer = brighter
    for name, frames in ((f"{NAME}.mp4", rgb), (f"{NAME}_depth.mp4", preview)):
        path = save_video(args.out / name, frames, fps=FPS)
        logger.info("%s: %d frames %dx%d, %d bytes", path, len(frames), width, height, path.stat().st_size)


if __name__ == "__main__":
    main()
