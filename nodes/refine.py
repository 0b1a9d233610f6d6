"""Refine node: coarse-to-fine diffusion refinement of any depth video of a clip."""

from __future__ import annotations

from ..rollingdepth_core.presets import PRESETS
from ..rollingdepth_core.stages.refine import refine_video
from ..rollingdepth_core.validation import MAX_PROCESSING_RESOLUTION, MAX_REFINE_STEPS, MAX_SNIPPET_LENGTH
from . import comfy_bridge, convert
from .widgets import (
    HIDDEN_PROMPT,
    batch_input,
    batch_value,
    check_graph,
    frames_inputs,
    seed_input,
)

FULL = PRESETS["full"]


class RollingDepthRefine:
    """Depth video -> refined depth video (sharper detail), using the frames it belongs to."""

    CATEGORY = "RollingDepth"
    DESCRIPTION = (
        "Adds noise to the depth (about half way) and denoises it again in K steps, from wide "
        "snippets to dilation 1. Works on depth from Co-align or from any other depth node "
        "(through Image to depth)."
    )
    RETURN_TYPES = ("ROLLINGDEPTH_DEPTH",)
    RETURN_NAMES = ("depth",)
    OUTPUT_TOOLTIPS = ("Refined inverse depth (larger = nearer, roughly -1..1).",)
    FUNCTION = "execute"

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {
            "model": ("ROLLINGDEPTH_MODEL", {"tooltip": "From RollingDepth Load Model."}),
            "depth": ("ROLLINGDEPTH_DEPTH", {"tooltip": "Depth video of the same frames."}),
            "num_steps": ("INT", {
                "default": FULL.refine_steps, "min": 1, "max": MAX_REFINE_STEPS,
                "tooltip": "Refinement steps K (10 in the full and paper presets). Bypass the node "
                           "(Ctrl+B) to skip refinement.",
            }),
            "start_dilation": ("INT", {
                "default": FULL.refine_start_dilation, "min": 1, "max": 1000,
                "tooltip": "Dilation of the first step; later steps shrink it to 1.",
            }),
            "snippet_length": ("INT", {
                "default": FULL.refine_snippet_length, "min": 1, "max": MAX_SNIPPET_LENGTH,
                "tooltip": "Frames per refinement snippet.",
            }),
            "cap_dilation": ("BOOLEAN", {
                "default": FULL.cap_dilation,
                "tooltip": "Shrink the start dilation on short clips (off in the 'paper' preset).",
            }),
            "processing_resolution": ("INT", {
                "default": 0, "min": 0, "max": MAX_PROCESSING_RESOLUTION, "step": 8,
                "tooltip": "Longest side to refine at. 0 uses the depth's own size (the size "
                           "Denoise ran at), which also reuses its frame latents.",
            }),
            "seed": seed_input("Seed of the shared noise; use Denoise's seed to match the one-node result."),
            "snippets_per_batch": batch_input(),
        }, "optional": frames_inputs("the frames the depth belongs to"), "hidden": HIDDEN_PROMPT}

    @classmethod
    def execute(cls, model, depth, num_steps, start_dilation, snippet_length, cap_dilation,
                processing_resolution, seed, snippets_per_batch, images=None, video=None, prompt=None):
        check_graph(prompt)
        source = convert.frame_source(images, video)
        convert.check_frame_count(source, convert.check_depth(depth).num_frames, "the depth video")
        size = depth.size if processing_resolution == 0 else source.input_size
        model, batches = comfy_bridge.prepare_run(
            model, size, processing_resolution, snippet_length, batch_value(snippets_per_batch)
        )
        refined = refine_video(
            model, source, depth, num_steps=num_steps, start_dilation=start_dilation,
            snippet_length=snippet_length, cap_dilation=cap_dilation, seed=seed,
            processing_resolution=processing_resolution, batches=batches,
            hooks=comfy_bridge.hooks(),
        )
        return (refined,)
