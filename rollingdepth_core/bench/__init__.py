"""Benchmarks: ``python -m rollingdepth_core.bench <subcommand> --help``.

Subcommands (each a module of this package with a ``main(argv) -> int``):

- ``speed``: time every stage, reference-style (one snippet per call) against ours, with
  FLOPs, fraction of the GPU's peak, peak VRAM and peak host RAM;
- ``memory``: peak memory against clip length (is it flat?).

Models are the real architecture with random weights (`architectures`), so no download
is needed and the compute is that of the published checkpoint.
"""
