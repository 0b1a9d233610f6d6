"""Plates: an image sequence read lazily as a `FrameSource`, colour-converted for the model.

`ImageSequenceSource` checks the whole sequence up front (every frame exists, is an image
with the chosen layer, and has the same frame size) by reading headers only, then decodes
frames batch by batch as the stages ask for them: each frame is read with OpenImageIO in
float32, converted to the sRGB display encoding (`colour.resolve_colour`), and resized.
Memory stays flat whatever the length of the plate.

Anamorphic plates (pixel aspect != 1) are seen by the model with square pixels: the source's
`input_size` is the desqueezed size; `clip.stored_size` and `clip.pixel_aspect` let the
writers go back to the plate's own pixels.
"""

from __future__ import annotations

import hashlib
import logging
import os
from fractions import Fraction

import numpy as np
import torch
from einops import rearrange
from torch import Tensor

from ..errors import InvalidInput, InvalidSettings
from ..hooks import NO_HOOKS, Hooks
from ..types import ClipInfo
from .colour import AUTO, ColourTransform, resolve_colour
from .frame_rates import exact_frame_rate
from .frames import resize_frames
from .image_files import WINDOWS, ImageHeader, read_header, read_rgb
from .sequences import ImageSequence, find_sequence

logger = logging.getLogger(__name__)

DEFAULT_FRAME_RATE = Fraction(24)  # plates carry no rate unless the EXR header says


def _check_headers(sequence: ImageSequence, headers: list[ImageHeader], window: str) -> None:
    """Raise ``InvalidInput`` naming the frames whose size or kind differs from the first."""
    first = headers[0]
    size = first.size(window)
    odd_size = [n for n, h in zip(sequence.frame_numbers, headers, strict=True) if h.size(window) != size]
    if odd_size:
        other = headers[sequence.frame_numbers.index(odd_size[0])].size(window)
        raise InvalidInput(
            f"Frames of {sequence.describe()} differ in size: frame {sequence.frame_numbers[0]} is "
            f"{size[1]}x{size[0]} ({window} window) but {len(odd_size)} frame(s) are not, e.g. "
            f"frame {odd_size[0]} is {other[1]}x{other[0]} (frames {_few(odd_size)})."
        )
    if window == "data":
        moved = [n for n, h in zip(sequence.frame_numbers, headers, strict=True)
                 if h.data_window != first.data_window]
        if moved:
            raise InvalidInput(
                f"window='data' needs the same data window on every frame; frames {_few(moved)} of "
                f"{sequence.describe()} have another one. Use window='display'."
            )
    kinds = [n for n, h in zip(sequence.frame_numbers, headers, strict=True) if h.is_float != first.is_float]
    if kinds:
        raise InvalidInput(
            f"{sequence.describe()} mixes float and integer files (frames {_few(kinds)} differ from "
            f"frame {sequence.frame_numbers[0]}, which is {first.pixel_type}); their colour cannot be "
            "read the same way."
        )
    aspects = [n for n, h in zip(sequence.frame_numbers, headers, strict=True)
               if abs(h.pixel_aspect - first.pixel_aspect) > 1e-6]
    if aspects:
        raise InvalidInput(f"Frames {_few(aspects)} of {sequence.describe()} have another pixel aspect.")


def _few(numbers: list[int]) -> str:
    shown = ", ".join(str(n) for n in numbers[:8])
    return shown + (f" and {len(numbers) - 8} more" if len(numbers) > 8 else "")


class ImageSequenceSource:
    """An image sequence (a plate) as a lazily read `FrameSource`.

    Args:
        sequence: an `ImageSequence`, or what `find_sequence` accepts (a pattern such as
            ``plate.####.exr``, ``plate.%04d.exr``, ``plate.@@@@.dpx``, a folder, a file).
        frame_range: ``"1001-1100"`` or ``(1001, 1100)``: frame numbers to read (inclusive);
            None = all.
        colour_space: the plates' colour space ("auto": float files scene-linear Rec.709,
            integer files sRGB as stored; "raw": no conversion; else an OpenColorIO name).
        config: OpenColorIO config (file or ``ocio://`` URI); None = ``$OCIO`` or the
            built-in ACES studio config.
        display, view: the view transform for scene-referred input (None = the defaults).
        layer: EXR layer to read ("" / None = the RGB channels; e.g. "diffuse").
        window: "display" (the frame) or "data" (the stored pixels, e.g. overscan).
        frame_rate: frame rate when the files do not say (EXR ``FramesPerSecond``); default 24.
            23.976 means 24000/1001 (`frame_rates.exact_frame_rate`).
        hooks: progress over the header scan.

    Raises:
        InvalidInput: missing frames (by number), unreadable files, a missing layer, frames
            of different sizes, before any pixel is decoded.
        InvalidSettings: a bad pattern, range, colour space, display, view or window.
    """

    def __init__(
        self,
        sequence: ImageSequence | str | os.PathLike,
        frame_range: str | tuple[int, int] | None = None,
        colour_space: str = AUTO,
        config: str | os.PathLike | None = None,
        display: str | None = None,
        view: str | None = None,
        layer: str | None = None,
        window: str = "display",
        frame_rate: Fraction | float | None = None,
        hooks: Hooks = NO_HOOKS,
    ):
        if window not in WINDOWS:
            raise InvalidSettings(f"window must be one of {', '.join(WINDOWS)}; got {window!r}.")
        given_rate = exact_frame_rate(frame_rate) if frame_rate is not None else None
        if not isinstance(sequence, ImageSequence):
            sequence = find_sequence(sequence, frame_range)
        elif frame_range is not None:
            raise InvalidSettings("frame_range applies to a pattern; this sequence is already chosen.")
        self.sequence = sequence
        self.layer = layer or ""
        self.window = window
        headers = []
        for i, path in enumerate(sequence.paths):
            hooks.check_cancel()
            headers.append(read_header(path, self.layer))
            hooks.progress(i + 1, sequence.num_frames)
        _check_headers(sequence, headers, window)
        self.headers = tuple(headers)
        first = headers[0]
        self.colour: ColourTransform = resolve_colour(colour_space, first.is_float, config, display, view)
        logger.info("Colour of %s (%s): %s.", sequence.describe(), first.pixel_type, self.colour.description)
        self.frame_rate: Fraction = first.frame_rate or given_rate or DEFAULT_FRAME_RATE
        height, width = first.size(window)
        self.stored_size = (height, width)
        self.pixel_aspect = first.pixel_aspect
        self._input_size = (height, max(1, round(width * self.pixel_aspect)))
        self.non_finite = 0  # input values that were NaN/inf (set to 0)

    @property
    def num_frames(self) -> int:
        return self.sequence.num_frames

    @property
    def input_size(self) -> tuple[int, int]:
        """`(H, W)` with square pixels (the stored width times the pixel aspect)."""
        return self._input_size

    @property
    def fps(self) -> float:
        return float(self.frame_rate)

    @property
    def frame_numbers(self) -> tuple[int, ...]:
        return self.sequence.frame_numbers

    @property
    def clip(self) -> ClipInfo:
        first = self.headers[0]
        return ClipInfo(
            name=self.sequence.name,
            frame_numbers=self.sequence.frame_numbers,
            frame_rate=self.frame_rate,
            padding=self.sequence.padding,
            pixel_aspect=self.pixel_aspect,
            stored_size=self.stored_size,
            display_window=first.display_window,
            data_window=first.data_window if self.window == "data" else None,
            colour=self.colour.description,
            source=self.sequence.describe(),
        )

    def read_images(self, start: int, stop: int) -> Tensor:
        """Frames `start .. stop - 1` as `b H W 3` float32 in 0..1 (sRGB display encoding),
        at the stored size (no desqueeze): what a ComfyUI IMAGE batch holds."""
        if not 0 <= start < stop <= self.num_frames:
            raise InvalidSettings(
                f"frame range {start}..{stop} is outside the clip of {self.num_frames} frames."
            )
        out = []
        for index in range(start, stop):
            rgb, bad = self.colour.apply(read_rgb(self.headers[index], self.window))
            if bad:
                self._note_non_finite(index, bad)
            out.append(torch.from_numpy(rgb))
        return torch.stack(out)

    def _note_non_finite(self, index: int, count: int) -> None:
        if not self.non_finite:
            logger.warning(
                "Frame %d of %s holds %d NaN or infinite values; they are read as 0 (later frames "
                "are counted silently: see the source's non_finite).",
                self.frame_numbers[index], self.sequence.describe(), count,
            )
        self.non_finite += count

    def read(self, start: int, stop: int, size: tuple[int, int] | None = None) -> Tensor:
        """Frames as `b 3 H W` float32 in -1..1 at ``size`` (None: `input_size`)."""
        size = tuple(size) if size is not None else self.input_size
        frames = []
        for index in range(start, stop):
            image = self.read_images(index, index + 1)  # 1 H W 3
            frame = rearrange(image, "b H W c -> b c H W") * 2.0 - 1.0
            frames.append(resize_frames(frame, size))
        return torch.cat(frames)

    def fingerprint(self) -> tuple:
        stats = hashlib.sha1()
        for path in self.sequence.paths:
            stat = path.stat()
            stats.update(f"{path}:{stat.st_size}:{stat.st_mtime_ns};".encode())
        return ("sequence", self.sequence.describe(), self.layer, self.window, self.colour.description,
                stats.hexdigest(), self._input_size)


class ColourConvertedSource:
    """Another source's frames converted from ``colour`` to the sRGB display encoding.

    For videos in a log or linear encoding (an image sequence converts its own frames, at full
    size, before resizing; here frames are converted after being read at the asked size).

    Args:
        source: any `FrameSource` (frames in -1..1, i.e. encoded values 0..1).
        colour: the conversion (`colour.resolve_colour`).
    """

    def __init__(self, source, colour: ColourTransform):
        self.source = source
        self.colour = colour
        logger.info("Colour of the video: %s.", colour.description)

    @property
    def num_frames(self) -> int:
        return self.source.num_frames

    @property
    def input_size(self) -> tuple[int, int]:
        return self.source.input_size

    @property
    def fps(self):
        return getattr(self.source, "fps", None)

    @property
    def clip(self):
        import dataclasses

        clip = getattr(self.source, "clip", None)
        return None if clip is None else dataclasses.replace(clip, colour=self.colour.description)

    def read(self, start: int, stop: int, size: tuple[int, int] | None = None) -> Tensor:
        frames = self.source.read(start, stop, size)  # b 3 H W in -1..1
        images = rearrange((frames + 1.0) / 2.0, "b c H W -> b H W c").contiguous().numpy()
        converted = [self.colour.apply(image)[0] for image in images]
        return rearrange(torch.from_numpy(np.stack(converted)), "b H W c -> b c H W") * 2.0 - 1.0

    def fingerprint(self) -> tuple:
        return (*self.source.fingerprint(), "colour", self.colour.description)
