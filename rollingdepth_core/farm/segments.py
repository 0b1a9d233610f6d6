"""Shots split at their cuts: each segment becomes a shot of its own, named and numbered by the
frames of the input (``NAME_<first>-<last>``, per-frame files ``NAME_<frame>``)."""

from __future__ import annotations

import dataclasses

from ..cli import open_input, segment_name
from ..io.cuts import ANALYSIS_RESOLUTION, detect_cuts
from ..io.sources import FrameRange, TensorSource, VideoFileSource, is_sequence_path
from ..io.video_files import read_image_folder
from ..presets import PRESETS
from .shots import Shot


def split_shot(shot: Shot) -> list[Shot]:
    """The segments of ``shot`` between its cuts, as shots (the shot itself when it has none).

    Raises:
        RollingDepthError: the clip cannot be read (the caller records the shot as failed).
    """
    if shot.path.is_dir():
        clip = read_image_folder(shot.path, shot.start, shot.count, ANALYSIS_RESOLUTION)
        source = TensorSource(clip.frames)
    elif is_sequence_path(shot.path):  # plate.####.exr: read lazily, its frame range and colour applied
        source = open_input(shot.path, shot.start, shot.count, PRESETS["fast"], show=False,
                            args=shot.args()).frames
    else:
        source = FrameRange(VideoFileSource(shot.path), shot.start, shot.count)
    segments = detect_cuts(source)
    if len(segments) == 1:
        return [shot]
    return [
        dataclasses.replace(
            shot, name=segment_name(shot.name, shot.start + a, shot.start + b - 1), start=shot.start + a,
            count=b - a, first_frame=shot.start + a, frame_prefix=shot.name,
        )
        for a, b in segments
    ]
