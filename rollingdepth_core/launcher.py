"""Entry point of the ``rollingdepth`` command and ``python -m rollingdepth_core``.

Importing torch, diffusers and the method takes seconds. A Ctrl-C in that time would print
a KeyboardInterrupt traceback through torch's import, so this module imports nothing heavy
itself: it loads the command line (`cli`) under a guard, and the command line guards the
rest of the run. Either way a Ctrl-C prints one line and exits with code 130.
"""

from __future__ import annotations

import sys

CANCELLED = 130  # the shell's code for "stopped by Ctrl-C" (128 + SIGINT)


def main(argv: list[str] | None = None) -> int:
    """Run the command line; returns its exit code (130 when cancelled while starting)."""
    try:
        from .cli import main as run_command_line
    except KeyboardInterrupt:
        sys.stderr.write("\nrollingdepth: cancelled while starting; nothing was written.\n")
        return CANCELLED
    return run_command_line(argv)
