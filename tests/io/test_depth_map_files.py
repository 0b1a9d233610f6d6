"""Reference depth maps read one at a time (EXR sequences, NumPy), and colour-converted videos."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from rollingdepth_core.errors import InvalidInput
from rollingdepth_core.io.colour import resolve_colour
from rollingdepth_core.io.depth_sources import DepthMapFiles
from rollingdepth_core.io.exr import write_exr
from rollingdepth_core.io.plates import ColourConvertedSource
from rollingdepth_core.io.sources import TensorSource


def test_exr_sequence_of_metric_depth_is_matched_to_the_clip_by_frame_number(tmp_path):
    maps = {n: np.full((4, 6), float(n - 1000), np.float32) for n in range(1003, 1007)}
    for n, values in maps.items():
        write_exr(tmp_path / f"lidar.{n}.exr", {"Z": values})
    files = DepthMapFiles(tmp_path / "lidar.####.exr")
    assert files.channel == "Z" and files.shape == (4, 4, 6)
    assert files.frame_numbers == (1003, 1004, 1005, 1006)
    torch.testing.assert_close(files[1], torch.full((4, 6), 4.0))
    indices, frames = files.clip_frames(tuple(range(1001, 1006)))  # the clip is frames 1001-1005
    assert indices == [0, 1, 2] and frames == [2, 3, 4]
    subset = files.subset(indices)
    assert len(subset) == 3 and subset.shape == (3, 4, 6) and float(subset[2][0, 0]) == 5.0
    with pytest.raises(InvalidInput, match="None of the reference depth frames"):
        files.clip_frames((1, 2, 3))
    write_exr(tmp_path / "rgb" / "a.1.exr", {"R": np.ones((2, 2)), "G": np.ones((2, 2))})
    assert DepthMapFiles(tmp_path / "rgb" / "a.#.exr").channel == "R"
    write_exr(tmp_path / "alpha" / "b.1.exr", {"A": np.ones((2, 2))})
    with pytest.raises(InvalidInput, match="no depth channel"):
        DepthMapFiles(tmp_path / "alpha" / "b.#.exr")


def test_numpy_maps_are_memory_mapped_and_matched_by_position(tmp_path):
    array = np.arange(3 * 4 * 5, dtype=np.float32).reshape(3, 4, 5) + 1
    np.save(tmp_path / "z.npy", array)
    files = DepthMapFiles(tmp_path / "z.npy")
    torch.testing.assert_close(files[2], torch.from_numpy(array[2]))
    assert files.clip_frames((1001, 1002)) == ([0, 1], [0, 1])
    np.savez(tmp_path / "z.npz", depth=array[0])
    assert DepthMapFiles(tmp_path / "z.npz").shape == (1, 4, 5)
    with pytest.raises(InvalidInput, match="does not exist"):
        DepthMapFiles(tmp_path / "missing.npy")


def test_colour_converted_video_frames_equal_ocio_applied_to_the_read_frames(monkeypatch):
    monkeypatch.delenv("OCIO", raising=False)
    frames = torch.rand(2, 3, 6, 8, generator=torch.Generator().manual_seed(0)) * 2 - 1
    colour = resolve_colour("ACEScct")
    source = ColourConvertedSource(TensorSource(frames), colour)
    out = source.read(0, 2)
    image = ((frames[1] + 1) / 2).permute(1, 2, 0).contiguous().numpy()
    expected = torch.from_numpy(colour.apply(image)[0]).permute(2, 0, 1) * 2 - 1
    torch.testing.assert_close(out[1], expected)
    assert source.num_frames == 2 and source.input_size == (6, 8)
    assert source.fingerprint()[-1] == colour.description
