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
        "averages them. Cheap to re-run: tweak these settings without re-running Denoise. "
        "What each method uses: fast (default) and reference minimise the authors' objective "
        "(depth/scale/shift weights, subsample); reference alone uses learning_rate and runs "
        "num_iterations Adam steps; fast and robust stop when converged (num_iterations is "
        "only a cap); robust minimises its own outlier-robust objective (weights not used)."
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
                "tooltip": "fast (default): the authors' objective, solved in ~30 Newton steps. "
                           "reference: the authors' Adam loop (exact parity, slow). robust: a "
                           "different, outlier-robust objective that drifts less on long clips.",
            }),
            "num_iterations": ("INT", {
                "default": DEFAULTS.num_iterations, "min": 0, "max": 100_000,
                "tooltip": "reference: Adam steps (the authors use 2000). fast and robust: only "
                           "a cap, they stop when converged (about 30 iterations); 2000 never limits them.",
            }),
            "learning_rate": ("FLOAT", {
                "default": DEFAULTS.learning_rate, "min": 1e-6, "max": 1.0, "step": 1e-4,
                "round": False,
                "tooltip": "reference only: Adam step size (0.001 as released). fast and robust "
                           "do not use it.",
            }),
            "depth_term_weight": ("FLOAT", {
                "default": DEFAULTS.depth_term_weight, "min": 0.0, "max": 100.0, "step": 0.1,
                "tooltip": "fast and reference: weight of the agreement in depth (1 / inverse "
                           "depth) next to inverse depth. robust does not use it.",
            }),
            "scale_reg_weight": ("FLOAT", {
                "default": DEFAULTS.scale_reg_weight, "min": 0.0, "max": 100.0, "step": 0.01,
                "tooltip": "fast and reference: penalty on scales below 1 (keeps the depth "
                           "range from collapsing). robust does not use it.",
            }),
            "shift_reg_weight": ("FLOAT", {
                "default": DEFAULTS.shift_reg_weight, "min": 0.0, "max": 1000.0, "step": 0.1,
                "tooltip": "fast and reference: penalty on shifts away from 0. robust does not use it.",
            }),
            "subsample": ("INT", {
                "default": DEFAULTS.subsample, "min": 1, "max": 64,
                "tooltip": "Every method: fit on every n-th pixel in both directions (the merge "
                           "uses all).",
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
