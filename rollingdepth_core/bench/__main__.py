"""Benchmark command line: ``python -m rollingdepth_core.bench align --help``."""

from __future__ import annotations

import argparse
import logging
import sys

from . import align


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m rollingdepth_core.bench")
    commands = parser.add_subparsers(dest="command", required=True)
    align.add_arguments(commands.add_parser("align", help=align.__doc__.splitlines()[0]))
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s", stream=sys.stderr)
    return align.run(args)


if __name__ == "__main__":
    sys.exit(main())
