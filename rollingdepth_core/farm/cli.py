"""The farm's command line: many shots, or one long shot, on Ray.

    rollingdepth-farm SHOTS -o OUTDIR [--preset ...] [--address ...] [--workers N] [--gpus-per-worker 1]
    python -m rollingdepth_core.farm ...            # the same

SHOTS is a folder of videos or image sequences, a glob, or a shot list (CSV or JSON, see
`farm.shots`). Each shot is written to OUTDIR/NAME/ exactly as ``rollingdepth CLIP -o
OUTDIR/NAME`` writes it (the same options apply); OUTDIR/manifest.jsonl records every outcome.
Exit code: 0 when every shot is done (or was done before), 1 when some failed, 2 when the
command or the shot list is wrong (nothing runs), 130 when cancelled.
"""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

from .. import __version__
from ..cli import CommandLineParser, add_clip_options, setup_logging
from ..errors import RollingDepthError

logger = logging.getLogger("rollingdepth.farm")


def build_parser() -> argparse.ArgumentParser:
    parser = CommandLineParser(
        prog="rollingdepth-farm",
        description="RollingDepth on many shots (or one long shot) over the GPUs of a machine or a Ray "
        "cluster. The options after SHOTS are the single-clip command's; a shot list can set some per shot.",
    )
    parser.add_argument("shots", help="folder of videos / image-sequence folders, a glob pattern (quoted), "
                        "or a shot list (.csv or .json: path, optional name, start, count and settings)")
    parser.add_argument("-o", "--output-dir", type=Path, required=True,
                        help="folder for the results: one folder per shot, and manifest.jsonl")
    farm = parser.add_argument_group("farm")
    farm.add_argument("--address", default=None,
                      help="Ray cluster to use ('auto': the one `ray start` made on this machine; "
                      "default: start a local Ray for this run)")
    farm.add_argument("--workers", type=int, default=None,
                      help="workers, each holding one model (default: one per GPU, or 1 without GPUs)")
    farm.add_argument("--gpus-per-worker", type=float, default=1.0, help="GPUs per worker (default 1)")
    farm.add_argument("--cpus-per-worker", type=float, default=None,
                      help="CPUs per worker (default: 1 with GPUs, otherwise the CPUs shared out)")
    farm.add_argument("--shard", action="store_true",
                      help="one shot at a time, each split over every worker (snippets, refinement steps), "
                      "co-aligned once on this machine; with --storage-dir (shared by every node) the "
                      "snippet depths go through files there instead of Ray's object store")
    farm.add_argument("--retries", type=int, default=2,
                      help="times a shot is retried when its worker dies (default 2)")
    add_clip_options(parser)
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    return parser


def main(argv: list[str] | None = None) -> int:
    """Entry point of ``rollingdepth-farm`` and ``python -m rollingdepth_core.farm``; the exit code."""
    args = build_parser().parse_args(argv)
    setup_logging(args)
    try:
        from .run import run_farm

        outcome = run_farm(args)
    except RollingDepthError as error:
        logger.error("%s", error)
        return 2
    except OSError as error:  # a disk that is full or went away
        logger.error("%s: %s", type(error).__name__, error)
        return 2
    except KeyboardInterrupt:
        logger.error("Cancelled. Shots that were running are not in the manifest; run the same command "
                     "again to do them.")
        return 130
    sys.stdout.write(outcome.summary + "\n")
    sys.stdout.flush()
    return 1 if outcome.num_failed else 0
