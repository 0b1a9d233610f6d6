"""Largest absolute difference between two output folders of the same run (before / after a change).

    python tools/compare_outputs.py BEFORE AFTER

Every file of BEFORE is compared with the file of the same relative path in AFTER: `.npz` arrays
(each key), 16-bit `.png` frames, `.exr` channels, video frames (`.mp4`/`.webm`/`.mov`, decoded to
RGB) and `.json` text (equal or not). Prints one line per differing array and a summary line;
exits 0 when both folders hold the same files and every difference is 0, else 1.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

VIDEO = (".mp4", ".webm", ".mov")


def arrays(path: Path) -> dict[str, np.ndarray | str] | None:
    """The comparable contents of one output file (None for a kind that is not compared)."""
    suffix = path.suffix.lower()
    if suffix == ".npz":
        with np.load(path) as data:
            return {key: data[key] for key in data.files}
    if suffix == ".png":
        import cv2

        return {"pixels": cv2.imread(str(path), cv2.IMREAD_UNCHANGED)}
    if suffix == ".exr":
        import OpenImageIO as oiio

        handle = oiio.ImageInput.open(str(path))
        try:
            names = list(handle.spec().channelnames)
            pixels = np.asarray(handle.read_image("float"))  # H W C
        finally:
            handle.close()
        return {name: pixels[..., i] for i, name in enumerate(names)}
    if suffix in VIDEO:
        import av

        with av.open(str(path)) as container:
            return {"frames": np.stack([f.to_ndarray(format="rgb24") for f in container.decode(video=0)])}
    if suffix == ".json":
        return {"json": json.dumps(json.loads(path.read_text()), sort_keys=True)}
    return None


def difference(a: np.ndarray | str, b: np.ndarray | str) -> float:
    """Max |a - b| in float64 (inf for other shapes or unequal text; 0 for two empty arrays)."""
    if isinstance(a, str) or isinstance(b, str):
        return 0.0 if a == b else float("inf")
    if a.shape != b.shape:
        return float("inf")
    if a.size == 0:
        return 0.0
    return float(np.abs(a.astype(np.float64) - b.astype(np.float64)).max())


def compare(before: Path, after: Path) -> tuple[float, int, list[str]]:
    """`(max abs difference, arrays compared, report lines)` of two output folders."""
    files_a = {p.relative_to(before) for p in before.rglob("*") if p.is_file()}
    files_b = {p.relative_to(after) for p in after.rglob("*") if p.is_file()}
    lines = [f"only in {before}: {p}" for p in sorted(files_a - files_b)]
    lines += [f"only in {after}: {p}" for p in sorted(files_b - files_a)]
    worst = float("inf") if files_a != files_b else 0.0
    compared = 0
    for relative in sorted(files_a & files_b):
        a, b = arrays(before / relative), arrays(after / relative)
        if a is None:
            continue
        for key in sorted(set(a) | set(b)):
            diff = difference(a[key], b[key]) if key in a and key in b else float("inf")
            compared += 1
            worst = max(worst, diff)
            if diff:
                lines.append(f"{relative} [{key}]: max abs difference {diff:.6g}")
    return worst, compared, lines


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("before", type=Path)
    parser.add_argument("after", type=Path)
    args = parser.parse_args(argv)
    for folder in (args.before, args.after):
        if not folder.is_dir():
            sys.stderr.write(f"error: {folder} is not a folder\n")
            return 2
    worst, compared, lines = compare(args.before, args.after)
    for line in [*lines, f"{compared} arrays compared; max abs difference {worst:g}"]:
        sys.stdout.write(line + "\n")
    return 0 if worst == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
