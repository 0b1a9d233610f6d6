"""Plates in, linear depth out: load an image sequence as a VIDEO, convert depth to Z."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

from ..rollingdepth_core.conversion.convert import MODES, SIZES, DepthConversion, convert_clip
from ..rollingdepth_core.conversion.references import ORIGINS
from ..rollingdepth_core.errors import InvalidSettings, RollingDepthError
from ..rollingdepth_core.io import colour
from ..rollingdepth_core.io.image_files import WINDOWS
from ..rollingdepth_core.io.plates import ImageSequenceSource
from ..rollingdepth_core.io.sequences import find_sequence, parse_frame_range
from . import comfy_bridge, convert
from .plate_video import PlateVideo

DEFAULTS = DepthConversion()
CONVERTED_DEPTH = "ROLLINGDEPTH_CONVERTED_DEPTH"


def colour_space_choices() -> list[str]:
    """"auto", "raw", then every colour space of the active config ($OCIO or the ACES studio config)."""
    try:
        names = colour.colour_space_names()
    except RollingDepthError:  # a broken $OCIO: the node still loads; running it names the problem
        names = []
    return [colour.AUTO, colour.RAW, *names]


def view_choices() -> list[str]:
    """"default", then the views of the display the conversion uses."""
    try:
        config = colour.load_config()
        displays = list(config.getDisplays())
        display = colour.DEFAULT_DISPLAY if colour.DEFAULT_DISPLAY in displays else config.getDefaultDisplay()
        return ["default", *config.getViews(display)]
    except RollingDepthError:
        return ["default"]


def sequence_path(sequence: str) -> Path:
    """A pattern as typed: absolute, or relative to ComfyUI's input folder."""
    text = sequence.strip()
    if not text:
        raise InvalidSettings("sequence is empty: give a pattern such as shots/plate.####.exr or a folder.")
    path = Path(os.path.expanduser(text))
    return path if path.is_absolute() else comfy_bridge.input_folder() / path


class RollingDepthLoadPlateSequence:
    """Image sequence (EXR, DPX, TIFF, PNG, JPEG) -> VIDEO, read lazily and colour-converted."""

    CATEGORY = "RollingDepth"
    DESCRIPTION = (
        "Loads a plate: plate.####.exr, plate.%04d.exr, plate.@@@@.dpx or a folder, relative to "
        "ComfyUI's input folder or absolute. Missing frames are listed by number before anything "
        "runs. Frames are read batch by batch as nodes need them (flat memory), converted from the "
        "plate's colour space to the sRGB the model expects with OpenColorIO. Outputs keep the "
        "plate's frame numbers, size and pixel aspect."
    )
    RETURN_TYPES = ("VIDEO", "STRING")
    RETURN_NAMES = ("video", "info")
    OUTPUT_TOOLTIPS = (
        "The plate as a VIDEO: connect it to the video input of our nodes (read lazily) or to "
        "core video nodes (they get all frames as images).",
        "Frames, size, pixel aspect, frame rate and the colour conversion used.",
    )
    FUNCTION = "execute"

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {
            "sequence": ("STRING", {
                "default": "plate.####.exr",
                "tooltip": "Pattern (#### / @@@@ = one digit each, %04d) or folder; relative to the "
                           "input folder, or an absolute path.",
            }),
            "frame_range": ("STRING", {
                "default": "",
                "tooltip": "First-last frame numbers, e.g. 1001-1100 (inclusive). Empty = every frame.",
            }),
            "colour_space": (colour_space_choices(), {
                "default": colour.AUTO,
                "tooltip": "The plate's colour space. auto: half/float EXR = scene-linear Rec.709 through "
                           "the standard view transform, 8/16-bit files = sRGB as stored. raw: no "
                           "conversion. Names come from $OCIO or the ACES studio config.",
            }),
            "view": (view_choices(), {
                "default": "default",
                "tooltip": "View transform for scene-referred plates (default: the config's, in the "
                           "ACES studio config ACES 2.0 SDR, which rolls highlights off).",
            }),
            "layer": ("STRING", {
                "default": "",
                "tooltip": "EXR layer to read (e.g. diffuse). Empty = the RGB channels; alpha is ignored.",
            }),
            "window": (list(WINDOWS), {
                "default": "display",
                "tooltip": "display: the frame (outside the data window = black, overscan cropped). "
                           "data: the stored pixels (keeps overscan).",
            }),
            "frame_rate": ("FLOAT", {
                "default": 0.0, "min": 0.0, "max": 1000.0, "step": 0.001,
                "tooltip": "0 = the files' rate (EXR FramesPerSecond) or 24. 23.976 means 24000/1001.",
            }),
        }}

    @classmethod
    def VALIDATE_INPUTS(cls, frame_range, colour_space):
        try:
            if isinstance(frame_range, str):
                parse_frame_range(frame_range)
            if isinstance(colour_space, str):
                colour.check_colour_space(colour_space)
        except RollingDepthError as error:
            return str(error)
        return True

    @classmethod
    def IS_CHANGED(cls, sequence, frame_range, **_):
        """Re-read when files change on disk (names, sizes, times), not only when widgets do."""
        try:
            found = find_sequence(sequence_path(sequence), frame_range or None)
        except RollingDepthError as error:
            return str(error)
        digest = hashlib.sha1()
        for path in found.paths:
            stat = path.stat()
            digest.update(f"{path}:{stat.st_size}:{stat.st_mtime_ns};".encode())
        return digest.hexdigest()

    @classmethod
    def execute(cls, sequence, frame_range, colour_space, view, layer, window, frame_rate):
        source = ImageSequenceSource(
            sequence_path(sequence), frame_range or None, colour_space=colour_space,
            view=None if view == "default" else view, layer=layer.strip() or None, window=window,
            frame_rate=frame_rate or None, hooks=comfy_bridge.hooks(),
        )
        return (comfy_bridge.video_input(PlateVideo(source)), convert.plate_report(source))


class RollingDepthConvertDepth:
    """Depth video -> normalised 0..1, linear Z between planes, or Z fitted to known distances."""

    CATEGORY = "RollingDepth"
    DESCRIPTION = (
        "Turns RollingDepth's affine-invariant inverse depth into values tools use: normalized "
        "(0..1, near = 1), planes (linear Z: the clip's near percentile at 'near', far percentile at "
        "'far'), or fit (linear Z fitted to known distances 'frame x y distance' or a metric depth "
        "map: one robust scale and shift for the clip, with its residual in the report). By "
        "default at the plate's size."
    )
    RETURN_TYPES = (CONVERTED_DEPTH, "STRING")
    RETURN_NAMES = ("depth", "report")
    OUTPUT_TOOLTIPS = (
        "Converted depth (values, meaning, units, spread): to Save Depth or Depth to Image.",
        "What the values are, the conversion parameters and, for fit, the residual and samples used.",
    )
    FUNCTION = "execute"

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {
            "depth": ("ROLLINGDEPTH_DEPTH", {"tooltip": "From Co-align, Refine or the one node."}),
            "mode": (list(MODES), {
                "default": "planes",
                "tooltip": "inverse_depth: as it is. normalized: 0..1, near = 1. planes: linear Z "
                           "between near and far. fit: linear Z fitted to the points or reference depth.",
            }),
            "near": ("FLOAT", {
                "default": DEFAULTS.near, "min": 1e-6, "max": 1e9, "step": 0.01, "round": False,
                "tooltip": "planes: distance of the nearest surfaces (the clip's high percentile).",
            }),
            "far": ("FLOAT", {
                "default": DEFAULTS.far, "min": 1e-6, "max": 1e9, "step": 0.1, "round": False,
                "tooltip": "planes: distance of the farthest surfaces (the clip's low percentile).",
            }),
            "units": ("STRING", {"default": DEFAULTS.units, "tooltip": "Units of Z (a label: m, cm, ft)."}),
            "low_percentile": ("FLOAT", {
                "default": DEFAULTS.low_percentile, "min": 0.0, "max": 100.0, "step": 0.5,
                "tooltip": "normalized/planes: clip-wide percentile mapped to far (0 = the minimum).",
            }),
            "high_percentile": ("FLOAT", {
                "default": DEFAULTS.high_percentile, "min": 0.0, "max": 100.0, "step": 0.5,
                "tooltip": "normalized/planes: clip-wide percentile mapped to near (100 = the maximum).",
            }),
            "points": ("STRING", {
                "default": "", "multiline": True,
                "tooltip": "fit: one 'frame x y distance' per line: the plate's frame number, pixel "
                           "column and row of the plate, Z in units. At least two distances.",
            }),
            "points_origin": (list(ORIGINS), {
                "default": "top-left",
                "tooltip": "Where row 0 is: top-left (most tools) or bottom-left (Nuke).",
            }),
            "max_depth": ("FLOAT", {
                "default": 0.0, "min": 0.0, "max": 1e9, "step": 1.0, "round": False,
                "tooltip": "fit: clamp pixels farther than this (and any the fit puts beyond "
                           "infinity). 0 = such pixels are an error.",
            }),
            "reference_scale": ("FLOAT", {
                "default": 1.0, "min": 1e-9, "max": 1e9, "step": 0.01, "round": False,
                "tooltip": "fit with reference_depth: units per image value (the image holds Z / scale).",
            }),
            "output_size": (list(SIZES), {
                "default": "plate",
                "tooltip": "plate: the plate's size (from Load Plate Sequence). depth: the depth's own size.",
            }),
        }, "optional": {
            "reference_depth": ("IMAGE", {
                "tooltip": "fit: metric depth (Z, not inverse) from another node, one image per frame "
                           "from the first; values <= 0 are ignored.",
            }),
        }}

    @classmethod
    def VALIDATE_INPUTS(cls, mode, near, far, low_percentile, high_percentile, units):
        values = (mode, near, far, low_percentile, high_percentile, units)
        if not all(isinstance(v, (str, int, float)) for v in values):
            return True
        try:
            DepthConversion(mode, float(near), float(far), float(low_percentile), float(high_percentile),
                            str(units)).check()
        except RollingDepthError as error:
            return str(error)
        return True

    @classmethod
    def execute(cls, depth, mode, near, far, units, low_percentile, high_percentile, points,
                points_origin, max_depth, reference_scale, output_size, reference_depth=None):
        conversion = DepthConversion(mode, near, far, low_percentile, high_percentile, units.strip(),
                                     max_depth or None)
        reference = None
        if reference_depth is not None:
            reference = convert.images_to_values(reference_depth) * reference_scale
        converted, report = convert_clip(
            convert.check_depth(depth), conversion, output_size, points, points_origin, reference
        )
        return (converted, report)
