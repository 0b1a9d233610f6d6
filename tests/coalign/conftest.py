"""Snippet depths from other tiny random checkpoints (issue 12): clips of the co-alignment
sweep (`bench/sweep.py`), made once per session with `bench/tiny_checkpoint.py`."""

from __future__ import annotations

import pytest
import torch

from rollingdepth_core.bench.sweep import SweepClip, clip_plan
from rollingdepth_core.bench.synthetic_frames import SyntheticSource
from rollingdepth_core.bench.tiny_checkpoint import write_tiny_checkpoint
from rollingdepth_core.model.checkpoint import load_model
from rollingdepth_core.stages.denoise import predict_snippets
from rollingdepth_core.types import RunBatches, SnippetDepths

FIVE_FRAMES = SweepClip(2005, 5, 45, 61, (1, 10, 25))  # odd size; every dilation capped to 1
FORTY_FRAMES = SweepClip(2002, 40, 48, 64, (1, 10))  # case_a's layout, another model
# issue 12 §1, clips where fast ended above the reference before the polish ran everywhere
EIGHTEEN_FRAMES = SweepClip(2030, 18, 50, 70, (1, 2, 3, 5))  # the sweep's; 35 pixels/frame
NINE_FRAMES = SweepClip(3205, 9, 55, 63, (1, 2))  # a random clip's; 36 pixels/frame
FOUR_FRAMES = SweepClip(3237, 4, 92, 91, (1, 10, 15))  # a random clip's; dilations capped to 1


def clip_snippets(clip: SweepClip, folder) -> SnippetDepths:
    """The clip's snippet depths, predicted by its own tiny checkpoint (fp32, CPU)."""
    model = load_model(write_tiny_checkpoint(folder / f"tiny_{clip.seed}", clip.seed),
                       device="cpu", dtype="fp32", allow_download=False)
    plan = clip_plan(clip)
    frames = SyntheticSource(clip.num_frames, (clip.height, clip.width), seed=clip.seed)
    with torch.inference_mode():
        snippets = predict_snippets(model, frames, plan, 0, seed=clip.seed,
                                    batches=RunBatches(16, 8))
    return SnippetDepths(plan, tuple(d.clone() for d in snippets.depths))


@pytest.fixture(scope="session")
def five_frame_clip(tmp_path_factory) -> SnippetDepths:
    return clip_snippets(FIVE_FRAMES, tmp_path_factory.mktemp("tiny"))


@pytest.fixture(scope="session")
def forty_frame_clip(tmp_path_factory) -> SnippetDepths:
    """Fast's fixed point wins here (the start does not): 40 frames, dilations 1 / 10."""
    return clip_snippets(FORTY_FRAMES, tmp_path_factory.mktemp("tiny"))


@pytest.fixture(scope="session")
def unsettled_clips(tmp_path_factory) -> dict[str, SnippetDepths]:
    """Two clips with few optimisation pixels per frame, where the fixed-point iteration
    does not settle and the reference's Adam drifts the common scale (to 2.8 and 2.7)."""
    folder = tmp_path_factory.mktemp("tiny")
    return {"eighteen": clip_snippets(EIGHTEEN_FRAMES, folder),
            "nine": clip_snippets(NINE_FRAMES, folder)}


@pytest.fixture(scope="session")
def four_frame_clip(tmp_path_factory) -> SnippetDepths:
    """Two snippets: the fixed point settles in a few iterations, 0.02 % above the reference."""
    return clip_snippets(FOUR_FRAMES, tmp_path_factory.mktemp("tiny"))
