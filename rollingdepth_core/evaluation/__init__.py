"""Measuring depth: metrics (SPEC §7), a synthetic clip with known depth and a simulator of
model-like snippets for benchmarks."""
