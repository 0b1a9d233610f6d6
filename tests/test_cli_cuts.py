"""The command line's --split-at-cuts: one shot per segment, original frame numbers in names."""

import dataclasses

import numpy as np
import pytest

from rollingdepth_core import PRESETS, estimate_depth
from rollingdepth_core.cli import main
from rollingdepth_core.evaluation.edited_clips import edited_clip
from rollingdepth_core.io.export import save_video
from rollingdepth_core.io.sources import FrameRange, VideoFileSource


@pytest.fixture(scope="module")
def edit_path(tmp_path_factory):
    rgb = (edited_clip(34, (18,), 40, 56).permute(0, 2, 3, 1) + 1) / 2
    return save_video(tmp_path_factory.mktemp("edit") / "edit.mp4", rgb, fps=24)


def test_split_at_cuts_writes_each_segment_with_its_frame_numbers(edit_path, tmp_path, tiny_model_dir,
                                                                  tiny_model):
    out = tmp_path / "out"
    code = main([str(edit_path), "-o", str(out), "-m", str(tiny_model_dir), "-r", "32", "--start-frame", "2",
                 "--split-at-cuts", "--outputs", "npz,png16", "--seed", "3", "-q"])
    assert code == 0
    archives = sorted(out.glob("edit_*_depth.npz"))
    assert [p.name for p in archives] == ["edit_00002-00017_depth.npz", "edit_00018-00033_depth.npz"]
    settings = dataclasses.replace(PRESETS["fast"], processing_resolution=32)
    for path, (first, last) in zip(archives, [(2, 17), (18, 33)], strict=True):
        with np.load(path) as data:
            depth, numbers = data["inverse_depth"], data["frame_numbers"]
        np.testing.assert_array_equal(numbers, np.arange(first, last + 1))
        if first == 18:  # a segment is processed as a clip of its own (one checked: the time)
            segment = FrameRange(VideoFileSource(edit_path), first, last + 1 - first)
            expected = estimate_depth(tiny_model, segment, settings, seed=3)
            np.testing.assert_allclose(depth, expected.depth.inverse_depth.numpy(), rtol=0, atol=1e-5)
        pngs = sorted(p.name for p in (out / f"{path.name[:-10]}_depth_png16").glob("*.png"))
        assert pngs == [f"edit_{i:05d}.png" for i in range(first, last + 1)]


def test_without_cuts_names_are_unchanged(tmp_path, tiny_model_dir):
    rgb = (edited_clip(8, (), 40, 56).permute(0, 2, 3, 1) + 1) / 2
    path = save_video(tmp_path / "calm.mp4", rgb, fps=24)
    assert main([str(path), "-o", str(tmp_path / "o"), "-m", str(tiny_model_dir), "-r", "32",
                 "--split-at-cuts", "--outputs", "npz", "-q"]) == 0
    with np.load(tmp_path / "o" / "calm_depth.npz") as data:
        np.testing.assert_array_equal(data["frame_numbers"], np.arange(8))
