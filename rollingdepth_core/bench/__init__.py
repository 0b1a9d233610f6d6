"""Benchmarks: ``python -m rollingdepth_core.bench <subcommand> --help``.

Subcommands (each a module of this package with ``add_arguments(parser)`` and
``run(args) -> int``, or ``main(argv) -> int``):

- ``align``: co-alignment on synthetic clips with ground truth (and the golden
  ``align_small``): naive mean, reference Adam, fast and robust solvers side by side, with
  objective, AbsRel, delta1, temporal error, time and peak RSS (`align`, `data`, `worker`,
  `report`).
"""
