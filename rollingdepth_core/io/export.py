"""Writing depth videos: float32 NPZ, 16-bit PNG sequences, float32 EXR, preview videos."""

from __future__ import annotations

import json
import logging
import os
from fractions import Fraction
from pathlib import Path

import numpy as np
from torch import Tensor

from ..errors import InvalidInput, InvalidSettings
from .frame_rates import exact_frame_rate
from .result_set import ResultSet

logger = logging.getLogger(__name__)


def _as_numpy_depth(depth: Tensor | np.ndarray) -> np.ndarray:
    array = depth.detach().float().cpu().numpy() if isinstance(depth, Tensor) else np.asarray(depth)
    if array.ndim != 3 or array.shape[0] == 0:
        raise InvalidInput(f"depth must be `N H W` with N >= 1; got {array.shape}.")
    if not np.isfinite(array).all():
        raise InvalidInput("depth contains NaN or infinite values; nothing was written.")
    return array.astype(np.float32, copy=False)


def frame_paths(folder: Path, prefix: str, count: int, suffix: str, first_frame: int = 0) -> list[Path]:
    """`folder/prefix_00000.suffix`, ... for ``count`` frames numbered from ``first_frame``."""
    return [folder / f"{prefix}_{i:05d}{suffix}" for i in range(first_frame, first_frame + count)]


def save_npz(
    path: str | Path, depth: Tensor | np.ndarray, key: str = "inverse_depth", **extra: np.ndarray
) -> Path:
    """Write `N H W` depth as float32 under ``key`` (compressed): ``inverse_depth`` by default,
    ``z`` / ``normalized`` for converted depth."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    np.savez_compressed(path, **{key: _as_numpy_depth(depth)}, **extra)
    return path


def save_png16(
    folder: str | Path, depth: Tensor | np.ndarray, prefix: str = "depth", first_frame: int = 0,
    meaning: str = "inverse depth, larger = nearer",
) -> list[Path]:
    """Write one 16-bit greyscale PNG per frame, normalised with ONE range for the clip.

    Files are numbered from ``first_frame`` (`prefix_00000.png` by default).

    The range goes to ``folder/prefix_range.json`` (``value = min + png / 65535 * (max - min)``),
    with ``meaning`` (what the values are), so the values can be recovered.
    """
    import cv2

    array = _as_numpy_depth(depth)
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    lo, hi = float(array.min()), float(array.max())
    scaled = (array - lo) / max(hi - lo, 1e-12)
    quantised = np.round(scaled * 65535.0).astype(np.uint16)
    paths = frame_paths(folder, prefix, len(array), ".png", first_frame)
    for path, frame in zip(paths, quantised, strict=True):
        if not cv2.imwrite(str(path), frame):
            raise OSError(f"Could not write {path}.")
    (folder / f"{prefix}_range.json").write_text(
        json.dumps({"min": lo, "max": hi, "meaning": meaning})
    )
    return paths


def save_exr(
    folder: str | Path, depth: Tensor | np.ndarray, prefix: str = "depth", channel: str = "Z",
    first_frame: int = 0,
) -> list[Path]:
    """Write one float32 EXR per frame with the depth in channel ``channel`` ("Z" by default),
    numbered from ``first_frame`` (ZIP compression, written with OpenImageIO, atomically).

    ``channel="RGB"`` writes the value into R, G and B (for viewers that only show colour).
    Plates and converted depth go through `exr.write_depth_sequence` (frame numbers of the
    clip, ``depth.Z``, metadata).
    """
    from .exr import write_exr

    array = _as_numpy_depth(depth)
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    names = ("R", "G", "B") if channel == "RGB" else (channel,)
    paths = frame_paths(folder, prefix, len(array), ".exr", first_frame)
    for path, frame in zip(paths, array, strict=True):
        write_exr(path, {name: frame for name in names}, "float", "zip", overwrite=True)
    return paths


def read_exr(path: str | Path, channel: str = "Z") -> np.ndarray:
    """The ``channel`` of an EXR file as `H W` float32."""
    from .exr import read_exr_channel

    return read_exr_channel(path, channel)


def save_video(path: str | Path, rgb, fps: float | Fraction = 30.0) -> Path:
    """Write `N H W 3` RGB (0..1 float or uint8) as an H.264 (or MPEG-4) video.

    ``rgb`` may also be an iterable of `b H W 3` chunks (frames coloured a chunk at a time,
    so a long clip never exists as one float array). Odd sizes are padded by one pixel
    (yuv420p needs even sides).
    """
    import av

    chunks = iter([rgb]) if isinstance(rgb, (Tensor, np.ndarray)) else iter(rgb)
    first = next(chunks, None)
    frames = _video_frames(first)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    rate = exact_frame_rate(fps)  # 23.976 -> 24000/1001, kept exactly
    with av.open(str(path), mode="w") as container:
        codec = next((c for c in ("libx264", "h264", "mpeg4") if c in av.codecs_available), None)
        if codec is None:
            raise OSError("No H.264 or MPEG-4 encoder is available in PyAV; cannot write video.")
        stream = container.add_stream(codec, rate=rate)
        stream.width, stream.height = frames.shape[2], frames.shape[1]
        stream.pix_fmt = "yuv420p"
        if codec == "libx264":
            stream.options = {"crf": "18"}
        while frames is not None:
            for frame in frames:
                for packet in stream.encode(av.VideoFrame.from_ndarray(frame, format="rgb24")):
                    container.mux(packet)
            chunk = next(chunks, None)
            frames = None if chunk is None else _video_frames(chunk, (stream.height, stream.width))
        for packet in stream.encode():
            container.mux(packet)
    return path


def _video_frames(rgb, size: tuple[int, int] | None = None) -> np.ndarray:
    """`b H W 3` frames as uint8, padded to even sides (checked against ``size`` if given)."""
    frames = rgb.detach().cpu().numpy() if isinstance(rgb, Tensor) else np.asarray(rgb)
    if frames.ndim != 4 or frames.shape[-1] != 3 or frames.shape[0] == 0:
        raise InvalidInput(f"video frames must be `N H W 3` with N >= 1; got {frames.shape}.")
    if frames.dtype != np.uint8:
        frames = np.round(np.clip(frames, 0, 1) * 255).astype(np.uint8)
    pad_h, pad_w = frames.shape[1] % 2, frames.shape[2] % 2
    if pad_h or pad_w:
        frames = np.pad(frames, ((0, 0), (0, pad_h), (0, pad_w), (0, 0)), mode="edge")
    if size is not None and frames.shape[1:3] != size:
        raise InvalidInput(f"video frames change size: {frames.shape[1:3]} after {size}.")
    return frames


DEPTH_FORMATS = ("npz", "exr", "png16")


def output_location(root: str | Path, prefix: str) -> tuple[Path, str]:
    """Folder and file stem for a filename prefix such as ``"depth"`` or ``"clips/depth"``.

    The folder is ``root`` or a subfolder of it; a prefix that would leave ``root``
    (absolute, ``..``, a drive) is refused, so nothing is ever written outside it.

    Raises:
        InvalidSettings: empty prefix, a prefix that ends in a folder, or one that leaves ``root``.
    """
    text = str(prefix).strip().replace("\\", "/")
    if not text or text.endswith("/"):
        raise InvalidSettings(
            f"filename_prefix must name a file, like 'rollingdepth/depth'; got {prefix!r}."
        )
    root = Path(os.path.abspath(root))
    target = Path(os.path.normpath(root / text))  # lexical, like ComfyUI's own save nodes
    if text.startswith("/") or ":" in text or not target.is_relative_to(root) or target == root:
        raise InvalidSettings(
            f"filename_prefix {prefix!r} points outside the output folder. Use a relative name "
            "such as 'rollingdepth/depth' (subfolders are fine, '..' and absolute paths are not)."
        )
    return target.parent, target.name


def save_depth_files(
    root: str | Path, prefix: str, depth, formats: tuple[str, ...] = ("npz",),
    exr=None, metadata: dict | None = None,
) -> list[Path]:
    """Write a depth video in each of ``formats`` under ``root`` as a new take, atomically.

    Each call is one take `k` (1 + the highest there): ``<prefix>_<k>.npz``, and folders
    ``<prefix>_<k>_exr/`` and ``<prefix>_<k>_png16/`` with one file per frame (and the
    range JSON). The take is written under a temporary name and renamed into place when
    complete (`result_set.ResultSet`): an error or a cancel leaves nothing behind, and no
    earlier take is ever touched.

    Args:
        root: the folder everything must stay in (ComfyUI's output folder).
        prefix: file name prefix relative to ``root``, may hold subfolders.
        depth: `N H W` inverse depth (tensor or array), a `DepthVideo` (its spread and clip
            come along), or a `ConvertedDepth` (normalised or linear Z).
        formats: any of `DEPTH_FORMATS`.
        exr: `exr.ExrOptions` (channel, pixel type, compression, spread channel); default
            ``depth.Z`` float, ZIP. EXR frames are ``<stem>.depth.<frame>.exr``, numbered like
            the clip (a plate's own numbers).
        metadata: more EXR header attributes.

    Returns:
        Every file written (frames, range file and archives), in format order.
    """
    from .exr import ExrOptions, as_converted, npz_fields, write_depth_sequence

    unknown = [f for f in formats if f not in DEPTH_FORMATS]
    if unknown or not formats:
        raise InvalidSettings(
            f"formats must be one or more of {', '.join(DEPTH_FORMATS)}; got {tuple(formats)}."
        )
    exr = exr or ExrOptions()
    exr.check()
    folder, stem = output_location(root, prefix)
    converted = as_converted(depth, stem)
    array = _as_numpy_depth(converted.values)
    numbers = np.asarray(converted.clip.numbers_for(len(array)) if converted.clip is not None
                         else range(len(array)), dtype=np.int64)
    if exr.spread_channel is not None and converted.spread is None and "exr" in formats:
        raise InvalidInput("The depth has no spread to save; connect Co-align's depth (it carries one).")
    entries = {"npz": "{stem}.npz", "exr": "{stem}_exr", "png16": "{stem}_png16"}
    results = ResultSet.plan(
        folder, stem, tuple(entries[kind] for kind in formats), existing="new_take",
        patterns=tuple(entries.values()), take_prefix="{stem}_", take_digits=5, first_take_plain=False,
    )
    take = results.stem
    staged: list[Path] = []
    with results.write() as staging:
        for kind in formats:
            name = entries[kind].replace("{stem}", take)
            if kind == "npz":
                staged.append(save_npz(staging.path(name), array, key=converted.kind, frame_numbers=numbers,
                                       **npz_fields(converted)))
            elif kind == "exr":
                staged += write_depth_sequence(staging.path(name), converted, name=stem, options=exr,
                                               metadata=metadata)
            else:
                staged += save_png16(staging.path(name), array, prefix=stem, first_frame=int(numbers[0]),
                                     meaning=converted.meaning())
                staged.append(staging.path(name) / f"{stem}_range.json")
    written = [folder / path.relative_to(staging.root) for path in staged]
    logger.info("Wrote %d file(s) for %s.", len(written), take)
    return written
