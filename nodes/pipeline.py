"""RollingDepth (one node): the whole method with a preset, for graphs that do not need stages."""

from __future__ import annotations

import dataclasses

from ..rollingdepth_core.pipeline import estimate_depth
from ..rollingdepth_core.presets import PRESETS
from ..rollingdepth_core.validation import MAX_PROCESSING_RESOLUTION
from ..rollingdepth_core.wording import Wording
from . import comfy_bridge, convert
from .widgets import (
    HIDDEN_PROMPT,
    batch_input,
    batch_value,
    check_graph,
    frames_inputs,
    seed_input,
)

OUTPUT_SIZES = ("processing", "input")
NODE_WORDING = Wording("node", {"processing_resolution": "resolution_override"})


class RollingDepth:
    """Frames -> depth video: snippets, denoising, co-alignment and (preset) refinement."""

    CATEGORY = "RollingDepth"
    DESCRIPTION = (
        "The whole RollingDepth method in one node. Presets: fast (768 px, dilations 1,25, no "
        "refinement), fast1024, full (1024 px, 1,10,25, 10 refine steps), paper (the published "
        "settings). Use the stage nodes to change single settings or reuse cached stages."
    )
    RETURN_TYPES = ("ROLLINGDEPTH_DEPTH", "IMAGE")
    RETURN_NAMES = ("depth", "preview")
    OUTPUT_TOOLTIPS = (
        "Depth video: inverse depth (larger = nearer).",
        "Grey preview (nearer = brighter, one range for the clip); Depth to image has more options.",
    )
    FUNCTION = "execute"

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {
            "model": ("ROLLINGDEPTH_MODEL", {"tooltip": "From RollingDepth Load Model."}),
            "preset": (list(PRESETS), {
                "default": "fast",
                "tooltip": "fast / fast1024 / full / paper. The precision is the Load Model node's "
                           "dtype (the presets ask fp16, paper fp32).",
            }),
            "seed": seed_input("Seed of the one noise image shared by all frames."),
            "snippets_per_batch": batch_input(),
            "resolution_override": ("INT", {
                "default": 0, "min": 0, "max": MAX_PROCESSING_RESOLUTION, "step": 8,
                "tooltip": "0 uses the preset's processing resolution (768 or 1024). Any other "
                           "value replaces it (longest side in pixels).",
            }),
            "output_size": (list(OUTPUT_SIZES), {
                "default": "processing",
                "tooltip": "processing: depth at the processing resolution. input: resized back "
                           "to the frames' size (bilinear).",
            }),
        }, "optional": frames_inputs("the clip to estimate"), "hidden": HIDDEN_PROMPT}

    @classmethod
    def execute(cls, model, preset, seed, snippets_per_batch, resolution_override, output_size,
                images=None, video=None, prompt=None):
        check_graph(prompt)
        source = convert.frame_source(images, video)
        settings = PRESETS[preset]
        if resolution_override > 0:
            settings = dataclasses.replace(settings, processing_resolution=resolution_override)
        model, batches = comfy_bridge.prepare_run(
            model, source.input_size, settings.processing_resolution, settings.snippet_length,
            batch_value(snippets_per_batch),
        )
        result = estimate_depth(  # one progress bar over the whole run, weighted by stage cost
            model, source, settings, seed=seed, batches=batches,
            restore_size=output_size == "input", hooks_for=comfy_bridge.hooks(), wording=NODE_WORDING,
        )
        preview = convert.depth_to_images(
            result.depth, "gray", False, 0.0, 100.0, comfy_bridge.intermediate_device()
        )
        return (result.depth, preview)
