"""The co-alignment sweep (issue 12 §1): fast against the reference's Adam, many clips."""

from __future__ import annotations

import pytest
import torch

from rollingdepth_core.bench import report, sweep
from rollingdepth_core.stages.snippets import plan_snippets
from rollingdepth_core.types import SnippetDepths


def disagreeing_snippets(num_frames: int = 12) -> SnippetDepths:
    plan = plan_snippets(num_frames, (1, 3), 3)
    generator = torch.Generator().manual_seed(5)
    base = torch.rand(num_frames, 24, 32, generator=generator) + 0.5
    depths = []
    for group in plan.groups:
        gain = torch.exp((torch.rand(group.num_snippets, generator=generator) * 2 - 1) * 0.2)
        offset = (torch.rand(group.num_snippets, generator=generator) * 2 - 1) * 0.1
        depths.append(base[group.indices] * gain[:, None, None, None] + offset[:, None, None, None])
    return SnippetDepths(plan, tuple(depths))


def test_clips_cover_the_issue():
    clips = sweep.SWEEP_CLIPS
    assert len(clips) >= 30 and len({c.key for c in clips}) == len(clips)
    assert len({c.seed for c in clips}) == len(clips)  # a checkpoint per clip
    assert clips[0] == sweep.SweepClip(2000, 57, 56, 80, (1, 5, 12))  # the issue's layout
    assert max(c.num_frames for c in clips) == 1000
    assert any(c.height % 2 and c.width % 2 for c in clips)  # odd sizes
    capped = [c for c in clips if sweep.clip_plan(c).dilations != c.dilations]
    assert len(capped) >= 5  # short clips cap their dilations
    assert len({c.dilations for c in clips}) >= 10


def test_compare_row_and_table():
    snippets = disagreeing_snippets()
    row = sweep.compare("twelve frames", snippets)
    assert row["ratio"] == pytest.approx(row["fast"] / row["reference"])
    assert row["ratio"] <= 1 + 1e-4  # issue 12: fast not above the reference
    assert 0 <= row["raw_difference"] < 5e-2 and row["normalized_difference"] <= 2.0
    assert row["frames"] == 12 and row["dilations"] == [1, 3]
    drifted = dict(row, start_won=False, reference_mean_scale=row["fast_mean_scale"] + 0.5)
    assert sweep.note(dict(row, start_won=True)) == "start won"
    assert sweep.note(drifted).startswith("reference drifted: mean scale")
    rows = [dict(row, start_won=False, reference_mean_scale=row["fast_mean_scale"]),
            dict(drifted, ratio=0.9, raw_difference=0.7)]
    total = sweep.summary(rows)
    assert total["clips"] == 2 and total["comparable"] == 1
    assert total["worst_ratio"] == pytest.approx(row["ratio"]) and total["worst_raw"] == row["raw_difference"]
    table = report.format_sweep(rows)
    assert table.splitlines()[0] == report.SWEEP_HEADER
    assert "| twelve frames | 12 | 1,3 |" in table and "reference drifted" in table
    assert "2 clips: fast / reference worst" in table


def test_objective_ratio_of_clips_with_nothing_to_align():
    assert sweep.objective_ratio(0.0, 0.0) == 1.0
    assert sweep.objective_ratio(1e-3, 0.0) == float("inf")
    assert sweep.objective_ratio(2.0, 4.0) == 0.5


def test_run_sweep_prepares_once_and_compares(tmp_path, golden_dir):
    clip = sweep.SweepClip(77, 6, 24, 32, (1, 10))  # 10 capped to 1
    rows, failures = sweep.run_sweep(tmp_path, golden_dir, clips=(clip,), affine=())
    assert failures == []
    assert [r["clip"] for r in rows] == ["golden tiny_v1/case_a", "golden align_small", clip.name]
    cached = tmp_path / "sweep" / f"{clip.key}.safetensors"
    stamp = cached.stat().st_mtime_ns
    assert sweep.prepare_clip(clip, tmp_path) == cached and cached.stat().st_mtime_ns == stamp
    golden_case_a, golden_small = rows[0], rows[1]
    assert golden_case_a["start_won"]  # the authors' Adam ends above its own start there
    assert golden_case_a["reference"] == pytest.approx(0.0150875, rel=1e-4)
    assert golden_small["reference"] == pytest.approx(0.23782, rel=1e-4)
    assert not golden_small["start_won"] and golden_small["raw_difference"] < 5e-3
    assert all(r["ratio"] <= 1 + 1e-4 for r in rows)
    _, missing = sweep.run_sweep(tmp_path, None, clips=(), affine=())
    assert missing == [{"case": "sweep: golden clips", "error": "golden data not found"}]



def test_affine_clips_include_the_tests_seven_frame_clip():
    """tests/coalign/test_fast.py's affine_snippets(7) is AffineClip(7, 7, 12, 16): 2
    optimisation pixels per frame, where fast was 9 % above the reference."""
    first = sweep.AFFINE_CLIPS[0]
    assert (first.seed, first.num_frames, first.height, first.width) == (7, 7, 12, 16)
    snippets = first.snippets()
    assert snippets.plan.dilations == (1,) and snippets.plan.num_snippets == 5
    assert len({c.seed for c in sweep.AFFINE_CLIPS}) == len(sweep.AFFINE_CLIPS)
