"""``python -m rollingdepth_core.bench {align,speed,memory,farm,spread} [options]``: run one benchmark.

A subcommand is a module of this package, imported only when asked for. It provides either
``main(argv) -> int``, or ``add_arguments(parser)`` and ``run(args) -> int``. A subcommand that
would replace an earlier result raises `files.ResultExists` before any work: one line on
stderr, exit code 2.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import sys

from .files import ResultExists

# subcommand -> module of this package
SUBCOMMANDS = {
    "align": "align",
    "speed": "speed",
    "memory": "memory",
    "farm": "farm",
    "spread": "spread",
}


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    if not argv or argv[0] not in SUBCOMMANDS:
        sys.stderr.write(
            "usage: python -m rollingdepth_core.bench {" + ",".join(SUBCOMMANDS) + "} [options]\n"
            "       python -m rollingdepth_core.bench <subcommand> --help\n"
        )
        return 0 if argv[:1] in (["-h"], ["--help"]) else 2
    name, rest = argv[0], argv[1:]
    module = importlib.import_module(f".{SUBCOMMANDS[name]}", __package__)
    try:
        return run_subcommand(name, module, rest)
    except ResultExists as refused:
        sys.stderr.write(f"{refused}\n")
        return 2


def run_subcommand(name: str, module, argv: list[str]) -> int:
    """Run one subcommand module on its arguments; returns its exit code."""
    if hasattr(module, "main"):
        return int(module.main(argv) or 0)
    parser = argparse.ArgumentParser(prog=f"python -m rollingdepth_core.bench {name}")
    module.add_arguments(parser)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s", stream=sys.stderr)
    return int(module.run(args) or 0)


if __name__ == "__main__":
    sys.exit(main())
