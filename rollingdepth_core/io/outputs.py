"""The files of a finished run, as the command line writes them (one `ResultSet`).

For an input called ``NAME`` (``NAME.mp4`` or a folder ``NAME/``):

==================================  ==========================================================
``NAME_depth.npz``                  key ``inverse_depth``: `N H W` float32 (larger = nearer)
``NAME_depth_png16/NAME_00000.png``  16-bit grey, one range for the clip, kept in
                                    ``NAME_depth_png16/NAME_range.json``
``NAME_depth_exr/NAME.depth.0000.exr`` EXR per frame, numbered like the input (plates:
                                    ``plate.depth.1001.exr``), channel ``depth.Z`` (see `exr`)
``NAME_depth_preview.mp4``           colour-mapped preview (2nd-98th percentile of the clip);
                                    more colour maps add ``NAME_depth_preview_<map>.mp4``
==================================  ==========================================================

A new take replaces ``NAME`` by ``NAME_take2``, ``NAME_take3`` ... everywhere. Anything
that must write "what the command line writes" (the farm, scripts) uses `plan_outputs` and
`write_outputs`.
"""

from __future__ import annotations

import logging
import numbers
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from torch import Tensor

from ..conversion.converted import ConvertedDepth
from ..errors import InvalidSettings
from ..wording import API, Wording
from .colormaps import COLORMAPS, apply_colormap, display_range, is_colormap
from .export import save_npz, save_png16, save_video
from .exr import ExrOptions, as_converted, npz_fields, write_depth_sequence
from .result_set import ResultSet, Staging

logger = logging.getLogger(__name__)

OUTPUT_KINDS = ("npz", "png16", "video", "exr")
DEFAULT_KINDS = ("npz", "png16", "video")
DEFAULT_COLORMAP = "Spectral_r"
ENTRIES = {
    "npz": "{stem}_depth.npz",
    "png16": "{stem}_depth_png16",
    "exr": "{stem}_depth_exr",
    "video": "{stem}_depth_preview.mp4",
}
EXTRA_PREVIEW = "{stem}_depth_preview_{colormap}.mp4"
_FRAME = "[0-9][0-9][0-9][0-9][0-9]*"  # a frame number in a segment's name (5 digits or more)
SEGMENT_STEM = "{stem}_" + _FRAME + "-" + _FRAME  # NAME_<first>-<last>, one per segment between cuts
# everything a set of NAME may hold: each kind, more previews, and the same for its segments
SET_PATTERNS = tuple(
    template.replace("{stem}", stem)
    for stem in ("{stem}", SEGMENT_STEM)
    for template in (*ENTRIES.values(), "{stem}_depth_preview_*.mp4")
)
PREVIEW_PERCENTILES = (2.0, 98.0)


def segment_name(name: str, first: int, last: int) -> str:
    """NAME of a segment between cuts: ``NAME_<first>-<last>`` (frame numbers of the input)."""
    return f"{name}_{first:05d}-{last:05d}"


@dataclass(frozen=True)
class OutputOptions:
    """What a run writes.

    Attributes:
        kinds: any of `OUTPUT_KINDS`.
        colormaps: colour maps of the preview video(s), the first gives ``NAME_depth_preview.mp4``.
        fps: frame rate of the preview (None: the input's).
        exr: EXR channel names, pixel type and compression (`exr.ExrOptions`; with
            ``spread_channel`` the spread is written too).
    """

    kinds: tuple[str, ...] = DEFAULT_KINDS
    colormaps: tuple[str, ...] = (DEFAULT_COLORMAP,)
    fps: float | None = None
    exr: ExrOptions = ExrOptions()


def parse_kinds(text: str | tuple[str, ...] | list[str]) -> tuple[str, ...]:
    """Output kinds from ``"npz,png16"`` (or a sequence), checked against `OUTPUT_KINDS`.

    Raises:
        InvalidSettings: empty, or an unknown kind.
    """
    parts = text.split(",") if isinstance(text, str) else list(text)
    chosen = tuple(dict.fromkeys(str(p).strip() for p in parts if str(p).strip()))
    unknown = [p for p in chosen if p not in OUTPUT_KINDS]
    if unknown or not chosen:
        raise InvalidSettings(
            f"outputs must be a comma-separated subset of {','.join(OUTPUT_KINDS)}; got {text!r}."
        )
    return chosen


def check_output_options(options: OutputOptions) -> OutputOptions:
    """Raise ``InvalidSettings`` for unknown kinds or colour maps or a bad frame rate."""
    parse_kinds(options.kinds)
    bad = [c for c in options.colormaps if not is_colormap(c)]
    if bad or not options.colormaps:
        raise InvalidSettings(
            f"Unknown colour map(s) {bad or list(options.colormaps)}. Choose from {', '.join(COLORMAPS)}."
        )
    if options.fps is not None and not (isinstance(options.fps, numbers.Real) and options.fps > 0):
        raise InvalidSettings(f"The preview frame rate must be > 0; got {options.fps!r}.")
    options.exr.check()
    return options


def entry_names(options: OutputOptions) -> tuple[str, ...]:
    """Name templates (with ``{stem}``) of the entries ``options`` produce, in `OUTPUT_KINDS` order."""
    names = [ENTRIES[kind] for kind in OUTPUT_KINDS if kind in options.kinds]
    if "video" in options.kinds:
        names += [EXTRA_PREVIEW.replace("{colormap}", c) for c in dict.fromkeys(options.colormaps[1:])]
    return tuple(names)


def plan_outputs(
    folder: str | os.PathLike, stem: str, options: OutputOptions = OutputOptions(),
    existing: str = "refuse", segments: bool = False, wording: Wording = API,
) -> ResultSet:
    """The result set of one run, checked against what ``folder`` already holds.

    Call it before any work: a set of the same name there (the clip's files, or those of
    its segments) stops the run (`OutputExists`) unless ``existing`` is "overwrite" (the
    whole old set is replaced when the new one is complete) or "new_take" (see
    `ResultSet.plan`).

    Args:
        segments: the clip is split at cuts, so its entries (one set per segment) are only
            known as the run goes; they are staged with `write_clip` and go in place together.
        wording: how a refusal names the options (the command line passes its own).
    """
    check_output_options(options)
    names = () if segments else entry_names(options)
    return ResultSet.plan(folder, stem, names, existing, patterns=SET_PATTERNS, wording=wording)


def write_clip(
    staging: Staging, stem: str, depth: Tensor | np.ndarray | ConvertedDepth, options: OutputOptions,
    input_fps: float | None = None, first_frame: int = 0, frame_prefix: str | None = None,
    metadata: dict | None = None,
) -> dict[str, Path]:
    """Stage one clip's (or one segment's) entries named after ``stem``.

    Args:
        staging: from ``results.write()``.
        stem: NAME of the files (the set's stem, or a segment's `segment_name`).
        depth: `N H W` float32 inverse depth, or a `ConvertedDepth` (normalised or linear Z,
            with its meaning, spread and clip: frame numbers, plate windows).
        options: what to write.
        input_fps: frame rate of the input (the preview's unless ``options.fps``).
        first_frame: number of the first frame in per-frame file names and in the NPZ's
            ``frame_numbers`` (converted depth with a clip uses the clip's numbers).
        frame_prefix: prefix of per-frame file names (default: ``stem``; segments use the
            input's name so frames read ``NAME_<frame number>``).
        metadata: more EXR header attributes (preset, model, seed; see `exr.depth_attributes`).

    Returns:
        Final path of each entry by kind (``"video"`` is the first preview; more colour maps
        are under ``"video:<map>"``).
    """
    prefix = frame_prefix or stem
    converted = as_converted(depth, prefix, first_frame)
    clip_rate = converted.clip.frame_rate if converted.clip is not None else None
    fps = options.fps or input_fps or clip_rate or 30.0
    values = converted.values
    numbers_tuple = converted.clip.numbers_for(len(values)) if converted.clip else tuple(
        range(first_frame, first_frame + len(values)))
    numbers = np.asarray(numbers_tuple, dtype=np.int64)
    folder = staging.result_set.folder
    written: dict[str, Path] = {}
    for kind in OUTPUT_KINDS:
        if kind not in options.kinds:
            continue
        name = ENTRIES[kind].replace("{stem}", stem)
        if kind == "npz":
            save_npz(staging.path(name), values, key=converted.kind, frame_numbers=numbers,
                     **npz_fields(converted))
        elif kind == "png16":
            save_png16(staging.path(name), values, prefix=prefix, first_frame=int(numbers[0]),
                       meaning=converted.meaning())
        elif kind == "exr":
            write_depth_sequence(staging.path(name), converted, name=prefix, options=options.exr,
                                 metadata=metadata)
        else:
            shown = 1.0 / values.clamp(min=1e-12) if converted.kind == "z" else values  # nearer = larger
            for i, colormap in enumerate(dict.fromkeys(options.colormaps)):
                if i:
                    name = EXTRA_PREVIEW.replace("{stem}", stem).replace("{colormap}", colormap)
                save_preview(staging.path(name), shown, colormap, fps)
                written[kind if i == 0 else f"video:{colormap}"] = folder / name
            continue
        written[kind] = folder / name
    return written


def write_outputs(
    results: ResultSet, depth: Tensor | np.ndarray | ConvertedDepth, options: OutputOptions,
    input_fps: float | None = None, first_frame: int = 0, frame_prefix: str | None = None,
    metadata: dict | None = None,
) -> dict[str, Path]:
    """Write one clip's ``depth`` as ``results`` planned, atomically (see `write_clip`)."""
    with results.write() as staging:
        written = write_clip(staging, results.stem, depth, options, input_fps, first_frame, frame_prefix,
                             metadata)
    return written


def save_preview(path: Path, depth: Tensor, colormap: str, fps: float, chunk: int = 64) -> Path:
    """The colour-mapped preview video, one range for the clip, coloured ``chunk`` frames at a time.

    Host memory stays at one chunk of RGB frames, not `N H W 3` float32 for the clip.
    """
    low, high = display_range(depth, *PREVIEW_PERCENTILES)
    chunks = (
        apply_colormap(((depth[i : i + chunk].float() - low) / max(high - low, 1e-12)).clamp(0, 1), colormap)
        for i in range(0, len(depth), chunk)
    )
    return save_video(path, chunks, fps)
