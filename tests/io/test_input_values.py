"""Inputs that used to be accepted silently and gave garbage (issue 9): float frames in the
wrong range, 16-bit / RGBA / greyscale images converted without a word."""

import logging

import cv2
import numpy as np
import pytest
import torch

from rollingdepth_core.errors import InvalidInput
from rollingdepth_core.io.sources import ArraySource, TensorSource, as_source
from rollingdepth_core.io.video_files import read_image, read_image_folder


@pytest.mark.parametrize("frames, message", [
    (torch.rand(2, 3, 8, 8) * 255,
     r"look like 0\.\.255 pixels, but -1\.\.1 is expected\. Convert with x / 127\.5 - 1"),
    (torch.rand(2, 3, 8, 8) * 40 - 20, r"far outside the expected -1\.\.1"),
])
def test_tensor_frames_outside_minus_one_to_one_are_refused(frames, message):
    with pytest.raises(InvalidInput, match=message):
        TensorSource(frames)
    with pytest.raises(InvalidInput, match=message):
        as_source(frames)


def test_tensor_frames_that_look_like_zero_to_one_get_a_warning(caplog):
    with caplog.at_level(logging.WARNING):
        TensorSource(torch.rand(2, 3, 8, 8))
    assert "are they 0..1 images? -1..1 is expected; convert with x * 2 - 1" in caplog.text
    caplog.clear()
    with caplog.at_level(logging.WARNING):
        TensorSource(torch.rand(2, 3, 8, 8) * 2 - 1)
        TensorSource(torch.rand(2, 3, 8, 8) * 2.1 - 1.05)  # resampling overshoot is fine
    assert caplog.text == ""


@pytest.mark.parametrize("images, message", [
    (torch.rand(2, 8, 8, 3) * 255, r"look like 0\.\.255 pixels, but 0\.\.1 is expected\. Divide by 255"),
    (torch.rand(2, 8, 8, 3) * 2 - 1,
     r"look like -1\.\.1 frames, but 0\.\.1 is expected\. Convert with \(x \+ 1\) / 2"),
    (np.full((2, 8, 8, 3), 500.0, np.float32), r"far outside the expected 0\.\.1"),
])
def test_float_images_outside_zero_to_one_are_refused(images, message):
    with pytest.raises(InvalidInput, match=message):
        ArraySource(images)


def test_images_in_range_and_uint8_are_read_as_before():
    images = torch.rand(2, 8, 8, 3) * 1.02 - 0.01  # slight overshoot
    torch.testing.assert_close(ArraySource(images).read(0, 2), images.permute(0, 3, 1, 2) * 2 - 1)
    pixels = torch.randint(0, 256, (2, 8, 8, 3), dtype=torch.uint8)
    torch.testing.assert_close(ArraySource(pixels).read(0, 1), pixels[:1].permute(0, 3, 1, 2) / 127.5 - 1)


def test_16_bit_images_keep_their_precision(tmp_path):
    # issue 9: 16-bit images were reduced to 8 bits
    values = np.arange(0, 16 * 16 * 3, dtype=np.uint16).reshape(16, 16, 3) * 37 + 11
    cv2.imwrite(str(tmp_path / "a.png"), values[:, :, ::-1])  # OpenCV writes BGR
    image, notes = read_image(tmp_path / "a.png")
    np.testing.assert_allclose(image, values / 65535.0, rtol=0, atol=1e-7)
    assert notes == ("16-bit kept at full precision",)
    assert len(np.unique(np.round(image * 65535))) > 256  # more levels than 8 bits hold


def test_rgba_and_grey_images_are_converted_and_logged_once(tmp_path, caplog):
    folder = tmp_path / "clip"
    folder.mkdir()
    rgba = np.zeros((6, 10, 4), np.uint8)
    rgba[..., 2], rgba[..., 3] = 200, 7  # red (OpenCV's BGRA), alpha
    for i in range(3):
        cv2.imwrite(str(folder / f"{i}.png"), rgba)
    cv2.imwrite(str(folder / "3.png"), np.full((6, 10), 100, np.uint8))
    with caplog.at_level(logging.INFO, logger="rollingdepth_core.io.video_files"):
        clip = read_image_folder(folder)
    assert caplog.text.count("Converted the images of") == 1
    assert "alpha dropped, greyscale turned into RGB" in caplog.text
    torch.testing.assert_close(clip.frames[0, :, 0, 0], torch.tensor([200 / 127.5 - 1, -1.0, -1.0]))
    torch.testing.assert_close(clip.frames[3, :, 0, 0], torch.full((3,), 100 / 127.5 - 1))
