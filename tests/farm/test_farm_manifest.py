"""The manifest, the settings hash, what a rerun skips, shot folders and worker sizing (no Ray)."""

import dataclasses
import json
import os

import pytest

from rollingdepth_core.errors import InvalidInput, InvalidSettings
from rollingdepth_core.farm.cli import build_parser
from rollingdepth_core.farm.cluster import WorkerPlan, plan_workers
from rollingdepth_core.farm.manifest import Manifest, ShotRecord, settings_hash
from rollingdepth_core.farm.progress import FarmProgress, summary_line
from rollingdepth_core.farm.run import plan_work
from rollingdepth_core.farm.shot_folders import commit_shot, new_attempt, output_lock, write_claim
from rollingdepth_core.farm.shots import collect_shots


@pytest.fixture
def shots(tmp_path):
    for name in ("a", "b"):
        (tmp_path / f"{name}.mp4").write_bytes(name.encode())
    args = build_parser().parse_args(["SHOTS", "-o", "out"])
    return collect_shots(tmp_path, args)


def test_manifest_appends_and_reads_outcomes(tmp_path):
    manifest = Manifest(tmp_path)
    assert manifest.records() == [] and manifest.outcomes() == {}
    manifest.append(ShotRecord("a", "failed", "h1", error="boom"))
    manifest.append(ShotRecord("a", "done", "h1", frames=9, seconds=1.5, worker="w1"))
    manifest.append(ShotRecord("a", "skipped", "h1"))
    manifest.append(ShotRecord("b", "failed", "h2", error="bad"))
    outcomes = manifest.outcomes()
    assert (outcomes["a"].status, outcomes["a"].frames, outcomes["b"].error) == ("done", 9, "bad")
    lines = (tmp_path / "manifest.jsonl").read_text().splitlines()
    assert len(lines) == 4 and json.loads(lines[1])["worker"] == "w1" and json.loads(lines[1])["time"]
    with pytest.raises(ValueError, match="status"):
        manifest.append(ShotRecord("c", "running", "h"))


def test_a_torn_last_line_is_ignored_a_damaged_one_is_not(tmp_path):
    manifest = Manifest(tmp_path)
    manifest.append(ShotRecord("a", "done", "h"))
    with manifest.path.open("a") as handle:
        handle.write('{"shot": "b", "stat')
    assert [r.shot for r in manifest.records()] == ["a"]
    manifest.path.write_text('garbage\n{"shot": "a", "status": "done", "settings_hash": "h"}\n')
    with pytest.raises(InvalidInput, match="line 1"):
        manifest.records()


def test_settings_hash_changes_with_what_changes_the_outputs(shots, tmp_path):
    shot = shots[0]
    digest = settings_hash(shot)
    assert digest == settings_hash(dataclasses.replace(shot)) and len(digest) == 16
    changed = [
        dataclasses.replace(shot, options={**shot.options, "refine_steps": 3}),
        dataclasses.replace(shot, options={**shot.options, "seed": 1}),
        dataclasses.replace(shot, options={**shot.options, "model": "other/model"}),
        dataclasses.replace(shot, start=4),
        dataclasses.replace(shot, name="a2"),
    ]
    assert all(settings_hash(other) != digest for other in changed)
    same = dataclasses.replace(shot, options={**shot.options, "snippets_per_batch": 2, "device": "cuda"})
    assert settings_hash(same) == digest  # batch sizes and devices do not change the result
    os.utime(shot.path, ns=(1, 1))  # the clip changed on disk
    assert settings_hash(shot) != digest


def test_plan_work_skips_done_shots_and_refuses_to_replace(shots, tmp_path):
    out = tmp_path / "out"
    manifest = Manifest(out)
    a, b = shots
    manifest.append(ShotRecord("a", "done", settings_hash(a), frames=5))
    manifest.append(ShotRecord("b", "failed", settings_hash(b), error="x"))
    (out / "a").mkdir()
    work, skipped = plan_work(shots, manifest, out, overwrite=False)
    assert [s.name for s, _ in work] == ["b"]
    assert [(r.shot, r.status, r.frames) for r in skipped] == [("a", "skipped", 5)]
    a_changed = dataclasses.replace(a, options={**a.options, "seed": 9})
    with pytest.raises(InvalidSettings, match=r"a \(made with other settings\).*--overwrite"):
        plan_work([a_changed, b], manifest, out, overwrite=False)
    (out / "b").mkdir()  # not made by the farm: never replaced silently
    with pytest.raises(InvalidSettings, match=r"b \(not made by this farm\)"):
        plan_work([b], manifest, out, overwrite=False)
    work, skipped = plan_work([a_changed, b], manifest, out, overwrite=True)
    assert [s.name for s, _ in work] == ["a", "b"] and skipped == []
    (out / "a").rmdir()  # done before, but its folder is gone: run it again
    assert [s.name for s, _ in plan_work([a], manifest, out, overwrite=True)[0]] == ["a"]


def test_a_shot_appears_in_one_rename(tmp_path):
    folder, claim = new_attempt(tmp_path, "sh010")
    assert folder.parent.name == ".farm-tmp" and claim.name == folder.name + ".json"
    write_claim(claim, {"pid": 1})
    (folder / "sh010_depth_png16").mkdir(parents=True)
    (folder / "sh010_depth.npz").write_bytes(b"new")
    assert commit_shot(folder, claim, tmp_path, "sh010", overwrite=False) == tmp_path / "sh010"
    assert (tmp_path / "sh010" / "sh010_depth.npz").read_bytes() == b"new" and not claim.exists()
    again, claim = new_attempt(tmp_path, "sh010")
    again.mkdir(parents=True)
    (again / "sh010_depth.npz").write_bytes(b"newer")
    with pytest.raises(InvalidSettings, match="--overwrite"):
        commit_shot(again, claim, tmp_path, "sh010", overwrite=False)
    commit_shot(again, claim, tmp_path, "sh010", overwrite=True)
    assert (tmp_path / "sh010" / "sh010_depth.npz").read_bytes() == b"newer"
    assert list((tmp_path / ".farm-tmp").iterdir()) == []


def test_one_driver_per_output_folder(tmp_path):
    leftover, _ = new_attempt(tmp_path, "x")
    leftover.mkdir(parents=True)
    with output_lock(tmp_path):
        assert not leftover.exists()  # a crashed run's attempts are cleared
        with pytest.raises(InvalidSettings, match="Another farm run"), output_lock(tmp_path):
            pass
    with output_lock(tmp_path):
        pass


def test_plan_workers():
    assert plan_workers({"CPU": 16, "GPU": 4}, None, 1, None) == WorkerPlan(4, 1.0, 1.0)
    assert plan_workers({"CPU": 16, "GPU": 4}, None, 2, None) == WorkerPlan(2, 2.0, 1.0)
    assert plan_workers({"CPU": 8}, None, 1, None) == WorkerPlan(1, 0.0, 8.0)
    assert plan_workers({"CPU": 2}, 2, 1, None) == WorkerPlan(2, 0.0, 1.0)
    assert plan_workers({"CPU": 2, "GPU": 1}, 3, 0.5, 2) == WorkerPlan(3, 0.5, 2.0)
    with pytest.raises(InvalidSettings, match="--workers"):
        plan_workers({"CPU": 2}, 0, 1, None)


def test_progress_lines_and_summary(tmp_path, capsys):
    records = [ShotRecord("a", "done", "h", frames=40, seconds=2.0, worker="w1", attempts=2),
               ShotRecord("b", "failed", "h", error="InvalidInput: bad", worker="w2"),
               ShotRecord("c", "skipped", "h", frames=7)]
    import io

    stream = io.StringIO()
    with FarmProgress(3, show_bar=False, stream=stream) as progress:
        for record in records:
            progress.shot_finished(record)
    lines = stream.getvalue().splitlines()
    assert lines[0] == "[1/3] done    a: 40 frames in 2.0 s (20.00 frames/s) on w1, attempt 2"
    assert lines[1] == "[2/3] FAILED  b: InvalidInput: bad (on w2)"
    assert lines[2] == "[3/3] skipped c: done before with the same settings"
    assert progress.frames == 40
    line = summary_line(records, 10.0, tmp_path / "manifest.jsonl")
    assert line.startswith("farm: 1 done, 1 skipped, 1 failed of 3 shots; 40 frames in 10.0 s "
                           "(4.00 frames/s)")
    assert line.endswith("; failed: b")


def test_shard_splits_cover_everything_once():
    from rollingdepth_core.farm.shard import split_range, split_snippets
    from rollingdepth_core.stages.snippets import plan_snippets

    assert split_range(10, 3) == [(0, 3), (3, 7), (7, 10)]
    assert split_range(2, 5) == [(0, 1), (1, 2)]
    plan = plan_snippets(40, (1, 10, 25))
    parts = split_snippets(plan, 3)
    sizes = [sum(b - a for _, a, b in part) for part in parts]
    assert len(parts) == 3 and max(sizes) - min(sizes) <= 1 and sum(sizes) == plan.num_snippets
    covered = {g: [] for g in range(len(plan.groups))}
    for part in parts:
        for g, a, b in part:
            covered[g] += range(a, b)
    assert all(covered[g] == list(range(group.num_snippets)) for g, group in enumerate(plan.groups))


def test_a_plate_patterns_hash_follows_its_frames_and_frame_range(tmp_path):
    # a plate pattern is no file: its identity was a FileNotFoundError; now every frame's size and time
    for number in (1001, 1002, 1003):
        (tmp_path / f"plate.{number}.exr").write_bytes(b"frame")
    (tmp_path / "other.1001.exr").write_bytes(b"not this plate")
    args = build_parser().parse_args(["SHOTS", "-o", "out", "--frame-range", "1001-1002"])
    (shot,) = collect_shots(str(tmp_path / "plate.####.exr"), args)
    digest = settings_hash(shot)
    assert settings_hash(shot) == digest and len(digest) == 16
    os.utime(tmp_path / "other.1001.exr", ns=(1, 1))  # another sequence in the folder: no change
    assert settings_hash(shot) == digest
    other_range = dataclasses.replace(shot, options={**shot.options, "frame_range": "1002-1003"})
    assert settings_hash(other_range) != digest
    os.utime(tmp_path / "plate.1003.exr", ns=(1, 1))  # a frame of the plate changed on disk
    assert settings_hash(shot) != digest
