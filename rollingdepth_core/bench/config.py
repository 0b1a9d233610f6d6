"""What one benchmark run is: its configuration, model, sizes and FLOPs (no measuring here)."""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass

import torch

from ..coalign.methods import DEFAULT_METHOD
from ..coalign.problem import CoalignSettings
from ..io.frames import padding_for, processing_size
from ..model.checkpoint import resolve_dtype
from ..presets import Preset, get_preset
from ..runtime import batch_sizes
from ..stages.snippets import effective_snippet_length, plan_snippets, refine_dilations, snippet_indices
from ..types import DepthModel

MODES = ("reference", "ours")
GIB = float(1 << 30)


@dataclass(frozen=True)
class BenchConfig:
    """Everything that defines one benchmark run (JSON-serialisable)."""

    arch: str = "full"
    checkpoint: str | None = None
    device: str = "cpu"
    dtype: str = "fp16"
    frames: int = 250
    input_size: tuple[int, int] = (432, 768)
    preset: str = "fast"
    resolution: int | None = None
    dilations: tuple[int, ...] | None = None
    refine_steps: int | None = None
    coalign_method: str = DEFAULT_METHOD
    reference_coalign_method: str = "reference"
    coalign_iterations: int = 2000
    snippets_per_batch: str = "auto"
    vae_batch_size: str = "auto"
    memory_limit_gb: float | None = 10.0
    channels_last: bool = True
    compile: bool = False
    attention: str = "auto"
    cudnn_benchmark: bool = True
    warmup: bool = True
    seed: int = 0
    storage_dir: str | None = None
    compare_stride: int = 4
    threads: int | None = None

    def settings(self) -> Preset:
        """The preset with this config's overrides."""
        preset = get_preset(self.preset)
        changes = {}
        if self.resolution is not None:
            changes["processing_resolution"] = self.resolution
        if self.dilations is not None:
            changes["dilations"] = tuple(self.dilations)
        if self.refine_steps is not None:
            changes["refine_steps"] = self.refine_steps
        return dataclasses.replace(preset, **changes)

    def coalign_settings(self) -> CoalignSettings:
        return CoalignSettings(num_iterations=self.coalign_iterations)


def batch_value(text: str) -> int | batch_sizes.AutoBatch:
    """A batch-size option: a number, or anything else for an automatic batch."""
    return int(text) if str(text).isdigit() else batch_sizes.AutoBatch()


def build(config: BenchConfig) -> DepthModel:
    """The model of a config: random weights of ``arch``, or a checkpoint."""
    device = torch.device(config.device)
    if config.checkpoint:
        from ..model.checkpoint import load_model

        return load_model(config.checkpoint, device=device, dtype=config.dtype)
    from .architectures import build_model

    return build_model(config.arch, device, resolve_dtype(config.dtype, device), seed=config.seed)


def network_configs(config: BenchConfig) -> tuple[dict, dict]:
    """UNet and VAE configs of the benchmarked model (without building it)."""
    if config.checkpoint:
        from ..model.checkpoint import resolve_checkpoint

        root = resolve_checkpoint(config.checkpoint, allow_download=False).root
        return (json.loads((root / "unet" / "config.json").read_text()),
                json.loads((root / "vae" / "config.json").read_text()))
    from .architectures import unet_config, vae_config

    return unet_config(config.arch), vae_config(config.arch)


def model_flops(config: BenchConfig) -> dict:
    """FLOPs of the run (mode-independent: both modes do the same arithmetic)."""
    from .flops import call_flops

    unet_config, vae_config = network_configs(config)
    settings = config.settings()
    size = processing_size(*config.input_size, settings.processing_resolution)
    pad = padding_for(size)
    padded = (size[0] + pad[0], size[1] + pad[1])
    plan = plan_snippets(config.frames, settings.dilations, settings.snippet_length, settings.cap_dilation)
    per_call = call_flops(unet_config, vae_config, padded, plan.snippet_length)
    unet = plan.num_snippets * per_call.unet_snippet
    decode = plan.num_snippets * plan.snippet_length * per_call.decode_frame
    encode = config.frames * per_call.encode_frame
    refine = 0
    if settings.refine_steps > 0:
        length = effective_snippet_length(config.frames, settings.refine_snippet_length)
        refine_call = (
            per_call if length == plan.snippet_length
            else call_flops(unet_config, vae_config, padded, length)
        )
        dilations = refine_dilations(
            settings.refine_steps, settings.refine_start_dilation, config.frames, length,
            settings.cap_dilation,
        )
        calls = sum(snippet_indices(config.frames, length, d).shape[0] for d in dilations)
        refine = (
            calls * refine_call.unet_snippet
            + config.frames * (refine_call.encode_frame + refine_call.decode_frame)
        )
    return {
        "unet_snippet": per_call.unet_snippet, "decode_frame": per_call.decode_frame,
        "encode_frame": per_call.encode_frame, "encode": encode, "unet": unet,
        "decode": decode, "refine": refine, "total": encode + unet + decode + refine,
        "num_snippets": plan.num_snippets, "padded_size": padded,
        "dilations": plan.dilations,
    }


@dataclass(frozen=True)
class Geometry:
    """The sizes of one run.

    Attributes:
        settings: the preset with the config's overrides.
        size: `(H, W)` processing size. padded: `(H', W')`, multiples of 8.
        latent: `(h, w)` = padded / 8. snippet_length: `n` used on this clip.
    """

    settings: Preset
    size: tuple[int, int]
    padded: tuple[int, int]
    latent: tuple[int, int]
    snippet_length: int


def geometry(config: BenchConfig) -> Geometry:
    """Processing, padded and latent sizes and the snippet length of ``config``'s clip."""
    settings = config.settings()
    size = processing_size(*config.input_size, settings.processing_resolution)
    pad = padding_for(size)
    padded = (size[0] + pad[0], size[1] + pad[1])
    return Geometry(settings, size, padded, (padded[0] // 8, padded[1] // 8),
                    effective_snippet_length(config.frames, settings.snippet_length))
