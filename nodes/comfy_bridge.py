"""The only module that touches ComfyUI: devices, memory, progress, cancel, model folders.

Every ComfyUI import happens inside the function that needs it. Outside ComfyUI (tests, a
plain Python session) each function falls back to something plain: the CPU, no progress bar,
never cancelled, folders from `FALLBACK_MODEL_FOLDERS` and `FALLBACK_OUTPUT_FOLDER`.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import os
from dataclasses import dataclass
from pathlib import Path

import torch

from ..rollingdepth_core.hooks import Hooks
from ..rollingdepth_core.model.checkpoint import DEFAULT_REPO_ID
from ..rollingdepth_core.runtime.batch_sizes import (
    AUTO,
    BatchSize,
    resolve_run_batches,
    run_activation_bytes,
)
from ..rollingdepth_core.types import DepthModel, RunBatches

logger = logging.getLogger(__name__)

MODEL_FOLDER_NAME = "rollingdepth"  # models/rollingdepth/<checkpoint>/ (diffusers layout)
DEFAULT_MODEL_NAME = DEFAULT_REPO_ID.split("/")[-1]  # "rollingdepth-v1-0"
FALLBACK_MODEL_FOLDERS: list[Path] = [Path("models") / MODEL_FOLDER_NAME]
FALLBACK_OUTPUT_FOLDER = Path("output")
FALLBACK_INPUT_FOLDER = Path("input")
VAE_BATCH = AUTO  # frames per VAE call in every node: what fits in free VRAM


def _model_management():
    """ComfyUI's `comfy.model_management`, or None outside ComfyUI."""
    try:
        import comfy.model_management as model_management
    except ImportError:
        return None
    return model_management


def _folder_paths():
    """ComfyUI's `folder_paths`, or None outside ComfyUI."""
    try:
        import folder_paths
    except ImportError:
        return None
    return folder_paths


def compute_device() -> torch.device:
    """Where models run: ComfyUI's torch device, else the CPU."""
    mm = _model_management()
    return mm.get_torch_device() if mm is not None else torch.device("cpu")


def offload_device() -> torch.device:
    """Where idle weights wait: ComfyUI's UNet offload device, else the CPU."""
    mm = _model_management()
    return mm.unet_offload_device() if mm is not None else torch.device("cpu")


def intermediate_device() -> torch.device:
    """Where node outputs live: ComfyUI's intermediate device (CPU unless --gpu-only)."""
    mm = _model_management()
    return mm.intermediate_device() if mm is not None else torch.device("cpu")


def auto_dtype(device: torch.device) -> str:
    """"fp16", "bf16" or "fp32": what ComfyUI would pick for a UNet on ``device``."""
    mm = _model_management()
    if mm is None:
        return "fp16" if device.type == "cuda" else "fp32"
    if mm.should_use_fp16(device):
        return "fp16"
    if mm.should_use_bf16(device):
        return "bf16"
    return "fp32"


def hooks() -> Hooks:
    """Progress on a ComfyUI progress bar, cancel = ComfyUI's interrupt (plain hooks outside).

    The core passes the total with every update (`update_absolute(done, total)`), so the bar
    always has the stage's real length.
    """
    try:
        import comfy.model_management as mm
        import comfy.utils
    except ImportError:
        return Hooks()
    bar = comfy.utils.ProgressBar(1)
    return Hooks(
        progress=lambda done, steps: bar.update_absolute(done, steps),
        check_cancel=mm.throw_exception_if_processing_interrupted,
    )


# --- model folders -----------------------------------------------------------------------


def register_model_folder() -> None:
    """Add ``models/rollingdepth`` to ComfyUI's model folders (no-op outside ComfyUI).

    Users can add more folders under the key ``rollingdepth`` in extra_model_paths.yaml.
    """
    fp = _folder_paths()
    if fp is not None:
        fp.add_model_folder_path(MODEL_FOLDER_NAME, os.path.join(fp.models_dir, MODEL_FOLDER_NAME))


def model_folders() -> list[tuple[str, Path]]:
    """`(label prefix, folder)` of every place checkpoints may live, in search order.

    ``models/rollingdepth`` (and its extra paths) come first with no prefix, then
    ComfyUI's ``models/diffusers`` folders with the prefix ``"diffusers/"``.
    """
    fp = _folder_paths()
    if fp is None:
        return [("", Path(p)) for p in FALLBACK_MODEL_FOLDERS]
    register_model_folder()
    folders = [("", Path(p)) for p in fp.get_folder_paths(MODEL_FOLDER_NAME)]
    folders += [("diffusers/", Path(p)) for p in fp.get_folder_paths("diffusers")]
    return folders


def is_rollingdepth_checkpoint(folder: Path) -> bool:
    """A diffusers folder whose UNet takes 8 channels (RGB latent + depth latent)."""
    try:
        config = json.loads((folder / "unet" / "config.json").read_text())
    except (OSError, ValueError):
        return False
    return (folder / "model_index.json").is_file() and config.get("in_channels") == 8


def find_checkpoints() -> dict[str, Path]:
    """Menu label -> folder of every RollingDepth checkpoint found; the default name first.

    The default checkpoint is always listed (it can be downloaded); when it is missing its
    folder is where the download goes.
    """
    found: dict[str, Path] = {}
    for prefix, root in model_folders():
        if not root.is_dir():
            continue
        for folder in sorted(p for p in root.iterdir() if p.is_dir()):
            label = prefix + folder.name
            if label not in found and is_rollingdepth_checkpoint(folder):
                found[label] = folder
    default = found.pop(DEFAULT_MODEL_NAME, None) or download_folder()
    return {DEFAULT_MODEL_NAME: default, **found}


def download_folder() -> Path:
    """Where the default checkpoint is downloaded: ``<first rollingdepth folder>/rollingdepth-v1-0``."""
    return model_folders()[0][1] / DEFAULT_MODEL_NAME


def output_folder() -> Path:
    """ComfyUI's output folder (``FALLBACK_OUTPUT_FOLDER`` outside ComfyUI)."""
    fp = _folder_paths()
    return Path(fp.get_output_directory()) if fp is not None else FALLBACK_OUTPUT_FOLDER


def input_folder() -> Path:
    """ComfyUI's input folder (``FALLBACK_INPUT_FOLDER`` outside ComfyUI)."""
    fp = _folder_paths()
    return Path(fp.get_input_directory()) if fp is not None else FALLBACK_INPUT_FOLDER


_VIDEO_CLASSES: dict[type, type] = {}


def video_input(video):
    """``video`` (a duck-typed VIDEO such as `PlateVideo`) as a real ComfyUI `VideoInput`.

    Inside ComfyUI the object is re-classed to also subclass `comfy_api.input.VideoInput`, whose
    abstract methods are provided: `get_components` gives the frames as an IMAGE batch with
    the exact frame rate, `save_to` encodes them H.264 at that exact rate (ComfyUI's own
    frames-made VIDEO rounds 24000/1001 to 23.976), reading the frames a batch at a time.
    Core nodes (Get Video Components, Save Video) take it like their own; our nodes read it
    lazily through ``frame_source()``. Outside ComfyUI the object is returned as it is.
    """
    try:
        from comfy_api.input import VideoInput
        from comfy_api.util import VideoComponents
    except ImportError:
        return video
    base = type(video)
    if base not in _VIDEO_CLASSES:

        class RollingDepthPlateVideo(base, VideoInput):
            def get_components(self):
                return VideoComponents(images=self.images(), audio=None, frame_rate=self.get_frame_rate())

            def save_to(self, path, format=None, codec=None, metadata=None):  # noqa: A002 - ComfyUI's names
                write_h264(path, self, metadata)

        _VIDEO_CLASSES[base] = RollingDepthPlateVideo
    wrapped = _VIDEO_CLASSES[base].__new__(_VIDEO_CLASSES[base])
    wrapped.__dict__.update(video.__dict__)
    return wrapped


def write_h264(path, video, metadata: dict | None = None, batch: int = 16) -> None:
    """Encode a plate VIDEO as H.264 MP4 at its exact frame rate, ``batch`` frames at a time.

    Args:
        path: a file path or a writable binary file object (ComfyUI passes both).
        video: has `frame_source()` (`read_images`) and `get_frame_rate()`.
        metadata: ComfyUI's prompt/workflow, stored as JSON tags like its own videos.
    """
    import av
    import numpy as np

    source = video.frame_source()
    target = path if not isinstance(path, (str, os.PathLike)) else os.fspath(path)
    options = {"movflags": "use_metadata_tags"}
    with av.open(target, mode="w", format="mp4", options=options) as output:
        for key, value in (metadata or {}).items():
            output.metadata[key] = json.dumps(value)
        stream = output.add_stream("h264", rate=video.get_frame_rate())
        height, width = source.stored_size
        stream.width, stream.height = width + width % 2, height + height % 2  # yuv420p: even sides
        stream.pix_fmt = "yuv420p"
        for start in range(0, source.num_frames, batch):
            images = source.read_images(start, min(start + batch, source.num_frames))  # b H W 3
            pixels = (images * 255).round().clamp(0, 255).to(torch.uint8).numpy()
            pixels = np.pad(pixels, ((0, 0), (0, height % 2), (0, width % 2), (0, 0)), mode="edge")
            for image in pixels:
                output.mux(stream.encode(av.VideoFrame.from_ndarray(image, format="rgb24")))
        output.mux(stream.encode(None))


# --- the model under ComfyUI's memory management ----------------------------------------


class _Weights(torch.nn.Module):
    """UNet and VAE as one module, the unit ComfyUI loads, offloads and evicts."""

    def __init__(self, model: DepthModel) -> None:
        super().__init__()
        self.unet = model.unet
        self.vae = model.vae
        self._dtype = model.dtype

    def get_dtype(self) -> torch.dtype:
        return self._dtype


@dataclass(eq=False)
class ModelHandle:
    """What a ROLLINGDEPTH_MODEL socket carries.

    Attributes:
        model: the loaded checkpoint.
        patcher: its ComfyUI `ModelPatcher` (None outside ComfyUI).
    """

    model: DepthModel
    patcher: object | None = None

    def __repr__(self) -> str:
        return f"RollingDepth model {self.model.source} ({str(self.model.dtype).replace('torch.', '')})"


def manage(model: DepthModel) -> ModelHandle:
    """Hand ``model`` to ComfyUI's memory management (a plain handle outside ComfyUI).

    ComfyUI then moves the weights to the GPU when a node asks for them (evicting its own
    models first when memory is short), keeps them there while memory allows, and offloads
    them when another model needs the room or the user frees memory.
    """
    mm = _model_management()
    if mm is None:
        return ModelHandle(model)
    import comfy.model_patcher

    patcher = comfy.model_patcher.ModelPatcher(
        _Weights(model), load_device=mm.get_torch_device(), offload_device=mm.unet_offload_device()
    )
    return ModelHandle(model, patcher)


def inference_memory(
    handle: ModelHandle, input_size: tuple[int, int], processing_resolution: int,
    snippet_length: int, snippets_per_batch: BatchSize, vae_batch_size: BatchSize,
) -> int:
    """Bytes of activations a run needs beyond the weights (the core's estimate, `batch_sizes`).

    ComfyUI frees this much (evicting its own models) before the run; "auto" batch sizes
    count as the core's defaults and then grow into what is left free.
    """
    return run_activation_bytes(
        handle.model, input_size, processing_resolution, snippet_length, snippets_per_batch,
        vae_batch_size,
    )


def model_for_inference(handle: ModelHandle, memory_required: int = 0) -> DepthModel:
    """The model, with its weights on the compute device, ready for a node's work.

    In ComfyUI: `load_models_gpu` frees ``memory_required`` plus the weights (unloading other
    models as needed) and loads the weights fully; they stay loaded until ComfyUI needs the
    room. Outside ComfyUI the weights are simply moved. The handle's `DepthModel` (a cached
    node output) is left as it was: the result is a new one, sharing the weights, with the
    prompt embedding on the device.
    """
    model = handle.model
    device = compute_device()
    if handle.patcher is not None:
        import comfy.model_management as mm

        mm.load_models_gpu([handle.patcher], memory_required=memory_required, force_full_load=True)
    else:
        model.unet.to(device)
        model.vae.to(device)
    return dataclasses.replace(model, empty_text_embed=model.empty_text_embed.to(device))


def prepare_run(
    handle: ModelHandle, input_size: tuple[int, int], processing_resolution: int,
    snippet_length: int, snippets_per_batch: BatchSize,
) -> tuple[DepthModel, RunBatches]:
    """The model ready on the compute device and the run's batch sizes, resolved once.

    ComfyUI first frees what the run needs at the default batches (`inference_memory`,
    evicting its own models), then loads the weights; automatic batch sizes are then sized
    from the memory left free. Every stage of the node's run uses the returned batches.

    Args:
        input_size: `(H0, W0)` of the frames.
        processing_resolution: longest side to process at (0: the input size).
        snippet_length: frames per snippet.
        snippets_per_batch: a number or "auto" (the widget's 0).
    """
    memory = inference_memory(
        handle, input_size, processing_resolution, snippet_length, snippets_per_batch, VAE_BATCH
    )
    model = model_for_inference(handle, memory)
    batches = resolve_run_batches(
        model, input_size, processing_resolution, snippet_length, snippets_per_batch, VAE_BATCH
    )
    return model, batches
