"""Denoise snippets node: the expensive stage, one UNet step for many snippets per call."""

from __future__ import annotations

from ..rollingdepth_core.denoise import predict_snippets
from ..rollingdepth_core.presets import PRESETS
from . import comfy_bridge, convert

VAE_BATCH_SIZE = 4  # frames per VAE call (encode and decode)
SEED_MAX = 2**63 - 1


def seed_input(tooltip: str) -> tuple:
    """A seed widget without ComfyUI's 'randomize after generate': a fixed seed keeps the cache."""
    return ("INT", {"default": 0, "min": 0, "max": SEED_MAX, "control_after_generate": False,
                    "tooltip": tooltip})


def batch_input() -> tuple:
    """The snippets-per-UNet-call widget shared by the nodes that run the UNet.

    Hook for the automatic batch size (issue 4): lower "min" to 0, document 0 = auto, and let
    the core pick the size when it gets 0; saved workflows keep working.
    """
    return ("INT", {
        "default": 8, "min": 1, "max": 256,
        "tooltip": "Snippets per UNet call. Higher is faster on a large GPU; lower it if you run out "
                   "of VRAM (an out-of-memory batch is halved and retried automatically).",
    })


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
        return {"required": {
            "model": ("ROLLINGDEPTH_MODEL", {"tooltip": "From RollingDepth Load Model."}),
            "images": ("IMAGE", {"tooltip": "The video frames (N H W 3)."}),
            "plan": ("ROLLINGDEPTH_SNIPPET_PLAN", {"tooltip": "From Sample Snippets, for the same video."}),
            "processing_resolution": ("INT", {
                "default": PRESETS["fast"].processing_resolution, "min": 0, "max": 4096, "step": 8,
                "tooltip": "Longest side the frames are resized to (768 fast, 1024 full). 0 keeps "
                           "the input size. Depth comes out at this size.",
            }),
            "seed": seed_input("Seed of the one noise image shared by all frames."),
            "snippets_per_batch": batch_input(),
        }}

    @classmethod
    def execute(cls, model, images, plan, processing_resolution, seed, snippets_per_batch):
        frames = convert.images_to_frames(images)
        convert.check_frame_count(images, plan.num_frames, "the snippet plan")
        memory = comfy_bridge.inference_memory(
            tuple(frames.shape[-2:]), processing_resolution, snippets_per_batch * plan.snippet_length,
            VAE_BATCH_SIZE, model.model.dtype,
        )
        depths = predict_snippets(
            comfy_bridge.model_for_inference(model, memory), frames, plan,
            processing_resolution=processing_resolution, seed=seed,
            snippets_per_batch=snippets_per_batch, vae_batch_size=VAE_BATCH_SIZE,
            hooks=comfy_bridge.hooks(),
        )
        return (depths,)
