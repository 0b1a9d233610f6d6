"""Run one benchmark mode ("reference" or "ours") and measure it, in this or a fresh process.

A fresh process per mode gives honest peaks (host RSS high-water mark, allocator state)
and cannot leak warm caches from one mode into the other.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import os
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import torch

from ..coalign.methods import DEFAULT_METHOD, coalign_depth
from ..coalign.problem import CoalignSettings
from ..io.frames import padding_for, processing_size
from ..model.checkpoint import resolve_dtype
from ..model.noise import make_noise
from ..model.speedups import SpeedOptions, apply_speedups
from ..presets import Preset, get_preset
from ..runtime import batch_sizes, devices
from ..stages.denoise import denoise_snippets
from ..stages.encode import encode_frames
from ..stages.refine import refine_depth
from ..stages.snippets import effective_snippet_length, plan_snippets, refine_dilations, snippet_indices
from ..types import DepthModel, RunBatches
from .synthetic_frames import SyntheticSource
from .timing import ModuleTimer, StageClock

logger = logging.getLogger(__name__)

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


def _batch_value(text: str) -> int | batch_sizes.AutoBatch:
    return int(text) if str(text).isdigit() else batch_sizes.AutoBatch()


def host_rss() -> int:
    """Resident host memory of this process now, in bytes."""
    try:
        import psutil

        return int(psutil.Process().memory_info().rss)
    except ImportError:
        with open("/proc/self/statm") as handle:
            return int(handle.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def peak_host_rss() -> int:
    """High-water mark of resident host memory of this process, in bytes."""
    import resource

    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return int(peak) * (1 if sys.platform == "darwin" else 1024)


class MemorySampler:
    """Peak anonymous (heap) and file-backed resident memory, sampled in a thread (Linux).

    The kernel's high-water mark counts pages of memory-mapped files too, which it can
    drop at any time; anonymous memory is what a process really needs.
    """

    def __init__(self, interval: float = 0.02):
        import threading

        self.interval = interval
        self.peak_anon = 0
        self.peak_file = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self.available = Path("/proc/self/status").is_file()

    def _sample(self) -> None:
        fields = {}
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith(("RssAnon:", "RssFile:", "RssShmem:")):
                name, value = line.split(":")
                fields[name] = int(value.split()[0]) * 1024
        self.peak_anon = max(self.peak_anon, fields.get("RssAnon", 0))
        self.peak_file = max(self.peak_file, fields.get("RssFile", 0) + fields.get("RssShmem", 0))

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            self._sample()

    def __enter__(self) -> MemorySampler:
        if self.available:
            self._sample()
            self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        if self.available:
            self._stop.set()
            self._thread.join()
            self._sample()


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


@torch.no_grad()
def warm_up(model: DepthModel, padded: tuple[int, int], snippet_length: int, snippets: int,
            vae_frames: int) -> None:
    """One call of each network at the run's batch sizes (lazy init, kernel autotuning)."""
    latent = (padded[0] // 8, padded[1] // 8)
    device, dtype = model.device, model.dtype
    model.unet(
        torch.zeros(snippets * snippet_length, 8, *latent, device=device, dtype=dtype),
        torch.tensor(999, device=device), encoder_hidden_states=model.empty_text_embed,
        cross_attention_kwargs={"num_frames": snippet_length},
    )
    model.vae.decoder(torch.zeros(vae_frames, 4, *latent, device=device, dtype=dtype))
    model.vae.encoder(torch.zeros(vae_frames, 3, *padded, device=device, dtype=dtype))
    devices.synchronize(device)


def run_mode(config: BenchConfig, mode: str, save_path: str | None = None) -> dict:
    """Build the model, run ``mode`` on a synthetic clip, and measure it (in this process)."""
    if mode not in MODES:
        raise ValueError(f"mode must be one of {MODES}; got {mode!r}")
    if config.threads:
        torch.set_num_threads(config.threads)
    device = torch.device(config.device)
    if device.type == "cuda":
        torch.backends.cudnn.benchmark = config.cudnn_benchmark
    tic = time.perf_counter()
    model = build(config)
    if mode == "ours":
        apply_speedups(model, SpeedOptions(
            channels_last=config.channels_last, attention_backend=config.attention,
            compile=config.compile,
        ))
    build_seconds = time.perf_counter() - tic
    settings = config.settings()
    source = SyntheticSource(config.frames, config.input_size, seed=config.seed)
    size = processing_size(*config.input_size, settings.processing_resolution)
    pad = padding_for(size)
    padded = (size[0] + pad[0], size[1] + pad[1])
    length = effective_snippet_length(config.frames, settings.snippet_length)
    latent = (padded[0] // 8, padded[1] // 8)
    limit = None if config.memory_limit_gb is None else int(config.memory_limit_gb * GIB)

    if mode == "ours":
        def policy(text):
            value = _batch_value(text)
            if isinstance(value, batch_sizes.AutoBatch):  # calibrating would compile more shapes
                return batch_sizes.AutoBatch(memory_limit=limit, measure=not config.compile)
            return value

        snippets_per_batch = batch_sizes.snippet_batch_size(
            model, latent, length, policy(config.snippets_per_batch)
        )
        vae_batch = batch_sizes.vae_batch_size(model, padded, policy(config.vae_batch_size))
    else:
        snippets_per_batch, vae_batch = 1, 4
    if config.warmup:  # two batch sizes each: a compiled model then has dynamic batch shapes
        warm_up(model, padded, length, max(1, snippets_per_batch - 1), max(1, vae_batch - 1))
        warm_up(model, padded, length, snippets_per_batch, vae_batch)

    modules = None if config.compile else ModuleTimer(device)
    if modules is not None:
        modules.attach(model.unet, "unet")
        modules.attach(model.vae.decoder, "decoder")
        modules.attach(model.vae.encoder, "encoder")
    clock = StageClock(device, modules)
    rss_ready = host_rss()
    devices.reset_peak_memory(device)
    allocated_ready = devices.allocated_memory(device)
    sampler = MemorySampler()
    sampler.__enter__()
    anon_ready = sampler.peak_anon
    tic = time.perf_counter()
    if mode == "reference":
        from .reference_style import run_reference_style

        out = run_reference_style(
            model, source, settings, config.seed, config.reference_coalign_method,
            config.coalign_settings(), clock,
        )
        depth, snippet_depths = out["depth"], out["snippets"]
    else:
        plan = plan_snippets(
            config.frames, settings.dilations, settings.snippet_length, settings.cap_dilation
        )
        batches = RunBatches(snippets_per_batch, vae_batch)
        with clock.stage("encode"):
            encoded = encode_frames(
                model, source, settings.processing_resolution, batches, storage_device="cpu"
            )
        noise = make_noise(latent, config.seed)
        with clock.stage("denoise"):
            snippets = denoise_snippets(
                model, encoded, plan, noise, batches, storage_dir=config.storage_dir,
            )
        with clock.stage("align"):
            video, _alignment = coalign_depth(
                snippets, config.coalign_method, config.coalign_settings()
            )
        depth = video.inverse_depth
        if settings.refine_steps > 0:
            with clock.stage("refine"):
                depth = refine_depth(
                    model, encoded, video.inverse_depth, noise, settings.refine_steps,
                    settings.refine_start_dilation, settings.refine_snippet_length,
                    settings.cap_dilation, batches,
                )
        snippet_depths = snippets.depths
    devices.synchronize(device)
    total = time.perf_counter() - tic
    sampler.__exit__(None, None, None)
    result = {
        "mode": mode,
        "seconds": dict(clock.seconds, total=total),
        "module_seconds": modules.totals() if modules is not None else {},
        "peak_vram": devices.peak_memory(device),
        "vram_at_start": allocated_ready,
        "peak_rss": peak_host_rss(),
        "rss_ready": rss_ready,
        "rss_end": host_rss(),
        "peak_anon": sampler.peak_anon if sampler.available else None,
        "anon_ready": anon_ready if sampler.available else None,
        "peak_file": sampler.peak_file if sampler.available else None,
        "snippets_per_batch": snippets_per_batch,
        "vae_batch_size": vae_batch,
        "build_seconds": build_seconds,
        "device_name": devices.device_name(device),
        "threads": torch.get_num_threads(),
    }
    if save_path:
        stride = max(1, config.compare_stride)
        torch.save({
            "depth": depth[:, ::stride, ::stride].float().clone(),
            "snippets": [d[..., ::stride, ::stride].float().clone() for d in snippet_depths],
        }, save_path)
    return result


def run_mode_in_subprocess(config: BenchConfig, mode: str, save_path: str | None = None) -> dict:
    """`run_mode` in a fresh Python process (its log goes to this process's stderr)."""
    root = str(Path(__file__).resolve().parents[2])
    env = dict(os.environ)
    env["PYTHONPATH"] = root + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
    with tempfile.TemporaryDirectory(prefix="rollingdepth-bench-") as folder:
        config_path = Path(folder) / "config.json"
        result_path = Path(folder) / "result.json"
        config_path.write_text(json.dumps(asdict(config)))
        command = [sys.executable, "-m", "rollingdepth_core.bench.runner", str(config_path), mode,
                   str(result_path), save_path or ""]
        completed = subprocess.run(command, env=env, check=False)
        if completed.returncode != 0 or not result_path.is_file():
            raise RuntimeError(f"benchmark mode {mode!r} failed (exit code {completed.returncode}).")
        return json.loads(result_path.read_text())


def config_from_json(text: str) -> BenchConfig:
    data = json.loads(text)
    for key in ("input_size", "dilations"):
        if data.get(key) is not None:
            data[key] = tuple(data[key])
    return BenchConfig(**data)


def _child(argv: list[str]) -> int:
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    config = config_from_json(Path(argv[0]).read_text())
    result = run_mode(config, argv[1], argv[3] or None)
    Path(argv[2]).write_text(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(_child(sys.argv[1:]))
