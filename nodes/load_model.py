"""Load model node: a RollingDepth checkpoint from ComfyUI's models folder, downloaded if asked."""

from __future__ import annotations

from ..rollingdepth_core.errors import CheckpointError
from ..rollingdepth_core.model.checkpoint import DEFAULT_REPO_ID, DTYPES, load_model
from . import comfy_bridge
from .widgets import HIDDEN_PROMPT, check_graph

DTYPE_CHOICES = ("auto", *DTYPES)  # auto, fp32, fp16, bf16


class RollingDepthLoadModel:
    """A checkpoint in the diffusers layout, handed to ComfyUI's memory management."""

    CATEGORY = "RollingDepth"
    DESCRIPTION = (
        "Loads a RollingDepth checkpoint (diffusers folder) from models/rollingdepth or "
        f"models/diffusers. '{comfy_bridge.DEFAULT_MODEL_NAME}' can be downloaded from "
        f"{DEFAULT_REPO_ID} on first use. ComfyUI moves the weights to the GPU when a node "
        "needs them and offloads them when another model needs the memory."
    )
    RETURN_TYPES = ("ROLLINGDEPTH_MODEL",)
    RETURN_NAMES = ("model",)
    OUTPUT_TOOLTIPS = ("The depth model (UNet + VAE + empty-prompt embedding).",)
    FUNCTION = "execute"

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {
            "model_name": (list(comfy_bridge.find_checkpoints()), {
                "default": comfy_bridge.DEFAULT_MODEL_NAME,
                "tooltip": "Checkpoint folder in models/rollingdepth (or models/diffusers, shown "
                           "as diffusers/<name>) holding model_index.json, unet/, vae/ ...",
            }),
            "dtype": (list(DTYPE_CHOICES), {
                "default": "auto",
                "tooltip": "Precision of UNet and VAE. auto: what ComfyUI picks for this GPU "
                           "(fp16 on most, fp32 on the CPU). Try fp32 or bf16 if depth shows NaN.",
            }),
            "download_if_missing": ("BOOLEAN", {
                "default": True,
                "tooltip": f"Download {DEFAULT_REPO_ID} (a few GB) into "
                           f"models/{comfy_bridge.MODEL_FOLDER_NAME}/{comfy_bridge.DEFAULT_MODEL_NAME} "
                           "when it is not there yet. Other checkpoints are never downloaded.",
            }),
        }, "hidden": HIDDEN_PROMPT}

    @classmethod
    def execute(cls, model_name, dtype, download_if_missing, prompt=None):
        check_graph(prompt)  # a bad widget anywhere in the graph stops it before the download
        checkpoints = comfy_bridge.find_checkpoints()
        if model_name not in checkpoints:
            raise CheckpointError(
                f"No checkpoint named {model_name!r} in models/{comfy_bridge.MODEL_FOLDER_NAME} or "
                f"models/diffusers. Choose one of {', '.join(checkpoints)} (press R to refresh)."
            )
        folder = checkpoints[model_name]
        download = model_name == comfy_bridge.DEFAULT_MODEL_NAME and download_if_missing
        if not folder.is_dir() and not download:
            raise CheckpointError(
                f"{folder} does not exist. Turn on download_if_missing, or download {DEFAULT_REPO_ID} "
                "into that folder yourself (README, ComfyUI)."
            )
        device = comfy_bridge.compute_device()
        model = load_model(
            DEFAULT_REPO_ID if download else folder,
            device=comfy_bridge.offload_device(),
            dtype=comfy_bridge.auto_dtype(device) if dtype == "auto" else dtype,
            local_dir=folder if download else None,
            allow_download=download,
            compute_device=device,
        )
        return (comfy_bridge.manage(model),)
