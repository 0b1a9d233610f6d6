"""Will a run fit? Host and device memory of a run, estimated before it starts.

A resolution or a clip that cannot fit must be refused in a second, with figures, not after
minutes with an allocator traceback. The estimate counts what the run keeps for its whole
length (snippet depths, RGB latents, the depth videos, frames read up front) plus the
largest working set at one time (weights and a one-item batch of the UNet or VAE, from the
activation model in `batch_sizes`), and compares it with what is free: host memory from the
operating system (cgroup limits included), device memory from the device. Automatic batch
sizes then grow into whatever is left.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass, field
from pathlib import Path

import torch

from ..errors import InvalidSettings
from ..types import DEFAULT_SNIPPETS_PER_BATCH, DEFAULT_VAE_BATCH_SIZE
from . import devices
from .batch_sizes import ALLOCATOR_OVERHEAD, DECODER_ACTIVATIONS, ENCODER_ACTIVATIONS, UNET_ACTIVATIONS

logger = logging.getLogger(__name__)

GB = 1e9
WARN_FRACTION = 0.8  # warn when a run needs more than this share of what is free


@dataclass(frozen=True)
class Architecture:
    """The sizes of a checkpoint that decide its memory.

    Attributes:
        unet_channels: the UNet's first block width (320 in the published model).
        vae_channels: the VAE's first block width (128).
        parameters: UNet + VAE parameters (the text encoder is dropped after loading).
    """

    unet_channels: int = 320
    vae_channels: int = 128
    parameters: int = 949_600_000


PUBLISHED = Architecture()


def architecture_of(model) -> Architecture:
    """The `Architecture` of a loaded `DepthModel`."""
    count = sum(p.numel() for p in model.unet.parameters()) + sum(p.numel() for p in model.vae.parameters())
    return Architecture(
        unet_channels=int(model.unet.config.block_out_channels[0]),
        vae_channels=int(model.vae.config.block_out_channels[0]),
        parameters=int(count),
    )


def architecture_from_folder(folder: str | os.PathLike) -> Architecture:
    """The `Architecture` of a checkpoint folder, from its configs and weight file sizes.

    Falls back to `PUBLISHED` for anything that cannot be read (e.g. a repo id).
    """
    import json

    folder = Path(folder)
    try:
        unet = json.loads((folder / "unet" / "config.json").read_text())
        vae = json.loads((folder / "vae" / "config.json").read_text())
    except (OSError, ValueError):
        return PUBLISHED
    sizes = []
    for component in ("unet", "vae"):
        files = sorted((folder / component).glob("*.safetensors"))
        full = [f for f in files if ".fp16." not in f.name]
        half = [f for f in files if ".fp16." in f.name]
        if full:
            sizes.append(full[0].stat().st_size // 4)
        elif half:
            sizes.append(half[0].stat().st_size // 2)
    return Architecture(
        unet_channels=int(unet.get("block_out_channels", [320])[0]),
        vae_channels=int(vae.get("block_out_channels", [128])[0]),
        parameters=int(sum(sizes)) if len(sizes) == 2 else PUBLISHED.parameters,
    )


@dataclass(frozen=True)
class MemoryEstimate:
    """Bytes a run needs at its peak.

    Attributes:
        host: on the host (RAM), device work included when the device is the CPU.
        device: on the accelerator (0 when the run is on the CPU).
        host_parts, device_parts: the largest items, for the message.
    """

    host: int
    device: int
    host_parts: dict[str, int] = field(default_factory=dict)
    device_parts: dict[str, int] = field(default_factory=dict)


def _padded(size: tuple[int, int]) -> tuple[int, int]:
    return (-(-size[0] // 8) * 8, -(-size[1] // 8) * 8)


def estimate_run_memory(
    num_frames: int,
    size: tuple[int, int],
    num_predictions: int,
    dtype: torch.dtype,
    device: torch.device | str,
    architecture: Architecture = PUBLISHED,
    input_size: tuple[int, int] | None = None,
    snippets_on_disk: bool = False,
    frames_in_memory: bool = False,
    restore_size: bool = False,
    weights_loaded: bool = False,
    snippets_per_batch: int | str = 1,
    vae_batch_size: int | str = 1,
    snippet_length: int = 3,
    spread: bool = False,
) -> MemoryEstimate:
    """Peak host and device memory of a run.

    Args:
        num_frames: `N`.
        size: processing size `(H, W)` (before padding to multiples of 8).
        num_predictions: snippet frames predicted in all (`sum over groups of s n`).
        dtype: compute dtype of the model.
        device: where the model runs.
        architecture: the checkpoint's sizes.
        input_size: `(H0, W0)` of the input (for ``restore_size`` and frames in memory).
        snippets_on_disk: snippet depths go to temporary files (``storage_dir``).
        frames_in_memory: the frames are read up front at the processing size (image folders).
        restore_size: the depth is resized back to ``input_size``.
        weights_loaded: the weights are already on ``device`` (their bytes are in use already).
        snippets_per_batch, vae_batch_size: the batches, or "auto" / `AutoBatch`: on a GPU
            automatic batches grow from 1 into what is free (1 is the floor that must fit),
            on a CPU they are the fixed defaults (8 snippets, 4 frames).
        spread: the spread of the predictions is kept too (one more video of each size).
    """
    device = torch.device(device)
    snippets_per_batch, vae_batch_size = (
        b if isinstance(b, int) else (default if device.type == "cpu" else 1)
        for b, default in (
            (snippets_per_batch, DEFAULT_SNIPPETS_PER_BATCH), (vae_batch_size, DEFAULT_VAE_BATCH_SIZE)
        )
    )
    height, width = size
    padded = _padded(size)
    latent = (padded[0] // 8, padded[1] // 8)
    element = torch.empty((), dtype=dtype).element_size()
    storage = 4 if dtype == torch.float32 else 2
    pixels = height * width
    host = {
        "snippet depths": 0 if snippets_on_disk else num_predictions * pixels * storage,
        "RGB latents": num_frames * 4 * latent[0] * latent[1] * 4,
        "depth videos": 2 * num_frames * pixels * 4,  # co-aligned + final
    }
    if frames_in_memory:
        host["frames read up front"] = num_frames * 3 * pixels * 4
    if restore_size and input_size is not None:
        host["depth at input size"] = num_frames * input_size[0] * input_size[1] * 4
    if spread:
        host["spread"] = num_frames * pixels * 4 + host.get("depth at input size", 0)
    unet = UNET_ACTIVATIONS * architecture.unet_channels * latent[0] * latent[1] * snippet_length
    unet *= snippets_per_batch
    vae = max(DECODER_ACTIVATIONS, ENCODER_ACTIVATIONS) * architecture.vae_channels * padded[0] * padded[1]
    vae *= vae_batch_size
    work = {
        "weights": 0 if weights_loaded else architecture.parameters * element,
        "activations of one batch": int(max(unet, vae) * element * ALLOCATOR_OVERHEAD),
    }
    if device.type == "cpu":
        host.update(work)
        return MemoryEstimate(sum(host.values()), 0, host, {})
    return MemoryEstimate(sum(host.values()), sum(work.values()), host, work)


def available_host_memory() -> int | None:
    """Bytes of RAM the process can still use (MemAvailable, within a cgroup limit), or None."""
    available = None
    try:
        with open("/proc/meminfo") as handle:
            for line in handle:
                if line.startswith("MemAvailable:"):
                    available = int(line.split()[1]) * 1024
                    break
    except OSError:
        try:
            available = os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
        except (ValueError, OSError, AttributeError):
            available = None
    try:
        limit = Path("/sys/fs/cgroup/memory.max").read_text().strip()
        used = int(Path("/sys/fs/cgroup/memory.current").read_text())
        if limit != "max":
            room = int(limit) - used
            available = room if available is None else min(available, room)
    except (OSError, ValueError):
        pass
    return available


def _describe(total: int, parts: dict[str, int]) -> str:
    biggest = sorted(((v, k) for k, v in parts.items() if v), reverse=True)[:3]
    return f"{total / GB:.1f} GB (" + ", ".join(f"{k} {v / GB:.1f} GB" for v, k in biggest) + ")"


def check_memory(
    estimate: MemoryEstimate, device: torch.device | str, what: str, fix: str,
    host_free: int | None = None, device_free: int | None = None,
) -> None:
    """Refuse a run whose estimate exceeds free memory; warn when it needs most of it.

    Args:
        estimate: from `estimate_run_memory`.
        device: where the model runs.
        what: the run, for the message ("250 frames at 1024x576").
        fix: what the user can change, in the caller's words.
        host_free, device_free: free bytes (default: asked from the system and the device).

    Raises:
        InvalidSettings: with the estimate, its largest parts and the free memory.
    """
    host_free = available_host_memory() if host_free is None else host_free
    device_free = devices.free_memory(device) if device_free is None else device_free
    checks = (("host memory (RAM)", estimate.host, estimate.host_parts, host_free),
              (f"{torch.device(device)} memory", estimate.device, estimate.device_parts, device_free))
    for name, need, parts, free in checks:
        if not need or free is None:
            continue
        if need > free:
            raise InvalidSettings(
                f"{what} needs about {_describe(need, parts)} of {name}; {free / GB:.1f} GB is "
                f"free. {fix}"
            )
        if need > WARN_FRACTION * free:
            logger.warning("%s needs about %.1f GB of %s; %.1f GB is free.", what, need / GB, name, free / GB)
