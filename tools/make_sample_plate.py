"""Write the small sample plate the plate workflow runs on: an EXR sequence with frame numbers.

The scene of `make_sample_clip.py` (so its true depth is known), stored as a VFX plate would
be: scene-linear Rec.709 half-float EXR, frames 1001-1024 (``rollingdepth_plate.####.exr``),
23.976 fps in the header, a couple of highlights above 1.0. Beside it, ``points.txt`` holds
a few known distances ``frame x y Z`` (metres, along the optical axis) taken from the true
depth, for the "fit" depth conversion.

    PYTHONPATH=. python tools/make_sample_plate.py [--out workflows/input/rollingdepth_plate]
"""

from __future__ import annotations

import argparse
import logging
import sys
from fractions import Fraction
from pathlib import Path

import numpy as np

from rollingdepth_core.io.exr import write_exr

sys.path.insert(0, str(Path(__file__).resolve().parent))
from make_sample_clip import render  # noqa: E402 - a sibling script, not a package

logger = logging.getLogger(__name__)

NAME = "rollingdepth_plate"
FIRST_FRAME = 1001
FRAME_RATE = Fraction(24000, 1001)
# known distances: (frame, x, y) with x, y as fractions of the width and height
POINTS = ((1001, 0.16, 0.83), (1001, 0.5, 0.28), (1008, 0.78, 0.55), (1014, 0.31, 0.69), (1020, 0.7, 0.42),
          (1024, 0.86, 0.9))


def srgb_to_linear(values: np.ndarray) -> np.ndarray:
    return np.where(values <= 0.04045, values / 12.92, ((values + 0.055) / 1.055) ** 2.4)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, default=Path("workflows/input") / NAME)
    parser.add_argument("--frames", type=int, default=24)
    parser.add_argument("--size", default="96x54", help="WIDTHxHEIGHT")
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    width, height = (int(s) for s in args.size.lower().split("x"))
    rgb, depth = render(args.frames, width, height)
    linear = srgb_to_linear(rgb.astype(np.float64)) * 1.6  # exposure: highlights above 1.0
    args.out.mkdir(parents=True, exist_ok=True)
    total = 0
    for i, frame in enumerate(linear.astype(np.float32)):
        path = args.out / f"{NAME}.{FIRST_FRAME + i:04d}.exr"
        channels = {c: frame[..., k] for k, c in enumerate("RGB")}
        write_exr(path, channels, "half", "zip", frame_rate=FRAME_RATE, overwrite=True)
        total += path.stat().st_size
    lines = ["# frame x y Z(m): known distances along the optical axis (top-left origin)"]
    for number, fx, fy in POINTS:
        x, y = round(fx * (width - 1)), round(fy * (height - 1))
        if number - FIRST_FRAME < args.frames:
            lines.append(f"{number} {x} {y} {float(depth[number - FIRST_FRAME, y, x]):.4f}")
    (args.out / "points.txt").write_text("\n".join(lines) + "\n")
    logger.info("%s: %d frames %dx%d, %d bytes; max value %.2f", args.out, args.frames, width, height,
                total, float(linear.max()))


if __name__ == "__main__":
    main()
