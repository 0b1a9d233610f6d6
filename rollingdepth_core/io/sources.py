"""Frame sources: clips read a batch at a time, resized as they are read.

A long clip never has to exist as one float tensor: `encode_frames` (and the stages above
it) read `b 3 H W` batches at the processing size from any `FrameSource`:

- `TensorSource`: frames already in memory, `N 3 H W` in -1..1 (the eager path);
- `ArraySource`: `N H W 3` uint8 (0..255) or float (0..1, a ComfyUI IMAGE) array or tensor,
  converted a batch at a time;
- `VideoFileSource`: a video file (path or file-like) decoded lazily with PyAV, each frame
  resized as it is decoded;
- `plates.ImageSequenceSource`: an image sequence (``plate.####.exr``), read with
  OpenImageIO and colour-converted frame by frame;
- `video_input_source`: any object shaped like ComfyUI's VIDEO (`get_stream_source()` /
  `get_components()`, or our plate VIDEO's `frame_source()`), without importing ComfyUI.

`as_source(x)` picks the right one; `clip_info(source)` says where a clip came from (frame
numbers, exact frame rate, pixel aspect) so outputs can match it.
"""

from __future__ import annotations

import dataclasses
import hashlib
import io
import logging
import os
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor, wait
from fractions import Fraction
from pathlib import Path
from typing import Protocol, runtime_checkable

import numpy as np
import torch
from einops import rearrange
from torch import Tensor

from ..errors import InvalidInput, InvalidSettings
from ..types import ClipInfo
from .frames import check_finite, check_frames, check_value_range, resize_frames
from .video_files import ffmpeg_reason

logger = logging.getLogger(__name__)


@runtime_checkable
class FrameSource(Protocol):
    """A clip that can be read in pieces.

    Attributes:
        num_frames: `N`.
        input_size: `(H0, W0)`, size of the stored frames.
    """

    @property
    def num_frames(self) -> int: ...

    @property
    def input_size(self) -> tuple[int, int]: ...

    def read(self, start: int, stop: int, size: tuple[int, int] | None = None) -> Tensor:
        """Frames `start .. stop - 1` as `b 3 H W` float32 RGB in -1..1 at ``size`` (H, W).

        ``size`` None keeps the input size. Resizing is bilinear with antialias.
        """
        ...

    def fingerprint(self) -> tuple:
        """A cheap summary that identifies the clip (to reuse its latents later)."""
        ...


def check_range(source: FrameSource, start: int, stop: int) -> None:
    """Raise ``InvalidSettings`` unless `0 <= start < stop <= N`."""
    if not 0 <= start < stop <= source.num_frames:
        raise InvalidSettings(
            f"frame range {start}..{stop} is outside the clip of {source.num_frames} frames."
        )


class TensorSource:
    """Frames already in memory: `N 3 H W` float RGB in -1..1 (checked once)."""

    def __init__(self, frames: Tensor):
        check_frames(frames)
        self.frames = frames

    @property
    def num_frames(self) -> int:
        return int(self.frames.shape[0])

    @property
    def input_size(self) -> tuple[int, int]:
        return int(self.frames.shape[-2]), int(self.frames.shape[-1])

    def read(self, start: int, stop: int, size: tuple[int, int] | None = None) -> Tensor:
        check_range(self, start, stop)
        batch = self.frames[start:stop].float()  # b 3 H0 W0
        return batch if size is None else resize_frames(batch, tuple(size))

    def fingerprint(self) -> tuple:
        from .frames import frames_fingerprint

        return frames_fingerprint(self.frames)


class ArraySource:
    """Channels-last frames `N H W 3`: uint8 (0..255) or float (0..1, a ComfyUI IMAGE).

    Accepts a numpy array or a tensor (any device); only the frames read are converted,
    so a uint8 clip costs a quarter of its float32 size.
    """

    def __init__(self, images: np.ndarray | Tensor):
        if isinstance(images, np.ndarray):
            images = torch.from_numpy(images)
        if not isinstance(images, Tensor):
            raise InvalidInput(f"images must be an array or tensor `N H W 3`; got {type(images).__name__}.")
        if images.ndim != 4 or images.shape[-1] != 3 or images.shape[0] == 0:
            raise InvalidInput(
                f"images must be `N H W 3` with N >= 1 (RGB, channels last); got {tuple(images.shape)}."
            )
        if images.dtype != torch.uint8 and not images.is_floating_point():
            raise InvalidInput(f"images must be uint8 (0..255) or float (0..1); got {images.dtype}.")
        if images.is_floating_point() and bool(torch.isfinite(images).all()):
            check_value_range(images, "0..1", "images")  # NaN is reported as frames are read
        self.images = images

    @property
    def num_frames(self) -> int:
        return int(self.images.shape[0])

    @property
    def input_size(self) -> tuple[int, int]:
        return int(self.images.shape[1]), int(self.images.shape[2])

    def read(self, start: int, stop: int, size: tuple[int, int] | None = None) -> Tensor:
        check_range(self, start, stop)
        batch = rearrange(self.images[start:stop], "b H W c -> b c H W").float()
        if self.images.dtype == torch.uint8:
            batch = batch / 127.5 - 1.0
        else:
            check_finite(batch, "images")
            batch = batch * 2.0 - 1.0
        return batch if size is None else resize_frames(batch, tuple(size))

    def fingerprint(self) -> tuple:
        n, h, w, _ = self.images.shape
        sample = self.images[:, :: max(1, h // 7), :: max(1, w // 7)].float().cpu().contiguous()
        return ("images", n, h, w, str(self.images.dtype), hashlib.sha1(sample.numpy().tobytes()).hexdigest())


class VideoFileSource:
    """A video file decoded lazily with PyAV; each frame is resized as it is decoded.

    Reads in increasing order decode the file once; reading backwards reopens it and
    decodes from the window's start (stages read each frame once, so this is rare).
    Rotation metadata is applied, as ComfyUI's video loader does.

    Args:
        file: a path, or a binary file-like object (e.g. `io.BytesIO`) PyAV can open.
        start_time: seconds into the file where the clip starts (a trim window).
        duration: seconds of the clip (0: to the end).
        pixel_format: "rgb24" converts each frame to 8-bit RGB (as `video_files.read_video`);
            "float" converts to float RGB directly (more precise for YUV video); "auto"
            follows ComfyUI's loader: 8-bit RGB for full-range JPEG-style and RGB frames,
            float otherwise.
    """

    PIXEL_FORMATS = ("rgb24", "float", "auto")

    def __init__(
        self, file: str | os.PathLike | io.IOBase, start_time: float = 0.0, duration: float = 0.0,
        pixel_format: str = "rgb24",
    ):
        if start_time < 0 or duration < 0:
            raise InvalidSettings(
                f"start_time and duration must be >= 0 seconds; got {start_time} and {duration}."
            )
        if pixel_format not in self.PIXEL_FORMATS:
            raise InvalidSettings(
                f"pixel_format must be one of {', '.join(self.PIXEL_FORMATS)}; got {pixel_format!r}."
            )
        if isinstance(file, (str, os.PathLike)):
            file = Path(file)
            if not file.is_file():
                raise InvalidInput(f"Video file {file} does not exist.")
        self.file = file
        self.start_time = float(start_time)
        self.duration = float(duration)
        self.pixel_format = pixel_format
        self._container = None
        self._frames = None  # iterator over the window's decoded frames
        self._position = 0  # clip frame index the iterator yields next
        self._num_frames, self.frame_rate = self._count()
        self.fps = float(self.frame_rate)
        if self._num_frames < 1:
            raise InvalidInput(f"{self.name} has no frames in the window starting at {start_time} s.")
        height, width = self._to_rgb(self._next_frame_of(self._fresh_iterator())).shape[:2]
        self._close()
        self._input_size = (int(height), int(width))

    @property
    def name(self) -> str:
        return str(self.file) if isinstance(self.file, Path) else type(self.file).__name__

    @property
    def num_frames(self) -> int:
        return self._num_frames

    @property
    def input_size(self) -> tuple[int, int]:
        return self._input_size

    def _open(self):
        import av

        if not isinstance(self.file, Path):
            self.file.seek(0)
        try:
            container = av.open(str(self.file) if isinstance(self.file, Path) else self.file)
        except av.error.FFmpegError as error:
            raise InvalidInput(f"Could not open {self.name} as a video: {ffmpeg_reason(error)}.") from error
        if not container.streams.video:
            container.close()
            raise InvalidInput(f"{self.name} has no video stream.")
        return container

    def _window(self, stream) -> tuple[int, int | None]:
        """`(start_pts, end_pts)` of the trim window in the stream's time base."""
        time_base = float(stream.time_base)
        start = int(self.start_time / time_base)
        end = int((self.start_time + self.duration) / time_base) if self.duration else None
        return start, end

    def _in_window(self, pts: int | None, start: int, end: int | None) -> bool:
        return pts is None or (pts >= start and (end is None or pts < end))

    def _count(self) -> tuple[int, Fraction]:
        """Frames in the window (header count, else packets counted without decoding), and the
        exact frame rate (24000/1001 stays 24000/1001)."""
        with self._open() as container:
            stream = container.streams.video[0]
            fps = Fraction(stream.average_rate or stream.guessed_rate or 30)
            if stream.frames and not self.start_time and not self.duration:
                return int(stream.frames), fps
            start, end = self._window(stream)
            count = sum(
                1 for packet in container.demux(stream)
                if packet.size > 0 and self._in_window(packet.pts, start, end)
            )
            return count, fps

    def _fresh_iterator(self):
        """Open the file and return an iterator over the decoded frames of the window."""
        self._close()
        self._container = self._open()
        stream = self._container.streams.video[0]
        stream.thread_type = "AUTO"
        start, end = self._window(stream)
        if start > 0:
            self._container.seek(start, stream=stream)
        frames = (
            frame for frame in self._container.decode(stream)
            if frame.pts is None or frame.pts >= start
        )
        if end is not None:
            frames = (frame for frame in frames if frame.pts is None or frame.pts < end)
        self._frames = frames
        return frames

    def _close(self) -> None:
        if self._container is not None:
            self._container.close()
        self._container, self._frames, self._position = None, None, 0

    def _next_frame_of(self, frames):
        try:
            frame = next(frames)
        except StopIteration:
            self._close()
            raise InvalidInput(
                f"{self.name} ended after {self._position} frames, fewer than its header says "
                f"({self._num_frames}). Re-encode the video."
            ) from None
        self._position += 1
        return frame

    def _seek_to(self, index: int) -> None:
        """Position the decoder so that the next frame it yields is clip frame ``index``."""
        if self._frames is None or index < self._position:
            self._fresh_iterator()
        while self._position < index:
            self._next_frame_of(self._frames)

    def _to_rgb(self, frame) -> Tensor:
        """A decoded frame as `H W 3` float32 in 0..255, rotated upright."""
        use_float = self.pixel_format == "float" or (
            self.pixel_format == "auto"
            and frame.format.name not in ("yuvj420p", "yuvj422p", "yuvj444p", "rgb24", "rgba", "pal8")
        )
        if use_float:
            rgb = torch.from_numpy(frame.to_ndarray(format="gbrpf32le")) * 255.0  # H W 3
        else:
            rgb = torch.from_numpy(frame.to_ndarray(format="rgb24")).float()
        turns = int(round(getattr(frame, "rotation", 0) or 0)) // 90
        return torch.rot90(rgb, k=turns, dims=(0, 1)) if turns % 4 else rgb

    def read(self, start: int, stop: int, size: tuple[int, int] | None = None) -> Tensor:
        check_range(self, start, stop)
        self._seek_to(start)
        out = []
        for _ in range(start, stop):
            rgb = self._to_rgb(self._next_frame_of(self._frames))
            frame = rearrange(rgb, "H W c -> 1 c H W") / 127.5 - 1.0
            out.append(frame if size is None else resize_frames(frame, tuple(size)))
        return torch.cat(out)  # b 3 H W

    @property
    def clip(self) -> ClipInfo:
        name = self.file.stem if isinstance(self.file, Path) else "video"
        return ClipInfo(
            name=name, frame_numbers=tuple(range(self._num_frames)), frame_rate=self.frame_rate,
            padding=max(4, len(str(self._num_frames - 1))), stored_size=self._input_size,
            source=self.name,
        )

    def fingerprint(self) -> tuple:
        if isinstance(self.file, Path):
            stat = self.file.stat()
            what = (str(self.file.resolve()), stat.st_size, stat.st_mtime_ns)
        else:
            self.file.seek(0)
            what = (type(self.file).__name__, hash(self.file.read(1 << 16)))
        window = (self.start_time, self.duration, self.pixel_format)
        return ("video", *what, *window, self._num_frames, self._input_size)

    def close(self) -> None:
        """Close the open decoder (reading again reopens it)."""
        self._close()


class FrameRange:
    """Frames ``start .. start + count - 1`` of another source (count 0: to its end).

    Reads are forwarded, so a lazily decoded video stays lazy.
    """

    def __init__(self, source: FrameSource, start: int = 0, count: int = 0):
        if start < 0:
            raise InvalidSettings(f"start frame must be >= 0; got {start}.")
        if count < 0:
            raise InvalidSettings(f"frame count must be >= 0 (0 = all); got {count}.")
        total = source.num_frames
        if start >= total:
            raise InvalidInput(f"start frame {start} is past the end of the clip ({total} frames).")
        self.source = source
        self.start = int(start)
        self._num_frames = min(total - start, count or total - start)

    @property
    def num_frames(self) -> int:
        return self._num_frames

    @property
    def input_size(self) -> tuple[int, int]:
        return self.source.input_size

    @property
    def fps(self) -> float | None:
        return getattr(self.source, "fps", None)

    @property
    def clip(self) -> ClipInfo | None:
        """The source's `ClipInfo` with this range's frame numbers."""
        whole = clip_info(self.source)
        if whole is None:
            return None
        numbers = whole.numbers_for(self.source.num_frames)[self.start : self.start + self._num_frames]
        return dataclasses.replace(whole, frame_numbers=numbers)

    def read(self, start: int, stop: int, size: tuple[int, int] | None = None) -> Tensor:
        check_range(self, start, stop)
        return self.source.read(self.start + start, self.start + stop, size)

    def fingerprint(self) -> tuple:
        return (*self.source.fingerprint(), "range", self.start, self._num_frames)


def _stream_source_is_reencoding(video) -> bool:
    """True when ``video.get_stream_source`` is a generic fallback that re-encodes the frames.

    ComfyUI's `VideoInput` base class implements `get_stream_source` by saving the frames
    into a new (lossy) video; classes backed by a file override it. The fallback is
    recognised as the implementation that sits on the class whose `get_components` is
    abstract.
    """
    for cls in type(video).__mro__:
        if "get_stream_source" in vars(cls):
            components = vars(cls).get("get_components")
            return bool(getattr(components, "__isabstractmethod__", False))
    return True


def video_input_source(video) -> FrameSource:
    """A `FrameSource` for a ComfyUI VIDEO object (duck-typed; ComfyUI is not imported).

    File-backed videos (`get_stream_source()` returns a path or a file-like object) are
    decoded lazily at processing size, within their trim window
    (`get_active_trim_window()`, when the object has one) and with the pixel conversion of
    the ComfyUI that made the object, so the frames equal its own `get_components()`:
    ComfyUI releases with trim windows decode to float RGB (``pixel_format="auto"``),
    older ones (e.g. 0.3.64) to 8-bit RGB (``"rgb24"``). Videos made from images in memory
    (`get_components().images`, `N H W 3` in 0..1) are read from those images, which are
    never copied as a whole.
    """
    if callable(getattr(video, "frame_source", None)):  # our plate VIDEO: read lazily as it is
        return video.frame_source()
    has_stream = callable(getattr(video, "get_stream_source", None))
    newer = callable(getattr(video, "get_active_trim_window", None))  # trims, decodes to float
    pixel_format = "auto" if newer else "rgb24"
    if has_stream and not _stream_source_is_reencoding(video):
        start_time, duration = video.get_active_trim_window() if newer else (0.0, 0.0)
        return VideoFileSource(
            video.get_stream_source(), start_time=start_time, duration=duration,
            pixel_format=pixel_format,
        )
    if callable(getattr(video, "get_components", None)):
        return ArraySource(video.get_components().images)
    if has_stream:
        return VideoFileSource(video.get_stream_source(), pixel_format=pixel_format)
    raise InvalidInput(
        f"{type(video).__name__} is not a video: expected get_stream_source() or get_components()."
    )


def as_source(frames) -> FrameSource:
    """Wrap any supported clip as a `FrameSource`.

    Args:
        frames: a `FrameSource`; a tensor `N 3 H W` in -1..1; a uint8/float array or tensor
            `N H W 3` (numpy arrays always, tensors when the last dim is 3 and the second
            is not); a video file path; or a ComfyUI VIDEO-like object.
    """
    if isinstance(frames, Tensor):
        if frames.ndim == 4 and frames.shape[1] != 3 and frames.shape[-1] == 3:
            return ArraySource(frames)
        return TensorSource(frames)
    if isinstance(frames, np.ndarray):
        return ArraySource(frames)
    if isinstance(frames, (str, os.PathLike)):
        if is_sequence_path(frames):
            from .plates import ImageSequenceSource

            return ImageSequenceSource(frames)
        return VideoFileSource(frames)
    if isinstance(frames, FrameSource):
        return frames
    if callable(getattr(frames, "get_stream_source", None)) or callable(
        getattr(frames, "get_components", None)
    ):
        return video_input_source(frames)
    raise InvalidInput(
        f"Cannot read frames from {type(frames).__name__}; pass a tensor `N 3 H W`, an array "
        "`N H W 3`, a video path or a VIDEO."
    )


def is_sequence_path(path: str | os.PathLike) -> bool:
    """True for what `plates.ImageSequenceSource` reads: a pattern (``####``, ``@@@@``,
    ``%04d``), a folder, or a file with an image suffix."""
    from .sequences import is_image_file, pattern_from_text

    path = Path(path)
    return path.is_dir() or is_image_file(path.name) or (
        pattern_from_text(path) is not None and is_image_file(pattern_from_text(path).tail)
    )


def clip_info(source: FrameSource) -> ClipInfo | None:
    """Where ``source``'s frames came from (its ``clip``), or None when it does not say."""
    return getattr(source, "clip", None)


class FrameReader:
    """Reads consecutive batches of a source at one size, one batch ahead in a thread.

    While the accelerator works on a batch, the next one is decoded and resized on the
    host (PyAV and torch release the GIL). Requests for a range inside the last batch read
    (as after an out-of-memory retry with a smaller batch) are served from it.

    Args:
        source: the clip.
        size: `(H, W)` to read at.
        prefetch: read ahead in a background thread (pointless when computing on the CPU).
        prepare: applied to each batch read, in the reading thread (e.g. pad and pin).
    """

    def __init__(
        self, source: FrameSource, size: tuple[int, int], prefetch: bool = False,
        prepare: Callable[[Tensor], Tensor] | None = None,
    ):
        self.source = source
        self.size = tuple(size)
        self.prepare = prepare
        self._executor = ThreadPoolExecutor(max_workers=1) if prefetch else None
        self._pending: tuple[int, int, Future] | None = None
        self._last: tuple[int, int, Tensor] | None = None

    def _load(self, start: int, stop: int) -> Tensor:
        batch = self.source.read(start, stop, self.size)
        return batch if self.prepare is None else self.prepare(batch)

    def read(self, start: int, stop: int) -> Tensor:
        """`b 3 H W` float32 frames `start .. stop - 1`, -1..1 at ``size`` (then ``prepare``)."""
        if self._last is not None and self._last[0] <= start and stop <= self._last[1]:
            first = self._last[0]
            return self._last[2][start - first : stop - first]
        pending, self._pending = self._pending, None
        if pending is not None and pending[0] == start and pending[1] >= stop:
            batch = pending[2].result()
            first, last = pending[0], pending[1]
        else:
            if pending is not None:
                wait([pending[2]])  # never let two reads of one source run at once
            batch, first, last = self._load(start, stop), start, stop
        self._last = (first, last, batch)
        ahead = min(last + (stop - start), self.source.num_frames)
        if self._executor is not None and last < ahead:
            self._pending = (last, ahead, self._executor.submit(self._load, last, ahead))
        return batch[start - first : stop - first]

    def close(self) -> None:
        if self._pending is not None:
            self._pending[2].cancel()  # a read-ahead nobody asked for: its result is dropped
            self._pending = None
        if self._executor is not None:
            self._executor.shutdown(wait=True)
        self._last = None

    def __enter__(self) -> FrameReader:
        return self

    def __exit__(self, *exc) -> None:
        self.close()
