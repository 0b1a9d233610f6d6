"""Benchmarks: ``python -m rollingdepth_core.bench <subcommand> --help``.

Subcommands (each a module of this package with ``add_arguments(parser)`` and
``run(args) -> int``, or ``main(argv) -> int``):

- ``speed``: time every stage, reference-style (one snippet per call) against ours, with
  FLOPs, fraction of the GPU's peak, peak VRAM and peak host RAM;
- ``memory``: peak memory against clip length (is it flat?);
- ``align``: co-alignment on synthetic clips with ground truth (and the golden
  ``align_small``): naive mean, reference Adam, fast and robust solvers side by side, with
  objective, AbsRel, delta1, temporal error, time and peak RSS (`align`, `data`, `worker`,
  `report`).

Speed models are the real architecture with random weights (`architectures`), so no
download is needed and the compute is that of the published checkpoint.
"""
