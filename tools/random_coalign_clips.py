"""More co-alignment clips than the benchmark's sweep: `fast` against the reference's Adam on
tiny-model clips drawn at random (issue 12 §1: "every clip you can produce").

    python tools/random_coalign_clips.py draw --batch 2 --count 40 [--small] --out DIR
    python tools/random_coalign_clips.py recheck DIR

`draw` makes each clip (a tiny random checkpoint of its own seed, `bench/sweep.py`), runs both
solvers and writes one JSON row per clip to DIR/random_<batch>.jsonl (the reference's Adam
takes ~5 s per clip on 2 cores; the file is complete only when it has its final name).
`recheck` runs only `fast` again, on every clip of DIR's files, against the reference
objectives stored there (the reference does not change when `fast` does): it prints the
clips above the reference by more than 1e-4 and the worst and median ratio; exit 1 if any.

Batch `b` draws clips of seeds 3000 + 100 b + i: 4-140 frames, frames of 33-128 x 33-96
pixels (33-79 x 33-59 with --small: few optimisation pixels, the solvers' hard case), 1-3
dilations beside 1 from 2..25 (capped on short clips, as the pipeline does).
"""

from __future__ import annotations

import argparse
import json
import random
import re
import sys
from pathlib import Path

from rollingdepth_core.bench.sweep import SweepClip, compare, load_clip, prepare_clip

LENGTHS = (4, 6, 9, 13, 18, 24, 33, 47, 60, 90, 140)
DILATIONS = (2, 3, 4, 5, 6, 8, 10, 12, 15, 20, 25)
SLACK = 1e-4  # issue 12: fast <= reference x (1 + 1e-4)
NAME = re.compile(r"seed (\d+), (\d+) x (\d+)x(\d+), d ([\d,]+)")


def say(line: str) -> None:
    sys.stdout.write(line + "\n")
    sys.stdout.flush()


def draw_clips(batch: int, count: int, small: bool) -> list[SweepClip]:
    """The batch's clips (the same for the same arguments)."""
    rng = random.Random(batch)
    clips = []
    for i in range(count):
        num_frames = rng.choice(LENGTHS)
        height = rng.randrange(33, 60 if small else 97)
        width = rng.randrange(33, 80 if small else 129)
        dilations = sorted({1} | set(rng.sample(DILATIONS, rng.randrange(1, 4))))
        clips.append(SweepClip(3000 + 100 * batch + i, num_frames, height, width, tuple(dilations)))
    return clips


def clip_of(row: dict) -> SweepClip:
    """The clip a row was made from (its name, `SweepClip.name`)."""
    seed, frames, width, height, dilations = NAME.fullmatch(row["clip"]).groups()
    return SweepClip(int(seed), int(frames), int(height), int(width),
                     tuple(int(d) for d in dilations.split(",")))


def draw(args: argparse.Namespace) -> int:
    args.out.mkdir(parents=True, exist_ok=True)
    final = args.out / f"random_{args.batch}.jsonl"
    if final.exists():
        sys.stderr.write(f"{final} exists: choose another --batch or --out\n")
        return 2
    partial = final.with_suffix(".partial")
    with partial.open("w") as rows:
        for clip in draw_clips(args.batch, args.count, args.small):
            row = compare(clip.name, load_clip(clip, prepare_clip(clip, args.cache_dir)))
            rows.write(json.dumps(row) + "\n")
            rows.flush()
            say(f"{clip.name:45s} fast / reference {row['ratio']:.5f}")
    partial.replace(final)
    return 0


def recheck(args: argparse.Namespace) -> int:
    import torch

    from rollingdepth_core.coalign.methods import coalign

    torch.set_num_threads(args.threads)
    rows = [json.loads(line) for path in sorted(args.folder.glob("*.jsonl"))
            for line in path.read_text().splitlines() if line.strip()]
    if not rows:
        sys.stderr.write(f"no rows in {args.folder}/*.jsonl\n")
        return 2
    ratios = []
    for row in rows:
        clip = clip_of(row)
        fast = coalign(load_clip(clip, prepare_clip(clip, args.cache_dir)), "fast")
        ratio = fast.objective / row["reference"] if row["reference"] else 1.0
        ratios.append(ratio)
        if ratio > 1 + SLACK:
            say(f"{row['clip']:45s} fast / reference {ratio:.5f}: ABOVE")
    ratios.sort()
    above = sum(r > 1 + SLACK for r in ratios)
    say(f"{len(ratios)} clips: fast / reference worst {ratios[-1]:.6f}, median "
        f"{ratios[len(ratios) // 2]:.5f}, {above} above the reference by more than {SLACK:g}")
    return 1 if above else 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cache-dir", type=Path, default=Path(".cache/random_clips"),
                        help="snippet depths and tiny checkpoints, made once per clip")
    commands = parser.add_subparsers(dest="command", required=True)
    make = commands.add_parser("draw", help="draw clips, run both solvers, write the rows")
    make.add_argument("--batch", type=int, required=True)
    make.add_argument("--count", type=int, default=40)
    make.add_argument("--small", action="store_true", help="small frames (few pixels)")
    make.add_argument("--out", type=Path, required=True)
    again = commands.add_parser("recheck", help="run fast again against the stored rows")
    again.add_argument("folder", type=Path)
    again.add_argument("--threads", type=int, default=1)
    args = parser.parse_args(argv)
    return draw(args) if args.command == "draw" else recheck(args)


if __name__ == "__main__":
    sys.exit(main())
