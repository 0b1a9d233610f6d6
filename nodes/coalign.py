"""Co-align node: one scale and shift per snippet, merged into one depth video (cheap, no model)."""

from __future__ import annotations

import dataclasses

from ..rollingdepth_core.coalign.methods import DEFAULT_METHOD, available_methods, coalign_depth
from ..rollingdepth_core.coalign.problem import CoalignSettings
from ..rollingdepth_core.errors import InvalidInput
from ..rollingdepth_core.types import SnippetDepths
from . import comfy_bridge, convert

DEFAULTS = CoalignSettings()


class RollingDepthCoalign:
    """Snippet depths -> one temporally consistent depth video (normalised to -1..1)."""

    CATEGORY = "RollingDepth"
    DESCRIPTION = (
        "Finds a scale and shift per snippet so that all snippets agree on every frame, then "
        "averages them. Cheap to re-run: tweak these settings without re-running Denoise."
    )
    RETURN_TYPES = ("ROLLINGDEPTH_DEPTH", "STRING", "MASK")
    RETURN_NAMES = ("depth", "report", "spread")
    OUTPUT_TOOLTIPS = (
        "Depth video: inverse depth (larger = nearer) in -1..1, at the processing size. It carries "
        "the spread (Save Depth can write it as an EXR channel).",
        "Method, objective value and the range of the per-snippet scales and shifts.",
        "Spread N H W: per pixel the standard deviation of the aligned snippet predictions, in the "
        "depth's units (not scaled to 0..1). Large = the snippets disagree: trust the depth less.",
    )
    FUNCTION = "execute"

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {
            "snippet_depths": ("ROLLINGDEPTH_SNIPPET_DEPTHS", {"tooltip": "From Denoise Snippets."}),
            "method": (list(available_methods()), {
                "default": DEFAULT_METHOD,
                "tooltip": "Solver. 'reference' is the authors' Adam loop (exact parity).",
            }),
            "num_iterations": ("INT", {
                "default": DEFAULTS.num_iterations, "min": 0, "max": 100_000,
                "tooltip": "Solver iterations (iteration cap for solvers that stop early).",
            }),
            "learning_rate": ("FLOAT", {
                "default": DEFAULTS.learning_rate, "min": 1e-6, "max": 1.0, "step": 1e-4,
                "round": False, "tooltip": "Adam step size (reference solver).",
            }),
            "depth_term_weight": ("FLOAT", {
                "default": DEFAULTS.depth_term_weight, "min": 0.0, "max": 100.0, "step": 0.1,
                "tooltip": "Weight of the agreement in depth (1 / inverse depth) next to inverse depth.",
            }),
            "scale_reg_weight": ("FLOAT", {
                "default": DEFAULTS.scale_reg_weight, "min": 0.0, "max": 100.0, "step": 0.01,
                "tooltip": "Penalty on scales below 1 (keeps the depth range from collapsing).",
            }),
            "shift_reg_weight": ("FLOAT", {
                "default": DEFAULTS.shift_reg_weight, "min": 0.0, "max": 1000.0, "step": 0.1,
                "tooltip": "Penalty on shifts away from 0.",
            }),
            "subsample": ("INT", {
                "default": DEFAULTS.subsample, "min": 1, "max": 64,
                "tooltip": "Use every n-th pixel in both directions for the fit (the merge uses all).",
            }),
        }}

    @classmethod
    def execute(cls, snippet_depths, method, num_iterations, learning_rate, depth_term_weight,
                scale_reg_weight, shift_reg_weight, subsample):
        if not isinstance(snippet_depths, SnippetDepths):
            raise InvalidInput(
                f"snippet_depths must come from Denoise Snippets; got {type(snippet_depths).__name__}."
            )
        settings = dataclasses.replace(
            DEFAULTS, num_iterations=num_iterations, learning_rate=learning_rate,
            depth_term_weight=depth_term_weight, scale_reg_weight=scale_reg_weight,
            shift_reg_weight=shift_reg_weight, subsample=subsample,
        )
        depth, alignment = coalign_depth(
            snippet_depths, method, settings, comfy_bridge.hooks(), spread=True
        )
        spread = depth.spread.to(comfy_bridge.intermediate_device())
        return (depth, convert.alignment_report(alignment, depth.num_frames), spread)
