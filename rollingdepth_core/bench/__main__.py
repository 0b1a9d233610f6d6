"""``python -m rollingdepth_core.bench {speed,memory,...} [options]``: run one benchmark."""

from __future__ import annotations

import importlib
import sys

# subcommand -> module of this package that provides ``main(argv) -> int``
SUBCOMMANDS = {
    "speed": "speed",
    "memory": "memory",
}


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    if not argv or argv[0] not in SUBCOMMANDS:
        sys.stderr.write(
            "usage: python -m rollingdepth_core.bench {" + ",".join(SUBCOMMANDS) + "} [options]\n"
            "       python -m rollingdepth_core.bench <subcommand> --help\n"
        )
        return 0 if argv[:1] in (["-h"], ["--help"]) else 2
    module = importlib.import_module(f".{SUBCOMMANDS[argv[0]]}", __package__)
    return int(module.main(argv[1:]) or 0)


if __name__ == "__main__":
    sys.exit(main())
