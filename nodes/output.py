"""Depth in and out of the graph: previews, an adapter for other depth nodes, files on disk."""

from __future__ import annotations

import os

from ..rollingdepth_core.errors import InvalidSettings, RollingDepthError
from ..rollingdepth_core.io.colormaps import COLORMAPS
from ..rollingdepth_core.io.depth_sources import DEPTH_KINDS, to_inverse_depth
from ..rollingdepth_core.io.export import DEPTH_FORMATS, output_location, save_depth_files
from ..rollingdepth_core.io.exr import CHANNEL_CHOICES, COMPRESSIONS, DEFAULT_CHANNEL, PIXEL_TYPES, ExrOptions
from ..rollingdepth_core.types import DepthVideo
from . import comfy_bridge, convert
from .widgets import check_widgets

NOTHING_TO_SAVE = "Nothing to save: turn on save_exr, save_png16 or save_npz."

ANY_DEPTH = "ROLLINGDEPTH_DEPTH,ROLLINGDEPTH_CONVERTED_DEPTH"  # either socket connects (ComfyUI unions)


class RollingDepthDepthToImage:
    """Depth video -> IMAGE for previews, video export or other nodes (e.g. ControlNet)."""

    CATEGORY = "RollingDepth"
    DESCRIPTION = (
        "Turns a depth video into images with ONE value range for the whole clip (no per-frame "
        "flicker). Grey: nearer = brighter, as depth ControlNets expect; invert for nearer = darker."
    )
    RETURN_TYPES = ("IMAGE",)
    RETURN_NAMES = ("images",)
    OUTPUT_TOOLTIPS = ("N H W 3 images in 0..1, at the depth's size.",)
    FUNCTION = "execute"

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {
            "depth": (ANY_DEPTH, {"tooltip": "A depth video, or converted depth (Convert Depth)."}),
            "colormap": (list(COLORMAPS), {
                "default": "gray",
                "tooltip": "gray, Spectral (the paper's figures) or a matplotlib-style map.",
            }),
            "invert": ("BOOLEAN", {
                "default": False,
                "tooltip": "Off: nearer = brighter (inverse depth and linear Z alike). On: nearer = darker.",
            }),
            "low_percentile": ("FLOAT", {
                "default": 0.0, "min": 0.0, "max": 100.0, "step": 0.5,
                "tooltip": "Clip-wide percentile shown as the far end (e.g. 2 to ignore outliers).",
            }),
            "high_percentile": ("FLOAT", {
                "default": 100.0, "min": 0.0, "max": 100.0, "step": 0.5,
                "tooltip": "Clip-wide percentile shown as the near end (e.g. 98).",
            }),
        }}

    @classmethod
    def VALIDATE_INPUTS(cls, low_percentile, high_percentile):
        return check_widgets(cls, {"low_percentile": "low_percentile", "high_percentile": "high_percentile"},
                             low_percentile=low_percentile, high_percentile=high_percentile)

    @classmethod
    def execute(cls, depth, colormap, invert, low_percentile, high_percentile):
        images = convert.depth_to_images(
            depth, colormap, invert, low_percentile, high_percentile, comfy_bridge.intermediate_device()
        )
        return (images,)


class RollingDepthImageToDepth:
    """Depth IMAGE from any other node -> RollingDepth depth video (to refine, save or preview)."""

    CATEGORY = "RollingDepth"
    DESCRIPTION = (
        "Adapter for depth made elsewhere (another depth node, a depth video): the mean of the "
        "image channels becomes inverse depth. Say whether the source shows depth or inverse depth."
    )
    RETURN_TYPES = ("ROLLINGDEPTH_DEPTH",)
    RETURN_NAMES = ("depth",)
    OUTPUT_TOOLTIPS = ("Depth video (inverse depth, larger = nearer) at the images' size.",)
    FUNCTION = "execute"

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {
            "images": ("IMAGE", {
                "tooltip": "Greyscale depth images (N H W 3), e.g. from another depth node.",
            }),
            "source": (list(DEPTH_KINDS), {
                "default": "inverse_depth",
                "tooltip": "inverse_depth: nearer = brighter (disparity; most depth nodes, "
                           "ControlNet depth maps). depth: nearer = darker (metric or relative depth).",
            }),
            "near_limit": ("FLOAT", {
                "default": 0.01, "min": 0.0001, "max": 1.0, "step": 0.001, "round": False,
                "tooltip": "For source = depth: nearest depth kept, as a fraction of the farthest "
                           "(values nearer, including 0, are clipped to it before 1 / depth).",
            }),
        }}

    @classmethod
    def execute(cls, images, source, near_limit):
        values = convert.images_to_values(images)
        return (DepthVideo(inverse_depth=to_inverse_depth(values, source, near_limit)),)


class RollingDepthSaveDepth:
    """Depth (a depth video or converted depth) -> float files in ComfyUI's output folder."""

    CATEGORY = "RollingDepth"
    DESCRIPTION = (
        "Saves the raw depth (not a preview) into the output folder: EXR per frame, numbered like "
        "the plate (NAME.depth.1001.exr; channel depth.Z or Z, float or half, lossless), 16-bit PNG "
        "per frame (+ range JSON to recover values) and/or one NPZ. Linear Z from Convert Depth is "
        "saved with its units and conversion in the EXR metadata; the spread can go in a second "
        "channel. Each run is a new take; nothing is overwritten or written outside the output folder."
    )
    RETURN_TYPES = ("STRING",)
    RETURN_NAMES = ("paths",)
    OUTPUT_TOOLTIPS = ("The files written, one per line, relative to the output folder.",)
    OUTPUT_NODE = True
    FUNCTION = "execute"

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {
            "depth": (ANY_DEPTH, {"tooltip": "A depth video, or converted depth (Convert Depth)."}),
            "filename_prefix": ("STRING", {
                "default": "rollingdepth/depth",
                "tooltip": "Name inside the output folder; subfolders allowed, '..' and absolute paths not.",
            }),
            "save_exr": ("BOOLEAN", {
                "default": True, "tooltip": "One EXR per frame, numbered like the plate.",
            }),
            "save_png16": ("BOOLEAN", {
                "default": False, "tooltip": "One 16-bit grey PNG per frame, one range for the clip.",
            }),
            "save_npz": ("BOOLEAN", {
                "default": False,
                "tooltip": "One compressed NumPy file with the whole clip (key inverse_depth, z or "
                           "normalized; frame_numbers; spread when there is one).",
            }),
        }, "optional": {  # added later: optional, so graphs and API prompts saved before still run
            "exr_channel": (list(CHANNEL_CHOICES), {
                "default": DEFAULT_CHANNEL,
                "tooltip": "EXR channel of the depth: depth.Z (Nuke's depth layer; Houdini) or plain Z.",
            }),
            "exr_pixel_type": (list(PIXEL_TYPES), {
                "default": "float",
                "tooltip": "float (32-bit) or half (16-bit; values beyond 65504 clamped).",
            }),
            "exr_compression": (list(COMPRESSIONS), {
                "default": "zip", "tooltip": "Lossless EXR compression: zip, piz, zips, rle or none.",
            }),
            "save_spread": ("BOOLEAN", {
                "default": False,
                "tooltip": "Also write the spread (how much the snippets disagree, in the depth's units) "
                           "as the EXR channel <layer>.spread (depth.spread). Needs depth from Co-align.",
            }),
        }}

    @classmethod
    def VALIDATE_INPUTS(cls, filename_prefix, save_exr=None, save_png16=None, save_npz=None):
        if not any(v is None for v in (save_exr, save_png16, save_npz)) and not (
            save_exr or save_png16 or save_npz
        ):
            return NOTHING_TO_SAVE
        if not isinstance(filename_prefix, str):
            return True
        try:
            output_location(comfy_bridge.output_folder(), filename_prefix)
        except RollingDepthError as error:
            return str(error)
        return True

    @classmethod
    def execute(cls, depth, filename_prefix, save_exr, save_png16, save_npz, exr_channel=None,
                exr_pixel_type=None, exr_compression=None, save_spread=None):
        chosen = dict(zip(DEPTH_FORMATS, (save_npz, save_exr, save_png16), strict=True))
        formats = tuple(name for name, on in chosen.items() if on)
        if not formats:
            raise InvalidSettings(NOTHING_TO_SAVE)
        given = {"channel": exr_channel, "pixel_type": exr_pixel_type, "compression": exr_compression}
        exr = ExrOptions(**{k: v for k, v in given.items() if v is not None}).with_spread(bool(save_spread))
        root = comfy_bridge.output_folder()
        paths = save_depth_files(root, filename_prefix, convert.check_any_depth(depth), formats, exr)
        listing = "\n".join(os.path.relpath(path, root) for path in paths)
        return {"ui": {"text": [listing]}, "result": (listing,)}
