"""Denoise snippets node: the expensive stage, one UNet step for many snippets per call."""

from __future__ import annotations

from ..rollingdepth_core.presets import PRESETS
from ..rollingdepth_core.stages.denoise import predict_snippets
from ..rollingdepth_core.validation import MAX_PROCESSING_RESOLUTION
from . import comfy_bridge, convert
from .widgets import (
    HIDDEN_PROMPT,
    batch_input,
    batch_value,
    check_graph,
    frames_inputs,
    seed_input,
)


class RollingDepthDenoiseSnippets:
    """Initial depth for every snippet: encode the frames, one UNet step per snippet, decode."""

    CATEGORY = "RollingDepth"
    DESCRIPTION = (
        "Runs the depth model on every snippet of the plan (batched). The result is cached by "
        "ComfyUI: changing Co-align or Refine settings later does not run this again."
    )
    RETURN_TYPES = ("ROLLINGDEPTH_SNIPPET_DEPTHS",)
    RETURN_NAMES = ("snippet_depths",)
    OUTPUT_TOOLTIPS = ("Depth of every frame of every snippet, plus the frames' latents and noise.",)
    FUNCTION = "execute"

    @classmethod
    def INPUT_TYPES(cls):
        return {
            "required": {
                "model": ("ROLLINGDEPTH_MODEL", {"tooltip": "From RollingDepth Load Model."}),
                "plan": ("ROLLINGDEPTH_SNIPPET_PLAN", {
                    "tooltip": "From Sample Snippets, for the same video.",
                }),
                "processing_resolution": ("INT", {
                    "default": PRESETS["fast"].processing_resolution, "min": 0,
                    "max": MAX_PROCESSING_RESOLUTION, "step": 8,
                    "tooltip": "Longest side the frames are resized to (768 fast, 1024 full). 0 keeps "
                               "the input size. Depth comes out at this size.",
                }),
                "seed": seed_input("Seed of the one noise image shared by all frames."),
                "snippets_per_batch": batch_input(),
            },
            "optional": frames_inputs("the clip to estimate"),
            "hidden": HIDDEN_PROMPT,
        }

    @classmethod
    def execute(cls, model, plan, processing_resolution, seed, snippets_per_batch, images=None,
                video=None, prompt=None):
        check_graph(prompt)
        source = convert.frame_source(images, video)
        convert.check_frame_count(source, plan.num_frames, "the snippet plan")
        model, batches = comfy_bridge.prepare_run(
            model, source.input_size, processing_resolution, plan.snippet_length,
            batch_value(snippets_per_batch),
        )
        depths = predict_snippets(
            model, source, plan, processing_resolution=processing_resolution, seed=seed,
            batches=batches, hooks=comfy_bridge.hooks(),
        )
        return (depths,)
