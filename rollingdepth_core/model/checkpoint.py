"""Find, download, check and load a RollingDepth checkpoint (public diffusers layout).

Layout (as `prs-eth/rollingdepth-v1-0`)::

    model_index.json
    unet/config.json          unet/diffusion_pytorch_model[.fp16].safetensors
    vae/config.json           vae/diffusion_pytorch_model[.fp16].safetensors
    scheduler/scheduler_config.json
    text_encoder/config.json  text_encoder/model[.fp16].safetensors
    tokenizer/vocab.json      tokenizer/merges.txt  (+ tokenizer_config.json ...)

Weights are read from safetensors only, never from pickle files.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import logging
import os
from dataclasses import dataclass
from pathlib import Path

import torch

from ..errors import CheckpointError, InvalidSettings
from ..runtime.devices import check_device
from ..types import DepthModel
from ..wording import API, Wording
from .attention import install_cross_frame_attention

logger = logging.getLogger(__name__)

DEFAULT_REPO_ID = "prs-eth/rollingdepth-v1-0"

# component folder -> stem of its weights file
WEIGHT_STEMS = {
    "unet": "diffusion_pytorch_model",
    "vae": "diffusion_pytorch_model",
    "text_encoder": "model",
}
CONFIG_FILES = (
    "model_index.json",
    "unet/config.json",
    "vae/config.json",
    "scheduler/scheduler_config.json",
    "text_encoder/config.json",
    "tokenizer/vocab.json",
    "tokenizer/merges.txt",
)
DTYPES = {"fp32": torch.float32, "fp16": torch.float16, "bf16": torch.bfloat16}


def resolve_dtype(dtype: str | torch.dtype, device: torch.device | str, warn: bool = True) -> torch.dtype:
    """Torch dtype for ``dtype`` ("fp32", "fp16", "bf16", "auto" or a torch dtype).

    "auto" is fp16 on CUDA and fp32 elsewhere, silently. fp16 asked for on a CPU (slow and
    poorly supported there) falls back to fp32 with a warning (unless ``warn`` is False).
    """
    device = torch.device(device)
    if isinstance(dtype, torch.dtype):
        resolved = dtype
    elif dtype == "auto":
        resolved = torch.float16 if device.type == "cuda" else torch.float32
    elif dtype in DTYPES:
        resolved = DTYPES[dtype]
    else:
        raise InvalidSettings(f"Unknown dtype {dtype!r}. Choose one of auto, {', '.join(DTYPES)}.")
    if resolved not in DTYPES.values():
        raise InvalidSettings(f"dtype must be float32, float16 or bfloat16; got {resolved}.")
    if device.type == "cpu" and resolved == torch.float16:
        if warn:
            logger.warning("fp16 is not supported well on the CPU; using fp32 instead.")
        resolved = torch.float32
    return resolved


def preset_dtype(dtype: str, device: torch.device | str) -> str:
    """The dtype to load a preset's model in on ``device``: the preset's, fp32 on a CPU.

    A preset's fp16 is a default, not a request: on a CPU it becomes fp32 without a
    warning (`resolve_dtype` warns only when fp16 on a CPU was asked for explicitly).
    """
    return "fp32" if torch.device(device).type == "cpu" and dtype in ("fp16", "bf16") else dtype


@dataclass(frozen=True)
class CheckpointFiles:
    """Paths of a checked checkpoint folder.

    Attributes:
        root: the folder.
        weights: component -> its safetensors file.
        variant: "fp16" when the half-precision variant files are used, else None.
        repo_id: the Hugging Face repo the files came from (downloaded or from the cache);
            None for a local folder (whatever it holds).
    """

    root: Path
    weights: dict[str, Path]
    variant: str | None
    repo_id: str | None = None


def weight_file(root: Path, component: str, prefer_variant: bool) -> Path | None:
    """The safetensors file of ``component`` in ``root`` (fp16 variant first if preferred)."""
    stem = WEIGHT_STEMS[component]
    full = root / component / f"{stem}.safetensors"
    half = root / component / f"{stem}.fp16.safetensors"
    order = (half, full) if prefer_variant else (full, half)
    return next((p for p in order if p.is_file()), None)


def check_checkpoint(root: str | os.PathLike, prefer_variant: bool = False) -> CheckpointFiles:
    """Check that ``root`` holds a complete checkpoint with readable safetensors weights.

    Raises:
        CheckpointError: the folder or a file is missing, a weights file is corrupt, or the
            components mix fp16-variant and full files.
    """
    root = Path(root).expanduser()
    if not root.is_dir():
        raise CheckpointError(
            f"Checkpoint folder {root} does not exist. Download {DEFAULT_REPO_ID} into it "
            "(see README, Models)."
        )
    missing = [name for name in CONFIG_FILES if not (root / name).is_file()]
    weights: dict[str, Path] = {}
    for component in WEIGHT_STEMS:
        path = weight_file(root, component, prefer_variant)
        if path is None:
            stem = WEIGHT_STEMS[component]
            pickles = list((root / component).glob("*.bin")) if (root / component).is_dir() else []
            note = " (a .bin pickle is there; only safetensors are loaded)" if pickles else ""
            missing.append(f"{component}/{stem}.safetensors{note}")
        else:
            weights[component] = path
    if missing:
        raise CheckpointError(
            f"{root} is not a complete RollingDepth checkpoint; missing: {', '.join(missing)}. "
            f"Download {DEFAULT_REPO_ID} into that folder (see README, Models)."
        )
    variants = {".fp16." in p.name for p in weights.values()}
    for path in weights.values():
        check_safetensors(path)
    variant = "fp16" if variants == {True} else None
    if len(variants) > 1:
        # diffusers loads each component with its own variant argument, so mixing is fine
        logger.debug("Checkpoint %s mixes fp16-variant and full weights files.", root)
    return CheckpointFiles(root=root, weights=weights, variant=variant)


def check_safetensors(path: Path) -> None:
    """Raise ``CheckpointError`` unless ``path`` is a readable, complete safetensors file."""
    from safetensors import SafetensorError, safe_open

    try:
        with safe_open(str(path), framework="pt") as handle:
            keys = list(handle.keys())
    except (SafetensorError, OSError, ValueError) as error:  # a bad header, a short file
        raise CheckpointError(
            f"{path} is not a valid safetensors file ({error}). The download may be "
            "incomplete: delete the file and download it again."
        ) from error
    if not keys:
        raise CheckpointError(f"{path} holds no tensors. Delete it and download it again.")


def download_checkpoint(
    repo_id: str = DEFAULT_REPO_ID,
    local_dir: str | os.PathLike | None = None,
    cache_dir: str | os.PathLike | None = None,
    prefer_variant: bool = False,
    local_files_only: bool = False,
    wording: Wording = API,
) -> Path:
    """Download ``repo_id`` from the Hugging Face Hub (configs + safetensors only).

    Files go to ``local_dir`` when given, else into the Hugging Face cache (``cache_dir``).
    With ``prefer_variant`` the fp16 weight files are fetched where the repo has them.
    huggingface_hub shows download progress.

    Returns:
        The folder holding the checkpoint.

    Raises:
        CheckpointError: offline (or the repo is unreachable) and no complete copy is local;
            the message says how to get it, worded by ``wording``.
    """
    from huggingface_hub import snapshot_download

    configs = list(CONFIG_FILES) + ["tokenizer/*.json", "tokenizer/*.txt"]
    weight_patterns = [
        f"{c}/{s}.fp16.safetensors" if prefer_variant else f"{c}/{s}.safetensors"
        for c, s in WEIGHT_STEMS.items()
    ]
    kwargs = dict(local_dir=local_dir, cache_dir=cache_dir, local_files_only=local_files_only)
    target = Path(local_dir) if local_dir is not None else None
    try:
        folder = Path(snapshot_download(repo_id, allow_patterns=configs + weight_patterns, **kwargs))
        if prefer_variant and any(weight_file(folder, c, True) is None for c in WEIGHT_STEMS):
            full = [f"{c}/{s}.safetensors" for c, s in WEIGHT_STEMS.items()
                    if weight_file(folder, c, True) is None]
            folder = Path(snapshot_download(repo_id, allow_patterns=configs + full, **kwargs))
    except hub_errors() as error:
        if target is not None:
            then = f"copy it to {target}"
        else:
            then = f"load it from there ({wording.assign('source', '<folder>')})"
        raise CheckpointError(
            f"Could not get {repo_id} from the Hugging Face Hub ({type(error).__name__}: {error}). "
            f"If you are offline, download it on a machine that is online (`{download_command(repo_id)}`) "
            f"and {then}."
        ) from error
    return folder


def hub_errors() -> tuple[type[Exception], ...]:
    """What a failed download raises: `OSError` (the hub's own errors, an offline cache miss,
    a full disk), `ValueError` (a malformed repo id) and the errors of the HTTP library
    huggingface_hub uses (the base of the hub's HTTP error: requests' or httpx's `HTTPError`,
    whose subclasses include the connection errors)."""
    from huggingface_hub.errors import HfHubHTTPError

    http = next(
        (base for base in HfHubHTTPError.__mro__[1:]
         if base.__module__.split(".")[0] not in ("huggingface_hub", "builtins")),
        OSError,
    )
    return (OSError, ValueError, http)


def download_command(repo_id: str = DEFAULT_REPO_ID, folder: str = "<folder>") -> str:
    """The shell command that downloads ``repo_id`` with the installed huggingface_hub.

    huggingface_hub 0.34 and later ship ``hf download``; older releases only
    ``huggingface-cli download`` (removed in 1.0).
    """
    import huggingface_hub

    try:
        major, minor = (int(p) for p in huggingface_hub.__version__.split(".")[:2])
    except ValueError:
        major, minor = 1, 0
    tool = "hf" if (major, minor) >= (0, 34) else "huggingface-cli"
    return f"{tool} download {repo_id} --local-dir {folder}"


def resolve_checkpoint(
    source: str | os.PathLike,
    cache_dir: str | os.PathLike | None = None,
    local_dir: str | os.PathLike | None = None,
    prefer_variant: bool = False,
    allow_download: bool = True,
    wording: Wording = API,
) -> CheckpointFiles:
    """A checked checkpoint for ``source``: a local folder, or a Hub repo id to download.

    A string that names an existing folder is used as is; a string of the form
    ``owner/name`` that is not a folder is downloaded (or found in the cache).
    """
    path = Path(source).expanduser()
    if path.is_dir():
        return check_checkpoint(path, prefer_variant)
    text = str(source)
    is_repo_id = text.count("/") == 1 and not text.startswith((".", "/", "~"))
    if not is_repo_id:
        raise CheckpointError(
            f"Model {text!r} is neither a folder nor a Hugging Face repo id like "
            f"{DEFAULT_REPO_ID!r}. Give the folder that holds model_index.json "
            f"({wording.assign('source', '<folder>')})."
        )
    if local_dir is not None and Path(local_dir).is_dir() and any(Path(local_dir).iterdir()):
        try:
            return check_checkpoint(local_dir, prefer_variant)
        except CheckpointError:
            logger.info("%s is incomplete; downloading %s into it.", local_dir, text)
    folder = download_checkpoint(
        text, local_dir=local_dir, cache_dir=cache_dir, prefer_variant=prefer_variant,
        local_files_only=not allow_download, wording=wording,
    )
    return dataclasses.replace(check_checkpoint(folder, prefer_variant), repo_id=text)


def read_scheduler_config(root: Path) -> dict:
    """The scheduler config of a checkpoint, checked to be a DDIM scheduler."""
    config = json.loads((root / "scheduler" / "scheduler_config.json").read_text())
    name = config.get("_class_name", "DDIMScheduler")
    if name != "DDIMScheduler":
        raise CheckpointError(
            f"{root}/scheduler uses {name}; RollingDepth needs a DDIMScheduler checkpoint."
        )
    return config


@torch.no_grad()
def embed_empty_prompt(root: Path, files: CheckpointFiles) -> torch.Tensor:
    """Embedding of the prompt "" (`1 t c`, float32), from the checkpoint's text encoder.

    The text encoder is loaded on the CPU in float32, used once and released.
    """
    from transformers import CLIPTextModel, CLIPTokenizer

    tokenizer = CLIPTokenizer.from_pretrained(root, subfolder="tokenizer")
    variant = "fp16" if ".fp16." in files.weights["text_encoder"].name else None
    encoder = CLIPTextModel.from_pretrained(
        root, subfolder="text_encoder", use_safetensors=True, variant=variant,
        torch_dtype=torch.float32,
    )
    ids = tokenizer("", padding="do_not_pad", max_length=tokenizer.model_max_length,
                    truncation=True, return_tensors="pt").input_ids
    embed = encoder(ids)[0].float()  # 1 t c
    del encoder
    return embed


@contextlib.contextmanager
def progress_bars(show: bool):
    """Within this block, diffusers', transformers' and huggingface_hub's bars are shown or not."""
    if show:
        yield
        return
    import diffusers.utils.logging as diffusers_logging
    import huggingface_hub.utils as hub_utils
    import transformers.utils.logging as transformers_logging

    before = (diffusers_logging.is_progress_bar_enabled(), transformers_logging.is_progress_bar_enabled(),
              hub_utils.are_progress_bars_disabled())
    diffusers_logging.disable_progress_bar()
    transformers_logging.disable_progress_bar()
    hub_utils.disable_progress_bars()
    try:
        yield
    finally:
        if before[0]:
            diffusers_logging.enable_progress_bar()
        if before[1]:
            transformers_logging.enable_progress_bar()
        if not before[2]:
            hub_utils.enable_progress_bars()


def load_model(
    source: str | os.PathLike = DEFAULT_REPO_ID,
    device: torch.device | str = "cpu",
    dtype: str | torch.dtype = "auto",
    cache_dir: str | os.PathLike | None = None,
    local_dir: str | os.PathLike | None = None,
    allow_download: bool = True,
    compute_device: torch.device | str | None = None,
    speed=None,
    show_progress: bool = True,
    wording: Wording = API,
) -> DepthModel:
    """Load a RollingDepth checkpoint onto ``device`` in ``dtype``.

    Args:
        source: checkpoint folder, or a Hugging Face repo id (downloaded when missing).
        device: where unet and vae go.
        dtype: "auto", "fp32", "fp16" or "bf16".
        cache_dir: Hugging Face cache for downloads (default: the hub's own).
        local_dir: download into this folder instead of the cache.
        allow_download: False forbids network access (cache or folder only).
        compute_device: the device the model will run on when it is first placed on
            another one (ComfyUI keeps weights on the CPU until a node needs them); it
            decides "auto" and whether fp16 is usable. Default: ``device``.
        speed: optional `speedups.SpeedOptions` (channels_last, attention kernel,
            torch.compile), applied after the move to ``device``.
        show_progress: False hides the download and weight-loading bars (``-q``).
        wording: how messages name the settings (the command line and the nodes pass theirs).

    Returns:
        A `DepthModel` with cross-frame attention installed and the empty prompt embedded
        (the text encoder is not kept).

    Raises:
        CheckpointError: missing, incomplete or corrupt checkpoint.
    """
    device = check_device(device, wording)
    compute_device = device if compute_device is None else torch.device(compute_device)
    torch_dtype = resolve_dtype(dtype, compute_device)
    with progress_bars(show_progress):
        files = resolve_checkpoint(
            source, cache_dir=cache_dir, local_dir=local_dir,
            prefer_variant=torch_dtype != torch.float32, allow_download=allow_download, wording=wording,
        )
        return _load_files(files, source, device, torch_dtype, speed)


def _load_files(files: CheckpointFiles, source, device: torch.device, torch_dtype: torch.dtype, speed):
    """The weights of a checked checkpoint as a `DepthModel` on ``device``."""
    from diffusers import AutoencoderKL, UNet2DConditionModel

    root = files.root
    scheduler_config = read_scheduler_config(root)

    def variant_of(component: str) -> str | None:
        return "fp16" if ".fp16." in files.weights[component].name else None

    try:
        unet = UNet2DConditionModel.from_pretrained(
            root, subfolder="unet", use_safetensors=True, variant=variant_of("unet"),
            torch_dtype=torch_dtype,
        )
        vae = AutoencoderKL.from_pretrained(
            root, subfolder="vae", use_safetensors=True, variant=variant_of("vae"),
            torch_dtype=torch_dtype,
        )
        empty_text_embed = embed_empty_prompt(root, files)
    except (OSError, ValueError, KeyError, RuntimeError) as error:
        raise CheckpointError(
            f"Could not load the checkpoint in {root}: {error}. Check that it is a complete "
            f"copy of {DEFAULT_REPO_ID} (see README, Models)."
        ) from error
    if unet.config.in_channels != 8:
        raise CheckpointError(
            f"{root}/unet has {unet.config.in_channels} input channels; a RollingDepth "
            "checkpoint has 8 (RGB latent + depth latent). Is this the right model?"
        )
    install_cross_frame_attention(unet)
    unet.eval().requires_grad_(False)
    vae.eval().requires_grad_(False)
    model = DepthModel(
        unet=unet, vae=vae, scheduler_config=dict(scheduler_config),
        empty_text_embed=empty_text_embed.to(torch_dtype), dtype=torch_dtype, source=str(source),
    )
    origin = f"{files.repo_id} ({root})" if files.repo_id else str(root)  # what was really loaded
    logger.info("Loaded %s (%s) on %s.", origin, str(torch_dtype).replace("torch.", ""), device)
    model.to(device)
    if speed is not None:
        from .speedups import apply_speedups

        apply_speedups(model, speed)
    return model
