"""Frame checks, processing size, resize, pad and crop."""

import pytest
import torch

from rollingdepth_core.errors import InvalidInput, InvalidSettings
from rollingdepth_core.io.frames import (
    check_finite,
    check_frames,
    crop_to,
    pad_to_multiple,
    padded_size,
    padding_for,
    processing_size,
    resize_depth,
    resize_frames,
)


@pytest.mark.parametrize(
    "height, width, resolution, expected",
    [
        (1080, 1920, 768, (432, 768)),
        (720, 1280, 1024, (576, 1024)),
        (480, 640, 768, (576, 768)),  # upscaling keeps the aspect too
        (700, 1000, 768, (537, 768)),  # reference truncates with int()
        (1920, 1080, 768, (768, 432)),  # portrait
        (48, 64, 0, (48, 64)),  # 0 keeps the input size
    ],
)
def test_processing_size(height, width, resolution, expected):
    assert processing_size(height, width, resolution) == expected


def test_processing_size_negative():
    with pytest.raises(InvalidSettings, match="processing_resolution"):
        processing_size(10, 10, -1)


def test_resize_is_bilinear_antialias():
    frames = torch.rand(2, 3, 40, 60)
    out = resize_frames(frames, (20, 30))
    expected = torch.nn.functional.interpolate(
        frames, size=(20, 30), mode="bilinear", align_corners=False, antialias=True
    )
    torch.testing.assert_close(out, expected, rtol=0, atol=0)
    assert resize_frames(frames, (40, 60)) is frames


def test_resize_depth_shape():
    assert resize_depth(torch.rand(3, 10, 20), (5, 7)).shape == (3, 5, 7)


def test_pad_and_crop_roundtrip():
    images = torch.rand(2, 3, 37, 53)
    assert padding_for((37, 53)) == (3, 3)
    padded = pad_to_multiple(images)
    assert padded.shape == (2, 3, 40, 56)
    # replicate padding repeats the last row / column
    torch.testing.assert_close(padded[..., 39, :53], images[..., 36, :])
    torch.testing.assert_close(padded[..., :37, 55], images[..., :, 52])
    torch.testing.assert_close(crop_to(padded, (37, 53)), images)


def test_pad_noop_when_divisible():
    images = torch.rand(1, 3, 48, 64)
    assert pad_to_multiple(images) is images


def test_what_the_vae_sees_sizes():
    """Resize to the processing size, then pad (was `prepare_frames`, removed: unused)."""
    frames = torch.rand(2, 3, 70, 100) * 2 - 1
    size = processing_size(70, 100, 50)
    assert size == (35, 50)
    assert pad_to_multiple(resize_frames(frames, size)).shape == (2, 3, 40, 56)  # 35 x 50 padded
    assert padded_size((70, 100), 50) == (40, 56)


@pytest.mark.parametrize(
    "frames, message",
    [
        (torch.zeros(0, 3, 8, 8), "empty"),
        (torch.zeros(3, 8, 8), "4 dimensions"),
        (torch.zeros(2, 4, 8, 8), "alpha"),
        (torch.zeros(2, 1, 8, 8), "greyscale"),
        (torch.zeros(2, 3, 8, 8, dtype=torch.uint8), "floating point"),
        (torch.zeros(2, 3, 0, 8), "empty image size"),
    ],
)
def test_check_frames_bad_input(frames, message):
    with pytest.raises(InvalidInput, match=message):
        check_frames(frames)


def test_check_frames_not_a_tensor():
    with pytest.raises(InvalidInput, match="torch.Tensor"):
        check_frames([[0.0]])


def test_nan_frames_are_named():
    frames = torch.zeros(5, 3, 4, 4)
    frames[1, 0, 0, 0] = float("nan")
    frames[3, 2, 1, 1] = float("inf")
    with pytest.raises(InvalidInput, match=r"frames \[1, 3\]"):
        check_frames(frames)
    with pytest.raises(InvalidInput, match="depth contains NaN"):
        check_finite(frames, "depth")
