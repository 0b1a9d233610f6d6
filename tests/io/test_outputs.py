"""The command line's output set (issue 9): names, the range JSON's place, takes, overwrite."""

import json

import cv2
import numpy as np
import pytest
import torch

from rollingdepth_core.errors import InvalidSettings, OutputExists
from rollingdepth_core.io.outputs import (
    OutputOptions,
    check_output_options,
    entry_names,
    parse_kinds,
    plan_outputs,
    write_outputs,
)
from rollingdepth_core.io.video_files import read_video


@pytest.fixture
def depth():
    return torch.rand(5, 10, 14)


def test_entries_of_every_kind_and_colour_map():
    options = OutputOptions(kinds=("exr", "npz", "video"), colormaps=("Spectral_r", "Greys_r", "turbo"))
    assert entry_names(options) == ("{stem}_depth.npz", "{stem}_depth_preview.mp4", "{stem}_depth_exr",
                                    "{stem}_depth_preview_Greys_r.mp4", "{stem}_depth_preview_turbo.mp4")


def test_write_outputs_places_every_file(tmp_path, depth):
    options = OutputOptions(kinds=("npz", "png16", "video", "exr"), colormaps=("Spectral_r", "gray"), fps=8)
    written = write_outputs(plan_outputs(tmp_path, "walk", options), depth, options, input_fps=25)
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        "walk_depth.npz", "walk_depth_exr", "walk_depth_png16", "walk_depth_preview.mp4",
        "walk_depth_preview_gray.mp4"]
    assert written["npz"] == tmp_path / "walk_depth.npz"
    assert written["video:gray"] == tmp_path / "walk_depth_preview_gray.mp4"
    # issue 9: the range JSON sits inside the png16 folder, as the README says
    info = json.loads((tmp_path / "walk_depth_png16" / "walk_range.json").read_text())
    frame = cv2.imread(str(tmp_path / "walk_depth_png16" / "walk_00002.png"), cv2.IMREAD_UNCHANGED)
    np.testing.assert_allclose(info["min"] + frame / 65535 * (info["max"] - info["min"]), depth[2].numpy(),
                               atol=(info["max"] - info["min"]) / 65535)
    assert read_video(written["video"]).fps == pytest.approx(8)


def test_overwrite_and_new_take(tmp_path, depth):
    everything = OutputOptions(kinds=("npz", "png16", "exr"))
    write_outputs(plan_outputs(tmp_path, "walk", everything), depth, everything)
    with pytest.raises(OutputExists, match="walk_depth.npz"):
        plan_outputs(tmp_path, "walk", OutputOptions(kinds=("png16",)))
    shorter = OutputOptions(kinds=("png16",))
    take = plan_outputs(tmp_path, "walk", shorter, existing="new_take")
    write_outputs(take, depth[:2], shorter)
    assert len(list((tmp_path / "walk_take2_depth_png16").glob("walk_take2_*.png"))) == 2
    write_outputs(plan_outputs(tmp_path, "walk", shorter, existing="overwrite"), depth[:2], shorter)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["walk_depth_png16", "walk_take2_depth_png16"]
    assert sorted(p.name for p in (tmp_path / "walk_depth_png16").iterdir()) == [
        "walk_00000.png", "walk_00001.png", "walk_range.json"]


@pytest.mark.parametrize("options, message", [
    (OutputOptions(kinds=("gif",)), "outputs must be a comma-separated subset"),
    (OutputOptions(kinds=()), "outputs must be a comma-separated subset"),
    (OutputOptions(colormaps=("rainbow",)), r"Unknown colour map\(s\) \['rainbow'\]"),
    (OutputOptions(fps=0), "frame rate must be > 0"),
])
def test_bad_output_options(options, message):
    with pytest.raises(InvalidSettings, match=message):
        check_output_options(options)


def test_parse_kinds():
    assert parse_kinds("npz, exr,npz") == ("npz", "exr")
    assert parse_kinds(["video"]) == ("video",)
