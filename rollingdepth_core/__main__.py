"""``python -m rollingdepth_core INPUT -o OUTDIR``: see `rollingdepth_core.cli`."""

from .launcher import main

raise SystemExit(main())
