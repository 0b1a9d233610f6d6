"""Run one benchmark mode ("reference" or "ours") and measure it, in this or a fresh process.

A fresh process per mode gives honest peaks (host RSS high-water mark, allocator state)
and cannot leak warm caches from one mode into the other.
"""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict
from pathlib import Path

import torch

from ..coalign.methods import coalign_depth
from ..model.noise import make_noise
from ..model.speedups import SpeedOptions, apply_speedups
from ..runtime import batch_sizes, devices
from ..stages.denoise import denoise_snippets
from ..stages.encode import encode_frames
from ..stages.refine import refine_depth
from ..stages.snippets import plan_snippets
from ..types import DepthModel, RunBatches
from .config import GIB, MODES, BenchConfig, Geometry, batch_value, build, geometry, model_flops
from .measure import Measurement
from .synthetic_frames import SyntheticSource
from .timing import ModuleTimer, StageClock

__all__ = ["GIB", "MODES", "BenchConfig", "model_flops", "run_mode", "run_mode_in_subprocess"]

logger = logging.getLogger(__name__)


def prepare_torch(config: BenchConfig) -> torch.device:
    """Thread count and cuDNN autotuning as configured; the device."""
    if config.threads:
        torch.set_num_threads(config.threads)
    device = torch.device(config.device)
    if device.type == "cuda":
        torch.backends.cudnn.benchmark = config.cudnn_benchmark
    return device


def build_for_mode(config: BenchConfig, mode: str) -> tuple[DepthModel, float]:
    """The model, with our speed options for "ours" (the reference style runs it plain);
    and the seconds it took."""
    tic = time.perf_counter()
    model = build(config)
    if mode == "ours":
        apply_speedups(model, SpeedOptions(
            channels_last=config.channels_last, attention_backend=config.attention,
            compile=config.compile,
        ))
    return model, time.perf_counter() - tic


def resolve_batches(model: DepthModel, config: BenchConfig, geo: Geometry, mode: str) -> tuple[int, int]:
    """`(snippets per UNet call, frames per VAE call)`: the reference's fixed 1 and 4, or ours
    as a user gets them ("auto": calibrated on the device within the memory limit)."""
    if mode == "reference":
        from .reference_style import VAE_BATCH

        return 1, VAE_BATCH
    limit = None if config.memory_limit_gb is None else int(config.memory_limit_gb * GIB)

    def policy(text: str) -> int | batch_sizes.AutoBatch:
        value = batch_value(text)
        if isinstance(value, batch_sizes.AutoBatch):  # calibrating would compile more shapes
            return batch_sizes.AutoBatch(memory_limit=limit, measure=not config.compile)
        return value

    snippets = batch_sizes.snippet_batch_size(
        model, geo.latent, geo.snippet_length, policy(config.snippets_per_batch)
    )
    return snippets, batch_sizes.vae_batch_size(model, geo.padded, policy(config.vae_batch_size))


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


def module_timer(model: DepthModel, config: BenchConfig, device: torch.device) -> ModuleTimer | None:
    """Timers on the UNet, decoder and encoder (none on a compiled model: hooks break graphs)."""
    if config.compile:
        return None
    modules = ModuleTimer(device)
    modules.attach(model.unet, "unet")
    modules.attach(model.vae.decoder, "decoder")
    modules.attach(model.vae.encoder, "encoder")
    return modules


def run_ours(
    model: DepthModel, config: BenchConfig, geo: Geometry, batches: tuple[int, int], source,
    clock: StageClock,
) -> tuple[torch.Tensor, tuple]:
    """Our pipeline stage by stage (as `estimate_depth`), each stage timed by ``clock``.

    Returns:
        `(depth N H W, snippet depths per group)`.
    """
    settings = geo.settings
    run_batches = RunBatches(*batches)
    plan = plan_snippets(
        config.frames, settings.dilations, settings.snippet_length, settings.cap_dilation
    )
    with clock.stage("encode"):
        encoded = encode_frames(
            model, source, settings.processing_resolution, run_batches, storage_device="cpu"
        )
    noise = make_noise(geo.latent, config.seed)
    with clock.stage("denoise"):
        snippets = denoise_snippets(
            model, encoded, plan, noise, run_batches, storage_dir=config.storage_dir,
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
                settings.cap_dilation, run_batches,
            )
    return depth, snippets.depths


def save_outputs(path: str, depth: torch.Tensor, snippet_depths, stride: int) -> None:
    """Every ``stride``-th pixel of the depth and the snippet depths, for comparing the modes."""
    stride = max(1, stride)
    torch.save({
        "depth": depth[:, ::stride, ::stride].float().clone(),
        "snippets": [d[..., ::stride, ::stride].float().clone() for d in snippet_depths],
    }, path)


def run_mode(config: BenchConfig, mode: str, save_path: str | None = None) -> dict:
    """Build the model, run ``mode`` on a synthetic clip, and measure it (in this process).

    Both modes are warmed up at their batch sizes first (lazy initialisation, kernel
    autotuning). The timed part of "ours" starts with resolving its batch sizes, so an
    automatic batch's calibration on the device is paid as a user pays it ("batch sizes").
    """
    if mode not in MODES:
        raise ValueError(f"mode must be one of {MODES}; got {mode!r}")
    device = prepare_torch(config)
    model, build_seconds = build_for_mode(config, mode)
    geo = geometry(config)
    source = SyntheticSource(config.frames, config.input_size, seed=config.seed)
    batches = resolve_batches(model, config, geo, mode)  # untimed: which shapes to warm up
    if config.warmup:  # two batch sizes each: a compiled model then has dynamic batch shapes
        warm_up(model, geo.padded, geo.snippet_length, max(1, batches[0] - 1), max(1, batches[1] - 1))
        warm_up(model, geo.padded, geo.snippet_length, *batches)
    modules = module_timer(model, config, device)
    clock = StageClock(device, modules)
    with Measurement(device) as measured:
        if mode == "reference":
            from .reference_style import run_reference_style

            out = run_reference_style(
                model, source, geo.settings, config.seed, config.reference_coalign_method,
                config.coalign_settings(), clock,
            )
            depth, snippet_depths = out["depth"], out["snippets"]
        else:
            with clock.stage("batch sizes"):
                batches = resolve_batches(model, config, geo, mode)
            depth, snippet_depths = run_ours(model, config, geo, batches, source, clock)
    result = {
        "mode": mode,
        "seconds": dict(clock.seconds, total=measured.seconds),
        "module_seconds": modules.totals() if modules is not None else {},
        "module_calls": modules.calls() if modules is not None else {},
        **measured.figures(),
        "snippets_per_batch": batches[0],
        "vae_batch_size": batches[1],
        "build_seconds": build_seconds,
        "device_name": devices.device_name(device),
        "threads": torch.get_num_threads(),
    }
    if save_path:
        save_outputs(save_path, depth, snippet_depths, config.compare_stride)
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
