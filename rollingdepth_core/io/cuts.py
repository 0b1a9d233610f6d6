"""Cuts in an edited clip: where one camera shot ends and the next begins.

Co-aligning across a cut is wrong (the two sides have unrelated depth), so a clip with
cuts is processed as one shot per segment. Detection uses PySceneDetect's content
detector (``pip install "rollingdepth[farm]"`` brings it); it is imported only here, and
only when cuts are asked for.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

import numpy as np
import torch

from ..errors import InvalidSettings, MissingDependency
from ..hooks import NO_HOOKS, Hooks
from .frames import processing_size
from .sources import FrameSource, as_source

logger = logging.getLogger(__name__)

ANALYSIS_RESOLUTION = 256  # longest side the detector looks at: cuts do not need detail
READ_BATCH = 32


def check_cut_detection() -> None:
    """Raise `MissingDependency` (naming the extra to install) unless PySceneDetect imports."""
    try:
        import scenedetect  # noqa: F401
    except ImportError as error:
        raise MissingDependency(
            "Cut detection (--split-at-cuts) needs PySceneDetect, which is not installed. "
            'Install it with: pip install "rollingdepth[farm]"  (or: pip install scenedetect).'
        ) from error


def segments_from_cuts(cuts: list[int], num_frames: int) -> list[tuple[int, int]]:
    """Cut frames (first frame of each new scene) -> half-open frame ranges covering `0..N`.

    Cuts outside `1 .. N - 1` and repeats are ignored.
    """
    inner = sorted({int(c) for c in cuts if 0 < int(c) < num_frames})
    bounds = [0, *inner, num_frames]
    return [(a, b) for a, b in zip(bounds[:-1], bounds[1:], strict=True)]


def detect_cuts(
    source: FrameSource | str | os.PathLike,
    threshold: float = 27.0,
    min_scene_frames: int = 15,
    hooks: Hooks = NO_HOOKS,
) -> list[tuple[int, int]]:
    """Split a clip at its cuts.

    Args:
        source: a `FrameSource` (or anything `as_source` accepts, e.g. a video path); read
            once, a batch at a time, at 256 pixels on the longest side.
        threshold: PySceneDetect's content threshold (27 by default; lower finds more cuts).
        min_scene_frames: no segment shorter than this many frames (except a short clip,
            which stays one segment).
        hooks: progress over frames, cancel between batches.

    Returns:
        Half-open frame ranges `(start, stop)` of the source, in order, covering every frame;
        one range when there is no cut.
    """
    if threshold <= 0:
        raise InvalidSettings(f"cut threshold must be > 0; got {threshold}.")
    if min_scene_frames < 1:
        raise InvalidSettings(f"min_scene_frames must be >= 1; got {min_scene_frames}.")
    check_cut_detection()
    from scenedetect import FrameTimecode
    from scenedetect.detectors import ContentDetector

    detector = ContentDetector(threshold=threshold, min_scene_len=min_scene_frames)

    clip = as_source(Path(source) if isinstance(source, (str, os.PathLike)) else source)
    num_frames = clip.num_frames
    fps = float(getattr(clip, "fps", None) or 30.0)
    size = processing_size(*clip.input_size, ANALYSIS_RESOLUTION)
    cuts: list = []
    for start in range(0, num_frames, READ_BATCH):
        hooks.check_cancel()
        stop = min(start + READ_BATCH, num_frames)
        frames = clip.read(start, stop, size)  # b 3 H W, -1..1
        bgr = ((frames.flip(1) + 1) * 127.5).round().clamp(0, 255).to(torch.uint8)
        for offset, image in enumerate(bgr.permute(0, 2, 3, 1).numpy()):
            cuts += detector.process_frame(FrameTimecode(start + offset, fps), np.ascontiguousarray(image))
        hooks.progress(stop, num_frames)
    cuts += detector.post_process(FrameTimecode(num_frames - 1, fps))
    segments = segments_from_cuts([_frame_number(c) for c in cuts], num_frames)
    logger.info("Found %d cut(s) in %d frames: segments %s.", len(segments) - 1, num_frames, segments)
    return segments


def _frame_number(timecode) -> int:
    """A PySceneDetect timecode (or plain int) as a frame index."""
    if isinstance(timecode, int):
        return timecode
    return int(timecode.frame_num)
