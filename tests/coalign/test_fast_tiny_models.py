"""fast against the reference's Adam on clips from other tiny random checkpoints (issue 12 §1).

Each checkpoint is made like golden tiny_v1 with its own seed (`bench/tiny_checkpoint.py`);
the clips are two of the benchmark's sweep (`bench/sweep.py`, `python -m
rollingdepth_core.bench align --cases sweep` runs all of them; fixtures in conftest.py).
Before issue 12 fast smoothed the L1 terms by 1e-3 of each frame's scale, 2-3x what the
reference's own Adam jitter gives, and stopped at that fixed point: 0.17 % above the
reference on the 5-frame clip, and its raw merged video 1.5e-2 from the reference's on the
40-frame one.
"""

from __future__ import annotations

import logging

import pytest
import torch

from rollingdepth_core.coalign import fast as fast_module
from rollingdepth_core.coalign.merge import merge_aligned
from rollingdepth_core.coalign.methods import coalign

SLACK = 1e-4  # issue 12: fast <= reference x (1 + 1e-4)
PARITY = 5e-3  # SPEC §6: full reference optimisation, scales / shifts / merged video


@pytest.fixture(scope="module")
def five_frames(five_frame_clip):
    return five_frame_clip, coalign(five_frame_clip, "reference")


@pytest.fixture(scope="module")
def forty_frames(forty_frame_clip):
    return forty_frame_clip, coalign(forty_frame_clip, "reference")


@pytest.mark.parametrize("name", ["five_frames", "forty_frames"])
def test_fast_not_above_the_reference(name, request, caplog):
    snippets, reference = request.getfixturevalue(name)
    with caplog.at_level(logging.WARNING, logger=fast_module.__name__):
        fast = coalign(snippets, "fast")
    assert "the start" not in caplog.text  # the fixed point won here: the solver itself did it
    assert fast.objective <= reference.objective * (1 + SLACK), name


def test_fast_matches_the_reference_where_the_objectives_agree(forty_frames):
    """(On the 5-frame clip fast ends 0.2 % below the reference, at another point.)"""
    snippets, reference = forty_frames
    fast = coalign(snippets, "fast")
    assert fast.objective == pytest.approx(reference.objective, rel=5e-3)
    for ours, theirs in zip(fast.scales + fast.shifts, reference.scales + reference.shifts,
                            strict=True):
        torch.testing.assert_close(ours, theirs, atol=PARITY, rtol=0)
    torch.testing.assert_close(merge_aligned(snippets, fast), merge_aligned(snippets, reference),
                               atol=PARITY, rtol=0)


@pytest.mark.parametrize("name", ["eighteen", "nine"])
def test_fast_not_above_the_reference_where_the_iteration_does_not_settle(
        name, unsettled_clips, caplog):
    """Before: the last stage hit its cap, fast polished within 1e-3 only and ended 0.145 %
    (18 frames of 70x50) and 0.076 % (9 frames of 63x55, where the start won) above the
    reference, whose Adam drifted the common scale to 2.8 / 2.7. Now the objective decides
    within `polish.WIDE_RADIUS` there."""
    snippets = unsettled_clips[name]
    reference = coalign(snippets, "reference")
    with caplog.at_level(logging.DEBUG, logger=fast_module.__name__):
        fast = coalign(snippets, "fast")
    assert "not anchored" in caplog.text and "mean scale held True" in caplog.text
    assert float(torch.cat(reference.scales).mean()) > 2.5  # the reference drifted
    assert fast.objective <= reference.objective * (1 + SLACK), name


def test_fast_not_above_the_reference_where_the_fixed_point_settles(four_frame_clip, caplog):
    """Before: a settled fixed point was returned as it was (0.021 % above the reference on
    this 4-frame clip); now it is always polished within the reference's step."""
    reference = coalign(four_frame_clip, "reference")
    with caplog.at_level(logging.DEBUG, logger=fast_module.__name__):
        fast = coalign(four_frame_clip, "fast")
    assert "not anchored" not in caplog.text and "the start" not in caplog.text
    assert fast.objective <= reference.objective * (1 + SLACK)
    for ours, theirs in zip(fast.scales + fast.shifts, reference.scales + reference.shifts,
                            strict=True):  # the same point, within the reference's own jitter
        torch.testing.assert_close(ours, theirs, atol=PARITY, rtol=0)
