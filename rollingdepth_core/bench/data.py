"""Benchmark inputs: ground truth and snippet depths, generated once and cached on disk.

Each case directory holds ``truth.bin`` (`N H W` float32), one ``snippets_<k>.bin`` per
dilation group (`s n H W`, the case's storage dtype) and ``meta.json``. Workers read them
back into memory (``storage="memory"``, as the pipeline holds fp16 snippets) or use them
from disk (``storage="disk"``, `DiskTensor`).
"""

from __future__ import annotations

import json
import logging
import os
from dataclasses import asdict, dataclass
from pathlib import Path

import torch

from ..evaluation.snippet_simulation import SnippetNoise, simulate_snippets
from ..evaluation.synthetic import render_inverse_depth
from ..runtime.storage import DiskTensor
from ..stages.snippets import plan_snippets
from ..types import SnippetDepths
from .files import write_text_atomic

logger = logging.getLogger(__name__)

DILATIONS = (1, 10, 25)
SEED = 0


@dataclass(frozen=True)
class Case:
    """One benchmark input.

    Attributes:
        key: short name (command line).
        title: table label.
        num_frames, height, width: clip size.
        methods: methods run on it.
        storage: "memory" or "disk" (how workers hold the snippet depths).
        dtype: snippet storage dtype name ("float16" or "float32").
        source: "synthetic" or "golden" (../shared/golden/align_small).
    """

    key: str
    title: str
    num_frames: int
    height: int
    width: int
    methods: tuple[str, ...]
    storage: str = "memory"
    dtype: str = "float16"
    source: str = "synthetic"


ALL_METHODS = ("naive", "reference", "fast", "robust")
CASES = {
    "golden": Case("golden", "golden align_small, 250 x 96x64 (fp32)", 250, 64, 96, ALL_METHODS,
                   dtype="float32", source="golden"),
    "small": Case("small", "synthetic, 250 x 96x64", 250, 64, 96, ALL_METHODS),
    "large": Case("large", "synthetic, 250 x 768x432", 250, 432, 768, ALL_METHODS),
    "long_small": Case("long_small", "synthetic, 1000 x 96x64", 1000, 64, 96, ALL_METHODS),
    "long": Case("long", "synthetic, 1000 x 768x432, on disk", 1000, 432, 768, ("fast", "robust"),
                 storage="disk"),
}


def find_golden() -> Path | None:
    """The golden folder (ROLLINGDEPTH_GOLDEN, or shared/golden beside the checkout)."""
    root = Path(__file__).resolve().parents[2]
    for candidate in (os.environ.get("ROLLINGDEPTH_GOLDEN", ""), root.parent / "shared" / "golden",
                      root / "shared" / "golden"):
        if candidate and (Path(candidate) / "align_small" / "align_small.safetensors").is_file():
            return Path(candidate)
    return None


def _meta(case: Case) -> dict:
    """What identifies a case's files (as it reads back from JSON)."""
    meta = {"case": asdict(case), "dilations": list(DILATIONS), "seed": SEED,
            "noise": asdict(SnippetNoise()), "version": 1}
    return json.loads(json.dumps(meta))


IDENTITY = ("num_frames", "height", "width", "dtype", "source")  # what the files depend on


def _same_data(stored: dict, meta: dict) -> bool:
    """Whether cached files were made for the same data (labels and methods may differ)."""
    same_case = all(stored["case"].get(k) == meta["case"][k] for k in IDENTITY)
    return same_case and all(stored.get(k) == meta[k] for k in ("dilations", "seed", "noise", "version"))


def prepare_case(case: Case, cache_dir: Path) -> Path:
    """Generate (or reuse) the case's files; returns the case directory."""
    folder = cache_dir / case.key
    meta_path = folder / "meta.json"
    meta = _meta(case)
    if meta_path.is_file() and _same_data(json.loads(meta_path.read_text()), meta):
        write_text_atomic(meta_path, json.dumps(meta, indent=1))
        return folder
    folder.mkdir(parents=True, exist_ok=True)
    meta_path.unlink(missing_ok=True)
    plan = plan_snippets(case.num_frames, DILATIONS, 3)
    dtype = getattr(torch, case.dtype)
    truth = DiskTensor.empty(folder / "truth.bin", (case.num_frames, case.height, case.width),
                             torch.float32)
    if case.source == "golden":
        golden = find_golden()
        if golden is None:
            raise FileNotFoundError("golden align_small not found; set ROLLINGDEPTH_GOLDEN.")
        from safetensors.torch import load_file

        tensors = load_file(golden / "align_small" / "align_small.safetensors")
        truth[...] = tensors["gt_inverse_depth"]
        for number, group in enumerate(plan.groups):
            depth = tensors[f"snippet_depth_d{group.dilation}"][:, :, 0]
            store = DiskTensor.empty(folder / f"snippets_{number}.bin", tuple(depth.shape), dtype)
            store[...] = depth
    else:
        logger.info("Rendering %s ...", case.title)
        render_inverse_depth(case.num_frames, case.height, case.width, out=truth)
        logger.info("Simulating snippets of %s ...", case.title)
        counter = iter(range(len(plan.groups)))
        simulate_snippets(
            truth, plan, SnippetNoise(), seed=SEED, dtype=dtype,
            allocate=lambda shape, dt: DiskTensor.empty(
                folder / f"snippets_{next(counter)}.bin", shape, dt),
        )
    write_text_atomic(meta_path, json.dumps(meta, indent=1))
    return folder


def load_case(folder: Path, storage: str) -> tuple[SnippetDepths, DiskTensor]:
    """Snippet depths (in memory or on disk) and the ground truth (on disk) of a case."""
    meta = json.loads((folder / "meta.json").read_text())
    case = Case(**{**meta["case"], "methods": tuple(meta["case"]["methods"])})
    plan = plan_snippets(case.num_frames, tuple(meta["dilations"]), 3)
    dtype = getattr(torch, case.dtype)
    depths = []
    for number, group in enumerate(plan.groups):
        shape = (group.num_snippets, group.snippet_length, case.height, case.width)
        store = DiskTensor(folder / f"snippets_{number}.bin", shape, dtype)
        depths.append(store if storage == "disk" else store[...])
    truth = DiskTensor(folder / "truth.bin", (case.num_frames, case.height, case.width),
                       torch.float32)
    return SnippetDepths(plan=plan, depths=tuple(depths)), truth
