"""ComfyUI values <-> core values, and the checks on what comes in from a graph.

ComfyUI `IMAGE` is `N H W 3` float in 0..1; core frames are `N 3 H W` in -1..1; a depth video
is `N H W` float32 inverse depth (larger = nearer). Nothing here changes its input.

Frames come in as an IMAGE batch or as a ComfyUI VIDEO (core LoadVideo). Either way the stage
nodes get a core `FrameSource` (`frame_source`): frames are read, converted and resized batch by
batch, so a long 1080p VIDEO is decoded lazily at processing size and never becomes a float
IMAGE batch, and an IMAGE batch is never copied whole.
"""

from __future__ import annotations

import logging

import torch
from einops import reduce
from torch import Tensor

from ..rollingdepth_core.conversion.converted import ConvertedDepth
from ..rollingdepth_core.errors import InvalidInput
from ..rollingdepth_core.io.colormaps import colorize_depth
from ..rollingdepth_core.io.sources import ArraySource, FrameSource, video_input_source
from ..rollingdepth_core.types import Alignment, DepthVideo

logger = logging.getLogger(__name__)

CHANNEL_HINTS = {
    1: " It looks like a mask or greyscale batch: convert it to RGB first.",
    4: " Remove the alpha channel first (e.g. with an RGBA-to-RGB node).",
}


def check_images(images: object, name: str = "images") -> Tensor:
    """Raise ``InvalidInput`` unless ``images`` is a ComfyUI IMAGE batch `N H W 3` with N >= 1."""
    if not isinstance(images, Tensor):
        raise InvalidInput(
            f"{name} must be an IMAGE batch (tensor N H W 3); got {type(images).__name__}."
        )
    if images.ndim != 4:
        raise InvalidInput(
            f"{name} must be N H W 3 (a batch of frames); got shape {tuple(images.shape)}."
        )
    if images.shape[0] == 0:
        raise InvalidInput(f"The {name} batch is empty; connect a video or an image batch.")
    if images.shape[-1] != 3:
        hint = CHANNEL_HINTS.get(int(images.shape[-1]), "")
        raise InvalidInput(f"{name} must be N H W 3; got {tuple(images.shape)}.{hint}")
    if not images.is_floating_point():
        raise InvalidInput(f"{name} must be float in 0..1; got {images.dtype}.")
    return images


def frame_source(images: Tensor | None, video: object | None) -> FrameSource:
    """The clip a stage node reads: its IMAGE batch or its VIDEO, exactly one of them.

    Neither input is copied or changed; frames are converted (`N H W 3` 0..1 -> `b 3 H W`
    -1..1) only as the core reads them. IMAGE batches are checked for NaN/inf up front.
    """
    if images is not None and video is not None:
        raise InvalidInput(
            "Both images and video are connected; connect only one (video decodes lazily and "
            "saves memory on long clips)."
        )
    if video is not None:
        source = video_input_source(video)
        if source.num_frames < 1:
            raise InvalidInput("The video has no frames; check the Load Video node's file and trim.")
        return warn_if_still(source)
    if images is None:
        raise InvalidInput("Connect the video frames: an IMAGE batch to images, or a VIDEO to video.")
    check_images(images)
    if not bool(torch.isfinite(images).all()):
        raise InvalidInput("images contain NaN or infinite values; fix the frames first.")
    return warn_if_still(ArraySource(images))


def warn_if_still(source: FrameSource) -> FrameSource:
    """``source``, with a warning when it is one frame: video depth of one frame is image depth."""
    if source.num_frames == 1:
        logger.warning(
            "RollingDepth got one frame (a still image connected as the video?): video depth of "
            "one frame is single-image depth. Connect a video or an IMAGE batch of its frames."
        )
    return source


def images_to_values(images: Tensor) -> Tensor:
    """A depth IMAGE `N H W 3` from another node -> `N H W` float32, the mean of its channels."""
    check_images(images)
    return reduce(images.float(), "N H W c -> N H W", "mean")


def depth_to_images(
    depth: DepthVideo | ConvertedDepth, colormap: str, invert: bool, low_percentile: float,
    high_percentile: float, device: torch.device,
) -> Tensor:
    """Depth video -> IMAGE `N H W 3` in 0..1 on ``device``, one range for the whole clip.

    Linear Z (a `ConvertedDepth` of kind "z") is flipped first, so that nearer is brighter
    for every kind of depth; ``invert`` flips it again.
    """
    if isinstance(depth, ConvertedDepth):
        values, invert = depth.values, invert != (depth.kind == "z")
    else:
        values = check_depth(depth).inverse_depth
    rgb = colorize_depth(values, colormap, invert=invert, low_percentile=low_percentile,
                         high_percentile=high_percentile)
    return rgb.to(device, torch.float32)


def check_depth(depth: object, name: str = "depth") -> DepthVideo:
    """Raise ``InvalidInput`` unless ``depth`` is a depth video (ROLLINGDEPTH_DEPTH)."""
    if not isinstance(depth, DepthVideo):
        raise InvalidInput(
            f"{name} must be a RollingDepth depth video; got {type(depth).__name__}. Connect a "
            "Co-align, Refine or Image to depth output (use Image to depth for depth IMAGEs)."
        )
    return depth


def check_any_depth(depth: object, name: str = "depth") -> DepthVideo | ConvertedDepth:
    """A depth video or converted depth (Convert Depth), else ``InvalidInput``."""
    return depth if isinstance(depth, ConvertedDepth) else check_depth(depth, name)


def check_frame_count(frames: Tensor | FrameSource, expected: int, what: str) -> None:
    """Raise ``InvalidInput`` when the frames (a batch or a source) and ``what`` disagree in length."""
    count = frames.num_frames if isinstance(frames, FrameSource) else int(frames.shape[0])
    if count != expected:
        raise InvalidInput(
            f"The video has {count} frames but {what} was made for {expected}. Connect the "
            "same video to both."
        )


def plate_report(source) -> str:
    """What a Load Plate Sequence node loaded: frames, sizes, aspect, rate, colour conversion."""
    height, width = source.stored_size
    rate = source.frame_rate
    exact = f"{rate.numerator}/{rate.denominator}"
    rate_text = f"{exact} ({float(rate):.3f})" if rate.denominator != 1 else str(rate)
    return (
        f"{source.sequence.describe()}\n{width}x{height} stored, pixel aspect {source.pixel_aspect:g}, "
        f"{rate_text} fps\ncolour: {source.colour.description}"
    )


def alignment_report(alignment: Alignment, num_frames: int) -> str:
    """A short text about a co-alignment: method, objective, and the range of scales and shifts."""
    scales = torch.cat([s.flatten() for s in alignment.scales])
    shifts = torch.cat([t.flatten() for t in alignment.shifts])
    return (
        f"{alignment.method}: {scales.numel()} snippets over {num_frames} frames, "
        f"objective {alignment.objective:.5f}\n"
        f"scales {float(scales.min()):.4f} .. {float(scales.max()):.4f} "
        f"(mean {float(scales.mean()):.4f})\n"
        f"shifts {float(shifts.min()):.4f} .. {float(shifts.max()):.4f} "
        f"(mean {float(shifts.mean()):.4f})"
    )
