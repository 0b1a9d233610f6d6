"""Image sequences on disk: frame-number patterns, scanning a folder, frame ranges, gaps.

A plate is a numbered sequence of files, ``plate.1001.exr`` ... ``plate.1100.exr``. It can be
named by a pattern with the padding written as

- ``plate.####.exr`` (one ``#`` per digit, Nuke), ``plate.@@@@.dpx`` (one ``@`` per digit),
- ``plate.%04d.exr`` (printf, ffmpeg; ``%d`` = no padding),
- a folder that holds exactly one numbered sequence (or, failing that, images sorted by name),
- one image file (a one-frame clip).

`find_sequence` lists the frames that exist, checks them against the wanted frame range and
reports every missing frame number before anything is read. Nothing here decodes pixels.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path

from ..errors import InvalidInput, InvalidSettings

IMAGE_SUFFIXES = (
    ".exr", ".dpx", ".cin", ".tif", ".tiff", ".png", ".jpg", ".jpeg", ".bmp", ".webp", ".tga",
    ".hdr", ".sgi", ".rgb", ".psd", ".jp2", ".j2k", ".jxl", ".ppm", ".pnm",
)
_PRINTF = re.compile(r"%(0?)(\d*)d")
_HASHES = re.compile(r"#+|@+")
_NUMBERED = re.compile(r"^(?P<head>.*?)(?P<digits>\d+)(?P<tail>\D*)$")


@dataclass(frozen=True)
class SequencePattern:
    """A file name with one frame-number field: ``head + number + tail``.

    Attributes:
        folder: where the files are.
        head: text before the number (``"plate."``).
        tail: text after it (``".exr"``).
        padding: minimum digits (0 = none); numbers with more digits are accepted unpadded.
    """

    folder: Path
    head: str
    tail: str
    padding: int

    @property
    def name(self) -> str:
        """The sequence's name for outputs: the head without its trailing separators."""
        return self.head.rstrip("._- ") or Path(self.tail).stem.strip("._- ") or "frames"

    def display(self) -> str:
        """``plate.####.exr`` (with the real padding)."""
        return f"{self.head}{'#' * max(self.padding, 1)}{self.tail}"

    def file_name(self, number: int) -> str:
        digits = f"{abs(number):0{self.padding}d}"
        return f"{self.head}{'-' if number < 0 else ''}{digits}{self.tail}"

    def path(self, number: int) -> Path:
        return self.folder / self.file_name(number)

    def number_of(self, file_name: str) -> int | None:
        """The frame number of ``file_name``, or None if it is not a frame of this sequence."""
        if not (file_name.startswith(self.head) and file_name.endswith(self.tail)):
            return None
        middle = file_name[len(self.head): len(file_name) - len(self.tail)]
        sign = -1 if middle.startswith("-") else 1
        digits = middle[1:] if sign < 0 else middle
        if not digits.isdigit() or not digits.isascii():
            return None
        if len(digits) < self.padding or (len(digits) > max(self.padding, 1) and digits[0] == "0"):
            return None  # other padding: another sequence
        return sign * int(digits)


@dataclass(frozen=True)
class ImageSequence:
    """The frames of a sequence that will be read, in order.

    Attributes:
        pattern: the file-name pattern (None for a folder of unnumbered images).
        frame_numbers: the frame number of every frame (consecutive for patterns).
        paths: the file of every frame.
    """

    pattern: SequencePattern | None
    frame_numbers: tuple[int, ...]
    paths: tuple[Path, ...]

    @property
    def num_frames(self) -> int:
        return len(self.paths)

    @property
    def name(self) -> str:
        if self.pattern is not None:
            return self.pattern.name
        return self.paths[0].parent.name or "frames"

    @property
    def padding(self) -> int:
        return self.pattern.padding if self.pattern is not None else 4

    def describe(self) -> str:
        what = self.pattern.display() if self.pattern is not None else f"{self.paths[0].parent}/*"
        first, last = self.frame_numbers[0], self.frame_numbers[-1]
        return f"{what} frames {first}-{last} ({self.num_frames} frames)"


def parse_frame_range(text: str | tuple[int, int] | None) -> tuple[int, int] | None:
    """``"1001-1100"`` -> ``(1001, 1100)`` (inclusive); ``"1001"`` -> ``(1001, 1001)``.

    Negative numbers are written ``-5--1`` or ``-5:-1``; ``":"`` also separates. None -> None.
    """
    if text is None or (isinstance(text, str) and not text.strip()):
        return None
    if isinstance(text, tuple):
        first, last = (int(v) for v in text)
    else:
        match = re.fullmatch(r"\s*(-?\d+)\s*(?:(?:-|:)\s*(-?\d+)\s*)?", str(text))
        if match is None:
            raise InvalidSettings(
                f"frame range must look like 1001-1100 (first-last, inclusive); got {text!r}."
            )
        first = int(match.group(1))
        last = int(match.group(2)) if match.group(2) is not None else first
    if last < first:
        raise InvalidSettings(f"frame range {first}-{last} ends before it starts.")
    return first, last


def compact_ranges(numbers: list[int] | tuple[int, ...], limit: int = 12) -> str:
    """``[1005, 1010, 1011, 1012]`` -> ``"1005, 1010-1012"`` (at most ``limit`` runs shown)."""
    runs: list[tuple[int, int]] = []
    for number in sorted(numbers):
        if runs and number == runs[-1][1] + 1:
            runs[-1] = (runs[-1][0], number)
        else:
            runs.append((number, number))
    shown = [f"{a}" if a == b else f"{a}-{b}" for a, b in runs[:limit]]
    more = f" and {len(runs) - limit} more gaps" if len(runs) > limit else ""
    return ", ".join(shown) + more


def pattern_from_text(text: str | os.PathLike) -> SequencePattern | None:
    """The pattern written in ``text`` (``####``, ``@@@@``, ``%04d``), or None if it has none."""
    path = Path(text)
    name = path.name
    fields = [*_PRINTF.finditer(name), *_HASHES.finditer(name)]
    if not fields:
        return None
    if len(fields) > 1:
        raise InvalidSettings(
            f"{name!r} has {len(fields)} frame-number fields; a sequence pattern has exactly one "
            "(e.g. plate.####.exr or plate.%04d.exr)."
        )
    field = fields[0]
    if field.re is _PRINTF:
        padding = int(field.group(2) or 0) if field.group(1) or field.group(2) else 0
    else:
        padding = len(field.group(0))
    return SequencePattern(path.parent, name[: field.start()], name[field.end():], padding)


def is_image_file(path: str | os.PathLike) -> bool:
    """True when the name ends with an image suffix (``.exr``, ``.dpx``, ``.tif``, ...)."""
    return os.fspath(path).lower().endswith(IMAGE_SUFFIXES)


def numbered_patterns(names: list[str]) -> dict[SequencePattern, list[int]]:
    """Group file names into numbered sequences (the last run of digits is the frame number)."""
    groups: dict[tuple[str, str], list[str]] = {}
    for name in names:
        match = _NUMBERED.match(name)
        if match:
            groups.setdefault((match["head"], match["tail"]), []).append(match["digits"])
    patterns: dict[SequencePattern, list[int]] = {}
    for (head, tail), digits in groups.items():
        padded = [d for d in digits if len(d) > 1 and d[0] == "0"]
        padding = len(padded[0]) if padded else min(len(d) for d in digits)
        if len({len(d) for d in padded}) > 1:
            padding = min(len(d) for d in digits)
        pattern = SequencePattern(Path(), head, tail, padding)
        numbers = [n for n in (pattern.number_of(head + d + tail) for d in digits) if n is not None]
        patterns[pattern] = sorted(numbers)
    return patterns


def _scan(pattern: SequencePattern) -> list[int]:
    if not pattern.folder.is_dir():
        raise InvalidInput(f"Folder {pattern.folder} of the sequence {pattern.display()} does not exist.")
    numbers = []
    with os.scandir(pattern.folder) as entries:
        for entry in entries:
            number = pattern.number_of(entry.name)
            if number is not None and entry.is_file():
                numbers.append(number)
    return sorted(numbers)


def _check_frames(
    pattern: SequencePattern, found: list[int], frame_range: tuple[int, int] | None
) -> tuple[int, ...]:
    if not found:
        raise InvalidInput(f"No frames of {pattern.folder / pattern.display()} exist.")
    first, last = frame_range if frame_range is not None else (found[0], found[-1])
    present = set(found)
    wanted = range(first, last + 1)
    missing = [n for n in wanted if n not in present]
    if len(missing) == len(wanted):
        raise InvalidInput(
            f"None of the frames {first}-{last} of {pattern.folder / pattern.display()} exist "
            f"(the sequence has frames {compact_ranges(found)})."
        )
    if missing:
        raise InvalidInput(
            f"{pattern.folder / pattern.display()} is missing {len(missing)} of the frames "
            f"{first}-{last}: {compact_ranges(missing)}. Render or copy them, or pick a frame "
            "range without gaps."
        )
    return tuple(wanted)


def find_sequence(
    source: str | os.PathLike, frame_range: str | tuple[int, int] | None = None
) -> ImageSequence:
    """The frames named by ``source``, checked to exist without gaps.

    Args:
        source: a pattern (``plate.####.exr``, ``plate.%04d.exr``, ``plate.@@@@.dpx``), a
            folder, or one image file.
        frame_range: ``"first-last"`` frame numbers (inclusive) or a tuple; None = every
            frame found.

    Returns:
        `ImageSequence` with consecutive frame numbers (patterns and numbered folders) or
        the folder's images sorted by name, numbered from 0 (unnumbered folders).

    Raises:
        InvalidInput: nothing matches, frames are missing (all listed by number), a folder
            holds several sequences.
        InvalidSettings: a malformed pattern or frame range.
    """
    wanted = parse_frame_range(frame_range)
    text = os.fspath(source)
    pattern = pattern_from_text(text)
    path = Path(text)
    if pattern is None and path.is_dir():
        return _folder_sequence(path, wanted)
    if pattern is None:
        if not path.is_file():
            raise InvalidInput(
                f"{path} does not exist. Name a sequence with its frame-number field, e.g. "
                "plate.####.exr, plate.%04d.exr or plate.@@@@.dpx, or a folder."
            )
        if not is_image_file(path):
            raise InvalidInput(f"{path} is not an image file ({', '.join(IMAGE_SUFFIXES)}).")
        if wanted is not None:
            raise InvalidSettings(
                f"a frame range ({wanted[0]}-{wanted[1]}) needs a sequence pattern such as "
                f"plate.####.exr, not the single file {path.name}."
            )
        return ImageSequence(None, (0,), (path,))
    numbers = _check_frames(pattern, _scan(pattern), wanted)
    return ImageSequence(pattern, numbers, tuple(pattern.path(n) for n in numbers))


def _folder_sequence(folder: Path, wanted: tuple[int, int] | None) -> ImageSequence:
    names = sorted(e.name for e in os.scandir(folder) if e.is_file() and is_image_file(Path(e.name)))
    if not names:
        raise InvalidInput(f"No images ({', '.join(IMAGE_SUFFIXES)}) found in {folder}.")
    patterns = numbered_patterns(names)
    numbered = {p: n for p, n in patterns.items() if len(n) > 1 or len(names) == 1}
    if len(numbered) == 1:
        found = next(iter(numbered))
        pattern = SequencePattern(folder, found.head, found.tail, found.padding)
        numbers = _check_frames(pattern, _scan(pattern), wanted)
        return ImageSequence(pattern, numbers, tuple(pattern.path(n) for n in numbers))
    if len(numbered) > 1:
        listing = "; ".join(
            f"{p.display()} ({len(n)} frames)" for p, n in sorted(numbered.items(), key=lambda i: i[0].head)
        )
        raise InvalidInput(
            f"{folder} holds {len(numbered)} image sequences: {listing}. Pass one of them as a "
            f"pattern, e.g. {folder / next(iter(sorted(numbered, key=lambda p: p.head))).display()}."
        )
    if wanted is not None:
        raise InvalidSettings(
            f"{folder} holds images without frame numbers; a frame range needs numbered files."
        )
    paths = tuple(folder / name for name in names)
    return ImageSequence(None, tuple(range(len(paths))), paths)
