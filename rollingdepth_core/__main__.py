"""``python -m rollingdepth_core INPUT -o OUTDIR``: see `rollingdepth_core.cli`."""

from .cli import main

raise SystemExit(main())
