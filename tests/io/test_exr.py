"""EXR depth sequences: names, channels, pixel types, windows, metadata; read back by real readers."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from fractions import Fraction
from pathlib import Path

import numpy as np
import OpenImageIO as oiio
import pytest
import torch

from rollingdepth_core.conversion import ConvertedDepth
from rollingdepth_core.errors import InvalidInput, InvalidSettings
from rollingdepth_core.io.exr import (
    ExrOptions,
    depth_file_name,
    read_exr_channel,
    write_depth_sequence,
    write_exr,
)
from rollingdepth_core.types import ClipInfo

CLIP = ClipInfo(
    name="plate", frame_numbers=(1001, 1002, 1003), frame_rate=Fraction(24000, 1001), padding=4,
    pixel_aspect=2.0, stored_size=(6, 8), display_window=(10, 20, 8, 6), colour="OCIO test transform",
    source="plate.####.exr frames 1001-1003",
)


def z_depth(clip=CLIP, size=(6, 8)) -> ConvertedDepth:
    values = torch.linspace(1.5, 80.0, 3 * size[0] * size[1]).reshape(3, *size)
    spread = values * 0.01
    parameters = {"method": "planes", "near": 1.5, "far": 80.0, "scale": 0.5, "shift": 0.01}
    return ConvertedDepth(values, "z", "m", parameters, spread, clip)


def oiiotool() -> str | None:
    beside = Path(sys.executable).with_name("oiiotool")
    return str(beside) if beside.exists() else shutil.which("oiiotool")


def test_file_names_keep_the_frame_numbers():
    assert depth_file_name("plate", 1001) == "plate.depth.1001.exr"
    assert depth_file_name("plate", 7, 4) == "plate.depth.0007.exr"
    assert depth_file_name("shot", -3, 3) == "shot.depth.-003.exr"


@pytest.mark.parametrize("pixel_type", ["float", "half"])
def test_sequence_round_trip_with_plate_windows_and_metadata(tmp_path, pixel_type):
    depth = z_depth()
    options = ExrOptions(pixel_type=pixel_type).with_spread()
    paths = write_depth_sequence(tmp_path, depth, options=options, metadata={"preset": "fast", "seed": 7})
    assert [p.name for p in paths] == [f"plate.depth.{n}.exr" for n in (1001, 1002, 1003)]
    assert not list(tmp_path.glob(".*"))  # no temporary files left
    handle = oiio.ImageInput.open(str(paths[1]))
    spec = handle.spec()
    assert spec.channelnames == ("depth.Z", "depth.spread")
    assert str(spec.format) == pixel_type
    assert (spec.full_x, spec.full_y, spec.full_width, spec.full_height) == (10, 20, 8, 6)
    assert (spec.x, spec.y) == (10, 20)
    assert spec.get_float_attribute("PixelAspectRatio") == 2.0
    assert spec.getattribute("FramesPerSecond") == (24000, 1001)
    assert spec.get_string_attribute("compression") == "zip"
    assert spec.get_string_attribute("rollingdepth:kind") == "z"
    assert spec.get_string_attribute("rollingdepth:units") == "m"
    assert "optical axis" in spec.get_string_attribute("rollingdepth:meaning")
    assert json.loads(spec.get_string_attribute("rollingdepth:conversion"))["far"] == 80.0
    assert "standard deviation" in spec.get_string_attribute("rollingdepth:spread")
    assert spec.get_string_attribute("rollingdepth:colour") == "OCIO test transform"
    assert spec.get_string_attribute("rollingdepth:preset") == "fast"
    assert spec.get_int_attribute("rollingdepth:seed") == 7
    assert spec.get_int_attribute("rollingdepth:frame") == 1002
    assert spec.get_string_attribute("rollingdepth:size") == "plate"
    handle.close()
    z = read_exr_channel(paths[1], "depth.Z")
    expected = depth.values[1].numpy()
    if pixel_type == "float":
        np.testing.assert_array_equal(z, expected)
    else:
        np.testing.assert_allclose(z, expected, rtol=1e-3)
    np.testing.assert_allclose(read_exr_channel(paths[1], "depth.spread"), depth.spread[1].numpy(), rtol=1e-3)


def test_plain_z_channel_and_processing_size_without_clip(tmp_path):
    values = torch.rand(2, 4, 5)
    depth = ConvertedDepth(values, "normalized", "", {"method": "normalized"})
    options = ExrOptions(channel="Z", compression="piz")
    paths = write_depth_sequence(tmp_path, depth, name="shot", options=options)
    assert [p.name for p in paths] == ["shot.depth.0000.exr", "shot.depth.0001.exr"]
    spec = oiio.ImageInput.open(str(paths[0])).spec()
    assert spec.channelnames == ("Z",) and spec.get_string_attribute("compression") == "piz"
    assert spec.get_string_attribute("rollingdepth:size") == "processing"
    np.testing.assert_array_equal(read_exr_channel(paths[0], "Z"), values[0].numpy())
    # a depth at processing size, not the plate's: plain window, square pixels, frame numbers kept
    small = z_depth(size=(3, 4))
    paths = write_depth_sequence(tmp_path / "small", small)
    spec = oiio.ImageInput.open(str(paths[0])).spec()
    assert (spec.full_width, spec.full_height, spec.x) == (4, 3, 0)
    assert spec.get_float_attribute("PixelAspectRatio") == 1.0 and paths[0].name == "plate.depth.1001.exr"


def test_nothing_is_overwritten_unless_asked(tmp_path):
    depth = z_depth()
    write_depth_sequence(tmp_path, depth)
    before = (tmp_path / "plate.depth.1002.exr").read_bytes()
    doubled = ConvertedDepth(depth.values * 2, "z", "m", {}, None, CLIP)
    with pytest.raises(InvalidInput, match="3 of the 3 files exist already"):
        write_depth_sequence(tmp_path, doubled)
    assert (tmp_path / "plate.depth.1002.exr").read_bytes() == before
    write_depth_sequence(tmp_path, doubled, overwrite=True)
    written = read_exr_channel(tmp_path / "plate.depth.1002.exr")
    np.testing.assert_array_equal(written, depth.values[1].numpy() * 2)


def test_bad_options_are_refused_before_writing(tmp_path):
    cases = ((ExrOptions(compression="dwaa"), "lossless"), (ExrOptions(pixel_type="uint"), "half"),
             (ExrOptions(channel=""), "channel names"),
             (ExrOptions(spread_channel="depth.Z"), "its own channel"))
    for options, message in cases:
        with pytest.raises(InvalidSettings, match=message):
            write_depth_sequence(tmp_path, z_depth(), options=options)
    no_spread = ConvertedDepth(torch.ones(1, 2, 2), "z", "m", {})
    with pytest.raises(InvalidInput, match="has no spread"):
        write_depth_sequence(tmp_path, no_spread, options=ExrOptions().with_spread())
    assert not list(tmp_path.iterdir())


def test_half_float_clamps_values_it_cannot_hold(tmp_path, caplog):
    depth = ConvertedDepth(torch.tensor([[[1.0, 1e6]]]), "z", "m", {})
    with caplog.at_level("WARNING"):
        path = write_depth_sequence(tmp_path, depth, options=ExrOptions(pixel_type="half"))[0]
    assert read_exr_channel(path).max() == 65504.0
    assert any("clamped" in r.message for r in caplog.records)


def test_write_exr_refuses_mismatched_channels(tmp_path):
    with pytest.raises(InvalidInput, match="one size"):
        write_exr(tmp_path / "a.exr", {"R": np.zeros((2, 2)), "G": np.zeros((3, 2))})
    with pytest.raises(InvalidInput, match="no channel"):
        read_exr_channel(write_exr(tmp_path / "b.exr", {"Z": np.zeros((2, 2))}), "depth.Z")


def test_oiiotool_lists_the_promised_channels_types_and_metadata(tmp_path):
    """The real reader (OpenImageIO's oiiotool, shipped by the OpenImageIO wheel) sees what we promise."""
    tool = oiiotool()
    assert tool is not None, "oiiotool missing: the OpenImageIO wheel ships it as a console script"
    metadata = {"model": "prs-eth/rollingdepth-v1-0", "preset": "fast", "seed": 0}
    options = ExrOptions(pixel_type="half").with_spread()
    path = write_depth_sequence(tmp_path, z_depth(), options=options, metadata=metadata)[0]
    run = subprocess.run([tool, "--info", "-v", str(path)], capture_output=True, text=True, check=True)
    info = run.stdout
    assert "8 x    6, 2 channel, half openexr" in info
    assert "channel list: depth.Z, depth.spread" in info
    assert 'compression: "zip"' in info
    assert "FramesPerSecond: 24000/1001 (23.976)" in info
    assert "PixelAspectRatio: 2" in info
    assert 'rollingdepth:kind: "z"' in info and 'rollingdepth:units: "m"' in info
    assert 'rollingdepth:model: "prs-eth/rollingdepth-v1-0"' in info and "rollingdepth:seed: 0" in info
    assert "rollingdepth:conversion:" in info and "rollingdepth:spread:" in info
    assert "full/display size: 8 x 6" in info and "full/display origin: 10, 20" in info
