"""Co-alignment benchmark: naive mean, reference Adam, fast and robust solvers, side by side.

Every (case, method) runs in its own process (`worker.py`) on the same cached inputs, one
after the other, so the speed-up ratios are measured in one run on one machine. Prints one
markdown table and writes it, the raw results and the error-over-time figure to ``--out``
(an earlier result there stops the command before any work, unless ``--overwrite``).
The case "sweep" compares fast with the reference's Adam on many tiny-model clips
(`sweep.py`; objectives and videos, no timings). A case or measurement that fails is
listed under the tables and makes the command exit with status 1.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch

from .data import CASES, find_golden, prepare_case
from .files import refuse_existing, write_text_atomic
from .report import format_failures, format_sweep, format_table, plot_error_over_time

logger = logging.getLogger(__name__)

FIGURE_CASE = "large"
TABLE, RECORD, FIGURE = "coalign_benchmark.md", "coalign_benchmark.json", "coalign_error_over_time.png"
SWEEP = "sweep"  # the tiny-model sweep (not in CASES: no timings, its own table)


def default_cache() -> Path:
    base = os.environ.get("XDG_CACHE_HOME", str(Path.home() / ".cache"))
    return Path(base) / "rollingdepth-bench"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--cases", default="golden,small,large,long_small,long",
                        help=f"comma-separated, from {', '.join(CASES)}, {SWEEP}")
    parser.add_argument("--methods", default="",
                        help="comma-separated subset of each case's methods (default: all)")
    parser.add_argument("--cache-dir", type=Path, default=default_cache(),
                        help="where generated inputs are kept between runs")
    parser.add_argument("--out", type=Path, default=Path("docs"),
                        help=f"folder for {TABLE}, {RECORD} and the figure {FIGURE} (default docs)")
    parser.add_argument("--overwrite", action="store_true",
                        help="replace results already in --out (without it they stop the command)")
    parser.add_argument("--threads", type=int, default=min(2, os.cpu_count() or 1),
                        help="torch threads per measurement")


def cpu_name() -> str:
    """The CPU model (lscpu's 'Model name'), or the platform's description."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def run_worker(folder: Path, method: str, storage: str, threads: int) -> dict:
    """Measure one method on one case in a fresh Python process."""
    with tempfile.TemporaryDirectory() as scratch:
        out = Path(scratch) / "result.json"
        command = [sys.executable, "-m", "rollingdepth_core.bench.worker", str(folder), method,
                   storage, str(threads), str(out)]
        subprocess.run(command, check=True, cwd=Path(__file__).resolve().parents[2])
        return json.loads(out.read_text())


def write(text: str) -> None:
    """The table goes to stdout (the package logs everything else)."""
    sys.stdout.write(text)
    sys.stdout.flush()


def result_paths(out: Path, keys: list[str]) -> list[Path]:
    """The files a run of the cases ``keys`` writes into ``out`` (the figure only with its case)."""
    return [out / TABLE, out / RECORD] + ([out / FIGURE] if FIGURE_CASE in keys else [])


def run(args: argparse.Namespace) -> int:
    keys = [k for k in args.cases.split(",") if k]
    unknown = [k for k in keys if k not in CASES and k != SWEEP]
    if unknown:
        raise SystemExit(f"unknown case(s) {unknown}; choose from {', '.join(CASES)}, {SWEEP}")
    refuse_existing(result_paths(args.out, keys), args.overwrite, "bench align")
    wanted = {m for m in args.methods.split(",") if m}
    results, titles, failures, sweep_rows = [], {}, [], []
    started = time.strftime("%Y-%m-%d %H:%M")
    for key in keys:
        if key == SWEEP:
            sweep_rows, sweep_failures = run_sweep_here(args)
            failures += sweep_failures
            continue
        case = CASES[key]
        try:
            folder = prepare_case(case, args.cache_dir)
        except (OSError, RuntimeError, ValueError) as error:
            logger.error("%s: no input (%s); listed as failed.", key, error)
            failures.append({"case": case.title, "error": f"input: {error}"})
            continue
        titles[key] = case.title
        for method in case.methods:
            if wanted and method not in wanted:
                continue
            logger.info("Measuring %s on %s ...", method, case.title)
            try:
                result = run_worker(folder, method, case.storage, args.threads)
            except (subprocess.CalledProcessError, OSError, ValueError) as error:
                logger.error("  %s on %s failed (%s); continuing.", method, key, error)
                failures.append({"case": f"{case.title}, {method}", "error": str(error)})
                continue
            result["case"] = key
            results.append(result)
            logger.info("  %.2f s, AbsRel %.2f %%", result["total_s"], result["absrel"])
    policy = os.environ.get("OMP_WAIT_POLICY", "default")
    machine = (f"{cpu_name()}, {os.cpu_count()} cores, {args.threads} torch threads "
               f"(OMP_WAIT_POLICY={policy}), torch {torch.__version__}, "
               f"Python {platform.python_version()}, {started}")
    table = format_table(results, titles) if results else ""
    if sweep_rows:
        table += ("\n" if table else "") + format_sweep(sweep_rows)
    table += ("\n" if failures else "") + format_failures(failures)
    write(table + f"\nMachine: {machine}\n")
    args.out.mkdir(parents=True, exist_ok=True)
    write_text_atomic(args.out / TABLE, table + f"\nMachine: {machine}\n")
    slim = [{k: [round(x, 4) for x in v] if k == "frame_absrel" else v
             for k, v in r.items() if "profile" not in k} for r in results]
    lines = ",\n".join(json.dumps(r) for r in slim)  # one line per measurement
    sweep_lines = ",\n".join(json.dumps(r) for r in sweep_rows)
    write_text_atomic(
        args.out / RECORD,
        f'{{"machine": {json.dumps(machine)},\n"results": [\n{lines}\n],\n'
        f'"sweep": [\n{sweep_lines}\n],\n"failures": {json.dumps(failures)}}}\n')
    if FIGURE_CASE in titles:
        plot_error_over_time(results, FIGURE_CASE, titles[FIGURE_CASE],
                             args.out / FIGURE)
    return 1 if failures else 0


def run_sweep_here(args: argparse.Namespace) -> tuple[list[dict], list[dict]]:
    """The sweep in this process (it measures no time or memory), with the run's threads."""
    from .sweep import run_sweep

    previous = torch.get_num_threads()
    torch.set_num_threads(args.threads)
    try:
        return run_sweep(args.cache_dir, find_golden())
    finally:
        torch.set_num_threads(previous)
