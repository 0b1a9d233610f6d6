"""Result sets (issue 9): output folders checked up front, sets written atomically, never
silently replaced; overwrite removes stale entries; takes; cancel leaves nothing behind."""

import os
from pathlib import Path

import pytest

from rollingdepth_core.errors import InvalidSettings, OutputExists
from rollingdepth_core.io import result_set
from rollingdepth_core.io.result_set import ResultSet, check_output_folder, next_take

NAMES = ("{stem}_depth.npz", "{stem}_frames")
PATTERNS = ("{stem}_depth.npz", "{stem}_frames", "{stem}_extra_*.txt")


def write_set(results: ResultSet, frames: int, tag: str) -> None:
    """A set with one file and a folder of ``frames`` frame files, each holding ``tag``."""
    with results.write() as staging:
        staging.path(f"{results.stem}_depth.npz").write_text(tag)
        folder = staging.path(f"{results.stem}_frames")
        folder.mkdir()
        for i in range(frames):
            (folder / f"{i:03d}.txt").write_text(tag)


def listing(folder: Path) -> list[str]:
    """Every path under ``folder`` (hidden ones too), relative."""
    return sorted(str(p.relative_to(folder)) for p in folder.rglob("*"))


def test_check_output_folder_creates_nested_folders(tmp_path):
    target = tmp_path / "a" / "b" / "c"
    assert check_output_folder(target) == target
    assert target.is_dir() and listing(target) == []  # the probe file is gone


def test_check_output_folder_refuses_a_file_and_a_file_parent(tmp_path):
    # issue 9: `-o` pointing at a file failed with a traceback after the whole run
    (tmp_path / "file").write_text("x")
    with pytest.raises(InvalidSettings, match="is a file"):
        check_output_folder(tmp_path / "file")
    with pytest.raises(InvalidSettings, match=r"cannot be created: .*file is a file"):
        check_output_folder(tmp_path / "file" / "sub")


def test_check_output_folder_refuses_an_unwritable_folder(tmp_path, monkeypatch):
    def refuse(self, data):
        raise PermissionError(13, "Permission denied")

    monkeypatch.setattr(Path, "write_bytes", refuse)
    with pytest.raises(InvalidSettings, match="not writable .*Permission denied"):
        check_output_folder(tmp_path)


def test_a_set_is_written_in_place_with_nothing_left_over(tmp_path):
    results = ResultSet.plan(tmp_path, "clip", NAMES)
    assert results.names == ("clip_depth.npz", "clip_frames")
    write_set(results, 3, "one")
    assert listing(tmp_path) == ["clip_depth.npz", "clip_frames", "clip_frames/000.txt",
                                 "clip_frames/001.txt", "clip_frames/002.txt"]


def test_an_existing_set_is_refused_before_any_work(tmp_path):
    write_set(ResultSet.plan(tmp_path, "clip", NAMES), 2, "one")
    refused = r"holds results named clip \(clip_depth.npz, clip_frames\).*Pass existing='overwrite'"
    with pytest.raises(OutputExists, match=refused):
        ResultSet.plan(tmp_path, "clip", NAMES)
    # another entry of the same set counts as well, and so does an entry in the way
    (tmp_path / "other_extra_1.txt").write_text("x")
    with pytest.raises(OutputExists, match="other_extra_1.txt"):
        ResultSet.plan(tmp_path, "other", NAMES, patterns=PATTERNS)
    ResultSet.plan(tmp_path, "unrelated", NAMES, patterns=PATTERNS)  # other names are fine


def test_overwrite_replaces_the_whole_set_and_removes_stale_frames(tmp_path):
    # issue 9: a shorter rerun left 24 stale PNGs beside the 8 new ones
    write_set(ResultSet.plan(tmp_path, "clip", NAMES, patterns=PATTERNS), 32, "old")
    (tmp_path / "clip_extra_gray.txt").write_text("old")  # an entry the new run does not write
    results = ResultSet.plan(tmp_path, "clip", NAMES, existing="overwrite", patterns=PATTERNS)
    write_set(results, 8, "new")
    assert len(list((tmp_path / "clip_frames").iterdir())) == 8
    assert {p.read_text() for p in (tmp_path / "clip_frames").iterdir()} == {"new"}
    assert (tmp_path / "clip_depth.npz").read_text() == "new"
    assert not (tmp_path / "clip_extra_gray.txt").exists()
    assert not [p for p in os.listdir(tmp_path) if p.startswith(".")]


@pytest.mark.parametrize("interruption", [KeyboardInterrupt, RuntimeError])
def test_a_cancelled_write_leaves_the_previous_results_untouched(tmp_path, interruption):
    # issue 9: Ctrl-C while writing left a partial set and had already replaced the npz
    write_set(ResultSet.plan(tmp_path, "clip", NAMES), 4, "old")
    before = {p: p.read_text() for p in tmp_path.rglob("*") if p.is_file()}
    results = ResultSet.plan(tmp_path, "clip", NAMES, existing="overwrite")
    with pytest.raises(interruption), results.write() as staging:
        staging.path("clip_depth.npz").write_text("new")
        raise interruption()
    assert {p: p.read_text() for p in tmp_path.rglob("*") if p.is_file()} == before


def test_a_failed_commit_puts_the_old_set_back(tmp_path, monkeypatch):
    write_set(ResultSet.plan(tmp_path, "clip", NAMES), 4, "old")
    before = {p: p.read_text() for p in tmp_path.rglob("*") if p.is_file()}
    results = ResultSet.plan(tmp_path, "clip", NAMES, existing="overwrite")
    rename = os.rename
    calls = []

    def flaky(src, dst):  # moving the old set aside works, the second new entry fails
        calls.append(dst)
        if len(calls) == 4:
            raise OSError(28, "No space left on device")
        rename(src, dst)

    monkeypatch.setattr(result_set.os, "rename", flaky)
    with pytest.raises(OSError, match="No space"):
        write_set(results, 2, "new")
    assert {p: p.read_text() for p in tmp_path.rglob("*") if p.is_file()} == before
    assert not [p for p in os.listdir(tmp_path) if p.startswith(".")]


def test_a_set_that_appears_during_the_run_is_not_replaced(tmp_path):
    results = ResultSet.plan(tmp_path, "clip", NAMES)
    write_set(ResultSet.plan(tmp_path, "clip", NAMES), 1, "first")  # another process was quicker
    with pytest.raises(OutputExists):
        write_set(results, 2, "second")
    assert (tmp_path / "clip_depth.npz").read_text() == "first"
    assert listing(tmp_path) == ["clip_depth.npz", "clip_frames", "clip_frames/000.txt"]


def test_new_takes_number_from_two_and_never_reuse(tmp_path):
    stems = []
    for _ in range(3):
        results = ResultSet.plan(tmp_path, "clip", NAMES, existing="new_take")
        write_set(results, 1, results.stem)
        stems.append(results.stem)
    assert stems == ["clip", "clip_take2", "clip_take3"]
    os.remove(tmp_path / "clip_take2_depth.npz")
    (tmp_path / "clip_take2_frames" / "000.txt").unlink()
    (tmp_path / "clip_take2_frames").rmdir()
    assert ResultSet.plan(tmp_path, "clip", NAMES, existing="new_take").stem == "clip_take4"


def test_node_style_takes_are_numbered_from_one(tmp_path):
    plan = ResultSet.plan(tmp_path, "depth", ("{stem}.npz",), existing="new_take",
                          take_prefix="{stem}_", take_digits=5, first_take_plain=False)
    assert plan.names == ("depth_00001.npz",)
    (tmp_path / "depth_00007.npz").write_text("x")
    assert next_take(tmp_path, "depth_") == 8


def test_bad_policies_and_names_are_refused(tmp_path):
    with pytest.raises(InvalidSettings, match="existing must be one of refuse, overwrite, new_take"):
        ResultSet.plan(tmp_path, "clip", NAMES, existing="replace")
    with pytest.raises(InvalidSettings, match="plain file or folder name"):
        ResultSet.plan(tmp_path, "clip", ("{stem}/x",))
    results = ResultSet.plan(tmp_path, "clip", NAMES)
    with pytest.raises(ValueError, match="not an entry"), results.write() as staging:
        staging.path("other.npz")
    with pytest.raises(RuntimeError, match="never written"), results.write() as staging:
        staging.path("clip_depth.npz").write_text("x")
    assert listing(tmp_path) == []


def test_stems_with_glob_characters_match_only_themselves(tmp_path):
    (tmp_path / "shot_a_depth.npz").write_text("x")
    ResultSet.plan(tmp_path, "shot_[ab]", NAMES)  # not taken as a pattern
    write_set(ResultSet.plan(tmp_path, "shot_[ab]", NAMES), 1, "x")
    with pytest.raises(OutputExists):
        ResultSet.plan(tmp_path, "shot_[ab]", NAMES)
