"""Depth as EXR sequences compositing tools read as Z, written with OpenImageIO.

One file per frame, numbered like the plate (``plate.depth.1001.exr``), with

- the depth in a channel Nuke's ZDefocus and Houdini read as depth (``depth.Z`` by default,
  plain ``Z`` as an option), half or float, lossless compression (ZIP by default; PIZ, ZIPS,
  RLE or none; lossy codecs are not offered);
- optionally the spread in a second channel (``depth.spread``);
- the plate's display window, data window and pixel aspect when the depth has the plate's
  size, and its exact frame rate (``FramesPerSecond``, a rational);
- metadata saying what the values are (``rollingdepth:kind``, ``:units``, ``:meaning``,
  ``:conversion`` as JSON, ``:spread``, plus what the caller adds: preset, model, seed, colour).

Each file is written under a temporary name and renamed when complete, so a reader never
sees half a frame; existing files are never replaced unless asked.
"""

from __future__ import annotations

import json
import logging
import os
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import numpy as np
import torch

from ..conversion.converted import SPREAD_MEANING, ConvertedDepth, from_depth_video
from ..errors import InvalidInput, InvalidSettings
from ..types import ClipInfo, DepthVideo

logger = logging.getLogger(__name__)

PIXEL_TYPES = ("half", "float")
COMPRESSIONS = ("zip", "piz", "zips", "rle", "none")  # all lossless
DEFAULT_CHANNEL = "depth.Z"
CHANNEL_CHOICES = ("depth.Z", "Z")
HALF_MAX = 65504.0
PREFIX = "rollingdepth:"


@dataclass(frozen=True)
class ExrOptions:
    """How depth goes into EXR files.

    Attributes:
        channel: the depth channel ("depth.Z": Nuke's depth layer; "Z"; any "layer.name").
        pixel_type: "float" (32-bit) or "half" (16-bit; Z above 65504 is clamped).
        compression: a lossless codec: "zip" (default), "piz", "zips", "rle" or "none".
        spread_channel: channel for the spread (e.g. "depth.spread"), or None for none.
    """

    channel: str = DEFAULT_CHANNEL
    pixel_type: str = "float"
    compression: str = "zip"
    spread_channel: str | None = None

    def check(self) -> None:
        """Raise ``InvalidSettings`` for options that cannot be written."""
        for name in (self.channel, self.spread_channel):
            if name is not None and (not name.strip() or name != name.strip() or name.endswith(".")):
                raise InvalidSettings(f"EXR channel names must be like 'depth.Z' or 'Z'; got {name!r}.")
        if self.spread_channel == self.channel:
            raise InvalidSettings(f"the spread needs its own channel, not {self.channel!r} as well.")
        if self.pixel_type not in PIXEL_TYPES:
            raise InvalidSettings(f"EXR pixel type must be half or float; got {self.pixel_type!r}.")
        if self.compression not in COMPRESSIONS:
            raise InvalidSettings(
                f"EXR compression must be one of {', '.join(COMPRESSIONS)} (lossless); got "
                f"{self.compression!r}. Lossy codecs (DWAA, DWAB, B44) would change the depth values."
            )

    def with_spread(self, on: bool = True) -> ExrOptions:
        """These options with the spread in ``<layer>.spread`` (or none when ``on`` is False)."""
        layer = self.channel.rsplit(".", 1)[0] + "." if "." in self.channel else ""
        return ExrOptions(self.channel, self.pixel_type, self.compression, f"{layer}spread" if on else None)


def depth_file_name(name: str, number: int, padding: int = 4, suffix: str = ".exr") -> str:
    """``NAME.depth.1001.exr``: the plate's name and frame number (negative: ``-0005``)."""
    sign = "-" if number < 0 else ""
    return f"{name}.depth.{sign}{abs(number):0{padding}d}{suffix}"


def write_exr(
    path: str | os.PathLike,
    channels: dict[str, np.ndarray],
    pixel_type: str = "float",
    compression: str = "zip",
    attributes: dict[str, object] | None = None,
    display_window: tuple[int, int, int, int] | None = None,
    data_origin: tuple[int, int] = (0, 0),
    pixel_aspect: float = 1.0,
    frame_rate: Fraction | None = None,
    overwrite: bool = False,
) -> Path:
    """Write one EXR frame atomically (temporary name, then rename).

    Args:
        path: the file.
        channels: name -> `H W` float array (same size), written in this order.
        pixel_type: "half" or "float".
        compression: a lossless codec of `COMPRESSIONS`.
        attributes: extra header attributes (str, int, float; dicts and lists as JSON).
        display_window: `(x, y, width, height)`; None = the data window.
        data_origin: `(x, y)` of the data window.
        pixel_aspect: pixel width over height.
        frame_rate: written as the rational ``FramesPerSecond``.
        overwrite: replace an existing file (else ``InvalidInput``).

    Returns:
        ``path``.
    """
    import OpenImageIO as oiio

    path = Path(path)
    if path.exists() and not overwrite:
        raise InvalidInput(f"{path} exists; nothing was overwritten. Choose another output folder or name.")
    names = list(channels)
    planes = [np.asarray(channels[n], dtype=np.float32) for n in names]
    height, width = planes[0].shape
    if any(p.shape != (height, width) for p in planes):
        raise InvalidInput(f"EXR channels must have one size; got {[p.shape for p in planes]}.")
    spec = oiio.ImageSpec(width, height, len(names), pixel_type)
    spec.channelnames = tuple(names)
    spec.x, spec.y = data_origin
    if display_window is not None:
        spec.full_x, spec.full_y, spec.full_width, spec.full_height = display_window
    spec.attribute("compression", compression)
    spec.attribute("PixelAspectRatio", float(pixel_aspect))
    if frame_rate is not None:
        rate = Fraction(frame_rate)
        spec.attribute("FramesPerSecond", oiio.TypeDesc("rational"), (rate.numerator, rate.denominator))
    for key, value in (attributes or {}).items():
        if isinstance(value, (dict, list, tuple)):
            value = json.dumps(value, sort_keys=True)
        spec.attribute(key, value if isinstance(value, (int, float, str)) else str(value))
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(f".{path.name}.partial.exr")
    output = oiio.ImageOutput.create(str(temporary))
    if output is None:
        raise OSError(f"OpenImageIO cannot write EXR: {oiio.geterror()}")
    pixels = np.ascontiguousarray(np.stack(planes, axis=-1))
    try:
        if not output.open(str(temporary), spec) or not output.write_image(pixels):
            raise OSError(f"Could not write {path}: {output.geterror()}")
        output.close()
        os.replace(temporary, path)
    finally:
        if temporary.exists():
            temporary.unlink()
    return path


def read_exr_channel(path: str | os.PathLike, channel: str = DEFAULT_CHANNEL) -> np.ndarray:
    """One channel of an EXR (or any OpenImageIO format) as `H W` float32 (the data window)."""
    import OpenImageIO as oiio

    handle = oiio.ImageInput.open(str(path))
    if handle is None:
        raise InvalidInput(f"Could not read {path}: {oiio.geterror()}.")
    try:
        names = list(handle.spec().channelnames)
        if channel not in names:
            raise InvalidInput(f"{path} has no channel {channel!r}; it has {', '.join(names)}.")
        index = names.index(channel)
        pixels = handle.read_image(0, 0, index, index + 1, "float")
    finally:
        handle.close()
    return np.asarray(pixels, dtype=np.float32).reshape(pixels.shape[0], pixels.shape[1])


def depth_attributes(depth: ConvertedDepth, options: ExrOptions, extra: dict | None = None) -> dict:
    """The header attributes that say what the values are (and what the caller adds)."""
    attributes = {
        f"{PREFIX}kind": depth.kind,
        f"{PREFIX}units": depth.units,
        f"{PREFIX}meaning": depth.meaning(),
        f"{PREFIX}channel": options.channel,
        f"{PREFIX}conversion": json.dumps(depth.parameters, sort_keys=True),
    }
    if options.spread_channel is not None:
        attributes[f"{PREFIX}spread_channel"] = options.spread_channel
        attributes[f"{PREFIX}spread"] = SPREAD_MEANING
    if depth.clip is not None and depth.clip.colour:
        attributes[f"{PREFIX}colour"] = depth.clip.colour
    if depth.clip is not None and depth.clip.source:
        attributes[f"{PREFIX}source"] = depth.clip.source
    for key, value in (extra or {}).items():
        attributes[key if ":" in key else f"{PREFIX}{key}"] = value
    return attributes


def _half_safe(values: np.ndarray, pixel_type: str, counter: list[int]) -> np.ndarray:
    if pixel_type != "half":
        return values
    over = np.abs(values) > HALF_MAX
    if over.any():
        counter[0] += int(over.sum())
        values = np.clip(values, -HALF_MAX, HALF_MAX)
    return values


def write_depth_sequence(
    folder: str | os.PathLike,
    depth: ConvertedDepth,
    name: str | None = None,
    options: ExrOptions = ExrOptions(),
    metadata: dict | None = None,
    overwrite: bool = False,
) -> list[Path]:
    """Write a depth video as one EXR per frame, numbered like its clip.

    Args:
        folder: where the files go.
        depth: the values (`N H W`), what they mean, their spread and their clip.
        name: NAME in ``NAME.depth.1001.exr`` (default: the clip's name).
        options: channel names, pixel type, compression.
        metadata: more attributes (``{"preset": "fast", "model": ..., "seed": 0}``; keys
            without a ``:`` get the ``rollingdepth:`` prefix).
        overwrite: replace existing files; otherwise every target is checked first and an
            existing one stops the write before anything is written.

    Returns:
        The files, in frame order.

    When the depth has the plate's stored size (`ClipInfo.stored_size`), the files get the
    plate's display window, data window origin and pixel aspect; otherwise (processing
    size) a plain window with square pixels.
    """
    options.check()
    if options.spread_channel is not None and depth.spread is None:
        raise InvalidInput(
            f"the spread channel {options.spread_channel!r} was asked for but this depth has no spread "
            "(compute it with spread=True / --spread)."
        )
    clip = depth.clip
    count = depth.num_frames
    numbers = clip.numbers_for(count) if clip is not None else tuple(range(count))
    padding = clip.padding if clip is not None else 4
    name = name or (clip.name if clip is not None else "frames")
    folder = Path(folder)
    paths = [folder / depth_file_name(name, n, padding) for n in numbers]
    if not overwrite:
        taken = [p for p in paths if p.exists()]
        if taken:
            raise InvalidInput(
                f"{len(taken)} of the {count} files exist already (e.g. {taken[0]}); nothing was written "
                "or overwritten. Choose another output folder or name."
            )
    at_plate = clip is not None and clip.stored_size == depth.size
    display_window = origin = None
    aspect = 1.0
    if at_plate:
        aspect = clip.pixel_aspect
        display_window = clip.display_window
        window = clip.data_window or clip.display_window
        origin = (window[0], window[1]) if window is not None else None
    attributes = depth_attributes(depth, options, metadata)
    attributes[f"{PREFIX}size"] = "plate" if at_plate else "processing"
    clamped = [0]
    values = depth.values
    for index, path in enumerate(paths):
        channels = {options.channel: _half_safe(_plane(values[index]), options.pixel_type, clamped)}
        if options.spread_channel is not None:
            spread = _plane(depth.spread[index])
            channels[options.spread_channel] = _half_safe(spread, options.pixel_type, clamped)
        write_exr(
            path, channels, options.pixel_type, options.compression,
            {**attributes, f"{PREFIX}frame": int(numbers[index])},
            display_window=display_window, data_origin=origin or (0, 0), pixel_aspect=aspect,
            frame_rate=clip.frame_rate if clip is not None else None, overwrite=True,
        )
    if clamped[0]:
        logger.warning(
            "%d values beyond half float's range (+-%g) were clamped; write float to keep them.",
            clamped[0], HALF_MAX,
        )
    logger.info("Wrote %d EXR frames %s .. %s (%s, %s).", count, paths[0].name, paths[-1].name,
                options.channel, depth.meaning())
    return paths


def _plane(frame) -> np.ndarray:
    array = frame.detach().float().cpu().numpy() if isinstance(frame, torch.Tensor) else np.asarray(frame)
    if not np.isfinite(array).all():
        raise InvalidInput("depth holds NaN or infinite values; nothing more was written.")
    return array.astype(np.float32, copy=False)


def as_converted(depth, prefix: str = "frames", first_frame: int = 0) -> ConvertedDepth:
    """Any depth to write as a `ConvertedDepth`: converted depth as it is; a `DepthVideo` as
    inverse depth with its spread and clip; a plain `N H W` tensor or array as inverse depth
    numbered from ``first_frame`` (named ``prefix``)."""
    if isinstance(depth, ConvertedDepth):
        return depth
    if isinstance(depth, DepthVideo):
        return from_depth_video(depth)
    values = torch.as_tensor(np.asarray(depth) if not isinstance(depth, torch.Tensor) else depth).float()
    if values.ndim != 3 or values.shape[0] == 0:
        raise InvalidInput(f"depth must be `N H W` with N >= 1; got {tuple(values.shape)}.")
    last = first_frame + len(values) - 1
    clip = ClipInfo(name=prefix, frame_numbers=tuple(range(first_frame, last + 1)),
                    padding=max(4, len(str(last))))
    return ConvertedDepth(values, "inverse_depth", "", {"method": "none"}, None, clip)


def npz_fields(converted: ConvertedDepth) -> dict[str, np.ndarray]:
    """What an NPZ holds beside the values: the spread, and what the values are (unless they
    are plain inverse depth without a spread, the NPZ of earlier versions)."""
    fields = {}
    if converted.kind != "inverse_depth" or converted.spread is not None:
        fields["meaning"] = np.array(converted.meaning())
        fields["conversion"] = np.array(json.dumps(converted.parameters, sort_keys=True))
    if converted.spread is not None:
        fields["spread"] = converted.spread.detach().float().cpu().numpy()
    return fields
