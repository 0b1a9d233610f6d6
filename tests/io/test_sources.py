"""Frame sources: tensors, arrays, video files decoded lazily, ComfyUI-like VIDEO objects."""

from __future__ import annotations

import io
from abc import ABC, abstractmethod
from types import SimpleNamespace

import numpy as np
import pytest
import torch

from rollingdepth_core import RunBatches, encode_frames
from rollingdepth_core.errors import InvalidInput, InvalidSettings
from rollingdepth_core.io.frames import resize_frames
from rollingdepth_core.io.sources import (
    ArraySource,
    FrameRange,
    FrameReader,
    TensorSource,
    VideoFileSource,
    as_source,
    video_input_source,
)
from rollingdepth_core.io.video_files import read_video

NUM_FRAMES, HEIGHT, WIDTH, FPS = 12, 48, 64, 24


def frame_pattern(index: int) -> np.ndarray:
    """`H W 3` uint8: gradients that move with the frame index."""
    yy, xx = np.mgrid[0:HEIGHT, 0:WIDTH]
    rgb = np.stack([(xx * 4 + index * 9) % 256, (yy * 5 + index * 3) % 256, (xx + yy) * 2 % 256], -1)
    return rgb.astype(np.uint8)


def write_video(path, codec="libx264", container=None, frames=NUM_FRAMES) -> None:
    import av

    with av.open(str(path), "w", format=container) as output:
        stream = output.add_stream(codec, rate=FPS)
        stream.width, stream.height, stream.pix_fmt = WIDTH, HEIGHT, "yuv420p"
        for i in range(frames):
            for packet in stream.encode(av.VideoFrame.from_ndarray(frame_pattern(i), format="rgb24")):
                output.mux(packet)
        for packet in stream.encode():
            output.mux(packet)


@pytest.fixture(scope="module")
def video_path(tmp_path_factory):
    path = tmp_path_factory.mktemp("video") / "clip.mp4"
    write_video(path)
    return path


@pytest.fixture(scope="module")
def eager(video_path):
    """The whole clip decoded eagerly by video_files: `N 3 H W` in -1..1."""
    return read_video(video_path).frames


def test_tensor_source_reads_and_resizes():
    frames = torch.rand(6, 3, 20, 30) * 2 - 1
    source = TensorSource(frames)
    assert source.num_frames == 6 and source.input_size == (20, 30)
    torch.testing.assert_close(source.read(1, 4), frames[1:4], rtol=0, atol=0)
    torch.testing.assert_close(source.read(2, 6, (10, 16)), resize_frames(frames[2:6], (10, 16)),
                               rtol=0, atol=0)
    with pytest.raises(InvalidSettings, match="outside the clip"):
        source.read(4, 7)


def test_array_source_uint8_and_comfy_image():
    images = (torch.rand(5, 16, 24, 3) * 255).to(torch.uint8)
    eager = images.permute(0, 3, 1, 2).float() / 127.5 - 1
    source = as_source(images.numpy())
    assert isinstance(source, ArraySource) and source.input_size == (16, 24)
    torch.testing.assert_close(source.read(0, 5), eager, rtol=0, atol=0)
    torch.testing.assert_close(source.read(1, 3, (8, 12)), resize_frames(eager[1:3], (8, 12)),
                               rtol=0, atol=0)
    comfy = torch.rand(4, 16, 24, 3)  # ComfyUI IMAGE, 0..1
    torch.testing.assert_close(as_source(comfy).read(0, 4), comfy.permute(0, 3, 1, 2) * 2 - 1,
                               rtol=0, atol=0)
    assert as_source(comfy).fingerprint() != as_source(comfy.flip(0)).fingerprint()


def test_array_source_rejects_bad_images():
    with pytest.raises(InvalidInput, match="N H W 3"):
        ArraySource(np.zeros((4, 16, 24, 4), np.uint8))
    with pytest.raises(InvalidInput, match="uint8"):
        ArraySource(torch.zeros(2, 8, 8, 3, dtype=torch.int32))
    bad = torch.rand(3, 8, 8, 3)
    bad[1, 0, 0, 0] = float("nan")
    with pytest.raises(InvalidInput, match="NaN"):
        ArraySource(bad).read(0, 3)


def test_video_source_equals_eager_decoding(video_path, eager):
    source = VideoFileSource(video_path)
    assert source.num_frames == NUM_FRAMES and source.input_size == (HEIGHT, WIDTH)
    assert source.fps == pytest.approx(FPS)
    torch.testing.assert_close(source.read(0, 4), eager[0:4], rtol=0, atol=0)
    torch.testing.assert_close(source.read(4, 12), eager[4:12], rtol=0, atol=0)
    torch.testing.assert_close(source.read(2, 5), eager[2:5], rtol=0, atol=0)  # backwards: reopens
    source.close()


def test_video_source_resizes_at_decode(video_path, eager):
    source = VideoFileSource(video_path)
    expected = read_video(video_path, resolution=32).frames  # eager, resized per frame
    got = source.read(3, 9, tuple(expected.shape[-2:]))
    assert got.shape == (6, 3, 24, 32)
    torch.testing.assert_close(got, expected[3:9], rtol=0, atol=1e-6)
    torch.testing.assert_close(got, resize_frames(eager[3:9], (24, 32)), rtol=0, atol=1e-5)


def test_video_source_from_bytes_and_trim_window(video_path, eager):
    data = io.BytesIO(video_path.read_bytes())
    torch.testing.assert_close(VideoFileSource(data).read(0, NUM_FRAMES), eager, rtol=0, atol=0)
    trimmed = VideoFileSource(video_path, start_time=3 / FPS, duration=5 / FPS)
    assert trimmed.num_frames == 5
    torch.testing.assert_close(trimmed.read(0, 5), eager[3:8], rtol=0, atol=0)


def test_video_source_counts_frames_without_header(tmp_path):
    path = tmp_path / "clip.mkv"  # Matroska stores no frame count
    write_video(path, container="matroska", frames=7)
    source = VideoFileSource(path)
    assert source.num_frames == 7
    assert source.read(0, 7).shape == (7, 3, HEIGHT, WIDTH)


def test_video_source_float_decoding_is_close_to_8_bit(video_path, eager):
    precise = VideoFileSource(video_path, pixel_format="float").read(0, NUM_FRAMES)
    difference = (precise - eager).abs().flatten()
    # swscale's 8-bit path interpolates chroma differently: only sharp edges differ much
    assert float(difference.median()) < 2 / 127.5  # in 8-bit levels: 1.3 measured
    assert float(difference.quantile(0.9)) < 6 / 127.5  # 3.9 measured


def test_video_source_errors(tmp_path):
    with pytest.raises(InvalidInput, match="does not exist"):
        VideoFileSource(tmp_path / "missing.mp4")
    (tmp_path / "junk.mp4").write_bytes(b"not a video")
    with pytest.raises(InvalidInput, match="Could not open"):
        VideoFileSource(tmp_path / "junk.mp4")
    with pytest.raises(InvalidSettings, match="pixel_format"):
        VideoFileSource(tmp_path / "junk.mp4", pixel_format="yuv")


class FakeVideoInput(ABC):
    """Shaped like ComfyUI's VideoInput: the default stream source re-encodes the frames."""

    @abstractmethod
    def get_components(self): ...

    def get_stream_source(self):
        raise AssertionError("the re-encoding fallback must not be used")


class FakeVideoFromFile(FakeVideoInput):
    def __init__(self, file, trim=None):
        self.file, self.trim = file, trim

    def get_stream_source(self):
        return self.file

    def get_components(self):
        raise AssertionError("a file-backed video must never be decoded whole")

    def get_active_trim_window(self):
        return self.trim or (0.0, 0.0)


class FakeVideoFromComponents(FakeVideoInput):
    def __init__(self, images):
        self.images = images

    def get_components(self):
        return SimpleNamespace(images=self.images, audio=None, frame_rate=FPS)


def test_comfy_video_from_file_is_decoded_lazily(video_path, eager):
    source = video_input_source(FakeVideoFromFile(str(video_path)))
    assert isinstance(source, VideoFileSource) and source.pixel_format == "auto"
    assert source.num_frames == NUM_FRAMES
    trimmed = as_source(FakeVideoFromFile(str(video_path), trim=(2 / FPS, 4 / FPS)))
    assert trimmed.num_frames == 4
    torch.testing.assert_close(trimmed.read(0, 4, None).shape, eager[2:6].shape)


def test_comfy_video_from_components_reads_its_images():
    images = torch.rand(6, 16, 24, 3)
    source = as_source(FakeVideoFromComponents(images))
    assert isinstance(source, ArraySource)
    torch.testing.assert_close(source.read(2, 4), images[2:4].permute(0, 3, 1, 2) * 2 - 1,
                               rtol=0, atol=0)


def test_as_source_dispatch(video_path):
    frames = torch.zeros(2, 3, 8, 8)
    assert isinstance(as_source(frames), TensorSource)
    assert isinstance(as_source(torch.zeros(2, 8, 8, 3)), ArraySource)
    assert isinstance(as_source(str(video_path)), VideoFileSource)
    source = TensorSource(frames)
    assert as_source(source) is source
    with pytest.raises(InvalidInput, match="Cannot read frames"):
        as_source(42)


class CountingSource(TensorSource):
    def __init__(self, frames):
        super().__init__(frames)
        self.reads = []

    def read(self, start, stop, size=None):
        self.reads.append((start, stop))
        return super().read(start, stop, size)


@pytest.mark.parametrize("prefetch", [False, True])
def test_frame_reader(prefetch):
    frames = torch.rand(10, 3, 12, 16) * 2 - 1
    source = CountingSource(frames)
    with FrameReader(source, (6, 8), prefetch=prefetch, prepare=lambda x: x * 2) as reader:
        first = reader.read(0, 4)
        retry = reader.read(0, 2)  # as after an out-of-memory retry: served from the last batch
        rest = [reader.read(2, 4), reader.read(4, 8), reader.read(8, 10)]
    expected = resize_frames(frames, (6, 8)) * 2
    torch.testing.assert_close(first, expected[0:4], rtol=0, atol=0)
    torch.testing.assert_close(retry, expected[0:2], rtol=0, atol=0)
    torch.testing.assert_close(torch.cat(rest), expected[2:10], rtol=0, atol=0)
    assert source.reads[0] == (0, 4)
    covered = sorted({i for start, stop in source.reads for i in range(start, stop)})
    assert covered == list(range(10))
    if prefetch:  # read ahead in the batch size seen last
        assert (4, 6) in source.reads or (4, 8) in source.reads


def test_encode_frames_from_sources_equals_tensor(tiny_model, video_path, eager):
    batches = RunBatches(vae=3)
    from_tensor = encode_frames(tiny_model, eager, processing_resolution=40, batches=batches)
    from_video = encode_frames(tiny_model, str(video_path), processing_resolution=40, batches=batches)
    torch.testing.assert_close(from_video.latents, from_tensor.latents, rtol=0, atol=0)
    assert from_video.size == from_tensor.size == (30, 40)
    assert from_video.input_size == (HEIGHT, WIDTH)
    images = np.stack([frame_pattern(i) for i in range(5)])
    from_array = encode_frames(tiny_model, images, processing_resolution=0, batches=RunBatches(vae=2))
    tensor = torch.from_numpy(images).permute(0, 3, 1, 2).float() / 127.5 - 1
    torch.testing.assert_close(
        from_array.latents, encode_frames(tiny_model, tensor, 0, RunBatches(vae=2)).latents, rtol=0, atol=0
    )


def test_frame_range_reads_a_window_lazily(video_path, eager):
    source = FrameRange(VideoFileSource(video_path), start=3, count=5)
    assert source.num_frames == 5 and source.input_size == (HEIGHT, WIDTH) and source.fps == FPS
    torch.testing.assert_close(source.read(1, 4), eager[4:7], rtol=0, atol=0)
    assert FrameRange(TensorSource(eager), start=10).num_frames == NUM_FRAMES - 10
    assert FrameRange(TensorSource(eager), start=10, count=50).num_frames == NUM_FRAMES - 10
    assert source.fingerprint() != FrameRange(VideoFileSource(video_path), 2, 5).fingerprint()
    with pytest.raises(InvalidSettings, match="outside the clip"):
        source.read(4, 6)
    with pytest.raises(InvalidInput, match="past the end"):
        FrameRange(TensorSource(eager), start=NUM_FRAMES)
    with pytest.raises(InvalidSettings, match="start frame"):
        FrameRange(TensorSource(eager), start=-1)
    with pytest.raises(InvalidSettings, match="frame count"):
        FrameRange(TensorSource(eager), count=-1)


class FakeOlderVideoFromFile(FakeVideoInput):
    """Like ComfyUI 0.3.64's VideoFromFile: no trim window, decodes with to_ndarray('rgb24')."""

    def __init__(self, file):
        self.file = file

    def get_stream_source(self):
        return self.file

    def get_components(self):
        raise AssertionError("a file-backed video must never be decoded whole")


def test_comfy_video_is_decoded_like_the_comfyui_that_made_it(video_path, eager):
    # Bug: every VIDEO was decoded to float RGB, as newer ComfyUI does; ComfyUI 0.3.64 decodes
    # 8-bit RGB, so wiring its VIDEO instead of its IMAGE changed the frames (up to 0.65 at edges)
    older = video_input_source(FakeOlderVideoFromFile(str(video_path)))
    assert isinstance(older, VideoFileSource) and older.pixel_format == "rgb24"
    torch.testing.assert_close(older.read(0, NUM_FRAMES), eager, rtol=0, atol=0)  # = rgb24 decoding
    newer = video_input_source(FakeVideoFromFile(str(video_path)))
    assert newer.pixel_format == "auto"
