"""``python -m rollingdepth_core.farm``: the farm's command line (`farm.cli`)."""

import sys

from .cli import main

if __name__ == "__main__":
    sys.exit(main())
