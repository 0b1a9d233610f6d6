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


def ffmpeg_reason(error: Exception) -> str:
    """FFmpeg's reason for a failure, without PyAV's ``[Errno N]`` prefix and file name."""
    reason = getattr(error, "strerror", None)
    return str(reason) if reason else str(error)


def _to_frames(rgb: np.ndarray, resolution: int) -> Tensor:
    """`H W 3` RGB (uint8, or float in 0..1) -> `1 3 H' W'` float32 in -1..1, resized."""
    image = torch.from_numpy(np.ascontiguousarray(rgb)).permute(2, 0, 1)[None].float()
    if rgb.dtype == np.uint8:
        image = image / 255.0
    size = processing_size(image.shape[-2], image.shape[-1], resolution)
    return resize_frames(image, size) * 2.0 - 1.0


def read_image(path: str | Path) -> tuple[np.ndarray, tuple[str, ...]]:
    """An image file as `H W 3` RGB, at its full precision, and what was converted.

    8-bit files give uint8; 16-bit files float32 in 0..1 (all 16 bits kept, never reduced
    to 8); greyscale becomes RGB; an alpha channel is dropped.

    Returns:
        The image and the conversions made (empty for a plain 8-bit RGB file).

    Raises:
        InvalidInput: unreadable file, or a pixel type other than 8/16-bit (float files
            must be in 0..1).
    """
    import cv2

    image = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
    if image is None:
        raise InvalidInput(f"Could not read image {path}.")
    notes = []
    if image.dtype == np.uint16:
        image = image.astype(np.float32) / 65535.0
        notes.append("16-bit kept at full precision")
    elif image.dtype == np.float32:
        low, high = float(image.min()), float(image.max())
        if low < -0.01 or high > 1.01:
            raise InvalidInput(
                f"{path} holds float values {low:.3g}..{high:.3g}; float images must be in 0..1 "
                "(display-referred). Convert it first."
            )
        notes.append("float kept at full precision")
    elif image.dtype != np.uint8:
        raise InvalidInput(f"{path} has pixel type {image.dtype}; use 8- or 16-bit images.")
    if image.ndim == 2 or image.shape[2] == 1:
        image = np.repeat(image.reshape(*image.shape[:2], 1), 3, axis=2)
        notes.append("greyscale turned into RGB")
    elif image.shape[2] == 2:  # grey + alpha
        image = np.repeat(image[:, :, :1], 3, axis=2)
        notes += ["greyscale turned into RGB", "alpha dropped"]
    elif image.shape[2] == 4:
        image = image[:, :, [2, 1, 0]]
        notes.append("alpha dropped")
    else:
        image = image[:, :, ::-1]  # OpenCV reads BGR
    return image, tuple(notes)


def probe_image_folder(folder: str | Path, start: int = 0, count: int = 0) -> tuple[int, tuple[int, int]]:
    """Frames and `(H0, W0)` of an image folder (the first image only is read), for checks."""
    _check_range(start, count)
    paths = list_images(folder)
    paths = paths[start : start + count] if count else paths[start:]
    if not paths:
        raise InvalidInput(f"No images ({', '.join(IMAGE_SUFFIXES)}) found in {folder} from frame {start}.")
    image, _ = read_image(paths[0])
    return len(paths), (int(image.shape[0]), int(image.shape[1]))


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
        raise InvalidInput(f"Could not open {path} as a video: {ffmpeg_reason(error)}.") from error
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
            rgb = frame.to_ndarray(format="rgb24")  # H W 3 uint8
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
    """Read a folder of images (sorted by name) as one clip; all must have the same size.

    16-bit images keep their precision; greyscale and RGBA images are converted to RGB.
    What was converted is logged once.
    """
    _check_range(start, count)
    paths = list_images(folder)
    paths = paths[start : start + count] if count else paths[start:]
    if not paths:
        raise InvalidInput(f"No images ({', '.join(IMAGE_SUFFIXES)}) found in {folder}.")
    frames, input_size, conversions = [], None, {}
    for i, path in enumerate(paths):
        hooks.check_cancel()
        rgb, notes = read_image(path)
        conversions.update(dict.fromkeys(notes))
        if input_size is None:
            input_size = rgb.shape[:2]
        elif rgb.shape[:2] != input_size:
            raise InvalidInput(
                f"{path.name} is {rgb.shape[1]}x{rgb.shape[0]} but the first image is "
                f"{input_size[1]}x{input_size[0]}; all frames must have the same size."
            )
        frames.append(_to_frames(rgb, resolution))
        hooks.progress(i + 1, len(paths))
    if conversions:
        logger.info("Converted the images of %s: %s.", folder, ", ".join(conversions))
    return Clip(torch.cat(frames), tuple(input_size), 30.0, tuple(p.stem for p in paths))


def read_clip(
    path: str | Path, start: int = 0, count: int = 0, resolution: int = 0, hooks: Hooks = NO_HOOKS
) -> Clip:
    """A video file or an image folder, whichever ``path`` is."""
    path = Path(path)
    if path.is_dir():
        return read_image_folder(path, start, count, resolution, hooks)
    return read_video(path, start, count, resolution, hooks)
