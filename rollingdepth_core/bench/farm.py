"""``python -m rollingdepth_core.bench farm``: what the farm gains, and what it costs.

1. Shots per minute with 1 and with 2 workers on the same shot list, one after the other in
   one run (the ratio is the scaling), through the farm command itself (worker start and
   model load included).
2. One shot with ``--shard`` over the workers: bytes the driver gathered and sent per frame
   (object store), and the result against the same shot done whole (max abs difference).
3. The driver's co-alignment (the fast solver) in seconds per 1000 frames, on simulated
   snippet depths of a synthetic clip (the one stage a sharded shot cannot spread).
4. FLOPs per frame of the full-size model at a processing size (`bench.flops`), for the
   README's scaling model.

Needs the farm extra (Ray). Runs on a CPU with the tiny test checkpoint by default.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import sys
import tempfile
import time
from pathlib import Path

import torch

from .files import refuse_existing, write_text_atomic


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--model", default=None,
                        help="checkpoint folder (default: the tiny test checkpoint in ../shared/golden)")
    parser.add_argument("--shots", type=int, default=4, help="shots in the list (default 4)")
    parser.add_argument("--frames", type=int, default=24, help="frames per shot (default 24)")
    parser.add_argument("--size", default="48x64", help="frame size HxW (default 48x64)")
    parser.add_argument("--workers", type=int, default=2, help="the larger worker count (default 2)")
    parser.add_argument("--coalign-frames", type=int, default=1000, help="frames of the co-alignment run")
    parser.add_argument("--coalign-size", default="64x96", help="HxW of the co-alignment run (default 64x96)")
    parser.add_argument("--flops-size", default="432x768", help="HxW for the FLOP counts (default 432x768)")
    parser.add_argument("--gpu-tflops", type=float, default=400.0,
                        help="effective fp16 TFLOP/s of one GPU for the scaling model "
                        "(default 400: ~40%% of an H100's dense peak)")
    parser.add_argument("--coalign-s-per-1000", type=float, default=17.8,
                        help="driver co-alignment seconds per 1000 frames at 768x432 for the scaling model "
                        "(default 17.8: the README's co-alignment benchmark, 1000 frames, fast dilations)")
    parser.add_argument("--out", type=Path, default=None, help="work folder (default: a temporary one)")
    parser.add_argument("--json", type=Path, default=None, help="also write the figures here")
    parser.add_argument("--overwrite", action="store_true",
                        help="replace an existing --json file (without it, it stops the command)")


def _size(text: str) -> tuple[int, int]:
    height, width = (int(v) for v in text.lower().split("x"))
    return height, width


def default_model() -> Path:
    here = Path(__file__).resolve().parents[2]
    roots = (os.environ.get("ROLLINGDEPTH_GOLDEN", ""), *(str(p / "shared" / "golden") for p in here.parents),
             "/work/shared/golden")
    for root in roots:
        if root and (Path(root) / "tiny_v1" / "model" / "model_index.json").is_file():
            return Path(root) / "tiny_v1" / "model"
    raise SystemExit("No --model given and the tiny test checkpoint was not found.")


def make_shots(folder: Path, count: int, frames: int, size: tuple[int, int]) -> Path:
    """``count`` synthetic clips and a CSV shot list naming them."""
    from ..evaluation.edited_clips import edited_clip
    from ..io.export import save_video

    folder.mkdir(parents=True, exist_ok=True)
    lines = ["path"]
    for i in range(count):
        rgb = (edited_clip(frames, (), *size).roll(7 * i, dims=3).permute(0, 2, 3, 1) + 1) / 2
        save_video(folder / f"shot{i:02d}.mp4", rgb, fps=24)
        lines.append(f"shot{i:02d}.mp4")
    (folder / "shots.csv").write_text("\n".join(lines) + "\n")
    return folder / "shots.csv"


def farm_run(shot_list: Path, out: Path, model: Path, workers: int, extra: list[str]) -> float:
    """Seconds the farm command takes on the list (a fresh OUTDIR)."""
    from ..farm.cli import main

    tic = time.perf_counter()
    code = main([str(shot_list), "-o", str(out), "-m", str(model), "--workers", str(workers), "-r", "0",
                 "--outputs", "npz", "-q", *extra])
    seconds = time.perf_counter() - tic
    if code != 0:
        raise SystemExit(f"the farm run into {out} failed (exit {code})")
    return seconds


def sharded_bytes(ray, model: Path, clip: Path, workers: int) -> dict:
    """Bytes per frame a sharded shot moves, and its result against the whole-shot farm result."""
    from ..cli import normalize_args
    from ..farm.cli import build_parser
    from ..farm.cluster import plan_workers
    from ..farm.shard import estimate_depth_sharded
    from ..farm.shard_worker import ShardWorker
    from ..farm.worker import ModelSpec

    args = normalize_args(build_parser().parse_args([str(clip), "-o", "unused", "-m", str(model), "-r", "0"]))
    options = {**vars(args), "input": clip, "split_at_cuts": False}
    plan = plan_workers(ray.cluster_resources(), workers, 0, None)
    actor = ray.remote(ShardWorker).options(num_cpus=plan.num_cpus, num_gpus=0)
    pool = [actor.remote(i + 1, ModelSpec(str(model)), int(plan.num_cpus)) for i in range(workers)]
    try:
        result = estimate_depth_sharded(ray, pool, options)
    finally:
        for worker in pool:
            ray.kill(worker)
    frames = len(result.depth)
    return {"frames": frames, "gathered_bytes_per_frame": result.gathered_bytes / frames,
            "sent_bytes_per_frame": result.sent_bytes / frames, "timings": result.timings,
            "depth": result.depth}


def coalign_seconds(num_frames: int, size: tuple[int, int]) -> dict:
    """Seconds of the fast co-alignment + merge on simulated snippets of ``num_frames`` frames."""
    from ..coalign.methods import coalign_depth
    from ..evaluation.snippet_simulation import simulate_snippets
    from ..evaluation.synthetic import render_inverse_depth
    from ..presets import PRESETS
    from ..stages.snippets import plan_snippets

    truth = render_inverse_depth(num_frames, *size)
    results = {}
    for preset in ("fast", "full"):
        plan = plan_snippets(num_frames, PRESETS[preset].dilations)
        snippets = simulate_snippets(truth, plan, seed=0, dtype=torch.float16).snippets
        tic = time.perf_counter()
        coalign_depth(snippets, "fast")
        results[preset] = time.perf_counter() - tic
    return results


def full_model_flops(size: tuple[int, int]) -> dict:
    """FLOPs per frame of the published architecture at ``size`` (padded to 8), fast and full."""
    from ..bench.architectures import unet_config, vae_config
    from ..bench.flops import call_flops
    from ..presets import PRESETS

    padded = tuple(-(-s // 8) * 8 for s in size)
    calls = call_flops(unet_config("full"), vae_config("full"), padded, 3)
    per_frame = {}
    for preset in ("fast", "full"):
        p = PRESETS[preset]
        groups = len(p.dilations)  # ~N snippets per dilation, 3 frames each, every frame decoded
        denoise = groups * (calls.unet_snippet + 3 * calls.decode_frame)
        refine = p.refine_steps * calls.unet_snippet
        if p.refine_steps:
            refine += calls.encode_frame + calls.decode_frame  # the depth in, the refined depth out
        per_frame[preset] = {"encode": calls.encode_frame, "denoise": denoise, "refine": refine}
    return {"unet_snippet": calls.unet_snippet, "decode_frame": calls.decode_frame,
            "encode_frame": calls.encode_frame, "per_frame": per_frame}


def shard_bytes_per_frame(
    preset: str, size: tuple[int, int], workers: int, num_frames: int = 1000, store_bytes: int | None = None,
    refine_steps: int | None = None,
) -> dict:
    """Bytes per frame a sharded shot moves through the driver, by arithmetic (what `farm.shard`
    sends): gathered = RGB latents + snippet depths + the refinement's starting latents, per-step
    sums and counts + the depth; sent = the latents to every worker (once, and per step) + the
    co-aligned depth + the final latents."""
    from ..presets import PRESETS
    from ..stages.denoise import storage_dtype_for
    from ..stages.snippets import plan_snippets

    p = PRESETS[preset]
    if refine_steps is not None:
        p = dataclasses.replace(p, refine_steps=refine_steps)
    height, width = size
    latent = 4 * 4 * -(-height // 8) * -(-width // 8)  # float32 `4 h w`
    plan = plan_snippets(num_frames, p.dilations, p.snippet_length, p.cap_dilation)
    if store_bytes is None:  # fp16 snippet depths unless the model runs in fp32
        store_bytes = storage_dtype_for(torch.float32 if p.dtype == "fp32" else torch.float16).itemsize
    predictions = sum(g.num_snippets * g.snippet_length for g in plan.groups) / num_frames
    gathered = latent + predictions * height * width * store_bytes
    sent = workers * latent
    if p.refine_steps:
        gathered += latent + p.refine_steps * (latent + 4) + 4 * height * width
        sent += 4 * height * width + p.refine_steps * workers * latent + latent
    return {"gathered": gathered, "sent": sent, "predictions_per_frame": predictions}


def scaling(flops_per_frame: float, bytes_per_frame: float, coalign_s_per_frame: float, gpus: int,
            tflops: float, bandwidth: float) -> dict:
    """Seconds per frame of one long shot on one GPU and sharded over ``gpus`` (compute spread,
    co-alignment on the driver, every byte through the driver's link of ``bandwidth`` bytes/s)."""
    compute = flops_per_frame / (tflops * 1e12)
    one = compute + coalign_s_per_frame
    sharded = compute / gpus + coalign_s_per_frame + bytes_per_frame / bandwidth
    return {"one_gpu": one, "sharded": sharded, "speedup": one / sharded,
            "break_even_bandwidth": bytes_per_frame / (compute * (1 - 1 / gpus))}


SCALING_CASES = (("fast", (432, 768)), ("full", (576, 1024)))
BANDWIDTHS = (("1 GbE", 1.25e8), ("10 GbE", 1.25e9), ("100 GbE", 1.25e10))


def scaling_table(tflops: float, coalign_s_per_frame_768: float) -> list[dict]:
    """The scaling model's rows: per preset, GPUs and link, one long shot's seconds per frame."""
    rows = []
    for preset, size in SCALING_CASES:
        flops = sum(full_model_flops(size)["per_frame"][preset].values())
        pixels = size[0] * size[1] / (432 * 768)
        predictions = shard_bytes_per_frame(preset, size, 1)["predictions_per_frame"]
        coalign = coalign_s_per_frame_768 * pixels * predictions / 6  # merge and data scale with both
        for gpus in (2, 4, 8):
            sent_and_gathered = shard_bytes_per_frame(preset, size, gpus)
            moved = sent_and_gathered["gathered"] + sent_and_gathered["sent"]
            for link, bandwidth in BANDWIDTHS:
                rows.append({"preset": preset, "size": f"{size[1]}x{size[0]}", "gpus": gpus, "link": link,
                             "bytes_per_frame": moved, "tflop_per_frame": flops / 1e12,
                             **scaling(flops, moved, coalign, gpus, tflops, bandwidth)})
    return rows


def run(args: argparse.Namespace) -> int:
    """Measure, print the report, and write it to ``--json`` when given (an existing file stops
    the command first, unless ``--overwrite``)."""
    refuse_existing([args.json], args.overwrite, "bench farm")
    report = measure(args)
    print_report(report, args)
    if args.json:
        write_text_atomic(args.json, json.dumps(report, indent=2, default=str))
    return 0


def measure(args: argparse.Namespace) -> dict:
    """Every figure of the benchmark (see the module's docstring), as one report."""
    from ..farm.cluster import require_ray
    from ..farm.manifest import Manifest

    ray = require_ray()

    model = Path(args.model) if args.model else default_model()
    size = _size(args.size)
    work = args.out or Path(tempfile.mkdtemp(prefix="rollingdepth-bench-farm-"))
    torch.set_num_threads(1)
    report: dict = {"date": time.strftime("%Y-%m-%d"), "cpus": os.cpu_count(), "model": str(model),
                    "shots": args.shots, "frames_per_shot": args.frames, "size": args.size}
    shot_list = make_shots(work / "clips", args.shots, args.frames, size)
    tic = time.perf_counter()
    ray.init(num_cpus=max(args.workers, os.cpu_count() or 1), include_dashboard=False,
             logging_level="WARNING", object_store_memory=512 * 2**20)
    report["ray_start_s"] = time.perf_counter() - tic
    try:
        per_count = {}
        for workers in (1, args.workers):
            seconds = farm_run(shot_list, work / f"out_{workers}", model, workers, [])
            busy = sum(r.seconds for r in Manifest(work / f"out_{workers}").records())
            per_count[workers] = {"seconds": seconds, "shots_per_minute": 60 * args.shots / seconds,
                                  "worker_seconds": busy}
        report["queue"] = per_count
        report["queue_ratio"] = per_count[args.workers]["shots_per_minute"] / per_count[1]["shots_per_minute"]
        shard = sharded_bytes(ray, model, work / "clips" / "shot00.mp4", args.workers)
        import numpy as np

        with np.load(work / "out_1" / "shot00" / "shot00_depth.npz") as data:
            whole = torch.from_numpy(data["inverse_depth"])
        shard["max_abs_vs_whole"] = float((shard.pop("depth") - whole).abs().max())
        # the same by arithmetic (a CPU runs fp32, so the snippet depths are kept in fp32)
        formula = shard_bytes_per_frame("fast", size, args.workers, shard["frames"], store_bytes=4)
        shard["formula_gathered_per_frame"] = formula["gathered"]
        shard["formula_sent_per_frame"] = formula["sent"]
        report["shard"] = shard
    finally:
        ray.shutdown()
    coalign = coalign_seconds(args.coalign_frames, _size(args.coalign_size))
    report["coalign_s_per_1000_frames"] = {k: v * 1000 / args.coalign_frames for k, v in coalign.items()}
    report["coalign_size"] = args.coalign_size
    report["flops"] = full_model_flops(_size(args.flops_size))
    report["flops_size"] = args.flops_size
    report["scaling"] = scaling_table(args.gpu_tflops, args.coalign_s_per_1000 / 1000)
    return report


def print_report(report: dict, args: argparse.Namespace) -> None:
    out = sys.stdout
    out.write(f"RollingDepth farm benchmark, {report['date']}, {report['cpus']} CPU(s), "
              f"model {report['model']}\n")
    out.write(f"shot list: {report['shots']} shots x {report['frames_per_shot']} frames at {report['size']}; "
              f"local Ray started in {report['ray_start_s']:.1f} s\n\n")
    out.write("workers   wall s   shots/min   worker-busy s\n")
    for workers, row in report["queue"].items():
        out.write(f"{workers:7d} {row['seconds']:8.1f} {row['shots_per_minute']:11.2f} "
                  f"{row['worker_seconds']:15.1f}\n")
    out.write(f"ratio {args.workers} vs 1 worker: {report['queue_ratio']:.2f}x\n\n")
    shard = report["shard"]
    out.write(f"--shard over {args.workers} workers, one shot of {shard['frames']} frames: "
              f"gathered {shard['gathered_bytes_per_frame'] / 1024:.1f} KiB/frame, "
              f"sent {shard['sent_bytes_per_frame'] / 1024:.1f} KiB/frame; "
              f"max |sharded - whole| {shard['max_abs_vs_whole']:.2e}\n")
    timing = ", ".join(f"{k} {v:.2f} s" for k, v in shard["timings"].items())
    out.write(f"  stages: {timing}\n\n")
    per = report["coalign_s_per_1000_frames"]
    out.write(f"driver co-alignment (fast solver, {report['coalign_size']}): "
              f"{per['fast']:.2f} s per 1000 frames (fast preset dilations), {per['full']:.2f} s (full)\n\n")
    flops = report["flops"]
    out.write(f"full-size model at {report['flops_size']}: UNet {flops['unet_snippet'] / 1e9:.1f} GFLOP per "
              f"snippet, decoder {flops['decode_frame'] / 1e9:.1f} GFLOP/frame, encoder "
              f"{flops['encode_frame'] / 1e9:.1f} GFLOP/frame\n")
    for preset, parts in flops["per_frame"].items():
        total = sum(parts.values())
        out.write(f"  {preset}: {total / 1e12:.2f} TFLOP per frame ("
                  + ", ".join(f"{k} {v / 1e12:.2f}" for k, v in parts.items()) + ")\n")
    if "formula_gathered_per_frame" in shard:
        out.write(f"  (--shard bytes by arithmetic for that shot: gathered "
                  f"{shard['formula_gathered_per_frame'] / 1024:.1f} KiB/frame, sent "
                  f"{shard['formula_sent_per_frame'] / 1024:.1f} KiB/frame)\n")
    rows = report.get("scaling", [])
    if rows:
        out.write(f"\nscaling model, one long shot sharded (GPU at {args.gpu_tflops:g} TFLOP/s effective; "
                  "co-alignment on the driver; every byte through the driver's link):\n")
        out.write("preset  size       GPUs  link     MB/frame  s/frame 1 GPU  s/frame sharded  speed-up  "
                  "pays above MB/s\n")
        for r in rows:
            out.write(f"{r['preset']:6s}  {r['size']:9s}  {r['gpus']:4d}  {r['link']:7s}  "
                      f"{r['bytes_per_frame'] / 1e6:8.2f}  {r['one_gpu']:13.3f}  {r['sharded']:15.3f}  "
                      f"{r['speedup']:7.2f}x  {r['break_even_bandwidth'] / 1e6:15.0f}\n")

