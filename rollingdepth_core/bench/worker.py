"""One benchmark measurement in a fresh process: ``python -m rollingdepth_core.bench.worker``.

A fresh process per (case, method) makes peak memory honest: the peak resident set is
reset after the inputs are loaded (Linux ``/proc/self/clear_refs``), so it covers the
co-alignment and the merge; the inputs' own size is reported beside it.
"""

from __future__ import annotations

import json
import re
import resource
import sys
import time
from pathlib import Path

import torch

from ..coalign.merge import merge_aligned
from ..coalign.methods import coalign
from ..coalign.problem import CoalignSettings, global_minimum, objective_value, prepare_problem
from ..evaluation.metrics import evaluate_depth, per_frame_errors
from ..types import Alignment
from .data import load_case

PROFILE_ROW = 0.6  # image row of the temporal profile, as a fraction of the height
PROFILE_COLUMNS = 192  # columns kept in the profile


def resident_kib(field: str) -> int | None:
    """``VmRSS`` / ``VmHWM`` of this process in KiB (None where /proc is missing)."""
    try:
        text = Path("/proc/self/status").read_text()
    except OSError:
        return None
    found = re.search(rf"{field}:\s+(\d+)", text)
    return int(found.group(1)) if found else None


def reset_peak() -> bool:
    """Reset the peak resident set (Linux); False where that is not possible."""
    try:
        Path("/proc/self/clear_refs").write_text("5")
        return True
    except OSError:
        return False


def naive_alignment(snippets) -> Alignment:
    """Plain per-frame mean of the unaligned snippets (scale 1, shift 0)."""
    ones = tuple(torch.ones(d.shape[0]) for d in snippets.depths)
    zeros = tuple(torch.zeros(d.shape[0]) for d in snippets.depths)
    return Alignment(ones, zeros, global_minimum(snippets), float("nan"), "naive")


def measure(folder: Path, method: str, storage: str, threads: int) -> dict:
    """Run ``method`` on a cached case; timings, memory, objective, metrics, curves."""
    torch.set_num_threads(threads)
    snippets, truth = load_case(folder, storage)
    inputs_gib = (resident_kib("VmRSS") or 0) / 2**20
    peak_reset = reset_peak()
    tic = time.perf_counter()
    alignment = naive_alignment(snippets) if method == "naive" else coalign(snippets, method)
    solved = time.perf_counter()
    merged = merge_aligned(snippets, alignment)
    merged_at = time.perf_counter()
    peak_kib = resident_kib("VmHWM") if peak_reset else None
    if peak_kib is None:
        peak_kib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    problem = prepare_problem(snippets, CoalignSettings())
    objective = objective_value(problem, alignment.scales, alignment.shifts, CoalignSettings())
    scores = evaluate_depth(merged, truth)
    absrel, _ = per_frame_errors(merged, truth, scores.fit)
    row = int(PROFILE_ROW * merged.shape[1])
    step = max(1, merged.shape[2] // PROFILE_COLUMNS)
    return {
        "method": method,
        "storage": storage,
        "objective": objective,
        "absrel": scores.absrel,
        "delta1": scores.delta1,
        "temporal_error": scores.temporal_error,
        "solve_s": solved - tic,
        "merge_s": merged_at - solved,
        "total_s": merged_at - tic,
        "peak_gib": peak_kib / 2**20,
        "peak_is_whole_process": not peak_reset,
        "inputs_gib": inputs_gib,
        "frame_absrel": absrel.tolist(),
        "profile_row": row,
        "profile": scores.fit.apply(merged[:, row, ::step]).float().tolist(),
        "truth_profile": truth[:, row, ::step].tolist(),
    }


def main(argv: list[str]) -> int:
    folder, method, storage, threads, out = argv
    result = measure(Path(folder), method, storage, int(threads))
    Path(out).write_text(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
