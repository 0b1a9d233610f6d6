"""Spread benchmark: is the spread of the co-aligned predictions large where the depth is wrong?

On the synthetic clip (`evaluation/synthetic.py`, ground truth known) with model-like snippets
(`evaluation/snippet_simulation.py`: per-snippet normalisation, gain/offset jitter, noise,
outlier pixels, hallucinated blobs), each co-alignment method's merged depth and spread are
compared with the error against the truth (`evaluation/spread_quality.py`): Spearman rank
correlation, mean error per spread decile, and how many of the worst 10 % pixels the top
10 % spread finds. Writes ``spread_benchmark.md``/``.json`` and ``spread_vs_error.png``
(earlier ones there stop the command before any work, unless ``--overwrite``).

    python -m rollingdepth_core.bench spread --frames 250 --size 96x64 --out docs --overwrite
"""

from __future__ import annotations

import argparse
import json
import logging
import time
from pathlib import Path

import torch

from ..coalign.methods import coalign_depth
from ..evaluation.snippet_simulation import SnippetNoise, simulate_snippets
from ..evaluation.spread_quality import spread_error_agreement
from ..evaluation.synthetic import render_inverse_depth
from ..stages.snippets import plan_snippets
from .files import refuse_existing, save_figure_atomic, write_text_atomic

logger = logging.getLogger(__name__)
TABLE, RECORD, FIGURE = "spread_benchmark.md", "spread_benchmark.json", "spread_vs_error.png"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--frames", type=int, default=250, help="clip length (default 250)")
    parser.add_argument("--size", default="96x64", help="WxH of the clip (default 96x64)")
    parser.add_argument("--dilations", default="1,10,25", help="snippet dilations (default 1,10,25)")
    parser.add_argument("--methods", default="fast,robust", help="co-alignment methods (default fast,robust)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the simulated snippets")
    parser.add_argument("--out", type=Path, default=Path("docs"),
                        help=f"folder for {TABLE}, {RECORD} and {FIGURE} (default docs)")
    parser.add_argument("--overwrite", action="store_true",
                        help="replace results already in --out (without it they stop the command)")
    parser.add_argument("--threads", type=int, default=2, help="torch threads")


def measure(frames: int, size: tuple[int, int], dilations: tuple[int, ...], methods: list[str], seed: int):
    """Run each method on one simulated clip; return rows and what the figure needs."""
    width, height = size
    truth = render_inverse_depth(frames, height, width)
    plan = plan_snippets(frames, dilations, 3)
    snippets = simulate_snippets(truth, plan, SnippetNoise(), seed=seed).snippets
    rows, shown = [], {}
    for method in methods:
        tic = time.perf_counter()
        video, _ = coalign_depth(snippets, method, spread=True)
        seconds = time.perf_counter() - tic
        agreement = spread_error_agreement(video.inverse_depth, video.spread, truth)
        rows.append({"method": method, "seconds": seconds, **agreement.__dict__})
        shown[method] = video
        logger.info("%s: Spearman %.3f, top-decile recall %.3f (%.1f s)", method, agreement.spearman,
                    agreement.top_decile_recall, seconds)
    return truth, rows, shown


def table(rows: list[dict], header: str) -> str:
    lines = [header, "",
             "| method | Spearman (spread vs error) | worst 10 % found in top 10 % spread | "
             "mean error, lowest -> highest spread decile (1/m) | pixels |",
             "|---|---|---|---|---|"]
    for row in rows:
        deciles = " / ".join(f"{e:.4f}" for e in row["decile_errors"])
        lines.append(f"| {row['method']} | {row['spearman']:.3f} | {100 * row['top_decile_recall']:.1f} % | "
                     f"{deciles} | {row['num_pixels']} |")
    return "\n".join(lines) + "\n"


def plot(truth, rows, shown, path: Path) -> None:
    """Deciles of every method, and one frame: truth, error, spread (first method)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from ..evaluation.metrics import fit_affine

    method = rows[0]["method"]
    video = shown[method]
    fit = fit_affine(video.inverse_depth, truth)
    error = (video.inverse_depth.double() * fit.scale + fit.shift - truth.double()).abs()
    frame = int(error.flatten(1).mean(1).argmax())
    figure, axes = plt.subplots(1, 4, figsize=(16, 3.4))
    for row in rows:
        axes[0].plot(range(1, 11), row["decile_errors"], marker="o", label=f"{row['method']} "
                     f"(Spearman {row['spearman']:.2f})")
    axes[0].set_xlabel("spread decile (1 = smallest spread)")
    axes[0].set_ylabel("mean |error| (inverse depth, 1/m)")
    axes[0].set_title("error grows with the spread")
    axes[0].legend(fontsize=8)
    panels = ((truth[frame], "ground truth (inverse depth)", "viridis"),
              (error[frame], f"|error| ({method}), frame {frame}", "magma"),
              (video.spread[frame] * abs(fit.scale), f"spread ({method}), frame {frame}", "magma"))
    for axis, (image, title, cmap) in zip(axes[1:], panels, strict=True):
        shown_image = axis.imshow(image.float().numpy(), cmap=cmap)
        axis.set_title(title, fontsize=9)
        axis.axis("off")
        figure.colorbar(shown_image, ax=axis, fraction=0.035)
    figure.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        save_figure_atomic(figure, path, dpi=110)
    finally:
        plt.close(figure)


def run(args: argparse.Namespace) -> int:
    refuse_existing([args.out / name for name in (TABLE, RECORD, FIGURE)], args.overwrite, "bench spread")
    torch.set_num_threads(args.threads)
    width, height = (int(v) for v in args.size.lower().split("x"))
    dilations = tuple(int(d) for d in args.dilations.split(","))
    methods = [m.strip() for m in args.methods.split(",") if m.strip()]
    truth, rows, shown = measure(args.frames, (width, height), dilations, methods, args.seed)
    header = (f"Synthetic clip {args.frames} x {width}x{height}, dilations {args.dilations}, simulated "
              f"snippets (default SnippetNoise, seed {args.seed}); run {time.strftime('%Y-%m-%d %H:%M')}.")
    text = table(rows, header)
    args.out.mkdir(parents=True, exist_ok=True)
    write_text_atomic(args.out / TABLE, text)
    write_text_atomic(args.out / RECORD, json.dumps(rows, indent=1))
    plot(truth, rows, shown, args.out / FIGURE)
    print(text)  # noqa: T201 - the benchmark's report
    return 0
