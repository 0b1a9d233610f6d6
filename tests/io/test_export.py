"""Writers: NPZ, 16-bit PNG, EXR, preview video."""

import json

import cv2
import numpy as np
import pytest
import torch

from rollingdepth_core.errors import InvalidInput
from rollingdepth_core.io.export import read_exr, save_exr, save_npz, save_png16, save_video
from rollingdepth_core.io.video_files import read_video


@pytest.fixture
def depth():
    return torch.rand(3, 9, 13) * 4 - 1


def test_npz_roundtrip(tmp_path, depth):
    path = save_npz(tmp_path / "out" / "depth.npz", depth)
    with np.load(path) as data:
        np.testing.assert_array_equal(data["inverse_depth"], depth.numpy())
        assert data["inverse_depth"].dtype == np.float32


def test_png16_uses_one_range_and_records_it(tmp_path, depth):
    paths = save_png16(tmp_path, depth, prefix="clip")
    assert [p.name for p in paths] == ["clip_00000.png", "clip_00001.png", "clip_00002.png"]
    info = json.loads((tmp_path / "clip_range.json").read_text())
    frames = np.stack([cv2.imread(str(p), cv2.IMREAD_UNCHANGED) for p in paths])
    assert frames.dtype == np.uint16 and frames.min() == 0 and frames.max() == 65535
    recovered = info["min"] + frames / 65535.0 * (info["max"] - info["min"])
    np.testing.assert_allclose(recovered, depth.numpy(), atol=(info["max"] - info["min"]) / 65535)


@pytest.mark.parametrize("channel", ["Z", "RGB"])
def test_exr_float32_roundtrip(tmp_path, depth, channel):
    paths = save_exr(tmp_path, depth, channel=channel)
    for path, frame in zip(paths, depth, strict=True):
        np.testing.assert_array_equal(read_exr(path, "Z" if channel == "Z" else "R"), frame.numpy())


def test_preview_video(tmp_path):
    rgb = torch.rand(4, 9, 13, 3)  # odd size: padded to even
    path = save_video(tmp_path / "preview.mp4", rgb, fps=12)
    clip = read_video(path)
    assert clip.frames.shape == (4, 3, 10, 14) and clip.fps == pytest.approx(12)


def test_writers_refuse_bad_depth(tmp_path):
    with pytest.raises(InvalidInput, match="N H W"):
        save_npz(tmp_path / "x.npz", torch.zeros(2, 2))
    with pytest.raises(InvalidInput, match="NaN"):
        save_png16(tmp_path, torch.full((1, 2, 2), float("nan")))
    with pytest.raises(InvalidInput, match="N H W 3"):
        save_video(tmp_path / "x.mp4", torch.zeros(2, 4, 4))
    assert not list(tmp_path.iterdir())  # nothing half-written


def test_read_exr_missing_channel(tmp_path, depth):
    path = save_exr(tmp_path, depth[:1])[0]
    with pytest.raises(InvalidInput, match="no channel 'Y'"):
        read_exr(path, "Y")
