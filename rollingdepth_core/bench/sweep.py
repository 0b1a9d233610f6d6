"""Co-alignment sweep (issue 12): `fast` against the reference's Adam on many tiny-model clips.

Each clip is the snippet depths of a tiny random checkpoint (`tiny_checkpoint`, tiny_v1's
recipe with its own seed) on a synthetic clip (`synthetic_frames.SyntheticSource`) at its
own size (odd sizes included), length (short clips cap the dilations; up to 1000 frames)
and dilation set. Both solvers run on the same snippets; the table gives the objective
ratio fast / reference and how far the raw merged videos (min-subtracted units, what
`merge_aligned` returns) and the normalised ones (-1..1, what refinement consumes) are apart.
The golden clips (`tiny_v1/case_a`, `align_small`) are compared with the authors' own
Adam result stored there.

Inputs are generated once and cached (a few MB per clip); the reference's Adam runs every
time (2000 steps per clip: the sweep takes ~10 minutes on 2 cores).
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from pathlib import Path

import torch

from ..coalign.merge import merge_aligned, normalize_depth
from ..coalign.methods import coalign
from ..stages.snippets import plan_snippets
from ..types import Alignment, RunBatches, SnippetDepths

logger = logging.getLogger(__name__)

SNIPPET_LENGTH = 3
CACHE_VERSION = 1  # bump when the way clips are made changes


@dataclass(frozen=True)
class SweepClip:
    """One clip of the sweep.

    Attributes:
        seed: seed of the tiny checkpoint's weights, the synthetic frames and the noise.
        num_frames, height, width: clip size (processed at this size).
        dilations: dilations asked for (capped on short clips, as the pipeline does).
    """

    seed: int
    num_frames: int
    height: int
    width: int
    dilations: tuple[int, ...]

    @property
    def name(self) -> str:
        dilations = ",".join(map(str, self.dilations))
        return f"seed {self.seed}, {self.num_frames} x {self.width}x{self.height}, d {dilations}"

    @property
    def key(self) -> str:
        dilations = "-".join(map(str, self.dilations))
        return (f"v{CACHE_VERSION}_s{self.seed}_n{self.num_frames}_{self.width}x{self.height}"
                f"_d{dilations}")


SWEEP_CLIPS = (
    SweepClip(2000, 57, 56, 80, (1, 5, 12)),  # the layout: 57 frames at 80x56, 1/5/12
    SweepClip(2001, 57, 56, 80, (1, 5, 12)),
    SweepClip(2002, 40, 48, 64, (1, 10)),
    SweepClip(2003, 250, 64, 96, (1, 10, 25)),
    SweepClip(2004, 9, 40, 64, (1, 3)),  # short: 3 capped to 2
    SweepClip(2005, 5, 45, 61, (1, 10, 25)),  # short, odd: everything capped to 1
    SweepClip(2006, 20, 61, 83, (1, 10, 25)),  # odd, capped to 1, 5
    SweepClip(2007, 100, 53, 71, (1, 10, 25)),
    SweepClip(2008, 3, 48, 48, (1, 2)),  # one snippet: nothing to align
    SweepClip(2009, 130, 67, 121, (1, 4, 16)),
    SweepClip(2010, 1000, 40, 56, (1, 10, 25)),
    SweepClip(2011, 75, 90, 150, (1, 25)),  # 25 capped to 24
    SweepClip(2012, 33, 57, 77, (1, 2, 4, 8)),
    SweepClip(2013, 16, 64, 64, (1, 5)),  # 5 capped to 4
    SweepClip(2014, 200, 41, 99, (1, 6, 15)),
    SweepClip(2015, 12, 72, 40, (1, 10, 25)),  # portrait, capped to 1, 3
    SweepClip(2016, 2, 48, 64, (1,)),  # shorter than a snippet
    SweepClip(2017, 4, 33, 47, (1, 2)),
    SweepClip(2018, 30, 56, 80, (1, 10)),
    SweepClip(2019, 60, 49, 87, (1, 3, 9)),
    SweepClip(2020, 90, 64, 48, (1, 5, 12)),
    SweepClip(2021, 150, 56, 80, (1, 10, 25)),
    SweepClip(2022, 1000, 48, 64, (1, 25)),
    SweepClip(2023, 45, 80, 112, (1, 5, 12)),
    SweepClip(2024, 25, 37, 53, (1, 4)),
    SweepClip(2025, 8, 64, 96, (1, 10, 25)),  # all capped to 1
    SweepClip(2026, 14, 59, 59, (1, 3, 6)),
    SweepClip(2027, 320, 40, 64, (1, 10, 25)),
    SweepClip(2028, 500, 40, 56, (1, 8, 20)),
    SweepClip(2029, 70, 72, 128, (1, 7)),
    SweepClip(2030, 18, 50, 70, (1, 2, 3, 5)),
    SweepClip(2031, 110, 45, 45, (1, 11, 22)),
)


@dataclass(frozen=True)
class AffineClip:
    """Snippets that are exact affine copies of one random positive video (each snippet its
    own gain x0.82..x1.22 and offset +-0.1), frames so small that only 2-12 optimisation
    pixels per frame remain: the solvers' hardest case (issue 12; the first one is the
    7-frame clip of `tests/coalign/test_fast.py::affine_snippets`). No model needed.

    Attributes:
        seed, num_frames, height, width: as `SweepClip`; dilations 1 / 10 / 25 (capped).
    """

    seed: int
    num_frames: int
    height: int
    width: int

    @property
    def name(self) -> str:
        return f"affine seed {self.seed}, {self.num_frames} x {self.width}x{self.height}"

    def snippets(self) -> SnippetDepths:
        plan = plan_snippets(self.num_frames, (1, 10, 25), SNIPPET_LENGTH)
        generator = torch.Generator().manual_seed(self.seed)
        base = torch.rand(self.num_frames, self.height, self.width, generator=generator) + 0.5
        depths = []
        for group in plan.groups:
            gain = torch.exp((torch.rand(group.num_snippets, generator=generator) * 2 - 1) * 0.2)
            offset = (torch.rand(group.num_snippets, generator=generator) * 2 - 1) * 0.1
            depths.append(base[group.indices] * gain[:, None, None, None]
                          + offset[:, None, None, None])
        return SnippetDepths(plan, tuple(depths))


AFFINE_CLIPS = (
    AffineClip(7, 7, 12, 16),  # the test's clip: fast was 9 % above the reference
    AffineClip(12, 12, 12, 16),
    AffineClip(1, 7, 12, 16),
    AffineClip(5, 12, 12, 16),
    AffineClip(9, 9, 12, 16),
    AffineClip(21, 8, 12, 16),
    AffineClip(24, 7, 16, 20),
    AffineClip(27, 9, 24, 32),
)


def clip_plan(clip: SweepClip):
    return plan_snippets(clip.num_frames, clip.dilations, SNIPPET_LENGTH, True)


def prepare_clip(clip: SweepClip, cache_dir: Path) -> Path:
    """Make (or reuse) the clip's snippet depths: `<cache>/sweep/<key>.safetensors`."""
    from safetensors.torch import save_file

    path = cache_dir / "sweep" / f"{clip.key}.safetensors"
    if path.is_file():
        return path
    from ..model.checkpoint import load_model
    from ..stages.denoise import predict_snippets
    from .synthetic_frames import SyntheticSource
    from .tiny_checkpoint import write_tiny_checkpoint

    folder = cache_dir / "sweep" / "models" / f"tiny_{clip.seed}"
    if not (folder / "model_index.json").is_file():
        write_tiny_checkpoint(folder, clip.seed)
    model = load_model(folder, device="cpu", dtype="fp32", allow_download=False)
    plan = clip_plan(clip)
    frames = SyntheticSource(clip.num_frames, (clip.height, clip.width), seed=clip.seed)
    with torch.inference_mode():
        snippets = predict_snippets(model, frames, plan, 0, seed=clip.seed,
                                    batches=RunBatches(16, 8))
    tensors = {f"depth_{i}": d.float().contiguous() for i, d in enumerate(snippets.depths)}
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_suffix(".partial")
    save_file(tensors, str(partial))
    partial.replace(path)  # atomic: a cached clip is always complete
    return path


def load_clip(clip: SweepClip, path: Path) -> SnippetDepths:
    from safetensors.torch import load_file

    tensors = load_file(str(path))
    plan = clip_plan(clip)
    return SnippetDepths(plan, tuple(tensors[f"depth_{i}"] for i in range(len(plan.groups))))


def golden_clips(golden: Path) -> list[tuple[str, SnippetDepths, Alignment]]:
    """case_a and align_small with the authors' Adam result (scales, shifts) as reference."""
    from safetensors.torch import load_file

    clips = []
    for name, file, num_frames, dilations in (
        ("golden tiny_v1/case_a", golden / "tiny_v1" / "case_a.safetensors", 40, (1, 10)),
        ("golden align_small", golden / "align_small" / "align_small.safetensors", 250, (1, 10, 25)),
    ):
        tensors = load_file(str(file))
        plan = plan_snippets(num_frames, dilations, SNIPPET_LENGTH)
        depths = tuple(tensors[f"snippet_depth_d{d}"][:, :, 0] for d in dilations)
        snippets = SnippetDepths(plan, depths)
        reference = Alignment(
            scales=tuple(tensors[f"coalign_scale_d{d}"].flatten() for d in dilations),
            shifts=tuple(tensors[f"coalign_translation_d{d}"].flatten() for d in dilations),
            offset=float("nan"), objective=float("nan"), method="reference (authors)",
        )
        clips.append((name, snippets, reference))
    return clips


def compare(name: str, snippets: SnippetDepths, reference: Alignment | None = None) -> dict:
    """Run fast (and the reference's Adam unless given) on one clip; objective and videos."""
    from ..coalign.problem import CoalignSettings, objective_value, prepare_problem

    tic = time.perf_counter()
    if reference is None:
        reference = coalign(snippets, "reference")
    reference_s = time.perf_counter() - tic
    tic = time.perf_counter()
    with StartWins() as start:
        fast = coalign(snippets, "fast")
    fast_s = time.perf_counter() - tic
    problem = prepare_problem(snippets, CoalignSettings())
    reference = Alignment(reference.scales, reference.shifts, problem.offset,
                          objective_value(problem, reference.scales, reference.shifts,
                                          CoalignSettings()), reference.method)
    merged_fast = merge_aligned(snippets, fast)
    merged_reference = merge_aligned(snippets, reference)
    return {
        "clip": name,
        "frames": snippets.plan.num_frames,
        "dilations": list(snippets.plan.dilations),
        "reference": reference.objective,
        "fast": fast.objective,
        "ratio": objective_ratio(fast.objective, reference.objective),
        "raw_difference": float((merged_fast - merged_reference).abs().max()),
        "normalized_difference": float(
            (normalize_depth(merged_fast) - normalize_depth(merged_reference)).abs().max()),
        "reference_mean_scale": mean_scale(reference),
        "fast_mean_scale": mean_scale(fast),
        "start_won": start.seen,
        "reference_s": reference_s,
        "fast_s": fast_s,
    }


class StartWins(logging.Handler):
    """Notices the fast solver's log line saying the start (scales 1, shifts 0) won."""

    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.seen = False

    def emit(self, record: logging.LogRecord) -> None:
        self.seen = self.seen or "the start" in record.getMessage()

    def __enter__(self) -> StartWins:
        logging.getLogger("rollingdepth_core.coalign.fast").addHandler(self)
        return self

    def __exit__(self, *exc) -> None:
        logging.getLogger("rollingdepth_core.coalign.fast").removeHandler(self)


def objective_ratio(fast: float, reference: float) -> float:
    """fast / reference (1 when both are 0: a clip with one prediction per frame)."""
    if reference == 0.0:
        return 1.0 if fast == 0.0 else float("inf")
    return fast / reference


def mean_scale(alignment: Alignment) -> float:
    return float(torch.cat([s.float() for s in alignment.scales]).mean())


def run_sweep(cache_dir: Path, golden: Path | None, clips: tuple[SweepClip, ...] = SWEEP_CLIPS,
              affine: tuple[AffineClip, ...] = AFFINE_CLIPS) -> tuple[list[dict], list[dict]]:
    """Every clip: the golden ones, the affine ones, then the tiny-model ones (prepared once,
    cached), each compared. Returns (rows, failures)."""
    rows, failures = [], []
    if golden is None:
        failures.append({"case": "sweep: golden clips", "error": "golden data not found"})
    else:
        for name, snippets, reference in golden_clips(golden):
            rows.append(compare(name, snippets, reference))
    for clip in affine:
        logger.info("Sweep clip %s ...", clip.name)
        rows.append(compare(clip.name, clip.snippets()))
    for clip in clips:
        logger.info("Sweep clip %s ...", clip.name)
        try:
            snippets = load_clip(clip, prepare_clip(clip, cache_dir))
            rows.append(compare(clip.name, snippets))
        except (OSError, RuntimeError, ValueError) as error:
            failures.append({"case": f"sweep: {clip.name}", "error": f"{type(error).__name__}: {error}"})
            logger.error("  failed: %s", error)
    return rows, failures


DRIFT = 1e-2  # mean scales further apart than this: the reference drifted (see `note`)


def note(row: dict) -> str:
    """Why a clip's raw videos may differ: the start won, or the reference's scale drifted."""
    if row["start_won"]:
        return "start won"
    if abs(row["reference_mean_scale"] - row["fast_mean_scale"]) > DRIFT:
        return f"reference drifted: mean scale {row['reference_mean_scale']:.3f}"
    return ""


def summary(rows: list[dict]) -> dict:
    """Clip count, worst and median ratio, worst raw difference where comparable (no note),
    worst normalised difference over all clips."""
    ratios = sorted(r["ratio"] for r in rows)
    comparable = [r["raw_difference"] for r in rows if not note(r)]
    return {
        "clips": len(rows),
        "worst_ratio": ratios[-1] if ratios else float("nan"),
        "median_ratio": ratios[len(ratios) // 2] if ratios else float("nan"),
        "comparable": len(comparable),
        "worst_raw": max(comparable, default=float("nan")),
        "worst_normalized": max((r["normalized_difference"] for r in rows), default=float("nan")),
    }


