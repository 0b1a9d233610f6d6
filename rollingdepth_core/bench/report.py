"""Benchmark output: the results table (markdown) and the error-over-time figure."""

from __future__ import annotations

from pathlib import Path

from .files import save_figure_atomic

METHOD_LABELS = {
    "naive": "naive per-frame mean",
    "reference": "reference (Adam, 2000 it.)",
    "fast": "fast (default)",
    "robust": "robust (other objective)",
}
HEADER = (
    "| case | method | objective | AbsRel % | delta1 % | TC | optimise s | merge s | total s "
    "| speed-up | peak RSS GiB |"
)


def speedups(results: list[dict]) -> dict[tuple[str, str], float]:
    """Reference time / method time, per (case, method), where the case ran the reference."""
    reference = {r["case"]: r["total_s"] for r in results if r["method"] == "reference"}
    return {
        (r["case"], r["method"]): reference[r["case"]] / r["total_s"]
        for r in results
        if r["case"] in reference and r["method"] not in ("naive", "reference")
    }


def format_table(results: list[dict], titles: dict[str, str]) -> str:
    """One markdown table: a row per case and method."""
    ratio = speedups(results)
    lines = [HEADER, "|" + "---|" * (HEADER.count("|") - 1)]
    for r in results:
        speed = ratio.get((r["case"], r["method"]))
        lines.append(
            f"| {titles[r['case']]} | {METHOD_LABELS.get(r['method'], r['method'])} "
            f"| {r['objective']:.5f} | {r['absrel']:.2f} | {r['delta1']:.2f} "
            f"| {r['temporal_error']:.5f} | {r['solve_s']:.2f} | {r['merge_s']:.2f} "
            f"| {r['total_s']:.2f} | {f'{speed:.1f}x' if speed else '-'} | {r['peak_gib']:.2f} |"
        )
    return "\n".join(lines) + "\n"


def plot_error_over_time(results: list[dict], case: str, title: str, path: Path) -> None:
    """Per-frame AbsRel of each method over the clip, and one image row over time."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    rows = [r for r in results if r["case"] == case]
    if not rows:
        return
    figure = plt.figure(figsize=(9, 6.2), dpi=90)
    grid = figure.add_gridspec(2, len(rows) + 1, height_ratios=(1.0, 1.1))
    curve = figure.add_subplot(grid[0, :])
    styles = {"naive": ("tab:gray", "-"), "reference": ("tab:red", "-"),
              "fast": ("tab:blue", "--"), "robust": ("tab:green", "-")}
    for r in rows:
        color, line = styles.get(r["method"], ("black", "-"))
        curve.plot(r["frame_absrel"], color=color, linestyle=line, linewidth=1.2,
                   label=f"{METHOD_LABELS.get(r['method'], r['method'])}: {r['absrel']:.1f} %")
    curve.set_xlabel("frame")
    curve.set_ylabel("AbsRel % (one fit per video)")
    curve.set_title(f"Error over time, {title}")
    curve.legend(fontsize=8, loc="upper left")
    curve.grid(alpha=0.3)
    truth = np.asarray(rows[0]["truth_profile"])
    low, high = float(truth.min()), float(truth.max())
    panels = [("ground truth", truth)] + [
        (METHOD_LABELS.get(r["method"], r["method"]).split(" (")[0], np.asarray(r["profile"]))
        for r in rows
    ]
    for number, (label, image) in enumerate(panels):
        axis = figure.add_subplot(grid[1, number])
        axis.imshow(image, aspect="auto", cmap="magma", vmin=low, vmax=high,
                    interpolation="nearest")
        axis.set_title(label, fontsize=8)
        axis.set_xticks([])
        axis.set_ylabel("frame" if number == 0 else "")
        if number:
            axis.set_yticks([])
    figure.text(0.5, 0.01, f"temporal profile: image row {rows[0]['profile_row']} over time "
                "(aligned inverse depth, same colour scale)", ha="center", fontsize=8)
    figure.tight_layout(rect=(0, 0.03, 1, 1))
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        save_figure_atomic(figure, path)
    finally:
        plt.close(figure)


SWEEP_HEADER = (
    "| clip | frames | dilations | reference objective | fast objective | fast / reference "
    "| raw video max diff | normalised max diff | note |"
)


def format_sweep(rows: list[dict]) -> str:
    """The sweep table (`sweep.compare` rows) and its summary line."""
    from .sweep import note, summary

    lines = [SWEEP_HEADER, "|" + "---|" * (SWEEP_HEADER.count("|") - 1)]
    for r in rows:
        lines.append(
            f"| {r['clip']} | {r['frames']} | {','.join(map(str, r['dilations']))} "
            f"| {r['reference']:.6f} | {r['fast']:.6f} | {r['ratio']:.5f} "
            f"| {r['raw_difference']:.1e} | {r['normalized_difference']:.1e} | {note(r)} |"
        )
    total = summary(rows)
    lines.append(
        f"\n{total['clips']} clips: fast / reference worst {total['worst_ratio']:.5f}, "
        f"median {total['median_ratio']:.5f}; raw merged video max difference "
        f"{total['worst_raw']:.1e} over the {total['comparable']} clips without a note; "
        f"normalised video max difference {total['worst_normalized']:.1e} over all."
    )
    return "\n".join(lines) + "\n"


def format_failures(failures: list[dict]) -> str:
    """A list of the cases that could not be measured (empty string when none failed)."""
    if not failures:
        return ""
    lines = [f"FAILED ({len(failures)}): these cases have no row above."]
    lines += [f"- {f['case']}: {f['error']}" for f in failures]
    return "\n".join(lines) + "\n"
