"""Reading video files and image folders."""

import cv2
import numpy as np
import pytest
import torch

from rollingdepth_core.errors import InvalidInput, InvalidSettings
from rollingdepth_core.io.export import save_video
from rollingdepth_core.io.video_files import read_clip, read_image_folder, read_video


@pytest.fixture(scope="module")
def video(tmp_path_factory):
    frames = torch.linspace(0, 1, 6)[:, None, None, None].expand(6, 16, 24, 3)
    return save_video(tmp_path_factory.mktemp("video") / "clip.mp4", frames, fps=10)


def test_read_whole_video(video):
    clip = read_video(video)
    assert clip.frames.shape == (6, 3, 16, 24) and clip.input_size == (16, 24) and clip.fps == 10
    assert float(clip.frames.min()) >= -1 and float(clip.frames.max()) <= 1
    # brightness ramps up over the clip (lossy codec: loose tolerance)
    means = clip.frames.mean(dim=(1, 2, 3))
    assert bool((means[1:] > means[:-1]).all())


def test_range_and_resize_at_decode(video):
    clip = read_video(video, start=2, count=3, resolution=12)
    assert clip.frames.shape == (3, 3, 8, 12) and clip.names == ("2", "3", "4")
    assert clip.input_size == (16, 24)


def test_image_folder(tmp_path):
    for i in range(3):
        cv2.imwrite(str(tmp_path / f"f{i:02d}.png"), np.full((6, 8, 3), 40 * i, np.uint8))
    (tmp_path / "notes.txt").write_text("ignored")
    clip = read_clip(tmp_path, start=1)
    assert clip.frames.shape == (2, 3, 6, 8) and clip.names == ("f01", "f02")
    torch.testing.assert_close(clip.frames[0], torch.full((3, 6, 8), 40 / 127.5 - 1))


def test_bad_inputs(tmp_path, video):
    with pytest.raises(InvalidInput, match="does not exist"):
        read_video(tmp_path / "missing.mp4")
    (tmp_path / "junk.mp4").write_bytes(b"junk")
    with pytest.raises(InvalidInput, match="Could not open"):
        read_video(tmp_path / "junk.mp4")
    with pytest.raises(InvalidInput, match="No frames"):
        read_video(video, start=50)
    with pytest.raises(InvalidSettings, match="start frame"):
        read_video(video, start=-1)
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(InvalidInput, match="No images"):
        read_image_folder(empty)
    mixed = tmp_path / "mixed"
    mixed.mkdir()
    cv2.imwrite(str(mixed / "a.png"), np.zeros((4, 4, 3), np.uint8))
    cv2.imwrite(str(mixed / "b.png"), np.zeros((5, 4, 3), np.uint8))
    with pytest.raises(InvalidInput, match="same size"):
        read_image_folder(mixed)


def test_unreadable_video_message_has_ffmpegs_reason_not_its_errno(tmp_path):
    # it read "Could not open junk.mp4 as a video: [Errno 1094995529] Invalid data found ...: PATH."
    from rollingdepth_core.io.sources import VideoFileSource

    junk = tmp_path / "junk.mp4"
    junk.write_bytes(b"junk")
    with pytest.raises(InvalidInput) as from_reader:
        read_video(junk)
    with pytest.raises(InvalidInput) as from_source:
        _ = VideoFileSource(junk).num_frames
    for caught in (from_reader, from_source):
        message = str(caught.value)
        assert "Errno" not in message
        assert message.endswith("as a video: Invalid data found when processing input.")
