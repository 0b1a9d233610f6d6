"""The command line on image sequences: plates in (EXR, colour), linear Z EXRs out (tiny model)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import OpenImageIO as oiio
import pytest
import torch

from rollingdepth_core import PRESETS, estimate_depth
from rollingdepth_core.cli import main
from rollingdepth_core.conversion.convert import DepthConversion, convert_clip
from rollingdepth_core.io.exr import read_exr_channel
from rollingdepth_core.io.plates import ImageSequenceSource

FIRST, COUNT = 1001, 6
COMMON = ["-r", "32", "--coalign-iterations", "40", "--coalign-method", "reference", "-q"]


@pytest.fixture(scope="module")
def plate(tmp_path_factory, pack_images):
    """plate.1001.exr .. plate.1006.exr: ACEScg-ish linear half floats, 2x anamorphic, 23.976 fps."""
    folder = tmp_path_factory.mktemp("plate")
    for i in range(COUNT):
        pixels = np.ascontiguousarray(pack_images[i].numpy() ** 2.2 * 2.0)
        spec = oiio.ImageSpec(64, 40, 3, "half")
        spec.attribute("PixelAspectRatio", 2.0)
        spec.attribute("FramesPerSecond", oiio.TypeDesc("rational"), (24000, 1001))
        out = oiio.ImageOutput.create(str(folder / f"plate.{FIRST + i}.exr"))
        out.open(str(folder / f"plate.{FIRST + i}.exr"), spec)
        out.write_image(pixels)
        out.close()
    return folder


def run_cli(*arguments) -> int:
    return main([str(a) for a in arguments])


def test_plate_to_linear_z_exrs_matches_the_api(plate, tmp_path, tiny_model_dir, tiny_model, monkeypatch):
    monkeypatch.delenv("OCIO", raising=False)
    out = tmp_path / "out"
    code = run_cli(plate / "plate.####.exr", "-o", out, "-m", tiny_model_dir, *COMMON,
                   "--frame-range", "1002-1005", "--colour-space", "ACEScg", "--depth", "planes",
                   "--near", "2", "--far", "40", "--spread", "--outputs", "exr,npz")
    assert code == 0
    frames = sorted((out / "plate_depth_exr").iterdir())
    assert [p.name for p in frames] == [f"plate.depth.{n}.exr" for n in range(1002, 1006)]
    spec = oiio.ImageInput.open(str(frames[0])).spec()
    assert spec.channelnames == ("depth.Z", "depth.spread") and str(spec.format) == "float"
    assert (spec.width, spec.height) == (64, 40)  # the plate's stored size ...
    assert spec.get_float_attribute("PixelAspectRatio") == 2.0  # ... and pixel aspect
    assert spec.getattribute("FramesPerSecond") == (24000, 1001)
    assert spec.get_string_attribute("rollingdepth:kind") == "z"
    assert "'ACEScg' -> display 'sRGB - Display'" in spec.get_string_attribute("rollingdepth:colour")
    assert spec.get_string_attribute("rollingdepth:preset") == "fast"
    assert json.loads(spec.get_string_attribute("rollingdepth:conversion"))["near"] == 2.0
    # the same through the Python API
    source = ImageSequenceSource(plate / "plate.####.exr", "1002-1005", colour_space="ACEScg")
    assert source.input_size == (40, 128)  # desqueezed for the model
    settings = PRESETS["fast"].__class__(**{**PRESETS["fast"].__dict__, "processing_resolution": 32,
                                           "dtype": "fp32"})
    from rollingdepth_core.coalign.problem import CoalignSettings

    result = estimate_depth(tiny_model, source, settings, coalign_method="reference",
                            coalign_settings=CoalignSettings(num_iterations=40), spread=True)
    z, _ = convert_clip(result.depth, DepthConversion("planes", 2.0, 40.0))
    assert z.size == (40, 64)
    np.testing.assert_allclose(read_exr_channel(frames[2], "depth.Z"), z.values[2].numpy(), rtol=1e-5)
    with np.load(out / "plate_depth.npz") as data:
        assert list(data["frame_numbers"]) == [1002, 1003, 1004, 1005]
        np.testing.assert_allclose(data["z"], z.values.numpy(), rtol=1e-5)
        assert data["spread"].shape == (4, 40, 64) and "linear Z" in str(data["meaning"])


def test_fit_to_reference_depth_files_gives_back_the_reference(plate, tmp_path, tiny_model_dir, monkeypatch):
    """Z written with near/far planes, read back as 'metric' reference: the fit must find that Z."""
    monkeypatch.delenv("OCIO", raising=False)
    first = tmp_path / "planes"
    assert run_cli(plate / "plate.%04d.exr", "-o", first, "-m", tiny_model_dir, *COMMON,
                   "--depth", "planes", "--near", "2", "--far", "40", "--percentiles", "0,100",
                   "--outputs", "exr") == 0
    reference = first / "plate_depth_exr" / "plate.depth.####.exr"
    second = tmp_path / "fit"
    assert run_cli(plate, "-o", second, "-m", tiny_model_dir, *COMMON, "--depth", "fit",
                   "--fit-reference", reference, "--exr-channel", "Z", "--exr-pixel-type", "half",
                   "--outputs", "exr") == 0
    for n in (1001, 1004, 1006):
        expected = read_exr_channel(first / "plate_depth_exr" / f"plate.depth.{n}.exr", "depth.Z")
        named = plate.name  # a folder as input: NAME is the folder's name
        fitted = read_exr_channel(second / f"{named}_depth_exr" / f"{named}.depth.{n}.exr", "Z")
        np.testing.assert_allclose(fitted, expected, rtol=2e-3)  # half float
    first_frame = second / f"{plate.name}_depth_exr" / f"{plate.name}.depth.1001.exr"
    spec = oiio.ImageInput.open(str(first_frame)).spec()
    conversion = json.loads(spec.get_string_attribute("rollingdepth:conversion"))
    assert conversion["method"] == "fit" and conversion["median_relative_z_error"] < 1e-3
    assert conversion["num_samples"] > 1000


@pytest.mark.parametrize("extra, message", [
    (["--frame-range", "1001-1009"], "missing 3 of the frames 1001-1009: 1007-1009"),
    (["--colour-space", "Kodak 5219"], "not in the OpenColorIO config"),
    (["--depth", "fit"], "--depth fit needs known depth"),
    (["--depth", "fit", "--fit-points", "1001 3 3 2.0; 1020 5 5 4.0"], "frame 1020 is not in the clip"),
    (["--depth", "planes", "--near", "10", "--far", "5"], "--near must be nearer than --far"),
    (["--exr-compression", "dwaa"], "invalid choice"),
    (["--fit-points", "1001 1 1 2"], "only used with --depth fit"),
    (["--frame-range", "1001-1003", "--frame-count", "2"], "either --frame-range or"),
    # were accepted: a missing points file was read as point text, --near/--far without planes ignored
    (["--depth", "fit", "--fit-points", "no_such.txt"], "--fit-points no_such.txt: no such file"),
    (["--near", "2", "--far", "40"], "--near and --far are only used with --depth planes"),
    (["--depth", "normalized", "--far", "40"], "--near and --far are only used with --depth planes"),
])
def test_plate_mistakes_fail_before_the_model_loads(plate, tmp_path, extra, message, caplog):
    """Each is one line, exit 2, and comes before the (here nonexistent) model is loaded."""
    code = subprocess.run(
        [sys.executable, "-m", "rollingdepth_core", str(plate / "plate.####.exr"), "-o", str(tmp_path),
         "-m", str(tmp_path / "no_model"), "-q", *extra], capture_output=True, text=True,
    )
    assert code.returncode == 2
    assert message in code.stderr and "no_model" not in code.stderr
    assert not any(Path(tmp_path).glob("plate*"))


def test_a_folder_of_pngs_is_read_lazily_with_16_bits(tmp_path, tiny_model_dir):
    folder = tmp_path / "shot"
    folder.mkdir()
    for i in range(4):
        values = np.linspace(0, 1, 20 * 28 * 3).reshape(20, 28, 3) * (0.5 + 0.1 * i)
        out = oiio.ImageOutput.create(str(folder / f"f_{i:03d}.png"))
        out.open(str(folder / f"f_{i:03d}.png"), oiio.ImageSpec(28, 20, 3, "uint16"))
        out.write_image(values.astype(np.float32))
        out.close()
    code = run_cli(folder, "-o", tmp_path / "o", "-m", tiny_model_dir, *COMMON, "--outputs", "npz")
    assert code == 0
    with np.load(tmp_path / "o" / "shot_depth.npz") as data:
        assert data["inverse_depth"].shape == (4, 20, 28)  # an image folder: back at its own size
        assert list(data["frame_numbers"]) == [0, 1, 2, 3]
        assert torch.isfinite(torch.from_numpy(data["inverse_depth"])).all()


def test_ntsc_rates_stay_exact_in_every_output(plate, tmp_path, tiny_model_dir):
    # issue 10 item 4: 23.976 is 24000/1001 in the EXR headers and the preview, from a plate and a video
    from fractions import Fraction

    from rollingdepth_core.io.export import save_video
    from rollingdepth_core.io.sources import VideoFileSource

    video = save_video(tmp_path / "ntsc.mp4", torch.rand(6, 24, 32, 3), fps=Fraction(24000, 1001))
    for clip, name in ((plate / "plate.####.exr", "plate"), (video, "ntsc")):
        out = tmp_path / f"out_{name}"
        assert run_cli(clip, "-o", out, "-m", tiny_model_dir, *COMMON, "--outputs", "exr,video") == 0
        first = sorted((out / f"{name}_depth_exr").iterdir())[0]
        assert oiio.ImageInput.open(str(first)).spec().getattribute("FramesPerSecond") == (24000, 1001)
        assert VideoFileSource(out / f"{name}_depth_preview.mp4").frame_rate == Fraction(24000, 1001)
