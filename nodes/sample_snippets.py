"""Sample snippets node: which frames form each dilated snippet (cheap, no model)."""

from __future__ import annotations

from ..rollingdepth_core.errors import InvalidInput
from ..rollingdepth_core.presets import PRESETS, parse_dilations
from ..rollingdepth_core.stages.snippets import plan_snippets
from ..rollingdepth_core.validation import MAX_SNIPPET_LENGTH
from . import convert
from .widgets import check_widgets, frames_inputs

FAST = PRESETS["fast"]


class RollingDepthSampleSnippets:
    """The snippet plan of a clip: one group of stride-1 snippets per dilation."""

    CATEGORY = "RollingDepth"
    DESCRIPTION = (
        "Plans the dilated snippets (short frame triplets such as 0,10,20) the depth model sees. "
        "Dilation 1 gives fine temporal detail, large dilations tie distant frames together. "
        "The summary output says how many snippets and which frames."
    )
    RETURN_TYPES = ("ROLLINGDEPTH_SNIPPET_PLAN", "STRING")
    RETURN_NAMES = ("plan", "summary")
    OUTPUT_TOOLTIPS = (
        "Frame indices of every snippet, per dilation.",
        "Readable summary: frames, snippets per dilation, the first snippets' frames.",
    )
    FUNCTION = "execute"

    @classmethod
    def INPUT_TYPES(cls):
        return {
            "required": {
                "dilations": ("STRING", {
                    "default": ",".join(str(d) for d in FAST.dilations),
                    "tooltip": "Frame spacings, comma separated; must include 1. Presets: fast "
                               "'1,25', full and paper '1,10,25'.",
                }),
                "snippet_length": ("INT", {
                    "default": FAST.snippet_length, "min": 1, "max": MAX_SNIPPET_LENGTH,
                    "tooltip": "Frames per snippet (the model was trained with 3).",
                }),
                "cap_dilation": ("BOOLEAN", {
                    "default": FAST.cap_dilation,
                    "tooltip": "Shrink dilations too large for a short clip (to frames / length - 1). "
                               "Off (the 'paper' preset) skips groups that do not fit.",
                }),
                "num_frames": ("INT", {
                    "default": 0, "min": 0, "max": 1_000_000,
                    "tooltip": "Frame count of the clip; used only when neither images nor video "
                               "is connected.",
                }),
            },
            "optional": frames_inputs("only their count is used"),
        }

    @classmethod
    def VALIDATE_INPUTS(cls, dilations):
        return check_widgets(cls, {"dilations": "dilations"}, dilations=dilations)

    @classmethod
    def execute(cls, dilations, snippet_length, cap_dilation, num_frames, images=None, video=None):
        if images is not None or video is not None:
            num_frames = convert.frame_source(images, video).num_frames
        elif num_frames < 1:
            raise InvalidInput(
                "Connect the video's images or video, or set num_frames to the clip's frame count."
            )
        plan = plan_snippets(num_frames, parse_dilations(dilations), snippet_length, cap_dilation)
        return (plan, plan.describe())
