"""``python -m rollingdepth_core.bench memory``: peak memory against clip length.

Runs our pipeline on synthetic clips of several lengths, each in a fresh process, and
prints peak device memory, peak host memory and their growth per frame. Device memory
must not grow with the clip; host memory grows only by what a clip inherently needs
(snippet depths in fp16, latents, the output video), unless ``--storage-dir`` moves the
snippet depths to temporary files (`runtime.storage.DiskTensor`).

    python -m rollingdepth_core.bench memory --device cuda --frames 250,1000,2000
    python -m rollingdepth_core.bench memory --arch tiny --size 96x128 --resolution 0 \\
        --frames 100,200,400,800,2000 --storage-dir /tmp/rd
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import logging
import sys

import torch

from ..io.frames import padding_for, processing_size
from ..stages.snippets import plan_snippets
from .files import refuse_existing, write_text_atomic
from .runner import GIB, BenchConfig, run_mode, run_mode_in_subprocess
from .speed import build_parser as speed_parser
from .speed import config_from_args

logger = logging.getLogger(__name__)
MIB = float(1 << 20)


def build_parser() -> argparse.ArgumentParser:
    base = speed_parser()
    parser = argparse.ArgumentParser(
        prog="python -m rollingdepth_core.bench memory", parents=[base], add_help=False,
        conflict_handler="resolve",
        description="Peak device and host memory of our pipeline against clip length.",
    )
    parser.add_argument("--frames", default="100,200,400,800",
                        help="comma-separated clip lengths")
    parser.add_argument("--storage-dir", default=None,
                        help="keep snippet depths in temporary files here")
    parser.add_argument("--coalign-iterations", type=int, default=20,
                        help="co-alignment iterations (memory does not depend on them)")
    return parser


def inherent_bytes_per_frame(config: BenchConfig) -> dict[str, float]:
    """Host bytes per frame that any implementation keeping these results must hold."""
    settings = config.settings()
    height, width = processing_size(*config.input_size, settings.processing_resolution)
    pad = padding_for((height, width))
    latent = (height + pad[0]) // 8 * ((width + pad[1]) // 8)
    plan = plan_snippets(config.frames, settings.dilations, settings.snippet_length, settings.cap_dilation)
    store = 4 if config.dtype == "fp32" else 2
    predictions = plan.num_snippets * plan.snippet_length / config.frames
    return {
        "snippet_depths": predictions * height * width * store,
        "rgb_latents": latent * 4 * 4,
        "merged_video": 2 * height * width * 4,  # merged + normalised, float32
    }


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    refuse_existing([args.json], args.overwrite, "bench memory")
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    lengths = [int(v) for v in str(args.frames).split(",") if v.strip()]
    args.frames = lengths[0]
    base = dataclasses.replace(config_from_args(args), storage_dir=args.storage_dir)
    runner = run_mode if args.in_process else run_mode_in_subprocess
    rows = []
    for frames in lengths:
        config = dataclasses.replace(base, frames=frames)
        logger.info("Running %d frames...", frames)
        result = runner(config, "ours")
        anon = result["peak_anon"] - result["anon_ready"] if result["peak_anon"] else None
        rows.append({
            "frames": frames, "peak_vram": result["peak_vram"], "peak_rss": result["peak_rss"],
            "rss_growth": result["peak_rss"] - result["rss_ready"], "anon_growth": anon,
            "peak_file": result["peak_file"], "seconds": result["seconds"]["total"],
            "snippets_per_batch": result["snippets_per_batch"],
            "vae_batch_size": result["vae_batch_size"],
        })
    inherent = inherent_bytes_per_frame(dataclasses.replace(base, frames=lengths[-1]))
    sys.stdout.write(format_table(base, rows, inherent, result["device_name"]))
    if args.json:
        write_text_atomic(args.json, json.dumps({"rows": rows, "inherent": inherent}, indent=2))
    return 0


def slope(rows: list[dict], key: str) -> float | None:
    """Least-squares growth of ``key`` per frame over the rows."""
    points = [(r["frames"], r[key]) for r in rows if r[key] is not None]
    if len(points) < 2:
        return None
    x = torch.tensor([p[0] for p in points], dtype=torch.float64)
    y = torch.tensor([p[1] for p in points], dtype=torch.float64)
    x0 = x - x.mean()
    return float((x0 * (y - y.mean())).sum() / (x0 * x0).sum())


def format_table(config: BenchConfig, rows: list[dict], inherent: dict, device_name: str) -> str:
    settings = config.settings()
    where = (f"snippet depths on disk ({config.storage_dir})" if config.storage_dir
             else "snippet depths in RAM")
    model = config.checkpoint or "random " + config.arch
    lines = [
        f"RollingDepth memory benchmark: {device_name}, model {model}, "
        f"dtype {config.dtype}, frames {config.input_size[1]}x{config.input_size[0]} at resolution "
        f"{settings.processing_resolution}, dilations {settings.dilations}, refine {settings.refine_steps}, "
        f"{where}",
        "",
        f"{'frames':>8}{'peak VRAM MiB':>15}{'peak RSS MiB':>14}{'RSS growth MiB':>16}"
        f"{'heap growth MiB':>17}{'mapped file MiB':>17}{'batches':>10}{'seconds':>10}",
    ]

    def mib(value) -> str:
        return "n/a" if value is None else f"{value / MIB:.1f}"

    for r in rows:
        lines.append(
            f"{r['frames']:>8}{mib(r['peak_vram']):>15}{mib(r['peak_rss']):>14}{mib(r['rss_growth']):>16}"
            f"{mib(r['anon_growth']):>17}{mib(r['peak_file']):>17}"
            f"{str(r['snippets_per_batch']) + '/' + str(r['vae_batch_size']):>10}{r['seconds']:>10.1f}"
        )
    per_frame = {k: slope(rows, k) for k in ("peak_vram", "rss_growth", "anon_growth")}
    lines.append("")
    lines.append("growth per frame (least squares): " + ", ".join(
        f"{k} {'n/a' if v is None else f'{v / 1024:.1f} KiB'}" for k, v in per_frame.items()
    ))
    lines.append("inherent host bytes per frame: " + ", ".join(
        f"{k} {v / 1024:.1f} KiB" for k, v in inherent.items()
    ) + f" (total {sum(inherent.values()) / 1024:.1f} KiB)")
    lines.append(f"(1 GiB = {GIB / MIB:.0f} MiB; heap = anonymous resident memory, sampled every 20 ms)")
    return "\n".join(lines) + "\n"
