"""Benchmarks: ``python -m rollingdepth_core.bench align`` (co-alignment, see README)."""
