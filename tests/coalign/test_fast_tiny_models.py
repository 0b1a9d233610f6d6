"""fast against the reference's Adam on clips from other tiny random checkpoints (issue 12 §1).

Each checkpoint is made like golden tiny_v1 with its own seed (`bench/tiny_checkpoint.py`);
the clips are two of the benchmark's sweep (`bench/sweep.py`, `python -m
rollingdepth_core.bench align --cases sweep` runs all 32). Before issue 12 fast smoothed the
L1 terms by 1e-3 of each frame's scale, 2-3x what the reference's own Adam jitter gives,
and stopped at the fixed point: 0.17 % above the reference on the 5-frame clip, and its raw
merged video 1.5e-2 from the reference's on the 40-frame one.
"""

from __future__ import annotations

import logging

import pytest
import torch

from rollingdepth_core.bench.sweep import SweepClip, clip_plan
from rollingdepth_core.bench.synthetic_frames import SyntheticSource
from rollingdepth_core.bench.tiny_checkpoint import write_tiny_checkpoint
from rollingdepth_core.coalign import fast as fast_module
from rollingdepth_core.coalign.merge import merge_aligned
from rollingdepth_core.coalign.methods import coalign
from rollingdepth_core.model.checkpoint import load_model
from rollingdepth_core.stages.denoise import predict_snippets
from rollingdepth_core.types import SnippetDepths

SLACK = 1e-4  # issue 12: fast <= reference x (1 + 1e-4)
PARITY = 5e-3  # SPEC §6: full reference optimisation, scales / shifts / merged video

FIVE_FRAMES = SweepClip(2005, 5, 45, 61, (1, 10, 25))  # odd size; every dilation capped to 1
FORTY_FRAMES = SweepClip(2002, 40, 48, 64, (1, 10))


def clip_snippets(clip: SweepClip, folder) -> SnippetDepths:
    model = load_model(write_tiny_checkpoint(folder / f"tiny_{clip.seed}", clip.seed),
                       device="cpu", dtype="fp32", allow_download=False)
    plan = clip_plan(clip)
    with torch.inference_mode():
        snippets = predict_snippets(model, SyntheticSource(clip.num_frames, (clip.height, clip.width),
                                                           seed=clip.seed),
                                    plan, 0, seed=clip.seed, snippets_per_batch=16, vae_batch_size=8)
    return SnippetDepths(plan, tuple(d.clone() for d in snippets.depths))


def solve(clip: SweepClip, folder):
    snippets = clip_snippets(clip, folder)
    return clip, snippets, coalign(snippets, "reference")


@pytest.fixture(scope="module")
def five_frames(tmp_path_factory):
    return solve(FIVE_FRAMES, tmp_path_factory.mktemp("tiny"))


@pytest.fixture(scope="module")
def forty_frames(tmp_path_factory):
    return solve(FORTY_FRAMES, tmp_path_factory.mktemp("tiny"))


@pytest.mark.parametrize("name", ["five_frames", "forty_frames"])
def test_fast_not_above_the_reference(name, request, caplog):
    clip, snippets, reference = request.getfixturevalue(name)
    with caplog.at_level(logging.WARNING, logger=fast_module.__name__):
        fast = coalign(snippets, "fast")
    assert "the start" not in caplog.text  # the fixed point won here: the solver itself did it
    assert fast.objective <= reference.objective * (1 + SLACK), clip.name


def test_fast_matches_the_reference_where_the_objectives_agree(forty_frames):
    """(On the 5-frame clip fast ends 0.2 % below the reference, at another point.)"""
    _, snippets, reference = forty_frames
    fast = coalign(snippets, "fast")
    assert fast.objective == pytest.approx(reference.objective, rel=5e-3)
    for ours, theirs in zip(fast.scales + fast.shifts, reference.scales + reference.shifts,
                            strict=True):
        torch.testing.assert_close(ours, theirs, atol=PARITY, rtol=0)
    torch.testing.assert_close(merge_aligned(snippets, fast), merge_aligned(snippets, reference),
                               atol=PARITY, rtol=0)
