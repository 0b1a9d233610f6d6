"""A sharded shot's files come from the command line's own writer (no Ray, no model): the same
depth written by `ShardedOutput` and by `cli.process_input` gives the same files."""

from pathlib import Path
from types import SimpleNamespace

import numpy as np
import OpenImageIO as oiio
import pytest
import torch

from rollingdepth_core import cli
from rollingdepth_core.conversion.convert import DepthConversion, convert_clip
from rollingdepth_core.farm.cli import build_parser as farm_parser
from rollingdepth_core.farm.shard_output import ShardedOutput
from rollingdepth_core.farm.shots import collect_shots
from rollingdepth_core.io.exr import read_exr_channel
from rollingdepth_core.io.outputs import OutputOptions, plan_outputs
from rollingdepth_core.io.sources import clip_info
from rollingdepth_core.types import ClipInfo, DepthVideo

FIRST, COUNT = 1001, 4
OPTIONS = ["-r", "32", "--depth", "planes", "--near", "1", "--far", "10", "--spread", "--outputs", "npz,exr"]


@pytest.fixture
def plate(tmp_path, make_image, plate_pixels):
    """plate.1001.exr .. plate.1004.exr, 16 x 12, 2x anamorphic."""
    for number in range(FIRST, FIRST + COUNT):
        make_image(tmp_path / f"plate.{number}.exr", plate_pixels(number), PixelAspectRatio=2.0)
    return tmp_path / "plate.####.exr"


def fake_depth(count: int) -> tuple[torch.Tensor, torch.Tensor]:
    """`N 8 20` inverse depth (a ramp moving with the frame) and its spread."""
    y = torch.linspace(0.2, 1.0, 8)[None, :, None]
    x = torch.linspace(0.0, 0.5, 20)[None, None, :]
    t = torch.arange(count, dtype=torch.float32)[:, None, None]
    return y + x + 0.05 * t, 0.01 * (1 + x + y + 0 * t)


def exr_attributes(path: Path) -> dict:
    spec = oiio.ImageInput.open(str(path)).spec()
    keys = [a.name for a in spec.extra_attribs if a.name.startswith("rollingdepth:")]
    keys += ["PixelAspectRatio", "FramesPerSecond"]
    return {"size": (spec.width, spec.height), "channels": spec.channelnames,
            **{k: spec.getattribute(k) for k in keys}}


def test_sharded_output_writes_what_the_command_line_writes(plate, tmp_path, monkeypatch):
    inverse, spread = fake_depth(COUNT)
    # the command line, with the depth it would have estimated replaced by ours
    asked = {}

    def estimate(model, frames, settings, **kwargs):
        asked["spread"] = kwargs["spread"]
        return SimpleNamespace(depth=DepthVideo(inverse, spread=spread, clip=clip_info(frames)), timings={})

    monkeypatch.setattr(cli, "estimate_depth", estimate)
    single = tmp_path / "single"
    args = cli.normalize_args(cli.build_parser().parse_args([str(plate), "-o", str(single), *OPTIONS]))
    cli.process_input(None, args, single, show=False)
    assert asked["spread"] is True
    # the farm's shot, as a farm command line with the same options gives it
    (shot,) = collect_shots(str(plate), farm_parser().parse_args(["SHOTS", "-o", "out", *OPTIONS]))
    output = ShardedOutput(shot, shot.args())
    assert output.spread is True  # the driver computes the spread for --spread
    farm = tmp_path / "farm"
    farm.mkdir()
    output.write(farm, inverse, spread)

    def listing(folder):
        return sorted(p.relative_to(folder).as_posix() for p in folder.rglob("*"))

    assert listing(farm) == listing(single)
    assert listing(farm)[-1] == f"plate_depth_exr/plate.depth.{FIRST + COUNT - 1}.exr"
    with np.load(single / "plate_depth.npz") as want, np.load(farm / "plate_depth.npz") as got:
        assert sorted(got.files) == sorted(want.files)
        for key in want.files:
            np.testing.assert_array_equal(got[key], want[key])
        np.testing.assert_array_equal(got["frame_numbers"], np.arange(FIRST, FIRST + COUNT))
        assert got["z"].shape == (COUNT, 12, 16)  # the plate's stored size
        assert 1.0 <= got["z"].min() and got["z"].max() <= 10.0
    for number in range(FIRST, FIRST + COUNT):
        name = f"plate_depth_exr/plate.depth.{number}.exr"
        assert exr_attributes(farm / name) == exr_attributes(single / name)
        for channel in ("depth.Z", "depth.spread"):
            np.testing.assert_array_equal(read_exr_channel(farm / name, channel),
                                          read_exr_channel(single / name, channel))
    attributes = exr_attributes(farm / "plate_depth_exr" / f"plate.depth.{FIRST}.exr")
    assert attributes["channels"] == ("depth.Z", "depth.spread") and attributes["PixelAspectRatio"] == 2.0
    assert attributes["rollingdepth:kind"] == "z" and attributes["rollingdepth:seed"] is not None


def test_sharded_output_checks_the_fit_references_before_any_work(plate, tmp_path):
    options = ["--depth", "fit", "--fit-points", "1001 3 3 2.0; 1020 5 5 4.0"]
    (shot,) = collect_shots(str(plate), farm_parser().parse_args(["SHOTS", "-o", "out", *options]))
    with pytest.raises(cli.InvalidSettings, match="frame 1020 is not in the clip"):
        ShardedOutput(shot, shot.args())


@pytest.mark.parametrize("restore, size", [(True, (12, 16)), (False, (6, 10))])
def test_write_depth_clip_converts_at_the_asked_size_with_the_clip_numbers(tmp_path, restore, size):
    inverse = torch.linspace(0.1, 1.0, 3 * 6 * 10).reshape(3, 6, 10)
    clip = ClipInfo(name="plate", frame_numbers=(1001, 1003, 1005), stored_size=(12, 16), pixel_aspect=1.5)
    video = DepthVideo(inverse, clip=clip)
    conversion = DepthConversion("planes", 1.0, 10.0)
    options = OutputOptions(kinds=("npz", "exr"))
    results = plan_outputs(tmp_path, "shot", options, "refuse")
    with results.write() as staging:
        job = cli.ConversionJob(conversion)
        written = cli.write_depth_clip(staging, "shot", video, job, options, restore, 24.0, 0, "shot",
                                       {"seed": 7})
    assert written["npz"] == tmp_path / "shot_depth.npz"
    want, _ = convert_clip(video, conversion, "plate" if restore else "depth")
    with np.load(tmp_path / "shot_depth.npz") as data:
        np.testing.assert_array_equal(data["frame_numbers"], [1001, 1003, 1005])
        assert data["z"].shape == (3, *size)
        np.testing.assert_allclose(data["z"], want.values.numpy(), rtol=1e-6)
    frames = sorted(p.name for p in (tmp_path / "shot_depth_exr").iterdir())
    assert frames == ["shot.depth.1001.exr", "shot.depth.1003.exr", "shot.depth.1005.exr"]
    attributes = exr_attributes(tmp_path / "shot_depth_exr" / "shot.depth.1003.exr")
    assert attributes["size"] == (size[1], size[0])
    # the plate's pixel aspect at the plate's size; square pixels at the (desqueezed) depth's size
    assert attributes["PixelAspectRatio"] == (1.5 if restore else 1.0)
    assert attributes["rollingdepth:seed"] == 7
    z = read_exr_channel(tmp_path / "shot_depth_exr" / "shot.depth.1003.exr", "depth.Z")
    np.testing.assert_allclose(z, want.values[1].numpy(), rtol=1e-6)
