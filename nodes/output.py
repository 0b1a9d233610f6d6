"""Depth in and out of the graph: previews, an adapter for other depth nodes, files on disk."""

from __future__ import annotations

import os

from ..rollingdepth_core.errors import InvalidSettings, RollingDepthError
from ..rollingdepth_core.io.colormaps import COLORMAPS
from ..rollingdepth_core.io.depth_sources import DEPTH_KINDS, to_inverse_depth
from ..rollingdepth_core.io.export import DEPTH_FORMATS, output_location, save_depth_files
from ..rollingdepth_core.types import DepthVideo
from . import comfy_bridge, convert
from .widgets import check_widgets

NOTHING_TO_SAVE = "Nothing to save: turn on save_exr, save_png16 or save_npz."


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
            "depth": ("ROLLINGDEPTH_DEPTH", {"tooltip": "A depth video."}),
            "colormap": (list(COLORMAPS), {
                "default": "gray",
                "tooltip": "gray, Spectral (the paper's figures) or a matplotlib-style map.",
            }),
            "invert": ("BOOLEAN", {
                "default": False, "tooltip": "Off: nearer = brighter (inverse depth). On: nearer = darker.",
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
    """Depth video -> float files in ComfyUI's output folder (EXR, 16-bit PNG, NPZ)."""

    CATEGORY = "RollingDepth"
    DESCRIPTION = (
        "Saves the raw depth (not a preview) into the output folder: float32 EXR per frame "
        "(channel Z), 16-bit PNG per frame (+ range JSON to recover values) and/or one NPZ. "
        "Each run is a new take; nothing is overwritten or written outside the output folder."
    )
    RETURN_TYPES = ("STRING",)
    RETURN_NAMES = ("paths",)
    OUTPUT_TOOLTIPS = ("The files written, one per line, relative to the output folder.",)
    OUTPUT_NODE = True
    FUNCTION = "execute"

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {
            "depth": ("ROLLINGDEPTH_DEPTH", {"tooltip": "A depth video."}),
            "filename_prefix": ("STRING", {
                "default": "rollingdepth/depth",
                "tooltip": "Name inside the output folder; subfolders allowed, '..' and absolute paths not.",
            }),
            "save_exr": ("BOOLEAN", {"default": True, "tooltip": "One float32 EXR per frame (Z channel)."}),
            "save_png16": ("BOOLEAN", {
                "default": False, "tooltip": "One 16-bit grey PNG per frame, one range for the clip.",
            }),
            "save_npz": ("BOOLEAN", {
                "default": False,
                "tooltip": "One compressed NumPy file with the whole clip (key inverse_depth).",
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
    def execute(cls, depth, filename_prefix, save_exr, save_png16, save_npz):
        chosen = dict(zip(DEPTH_FORMATS, (save_npz, save_exr, save_png16), strict=True))
        formats = tuple(name for name, on in chosen.items() if on)
        if not formats:
            raise InvalidSettings(NOTHING_TO_SAVE)
        root = comfy_bridge.output_folder()
        paths = save_depth_files(root, filename_prefix, convert.check_depth(depth).inverse_depth, formats)
        listing = "\n".join(os.path.relpath(path, root) for path in paths)
        return {"ui": {"text": [listing]}, "result": (listing,)}
