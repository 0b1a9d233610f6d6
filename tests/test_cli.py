"""The command line, run in-process on the tiny model."""

import dataclasses
import subprocess
import sys

import cv2
import numpy as np
import pytest
import torch

from rollingdepth_core import PRESETS, CoalignSettings, estimate_depth
from rollingdepth_core.cli import build_parser, main, settings_from_args
from rollingdepth_core.io.export import read_exr, save_video
from rollingdepth_core.io.sources import VideoFileSource
from rollingdepth_core.io.video_files import read_clip


@pytest.fixture(scope="module")
def clip_path(tmp_path_factory):
    rng = torch.Generator().manual_seed(0)
    frames = torch.rand(7, 30, 44, 3, generator=rng)
    return save_video(tmp_path_factory.mktemp("in") / "walk.mp4", frames, fps=12)


def test_cli_writes_every_output_and_matches_the_api(clip_path, tmp_path, tiny_model_dir, tiny_model):
    out = tmp_path / "out"
    code = main([str(clip_path), "-o", str(out), "-m", str(tiny_model_dir), "-r", "32", "--seed", "5",
                 "--coalign-method", "reference", "--coalign-iterations", "40", "--refine-steps", "1",
                 "--outputs", "npz,png16,video,exr", "-q"])
    assert code == 0
    with np.load(out / "walk_depth.npz") as data:
        depth = data["inverse_depth"]
    assert depth.shape == (7, 21, 32) and depth.dtype == np.float32
    # the CLI decodes the video lazily, resizing batch by batch as the stages read it
    settings = dataclasses.replace(PRESETS["fast"], processing_resolution=32, refine_steps=1)
    expected = estimate_depth(tiny_model, VideoFileSource(clip_path), settings, seed=5,
                              coalign_method="reference", coalign_settings=CoalignSettings(num_iterations=40))
    np.testing.assert_allclose(depth, expected.depth.inverse_depth.numpy(), rtol=0, atol=1e-5)
    assert len(list((out / "walk_depth_png16").glob("walk_*.png"))) == 7
    exrs = sorted((out / "walk_depth_exr").glob("walk.depth.*.exr"))  # numbered like the frames
    assert [p.name for p in exrs] == [f"walk.depth.{i:04d}.exr" for i in range(7)]
    np.testing.assert_array_equal(read_exr(exrs[3], "depth.Z"), depth[3])
    assert (out / "walk_depth_preview.mp4").stat().st_size > 0


def test_cli_image_folder_restore_and_frame_range(tmp_path, tiny_model_dir):
    folder = tmp_path / "frames"
    folder.mkdir()
    for i in range(5):
        cv2.imwrite(str(folder / f"{i:03d}.png"), np.full((20, 28, 3), 50 * i, np.uint8))
    code = main([str(folder), "-o", str(tmp_path / "o"), "-m", str(tiny_model_dir), "-r", "16",
                 "--start-frame", "1", "--frame-count", "3", "--restore-resolution",
                 "--coalign-iterations", "10", "--outputs", "npz", "-q"])
    assert code == 0
    with np.load(tmp_path / "o" / "frames_depth.npz") as data:
        assert data["inverse_depth"].shape == (3, 20, 28)


def test_cli_errors_exit_2_with_a_message(tmp_path, tiny_model_dir, caplog):
    assert main([str(tmp_path / "missing.mp4"), "-m", str(tiny_model_dir), "-q"]) == 2
    assert "does not exist" in caplog.text
    assert main([str(tmp_path), "--outputs", "gif", "-q"]) == 2
    assert "--outputs" in caplog.text
    assert main([str(tmp_path), "-d", "5,10", "-q"]) == 2
    assert "must include 1" in caplog.text


def test_settings_from_args_override_preset():
    args = build_parser().parse_args(["x.mp4", "-p", "full", "-d", "1,5", "--refine-steps", "0",
                                      "--no-cap-dilation", "-r", "512", "--dtype", "bf16"])
    settings = settings_from_args(args)
    assert settings == dataclasses.replace(PRESETS["full"], dilations=(1, 5), refine_steps=0,
                                           cap_dilation=False, processing_resolution=512, dtype="bf16")
    defaults = build_parser().parse_args(["x.mp4"])
    assert settings_from_args(defaults) == PRESETS["fast"]
    assert defaults.coalign_method == "fast"


def test_coalign_method_choices(capsys):
    with pytest.raises(SystemExit):
        build_parser().parse_args(["x.mp4", "--coalign-method", "magic"])
    err = capsys.readouterr().err
    assert "invalid choice: 'magic'" in err and "'reference'" in err and "'fast'" in err
    args = build_parser().parse_args(["x.mp4", "--coalign-method", "robust"])
    assert args.coalign_method == "robust"


def test_module_entry_point_help():
    result = subprocess.run([sys.executable, "-m", "rollingdepth_core", "--help"], capture_output=True,
                            text=True, check=True)
    assert "--preset" in result.stdout and "--snippets-per-batch" in result.stdout


def test_cli_video_frame_range_and_batch_sizes(clip_path, tmp_path, tiny_model_dir, tiny_model):
    out = tmp_path / "out"
    code = main([str(clip_path), "-o", str(out), "-m", str(tiny_model_dir), "-r", "32", "--start-frame", "2",
                 "--frame-count", "4", "--snippets-per-batch", "2", "--vae-batch-size", "auto",
                 "--storage-dir", str(tmp_path / "store"), "--outputs", "npz", "-q"])
    assert code == 0
    with np.load(out / "walk_depth.npz") as data:
        depth = data["inverse_depth"]
    eager = read_clip(clip_path, start=2, count=4).frames  # the same frames, decoded eagerly
    settings = dataclasses.replace(PRESETS["fast"], processing_resolution=32)
    expected = estimate_depth(tiny_model, eager, settings)
    np.testing.assert_allclose(depth, expected.depth.inverse_depth.numpy(), rtol=0, atol=1e-4)
    assert main([str(clip_path), "-o", str(out), "-m", str(tiny_model_dir), "--start-frame", "7", "-q"]) == 2


@pytest.mark.parametrize("bad", ["0", "-3", "many"])
def test_cli_rejects_bad_batch_sizes(bad, capsys):
    with pytest.raises(SystemExit):
        build_parser().parse_args(["in.mp4", "--snippets-per-batch", bad])
    assert "whole number >= 1 or 'auto'" in capsys.readouterr().err


def test_whole_number_arguments():
    """`positive_int` (also bench speed's --frames/--repeat) and `batch_size` share one parse."""
    import argparse

    from rollingdepth_core.cli import batch_size, positive_int

    assert [positive_int(t) for t in ("1", "12", " 3")] == [1, 12, 3]
    assert [batch_size(t) for t in ("auto", "1", "16")] == ["auto", 1, 16]
    for bad in ("0", "-3", "1.5", "many", "auto"):
        with pytest.raises(argparse.ArgumentTypeError, match=f"^must be a whole number >= 1; got '{bad}'$"):
            positive_int(bad)
    for bad in ("0", "-3", "1.5", "many", "AUTO"):
        with pytest.raises(argparse.ArgumentTypeError,
                           match=f"^must be a whole number >= 1 or 'auto'; got '{bad}'$"):
            batch_size(bad)
