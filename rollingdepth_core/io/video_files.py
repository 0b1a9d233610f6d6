"""Reading clips: a video file (PyAV) or a folder of images, resized as they are decoded."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import Tensor

from ..errors import InvalidInput, InvalidSettings
from ..hooks import NO_HOOKS, Hooks
from .frames import processing_size, resize_frames

logger = logging.getLogger(__name__)

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".webp", ".exr")


@dataclass(frozen=True)
class Clip:
    """Frames read from disk.

    Attributes:
        frames: `N 3 H W` float32 RGB in -1..1 (at the size asked for).
        input_size: `(H0, W0)`, size of the frames on disk.
        fps: frame rate (30 for image folders).
        names: one name per frame (file names for folders, indices for videos).
    """

    frames: Tensor
    input_size: tuple[int, int]
    fps: float
    names: tuple[str, ...]


def _to_frames(rgb_uint8: np.ndarray, resolution: int) -> Tensor:
    """`H W 3` uint8 -> `1 3 H' W'` float32 in -1..1, resized to the processing resolution."""
    image = torch.from_numpy(np.ascontiguousarray(rgb_uint8)).permute(2, 0, 1)[None].float()
    size = processing_size(image.shape[-2], image.shape[-1], resolution)
    return resize_frames(image, size) / 127.5 - 1.0


def _check_range(start: int, count: int) -> None:
    if start < 0:
        raise InvalidSettings(f"start frame must be >= 0; got {start}.")
    if count < 0:
        raise InvalidSettings(f"frame count must be >= 0 (0 = all); got {count}.")


def read_video(
    path: str | Path, start: int = 0, count: int = 0, resolution: int = 0, hooks: Hooks = NO_HOOKS
) -> Clip:
    """Decode frames ``start .. start + count - 1`` (count 0: to the end) of a video file.

    Each frame is resized as it is decoded (``resolution`` = longest side, 0 keeps the size),
    so a long high-resolution clip never exists at full size in memory.
    """
    import av

    _check_range(start, count)
    path = Path(path)
    if not path.is_file():
        raise InvalidInput(f"Video file {path} does not exist.")
    try:
        container = av.open(str(path))
    except av.error.FFmpegError as error:
        raise InvalidInput(f"Could not open {path} as a video: {error}.") from error
    with container:
        if not container.streams.video:
            raise InvalidInput(f"{path} has no video stream.")
        stream = container.streams.video[0]
        stream.thread_type = "AUTO"
        fps = float(stream.average_rate or stream.guessed_rate or 30)
        expected = stream.frames or 0
        total = max(0, min(expected - start, count or expected)) if expected else 0
        frames, input_size = [], None
        for index, frame in enumerate(container.decode(stream)):
            if index < start:
                continue
            if count and index >= start + count:
                break
            hooks.check_cancel()
            rgb = frame.to_ndarray(format="rgb24")
            input_size = input_size or (rgb.shape[0], rgb.shape[1])
            frames.append(_to_frames(rgb, resolution))
            hooks.progress(len(frames), max(total, len(frames)))
    if not frames:
        raise InvalidInput(f"No frames read from {path} (start {start}, count {count}).")
    names = tuple(str(start + i) for i in range(len(frames)))
    return Clip(torch.cat(frames), input_size, fps, names)


def list_images(folder: str | Path) -> list[Path]:
    """Image files in ``folder``, sorted by name."""
    folder = Path(folder)
    return sorted(p for p in folder.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file())


def read_image_folder(
    folder: str | Path, start: int = 0, count: int = 0, resolution: int = 0, hooks: Hooks = NO_HOOKS
) -> Clip:
    """Read a folder of images (sorted by name) as one clip; all must have the same size."""
    import cv2

    _check_range(start, count)
    paths = list_images(folder)
    paths = paths[start : start + count] if count else paths[start:]
    if not paths:
        raise InvalidInput(f"No images ({', '.join(IMAGE_SUFFIXES)}) found in {folder}.")
    frames, input_size = [], None
    for i, path in enumerate(paths):
        hooks.check_cancel()
        image = cv2.imread(str(path), cv2.IMREAD_COLOR)
        if image is None:
            raise InvalidInput(f"Could not read image {path}.")
        rgb = image[:, :, ::-1]
        if input_size is None:
            input_size = rgb.shape[:2]
        elif rgb.shape[:2] != input_size:
            raise InvalidInput(
                f"{path.name} is {rgb.shape[1]}x{rgb.shape[0]} but the first image is "
                f"{input_size[1]}x{input_size[0]}; all frames must have the same size."
            )
        frames.append(_to_frames(rgb, resolution))
        hooks.progress(i + 1, len(paths))
    return Clip(torch.cat(frames), tuple(input_size), 30.0, tuple(p.stem for p in paths))


def read_clip(
    path: str | Path, start: int = 0, count: int = 0, resolution: int = 0, hooks: Hooks = NO_HOOKS
) -> Clip:
    """A video file or an image folder, whichever ``path`` is."""
    path = Path(path)
    if path.is_dir():
        return read_image_folder(path, start, count, resolution, hooks)
    return read_video(path, start, count, resolution, hooks)
