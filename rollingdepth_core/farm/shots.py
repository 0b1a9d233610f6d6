"""The shots of a farm run: from a folder, a glob or a shot list (CSV or JSON), checked up front.

A shot is one clip processed whole (co-alignment needs the whole clip): a video file, an
image-sequence folder or a plate pattern (``plate.####.exr``, ``plate.%04d.exr``,
``plate.@@@@.dpx``), optionally a frame range of it, optionally with its own settings.
Everything here is checked before anything runs; nothing here needs Ray.

Shot list columns / keys:

- ``path`` (required): video file, image folder or plate pattern; relative paths are relative
  to the list.
- ``name``: NAME of the shot's outputs (default: the file's stem, the folder's name, or the
  sequence's name: ``plate`` for ``plate.####.exr``).
- ``start``, ``count``: frame range (first frame, number of frames; 0 = to the end; default:
  the command's ``--start-frame`` / ``--frame-count``).
- ``frame_range``: ``1001-1100``, frame numbers of a sequence (indices of a video), like the
  command line's ``--frame-range``; a sequence's frames are checked up front (every missing
  frame named).
- anything else: a per-shot setting, named like the command line option without the dashes
  (``refine_steps``, ``resolution``, ``dilations``, ``preset``, ``seed``...). In JSON they may
  also go in a ``settings`` object. Empty CSV cells mean "the command's value".
"""

from __future__ import annotations

import argparse
import copy
import csv
import glob
import json
from dataclasses import dataclass, field
from pathlib import Path

from ..cli import OptionalFlag, add_clip_options, check_command, flag_value, input_name, normalize_args
from ..errors import InvalidSettings, RollingDepthError
from ..io.sequences import find_sequence, is_image_file, pattern_from_text
from ..io.video_files import IMAGE_SUFFIXES, list_images

VIDEO_SUFFIXES = (".mp4", ".mov", ".mkv", ".avi", ".webm", ".m4v", ".mpg", ".mpeg", ".mxf", ".gif")
# Options a shot may set for itself; the rest (model, device, batch sizes...) belong to the run.
SHOT_OPTIONS = (
    "preset", "resolution", "dilations", "snippet_length", "cap_dilation", "refine_steps",
    "refine_start_dilation", "dtype", "seed", "coalign_method", "coalign_iterations",
    "restore_resolution", "outputs", "colormap", "fps", "split_at_cuts",
    "frame_range", "colour_space", "layer", "window",
)
RANGE_KEYS = ("start", "count")


@dataclass(frozen=True)
class Shot:
    """One unit of work: a clip processed whole by one worker.

    Attributes:
        name: NAME of its outputs, unique in the run (its folder in OUTDIR).
        path: video file or image folder.
        start: first frame read (index in the file).
        count: frames read (0: to the end).
        options: the full option set it runs with (the command's, with its own on top),
            as ``vars()`` of the parsed command line.
        first_frame: number of its first frame in per-frame file names (segments between
            cuts keep the input's numbers; None = like the single-clip command line).
        frame_prefix: prefix of per-frame file names (None = ``name``).
    """

    name: str
    path: Path
    start: int = 0
    count: int = 0
    options: dict = field(default_factory=dict, compare=False)
    first_frame: int | None = None
    frame_prefix: str | None = None

    def args(self) -> argparse.Namespace:
        """The parsed command line the single-clip code runs this shot with."""
        return argparse.Namespace(
            **{**self.options, "input": self.path, "start_frame": self.start, "frame_count": self.count,
               "split_at_cuts": False}
        )


class ShotListError(InvalidSettings):
    """A shot list (or the shots it names) cannot be run; lists every problem found."""

    def __init__(self, source: str, problems: list[str]):
        self.problems = problems
        shown = "; ".join(problems[:8]) + (f"; and {len(problems) - 8} more" if len(problems) > 8 else "")
        super().__init__(f"{source}: {shown}. Nothing was run.")


def _option_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="shot settings", add_help=False)
    add_clip_options(parser)

    def fail(message: str) -> None:
        raise InvalidSettings(message)

    parser.error = fail  # argparse would exit; a shot list reports the message instead
    return parser


def _tokens(parser: argparse.ArgumentParser, key: str, value) -> tuple[list[str], dict]:
    """Command line tokens (or direct values, for switches) that set option ``key``."""
    action = next((a for a in parser._actions if a.dest == key), None)
    if action is None or key not in SHOT_OPTIONS:
        raise InvalidSettings(
            f"unknown shot setting {key!r}; a shot may set {', '.join(SHOT_OPTIONS)} "
            f"(plus path, name, {', '.join(RANGE_KEYS)})"
        )
    if action.nargs == 0 or isinstance(action, (argparse.BooleanOptionalAction, OptionalFlag)):
        if isinstance(value, bool):
            return [], {key: value}
        try:
            return [], {key: flag_value(str(value))}
        except argparse.ArgumentTypeError:
            raise InvalidSettings(f"shot setting {key} must be true or false; got {value!r}") from None
    if isinstance(value, (list, tuple)):
        value = ",".join(str(v) for v in value)
    return [action.option_strings[-1], str(value)], {}


def shot_options(base: argparse.Namespace, settings: dict) -> dict:
    """The command's options (as parsed, not normalised) with a shot's own ``settings`` on top,
    normalised and checked like the single-clip command's (`cli.normalize_args`, `cli.check_command`).

    Raises:
        InvalidSettings: an unknown key or a value the command line would refuse.
    """
    parser = _option_parser()
    namespace = copy.copy(base)
    argv, direct = [], {}
    for key, value in settings.items():
        if value is None or (isinstance(value, str) and not value.strip()):
            continue
        tokens, values = _tokens(parser, key, value)
        argv += tokens
        direct.update(values)
    parser.parse_args(argv, namespace=namespace)  # only the given options change
    for key, value in direct.items():
        setattr(namespace, key, value)
    namespace = normalize_args(namespace)
    check_command(namespace)  # the single-clip command's own checks, worded with its flags
    return vars(namespace)


def _int_field(row: dict, key: str, default: int) -> int:
    value = row.get(key)
    if value is None or (isinstance(value, str) and not value.strip()):
        return default
    try:
        number = int(str(value).strip()) if not isinstance(value, int) else value
    except ValueError:
        raise InvalidSettings(f"{key} must be a whole number >= 0; got {value!r}") from None
    if number < 0 or isinstance(value, bool):
        raise InvalidSettings(f"{key} must be a whole number >= 0; got {value!r}")
    return number


def _plate_pattern(path: Path):
    """The `SequencePattern` of ``plate.####.exr`` / ``%04d`` / ``@@@@`` (image suffix), or None."""
    try:
        pattern = pattern_from_text(path)
    except InvalidSettings:
        return None  # two number fields: not a pattern (reported as a missing clip)
    return pattern if pattern is not None and is_image_file(pattern.tail) else None


def _clip_kind(path: Path) -> str | None:
    """"video", "sequence" (a folder of images, or a plate pattern whose folder exists) or None."""
    if path.is_file() and path.suffix.lower() in VIDEO_SUFFIXES:
        return "video"
    if path.is_dir() and list_images(path):
        return "sequence"
    pattern = _plate_pattern(path)
    if pattern is not None and pattern.folder.is_dir():
        return "sequence"
    return None


def default_name(path: Path) -> str:
    """NAME of a clip's outputs: the file's stem, the folder's name, or a plate pattern's
    sequence name (``plate`` for ``plate.####.exr``), as the single-clip command names it."""
    if path.suffix.lower() in VIDEO_SUFFIXES:
        return path.stem
    return input_name(path) if _plate_pattern(path) is not None else path.name


def _rows_from_csv(path: Path) -> list[dict]:
    with path.open(newline="", encoding="utf-8-sig") as handle:
        reader = csv.DictReader(handle)
        if not reader.fieldnames or "path" not in [f.strip() for f in reader.fieldnames]:
            raise ShotListError(str(path), ["the first row must name the columns, one of them 'path'"])
        return [{(k or "").strip(): (v.strip() if isinstance(v, str) else v) for k, v in row.items()}
                for row in reader]


def _rows_from_json(path: Path) -> list[dict]:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as error:
        raise ShotListError(str(path), [f"not valid JSON ({error})"]) from None
    rows = data.get("shots") if isinstance(data, dict) else data
    if not isinstance(rows, list) or not all(isinstance(r, dict) for r in rows):
        raise ShotListError(str(path), ['expected a list of objects like {"path": "a.mp4"} '
                                        '(or {"shots": [...]})'])
    flat = []
    for row in rows:
        settings = row.get("settings") or {}
        if not isinstance(settings, dict):
            raise ShotListError(str(path), [f"'settings' must be an object; got {settings!r}"])
        flat.append({**{k: v for k, v in row.items() if k != "settings"}, **settings})
    return flat


def _paths_from(spec: str) -> tuple[list[Path], str]:
    """Clips named by a folder, a glob or one clip; and a description for messages."""
    path = Path(spec).expanduser()
    if path.is_dir() and not list_images(path):
        found = sorted(p for p in path.iterdir() if _clip_kind(p) and not p.name.startswith("."))
        return found, f"folder {path}"
    if path.exists() or (_plate_pattern(path) is not None and not any(ch in spec for ch in "*?[")):
        return [path], str(path)
    if _plate_pattern(path) is not None:  # shots/*/plate.####.exr: one plate in each matching folder
        folders = sorted(Path(p) for p in glob.glob(str(path.parent)) if Path(p).is_dir())
        return [folder / path.name for folder in folders], f"pattern {spec!r}"
    if any(ch in spec for ch in "*?["):
        return [Path(p) for p in sorted(glob.glob(str(path)))], f"pattern {spec!r}"
    return [], str(path)


def collect_shots(spec: str | Path, base: argparse.Namespace) -> list[Shot]:
    """The shots named by ``spec``, every one checked, none run.

    Args:
        spec: a shot list (``.csv`` / ``.json``), a folder (each video file and each
            sub-folder of images is a shot; a folder of images is one shot), a glob
            pattern, or one clip.
        base: the command's options (`cli.add_clip_options`); shots may override some.

    Raises:
        ShotListError: listing every problem (missing files, bad ranges or settings,
            two shots with the same NAME), before anything runs.
    """
    spec = str(spec)
    path = Path(spec).expanduser()
    problems: list[str] = []
    if path.is_file() and path.suffix.lower() in (".csv", ".json"):
        rows = _rows_from_csv(path) if path.suffix.lower() == ".csv" else _rows_from_json(path)
        where, root = str(path), path.parent
    else:
        clips, where = _paths_from(spec)
        names = [default_name(p) for p in clips]
        rows = [  # plates of one name in several shot folders (sh0*/plate.####.exr): FOLDER_plate
            {"path": str(p), **({"name": f"{p.parent.name}_{n}"} if names.count(n) > 1 and _plate_pattern(p)
                                else {})}
            for p, n in zip(clips, names, strict=True)
        ]
        root = Path.cwd()
    if not rows:
        raise ShotListError(where, [
            "no shots found (expected video files "
            f"({', '.join(VIDEO_SUFFIXES)}) or folders of images ({', '.join(IMAGE_SUFFIXES)}))"
        ])
    shots: list[Shot] = []
    for number, row in enumerate(rows, start=1):
        label = f"shot {number}"
        try:
            if not row.get("path"):
                raise InvalidSettings("no path")
            clip = Path(str(row["path"])).expanduser()
            clip = (clip if clip.is_absolute() else root / clip).absolute()  # workers may run elsewhere
            label = f"shot {number} ({clip.name})"
            if _clip_kind(clip) is None:
                raise InvalidSettings(
                    f"{clip} does not exist" if not clip.exists() and _plate_pattern(clip) is None
                    else f"the folder of the sequence {clip} does not exist" if not clip.exists()
                    else f"{clip} is neither a video file nor a folder of images (nor a plate pattern)"
                )
            start = _int_field(row, "start", getattr(base, "start_frame", 0))
            count = _int_field(row, "count", getattr(base, "frame_count", 0))
            settings = {k: v for k, v in row.items() if k not in ("path", "name", *RANGE_KEYS)}
            options = shot_options(base, settings)
            if options.get("frame_range") and (start or count):
                raise InvalidSettings("give either frame_range or start / count, not both")
            if _clip_kind(clip) == "sequence" and not clip.is_dir():
                find_sequence(clip, options.get("frame_range"))  # every missing frame, by number, now
            name = str(row.get("name") or default_name(clip)).strip()
            if not name or "/" in name or "\\" in name or name.startswith("."):
                raise InvalidSettings(f"name {name!r} must be a plain file name")
            shots.append(Shot(name, clip, start, count, options))
        except RollingDepthError as error:
            problems.append(f"{label}: {str(error).rstrip('.')}")
    seen: dict[str, int] = {}
    for shot in shots:
        seen[shot.name] = seen.get(shot.name, 0) + 1
    problems += [f"{count} shots are named {name!r} (give them distinct 'name's in a shot list)"
                 for name, count in seen.items() if count > 1]
    if problems:
        raise ShotListError(where, problems)
    return shots
