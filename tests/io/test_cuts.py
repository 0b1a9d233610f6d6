"""Cut detection (PySceneDetect) on synthetic edited clips."""

import builtins

import pytest

from rollingdepth_core.errors import InvalidSettings, MissingDependency
from rollingdepth_core.evaluation.edited_clips import edited_clip
from rollingdepth_core.io.cuts import check_cut_detection, detect_cuts, segments_from_cuts
from rollingdepth_core.io.export import save_video


@pytest.mark.parametrize("cut", [17, 23])
def test_detect_cuts_finds_the_cut_of_a_two_scene_clip(cut):
    segments = detect_cuts(edited_clip(40, (cut,)))
    assert len(segments) == 2
    found = segments[1][0]
    print(f"cut at {cut}, found {found}")
    assert abs(found - cut) <= 1
    assert segments[0][0] == 0 and segments[0][1] == found and segments[1][1] == 40


def test_detect_cuts_on_a_video_file_and_without_cuts(tmp_path):
    rgb = (edited_clip(36, (20,), 40, 56).permute(0, 2, 3, 1) + 1) / 2
    path = save_video(tmp_path / "edit.mp4", rgb, fps=24)
    segments = detect_cuts(path)
    assert len(segments) == 2 and abs(segments[1][0] - 20) <= 1 and segments[1][1] == 36
    assert detect_cuts(edited_clip(30, (15,))[:15]) == [(0, 15)]


def test_segments_from_cuts_cover_every_frame():
    assert segments_from_cuts([], 10) == [(0, 10)]
    assert segments_from_cuts([4, 0, 4, 12, 7], 10) == [(0, 4), (4, 7), (7, 10)]


def test_bad_settings_and_missing_extra(monkeypatch):
    with pytest.raises(InvalidSettings, match="threshold"):
        detect_cuts(edited_clip(8, ()), threshold=0)
    with pytest.raises(InvalidSettings, match="cuts must increase"):
        edited_clip(8, (9,))
    real_import = builtins.__import__

    def no_scenedetect(name, *args, **kwargs):
        if name.startswith("scenedetect"):
            raise ImportError("No module named 'scenedetect'")
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_scenedetect)
    with pytest.raises(MissingDependency, match=r'pip install "rollingdepth\[farm\]"'):
        check_cut_detection()
    with pytest.raises(MissingDependency, match="--split-at-cuts"):
        detect_cuts(edited_clip(8, ()))
