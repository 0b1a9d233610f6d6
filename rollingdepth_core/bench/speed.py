"""``python -m rollingdepth_core.bench speed``: reference-style against ours, stage by stage.

Builds the real architecture with random weights (or loads ``--checkpoint``), runs both
modes on the same synthetic clip, alternating, each run in a fresh process (unless
``--in-process``), every mode at least twice (``--repeat``), and prints a table: seconds per
stage (each row's fastest run and the spread of the runs), frames/s, the speed-up, peak VRAM,
peak host RAM, FLOPs and the fraction of the GPU's peak, and how far the modes' outputs are
apart. The headline is the END-TO-END ratio, with `total without align` beside it: the
reference style does what the authors' release does (`reference_style.py`); ours is the
pipeline as a user runs it, automatic batch-size calibration included.

GPU example (the issue's target)::

    python -m rollingdepth_core.bench speed --device cuda --preset fast --frames 250

CPU smoke (tiny model, seconds)::

    python -m rollingdepth_core.bench speed --arch tiny --frames 24 --size 48x64 \\
        --resolution 0 --coalign-iterations 50
"""

from __future__ import annotations

import argparse
import datetime
import json
import logging
import platform
import sys
import tempfile
from pathlib import Path

import torch

from ..cli import positive_int
from ..coalign.methods import DEFAULT_METHOD
from ..model.checkpoint import resolve_dtype
from ..model.speedups import ATTENTION_BACKENDS
from ..presets import PRESETS, parse_dilations
from .files import refuse_existing, write_text_atomic
from .flops import peak_tflops
from .runner import GIB, MODES, BenchConfig, model_flops, run_mode, run_mode_in_subprocess

logger = logging.getLogger(__name__)


def parse_size(text: str) -> tuple[int, int]:
    """``"432x768"`` (height x width) -> (432, 768)."""
    try:
        height, width = (int(v) for v in text.lower().split("x"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"size must look like 432x768 (H x W); got {text!r}") from None
    return height, width


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m rollingdepth_core.bench speed",
        description="Time RollingDepth reference-style (one snippet per call) against ours.",
    )
    model = parser.add_argument_group("model")
    model.add_argument("--arch", choices=("full", "tiny"), default="full",
                       help="random-weight architecture: full = the published model's shapes")
    model.add_argument("--checkpoint", default=None, help="time a real checkpoint folder instead")
    model.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    model.add_argument("--dtype", default=None, choices=("fp16", "bf16", "fp32"),
                       help="default: the preset's (fp32 on a CPU)")
    clip = parser.add_argument_group("clip and preset")
    clip.add_argument("--frames", type=positive_int, default=250)
    clip.add_argument("--size", type=parse_size, default=None,
                      help="input frame size HxW (default: 16:9 at the processing resolution)")
    clip.add_argument("--preset", choices=tuple(PRESETS), default="fast")
    clip.add_argument("--resolution", type=int, default=None, help="override the preset's")
    clip.add_argument("--dilations", type=parse_dilations, default=None, help="e.g. 1,10,25")
    clip.add_argument("--refine-steps", type=int, default=None)
    clip.add_argument("--coalign-method", default=DEFAULT_METHOD,
                      help="co-alignment solver of ours (default: the pipeline's)")
    clip.add_argument("--reference-coalign-method", default="reference",
                      help="co-alignment solver of the reference-style mode")
    clip.add_argument("--coalign-iterations", type=int, default=2000)
    ours = parser.add_argument_group("ours")
    ours.add_argument("--snippets-per-batch", default="auto", help="a number or auto")
    ours.add_argument("--vae-batch", default="auto", help="frames per VAE call: a number or auto")
    ours.add_argument("--memory-limit-gb", type=float, default=10.0,
                      help="total device memory automatic batches may use (0: all free memory)")
    ours.add_argument("--no-channels-last", action="store_true")
    ours.add_argument("--compile", action="store_true", help="torch.compile UNet and VAE")
    ours.add_argument("--attention", choices=ATTENTION_BACKENDS, default="auto")
    run = parser.add_argument_group("run")
    run.add_argument("--modes", default="reference,ours")
    run.add_argument("--in-process", action="store_true",
                     help="run the modes in this process (peak host RAM is then shared)")
    run.add_argument("--no-warmup", action="store_true")
    run.add_argument("--no-cudnn-benchmark", action="store_true")
    run.add_argument("--threads", type=int, default=None, help="torch CPU threads")
    run.add_argument("--repeat", type=positive_int, default=2,
                     help="run the modes alternately this many times (default 2); the table shows each "
                          "stage's fastest run and the spread")
    run.add_argument("--seed", type=int, default=0)
    run.add_argument("--json", default=None, help="also write the results to this file")
    run.add_argument("--overwrite", action="store_true",
                     help="replace an existing --json file (without it, it stops the command)")
    return parser


def config_from_args(args: argparse.Namespace) -> BenchConfig:
    preset = PRESETS[args.preset]
    resolution = args.resolution if args.resolution is not None else preset.processing_resolution
    size = args.size
    if size is None:
        side = resolution or 768
        size = (side * 9 // 16, side)
    dtype = args.dtype or preset.dtype
    if torch.device(args.device).type == "cpu" and dtype == "fp16":
        dtype = "fp32"  # fp16 on a CPU is slow and poorly supported
    return BenchConfig(
        arch=args.arch, checkpoint=args.checkpoint, device=args.device, dtype=dtype,
        frames=args.frames, input_size=tuple(size), preset=args.preset,
        resolution=args.resolution, dilations=args.dilations, refine_steps=args.refine_steps,
        coalign_method=args.coalign_method, reference_coalign_method=args.reference_coalign_method,
        coalign_iterations=args.coalign_iterations, snippets_per_batch=str(args.snippets_per_batch),
        vae_batch_size=str(args.vae_batch), memory_limit_gb=args.memory_limit_gb or None,
        channels_last=not args.no_channels_last, compile=args.compile, attention=args.attention,
        cudnn_benchmark=not args.no_cudnn_benchmark, warmup=not args.no_warmup, seed=args.seed,
        threads=args.threads,
    )


def compare(paths: dict[str, str]) -> dict | None:
    """Largest absolute differences between the modes' saved outputs."""
    if set(paths) != set(MODES):
        return None
    ref, ours = (torch.load(paths[m]) for m in MODES)
    snippets = max(float((a - b).abs().max()) for a, b in zip(ref["snippets"], ours["snippets"], strict=True))
    return {"snippet_depths": snippets, "depth": float((ref["depth"] - ours["depth"]).abs().max())}


def stage_rows(result: dict) -> dict[str, float]:
    """Seconds per reported stage of one run of a mode."""
    seconds, modules = result["seconds"], result["module_seconds"]
    rows = {"batch sizes": seconds.get("batch sizes", 0.0), "encode": seconds.get("encode", 0.0)}
    if "denoise unet" in modules:
        rows["snippet UNet"] = modules["denoise unet"]
        rows["decode"] = modules.get("denoise decoder", 0.0)
        rows["denoise other"] = max(0.0, seconds["denoise"] - rows["snippet UNet"] - rows["decode"])
    else:
        rows["snippet UNet + decode"] = seconds.get("denoise", 0.0)
    rows["align"] = seconds.get("align", 0.0)
    if "refine" in seconds:
        rows["refine"] = seconds["refine"]
    rows["total"] = seconds["total"]
    rows["total without align"] = seconds["total"] - rows["align"]
    return rows


def spread(values: list[float]) -> float | None:
    """(slowest - fastest) / fastest of repeated measurements; None for one run."""
    if len(values) < 2 or min(values) <= 0:
        return None
    return (max(values) - min(values)) / min(values)


HEADLINE = ("total", "total without align")


def cpu_name() -> str:
    """The CPU's model name (from /proc/cpuinfo where there is one)."""
    try:
        with open("/proc/cpuinfo") as handle:
            for line in handle:
                if line.lower().startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def _flop(value: float) -> str:
    for unit, scale in (("PFLOP", 1e15), ("TFLOP", 1e12), ("GFLOP", 1e9)):
        if value >= scale:
            return f"{value / scale:.3g} {unit}"
    return f"{value / 1e6:.3g} MFLOP"


def _gib(value) -> str:
    return "n/a" if value is None else f"{value / GIB:.2f}"


def summarize(config: BenchConfig, runs: dict[str, list[dict]], flops: dict, diffs: dict | None) -> dict:
    """Per mode: each row's fastest run, its spread over the runs, frames/s, TFLOPS and the
    fraction of peak; the speed-ups of the fastest runs; and the headline ratios
    (end to end, and without the co-alignment) with their range over every pairing of runs."""
    dtype = resolve_dtype(config.dtype, torch.device(config.device))
    summary = {"modes": {}, "speedup": {}, "headline": {}}
    for mode, mode_runs in runs.items():
        per_run = [stage_rows(r) for r in mode_runs]
        rows = {k: min(r[k] for r in per_run) for k in per_run[0]}
        compute = min(sum(r["seconds"].get(k, 0.0) for k in ("encode", "denoise", "refine"))
                      for r in mode_runs)
        achieved = flops["total"] / compute / 1e12 if compute > 0 else None
        device_name = mode_runs[0]["device_name"]
        peak = peak_tflops(device_name, dtype) if config.device.startswith("cuda") else None
        summary["modes"][mode] = {
            "rows": rows, "spread": {k: spread([r[k] for r in per_run]) for k in rows},
            "per_run": per_run, "frames_per_s": config.frames / rows["total"],
            "achieved_tflops": achieved,
            "fraction_of_peak": achieved / peak if (achieved and peak) else None,
            "peak_tflops": peak,
        }
    if set(runs) == set(MODES):
        ref, ours = (summary["modes"][m] for m in MODES)
        summary["speedup"] = {k: ref["rows"][k] / v for k, v in ours["rows"].items()
                              if ref["rows"].get(k, 0.0) > 0 and v > 0}
        for key in HEADLINE:
            pairs = [a[key] / b[key] for a in ref["per_run"] for b in ours["per_run"] if b[key] > 0]
            summary["headline"][key] = {"ratio": summary["speedup"][key], "low": min(pairs),
                                        "high": max(pairs), "pairs": len(pairs)}
    summary["max_abs_diff"] = diffs
    return summary


def _percent(value: float | None) -> str:
    return "-" if value is None else f"{value:.1%}"


def format_table(config: BenchConfig, results: dict[str, dict], flops: dict, summary: dict) -> str:
    settings = config.settings()
    first = next(iter(results.values()))
    repeats = first.get("repeats", 1)
    lines = [
        f"RollingDepth speed benchmark, {datetime.date.today().isoformat()}",
        f"device: {first['device_name']} (host {cpu_name()}, {first['threads']} CPU threads), "
        f"torch {torch.__version__}",
        f"model: {config.checkpoint or 'random ' + config.arch}, dtype {config.dtype}; clip "
        f"{config.frames} frames {config.input_size[1]}x{config.input_size[0]}, processed at "
        f"{flops['padded_size'][1]}x{flops['padded_size'][0]} (padded); preset {config.preset}: "
        f"dilations {flops['dilations']}, refine steps {settings.refine_steps}, "
        f"{flops['num_snippets']} snippets",
        f"FLOPs per call: UNet {_flop(flops['unet_snippet'])} per snippet, decoder "
        f"{_flop(flops['decode_frame'])} per frame, encoder {_flop(flops['encode_frame'])} per frame; "
        f"whole run {_flop(flops['total'])}",
        f"runs: {repeats} per mode, alternating, "
        + ("all in this process" if first.get("in_process") else "each in a fresh process")
        + "; seconds = each row's fastest run, spread = (slowest - fastest) / fastest",
        "",
    ]
    modes = list(results)
    both = bool(summary["speedup"])
    header = f"{'':24}" + "".join(f"{m + ' (s)':>18}" for m in modes)
    header += f"{'speed-up':>12}" if both else ""
    header += "".join(f"{m + ' spread':>18}" for m in modes)
    lines.append(header)
    rows = summary["modes"][modes[-1]]["rows"]
    for key in rows:
        line = f"{key:24}" + "".join(
            f"{summary['modes'][m]['rows'].get(key, float('nan')):>18.3f}" for m in modes
        )
        if both:
            line += f"{summary['speedup'][key]:>11.2f}x" if key in summary["speedup"] else f"{'-':>12}"
        line += "".join(f"{_percent(summary['modes'][m]['spread'].get(key)):>18}" for m in modes)
        lines.append(line)

    def row(name, values):
        lines.append(f"{name:24}" + "".join(f"{v:>18}" for v in values))

    row("frames/s", [f"{summary['modes'][m]['frames_per_s']:.3f}" for m in modes])
    row("peak VRAM (GiB)", [_gib(results[m]["peak_vram"]) for m in modes])
    row("peak host RAM (GiB)", [_gib(results[m]["peak_rss"]) for m in modes])
    row("host RAM growth (GiB)", [_gib(results[m]["peak_rss"] - results[m]["rss_ready"]) for m in modes])
    row("achieved TFLOPS", [
        "n/a" if summary["modes"][m]["achieved_tflops"] is None
        else f"{summary['modes'][m]['achieved_tflops']:.4g}" for m in modes
    ])
    row("fraction of peak", [
        "n/a" if summary["modes"][m]["fraction_of_peak"] is None
        else f"{summary['modes'][m]['fraction_of_peak']:.1%}" for m in modes
    ])
    row("snippets / VAE frames", [
        f"{results[m]['snippets_per_batch']} / {results[m]['vae_batch_size']}" for m in modes
    ])
    diffs = summary["max_abs_diff"]
    if diffs is not None:
        lines.append(
            f"max |reference - ours|: snippet depths {diffs['snippet_depths']:.3g}, "
            f"final depth {diffs['depth']:.3g}"
            + (f" (co-alignment: {config.reference_coalign_method} vs {config.coalign_method})"
               if config.reference_coalign_method != config.coalign_method else "")
        )
    if summary["headline"]:
        end, without = (summary["headline"][k] for k in HEADLINE)
        lines += ["", (
            f"end to end: ours {end['ratio']:.2f}x the authors' way ({end['low']:.2f}x .. {end['high']:.2f}x "
            f"over the {end['pairs']} pairings of runs); total without align {without['ratio']:.2f}x "
            f"({without['low']:.2f}x .. {without['high']:.2f}x)"
        )]
    return "\n".join(lines) + "\n"


def combine(runs: list[dict]) -> dict:
    """One result from repeated runs of a mode: the fastest time of each stage (the least
    disturbed by other work on the machine) and the highest memory peaks."""
    out = dict(runs[0])
    for key in ("seconds", "module_seconds"):
        out[key] = {k: min(r[key][k] for r in runs) for k in runs[0][key]}
    for key in ("peak_vram", "peak_rss"):
        values = [r[key] for r in runs if r[key] is not None]
        out[key] = max(values) if values else None
    out["repeats"] = len(runs)
    return out


def run(config: BenchConfig, modes: list[str], in_process: bool = False, repeat: int = 2) -> dict:
    """Run ``modes`` (alternating, ``repeat`` times each) and return
    ``{"config", "results", "runs", "flops", "summary", "table"}``."""
    flops = model_flops(config)
    runs: dict[str, list[dict]] = {mode: [] for mode in modes}
    saved = {}
    runner = run_mode if in_process else run_mode_in_subprocess
    with tempfile.TemporaryDirectory(prefix="rollingdepth-speed-") as folder:
        for index in range(max(1, repeat)):
            for mode in modes:
                saved[mode] = str(Path(folder) / f"{mode}.pt")
                logger.info("Running %s mode (%d of %d)...", mode, index + 1, repeat)
                result = runner(config, mode, saved[mode] if index == 0 else None)
                runs[mode].append(dict(result, in_process=in_process))
        diffs = compare(saved)
    results = {mode: combine(r) for mode, r in runs.items()}
    summary = summarize(config, runs, flops, diffs)
    table = format_table(config, results, flops, summary)
    return {"config": config, "results": results, "runs": runs, "flops": flops, "summary": summary,
            "table": table}


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    refuse_existing([args.json], args.overwrite, "bench speed")
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    modes = [m.strip() for m in args.modes.split(",") if m.strip()]
    unknown = [m for m in modes if m not in MODES]
    if unknown:
        sys.stderr.write(f"unknown mode(s) {unknown}; choose from {MODES}\n")
        return 2
    config = config_from_args(args)
    out = run(config, modes, args.in_process, args.repeat)
    sys.stdout.write(out["table"])
    if args.json:
        record = {k: v for k, v in out.items() if k != "config"}
        record["config"] = {**config.__dict__}
        write_text_atomic(args.json, json.dumps(record, indent=2, default=str))
    return 0
