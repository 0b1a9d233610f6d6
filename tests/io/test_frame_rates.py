"""Exact frame rates (23.976 = 24000/1001) from numbers, text and video files."""

from fractions import Fraction

import numpy as np
import pytest

from rollingdepth_core.errors import InvalidSettings
from rollingdepth_core.io.export import save_video
from rollingdepth_core.io.frame_rates import exact_frame_rate
from rollingdepth_core.io.sources import VideoFileSource


@pytest.mark.parametrize("given, expected", [
    (23.976, Fraction(24000, 1001)), ("23.976", Fraction(24000, 1001)), (29.97, Fraction(30000, 1001)),
    (59.94, Fraction(60000, 1001)), ("24000/1001", Fraction(24000, 1001)), (24, Fraction(24)),
    (25.0, Fraction(25)), (Fraction(2997, 100), Fraction(2997, 100)), (12.5, Fraction(25, 2)),
    ("30000 / 1001", Fraction(30000, 1001)),
])
def test_exact_frame_rate(given, expected):
    assert exact_frame_rate(given) == expected


@pytest.mark.parametrize("given", [0, -24, "abc", "24/0", "0/5"])
def test_bad_frame_rates(given):
    with pytest.raises(InvalidSettings):
        exact_frame_rate(given)


def test_video_source_keeps_an_ntsc_rate_exact(tmp_path):
    frames = np.zeros((3, 16, 16, 3), np.uint8)
    path = save_video(tmp_path / "ntsc.mp4", frames, fps=Fraction(24000, 1001))
    source = VideoFileSource(path)
    assert source.frame_rate == Fraction(24000, 1001)
    assert source.clip.frame_rate == Fraction(24000, 1001) and source.clip.frame_numbers == (0, 1, 2)
