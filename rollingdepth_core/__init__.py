"""RollingDepth as a plain PyTorch library: video in, temporally consistent depth out.

Stages (each callable on its own)::

    model    = load_model("prs-eth/rollingdepth-v1-0", device="cuda", dtype="fp16")
    plan     = plan_snippets(num_frames, dilations=(1, 10, 25))
    encoded  = encode_frames(model, frames, processing_resolution=768)
    noise    = make_noise(encoded.latents.shape[-2:], seed=0)
    snippets = denoise_snippets(model, encoded, plan, noise)
    video, alignment = coalign_depth(snippets)
    depth    = refine_depth(model, encoded, video.inverse_depth, noise, num_steps=10)

or all at once: ``estimate_depth(model, frames, PRESETS["fast"])``.
This package never imports ComfyUI.
"""

from .coalign.merge import merge_aligned, normalize_depth
from .coalign.methods import coalign, coalign_depth
from .coalign.problem import CoalignSettings
from .errors import (
    CheckpointError,
    InvalidInput,
    InvalidSettings,
    NumericalError,
    RollingDepthError,
)
from .hooks import Hooks
from .model.checkpoint import DEFAULT_REPO_ID, load_model
from .model.noise import make_noise
from .pipeline import DepthResult, estimate_depth
from .presets import PRESETS, Preset, get_preset
from .stages.denoise import denoise_snippets
from .stages.encode import encode_frames
from .stages.refine import refine_depth
from .stages.snippets import plan_snippets
from .types import (
    Alignment,
    DepthModel,
    DepthVideo,
    EncodedFrames,
    RunBatches,
    SnippetDepths,
    SnippetPlan,
)

__version__ = "0.1.0"

__all__ = [
    "DEFAULT_REPO_ID", "PRESETS", "Alignment", "CheckpointError", "CoalignSettings", "DepthModel",
    "DepthResult", "DepthVideo", "EncodedFrames", "Hooks", "InvalidInput", "InvalidSettings",
    "NumericalError", "Preset", "RollingDepthError", "RunBatches", "SnippetDepths", "SnippetPlan", "coalign",
    "coalign_depth", "denoise_snippets", "encode_frames", "estimate_depth", "get_preset",
    "load_model", "make_noise", "merge_aligned", "normalize_depth", "plan_snippets",
    "refine_depth",
]
