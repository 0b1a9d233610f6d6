"""Snippet plans: indices, dilation capping, short clips, refinement schedule."""

import pytest
import torch

from rollingdepth_core.errors import InvalidSettings
from rollingdepth_core.stages.snippets import (
    cap_dilation,
    effective_snippet_length,
    max_dilation,
    plan_snippets,
    refine_dilations,
    snippet_indices,
)


def test_snippet_indices_rule():
    indices = snippet_indices(10, 3, 2)
    assert indices.dtype == torch.int64
    assert indices.tolist() == [[s, s + 2, s + 4] for s in range(6)]


def test_snippet_indices_too_long_gives_no_rows():
    assert snippet_indices(5, 3, 3).shape == (0, 3)


def test_plan_matches_golden_case_a(case_a):
    plan = plan_snippets(40, (1, 10), 3, cap=True)
    assert plan.dilations == (1, 10)
    for group in plan.groups:
        torch.testing.assert_close(group.indices, case_a[f"snippet_idx_d{group.dilation}"])
    assert plan.num_snippets == 38 + 20


def test_plan_matches_golden_align_small(align_small):
    plan = plan_snippets(250, (1, 10, 25), 3)
    assert [g.num_snippets for g in plan.groups] == [248, 230, 200]
    for group in plan.groups:
        torch.testing.assert_close(group.indices, align_small[f"snippet_idx_d{group.dilation}"])


def test_capping_reference_rule():
    # reference: int(N / n) - 1; 40 frames, n = 3 -> 12
    assert max_dilation(40, 3) == 12
    assert cap_dilation(40, 3, 25) == 12
    assert cap_dilation(40, 3, 10) == 10
    plan = plan_snippets(40, (1, 25), 3, cap=True)
    assert plan.dilations == (1, 12)
    assert plan.groups[1].requested_dilation == 25


def test_capping_floor_is_one_for_short_clips():
    # reference rule would give int(5 / 3) - 1 = 0, an invalid dilation
    assert max_dilation(5, 3) == 1
    plan = plan_snippets(5, (1, 25), 3)
    assert plan.dilations == (1,)  # 25 capped to 1: same group, run once


def test_capped_duplicates_run_once():
    plan = plan_snippets(20, (1, 10, 25), 3)  # both capped to int(20/3) - 1 = 5
    assert plan.dilations == (1, 5)


def test_no_cap_skips_groups_that_do_not_fit(caplog):
    plan = plan_snippets(30, (1, 10, 25), 3, cap=False)
    assert plan.dilations == (1, 10)
    assert "skipped" in caplog.text


def test_paper_preset_keeps_large_dilation_when_it_fits():
    plan = plan_snippets(250, (1, 10, 25), 3, cap=False)
    assert plan.dilations == (1, 10, 25)


@pytest.mark.parametrize("num_frames", [1, 2, 3, 4])
def test_short_clips_cover_every_frame(num_frames):
    plan = plan_snippets(num_frames, (1, 10, 25), 3)
    assert plan.snippet_length == min(3, num_frames)
    covered = set()
    for group in plan.groups:
        covered |= set(group.indices.flatten().tolist())
    assert covered == set(range(num_frames))


def test_one_frame_clip_is_single_frame_inference():
    plan = plan_snippets(1, (1, 25), 3)
    assert plan.snippet_length == 1
    assert [g.indices.tolist() for g in plan.groups] == [[[0]]]


def test_every_frame_covered_long_clip():
    plan = plan_snippets(97, (1, 10, 25), 3)
    for group in plan.groups:
        assert group.indices.max() <= 96
    assert set(plan.groups[0].indices.flatten().tolist()) == set(range(97))


def test_plan_does_not_change_callers_dilations():
    dilations = [1, 25]
    plan_snippets(10, dilations, 3)
    assert dilations == [1, 25]


@pytest.mark.parametrize(
    "kwargs, message",
    [
        (dict(num_frames=0), "num_frames"),
        (dict(num_frames=10, snippet_length=0), "snippet_length"),
        (dict(num_frames=10, dilations=(10, 25)), "must include 1"),
        (dict(num_frames=10, dilations=(1, 0)), ">= 1"),
        (dict(num_frames=10, dilations=(1, -3)), ">= 1"),
        (dict(num_frames=10, dilations=()), "empty"),
        (dict(num_frames=10, dilations=(1, 1)), "repeated"),
    ],
)
def test_plan_bad_input(kwargs, message):
    with pytest.raises(InvalidSettings, match=message):
        plan_snippets(**kwargs)


def test_describe_lists_groups():
    text = plan_snippets(40, (1, 25), 3).describe()
    assert "58 snippets" not in text  # 38 + 16 with the cap to 12
    assert "dilation 12 (asked 25): 16 snippets" in text
    assert "(0, 1, 2)" in text


def test_effective_snippet_length():
    assert effective_snippet_length(2, 3) == 2
    assert effective_snippet_length(9, 3) == 3


def test_refine_dilations_match_golden_case_a():
    # case_a: K = 4, start dilation 3 -> [3, 2, 2, 1]
    assert refine_dilations(4, 3, 40, 3) == (3, 2, 2, 1)


def test_refine_dilations_default_schedule():
    # start 6, K = 10: gap int((1 - i/10) * 5) in float arithmetic, as the reference:
    # (1 - 0.8) * 5 = 0.9999999999999998 truncates to 0, so step 8 already uses dilation 1
    assert refine_dilations(10, 6, 250, 3) == (6, 5, 5, 4, 4, 3, 3, 2, 1, 1)


def test_refine_dilations_capped_on_short_clip():
    assert refine_dilations(3, 6, 9, 3) == (2, 1, 1)  # cap int(9/3) - 1 = 2
    assert max(refine_dilations(3, 6, 2, 3)) == 1


def test_refine_dilations_bad_input():
    with pytest.raises(InvalidSettings, match="refine steps"):
        refine_dilations(-1, 6, 10)
    with pytest.raises(InvalidSettings, match="start_dilation"):
        refine_dilations(2, 0, 10)
