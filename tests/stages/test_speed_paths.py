"""The fast paths compute the same numbers: batching, out-of-memory retries, lazy sources,
disk-backed storage; and the device working set does not grow with the clip."""

from __future__ import annotations

import dataclasses
import logging

import pytest
import torch

import rollingdepth_core.model.vae_batches as vae_batches
import rollingdepth_core.stages.denoise as denoise
import rollingdepth_core.stages.refine as refine
from rollingdepth_core import (
    PRESETS,
    CoalignSettings,
    RunBatches,
    encode_frames,
    estimate_depth,
    make_noise,
    plan_snippets,
)
from rollingdepth_core.bench.memtrack import LiveBytes
from rollingdepth_core.bench.synthetic_frames import SyntheticSource
from rollingdepth_core.errors import InvalidSettings
from rollingdepth_core.io.sources import TensorSource
from rollingdepth_core.runtime.batch_sizes import resolve_run_batches
from rollingdepth_core.runtime.storage import is_stored_on_disk
from rollingdepth_core.stages.denoise import denoise_snippets
from rollingdepth_core.stages.refine import refine_latents

# Tolerance for batched against one-at-a-time (fp32, CPU): different batch sizes may pick
# different convolution kernels; SPEC §6 allows 1e-4 for snippet depths and refinement.
ATOL = 1e-5


def fake_oom() -> torch.OutOfMemoryError:
    return torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB (fake)")


@pytest.fixture(scope="module")
def clip():
    return SyntheticSource(12, (32, 40), seed=3)


@pytest.fixture(scope="module")
def encoded(tiny_model, clip):
    return encode_frames(tiny_model, clip, processing_resolution=0, batches=RunBatches(vae=4))


@pytest.fixture(scope="module")
def plan():
    return plan_snippets(12, (1, 3), 3)


@pytest.fixture(scope="module")
def one_at_a_time(tiny_model, encoded, plan):
    noise = make_noise(tuple(encoded.latents.shape[-2:]), 5)
    return denoise_snippets(tiny_model, encoded, plan, noise, RunBatches(1, 1))


def test_batched_snippets_equal_one_at_a_time(tiny_model, encoded, plan, one_at_a_time):
    batched = denoise_snippets(
        tiny_model, encoded, plan, one_at_a_time.noise, RunBatches(7, 5)
    )
    for a, b in zip(one_at_a_time.depths, batched.depths, strict=True):
        torch.testing.assert_close(b, a, rtol=0, atol=ATOL)


def test_batched_refinement_equals_one_at_a_time(tiny_model, encoded):
    depth_latents = encoded.latents.flip(0) * 0.5  # any latents will do
    noise = make_noise(tuple(encoded.latents.shape[-2:]), 1)
    args = (tiny_model, encoded.latents, depth_latents, noise, 2, 3, 3, True)
    torch.testing.assert_close(
        refine_latents(*args, batches=RunBatches(6)), refine_latents(*args, batches=RunBatches(1)),
        rtol=0, atol=ATOL,
    )


def test_unet_oom_halves_and_retries_without_losing_work(
    tiny_model, encoded, plan, one_at_a_time, monkeypatch, caplog
):
    real = denoise.denoise_step
    done = []

    def limited(model, scheduler, rgb, latents, timestep, num_frames):
        if rgb.shape[0] > 2 * num_frames:  # more than 2 snippets do not fit
            raise fake_oom()
        done.append(rgb.shape[0] // num_frames)
        return real(model, scheduler, rgb, latents, timestep, num_frames)

    monkeypatch.setattr(denoise, "denoise_step", limited)
    with caplog.at_level(logging.WARNING, logger="rollingdepth_core.runtime.batch_loop"):
        retried = denoise_snippets(tiny_model, encoded, plan, one_at_a_time.noise, RunBatches(8, 4))
    assert "Out of memory" in caplog.text and "retrying with 4 snippets" in caplog.text
    assert sum(done) == plan.num_snippets  # every snippet once: nothing lost, nothing twice
    for a, b in zip(one_at_a_time.depths, retried.depths, strict=True):
        torch.testing.assert_close(b, a, rtol=0, atol=ATOL)


def test_decoder_oom_shrinks_the_vae_batch_for_good(
    tiny_model, encoded, plan, one_at_a_time, monkeypatch, caplog
):
    real = denoise.decode_depth
    sizes = []

    def limited(vae, latents):
        if latents.shape[0] > 3:
            raise fake_oom()
        sizes.append(latents.shape[0])
        return real(vae, latents)

    monkeypatch.setattr(denoise, "decode_depth", limited)
    with caplog.at_level(logging.WARNING, logger="rollingdepth_core.runtime.batch_loop"):
        retried = denoise_snippets(tiny_model, encoded, plan, one_at_a_time.noise, RunBatches(4, 12))
    assert "retrying with 6 VAE frames" in caplog.text
    assert caplog.text.count("Out of memory") == 2  # 12 -> 6 -> 3 once; later batches start at 3
    assert sum(sizes) == plan.num_snippets * 3 and max(sizes) <= 3
    for a, b in zip(one_at_a_time.depths, retried.depths, strict=True):
        torch.testing.assert_close(b, a, rtol=0, atol=ATOL)


def test_encoder_oom_retries_every_frame_once(tiny_model, clip, encoded, monkeypatch, caplog):
    real = vae_batches.encode_images
    frames = []

    def limited(vae, images, batch_size=4, *args, **kwargs):
        if images.shape[0] > 2:
            raise fake_oom()
        frames.append(images.shape[0])
        return real(vae, images, batch_size, *args, **kwargs)

    monkeypatch.setattr(vae_batches, "encode_images", limited)
    with caplog.at_level(logging.WARNING, logger="rollingdepth_core.runtime.batch_loop"):
        retried = encode_frames(tiny_model, clip, processing_resolution=0, batches=RunBatches(vae=8))
    assert "retrying with 2 frames" in caplog.text
    assert sum(frames) == clip.num_frames
    torch.testing.assert_close(retried.latents, encoded.latents, rtol=0, atol=ATOL)


def test_refinement_oom_retries(tiny_model, encoded, monkeypatch):
    depth_latents = encoded.latents * 0.3
    noise = make_noise(tuple(encoded.latents.shape[-2:]), 2)
    args = (tiny_model, encoded.latents, depth_latents, noise, 1, 3, 3, True)
    expected = refine_latents(*args, batches=RunBatches(4))
    real = refine.denoise_step

    def limited(model, scheduler, rgb, latents, timestep, num_frames):
        if rgb.shape[0] > num_frames:
            raise fake_oom()
        return real(model, scheduler, rgb, latents, timestep, num_frames)

    monkeypatch.setattr(refine, "denoise_step", limited)
    torch.testing.assert_close(refine_latents(*args, batches=RunBatches(4)), expected, rtol=0, atol=ATOL)


def test_disk_backed_snippets_equal_in_memory(tiny_model, encoded, plan, one_at_a_time, tmp_path):
    on_disk = denoise_snippets(
        tiny_model, encoded, plan, one_at_a_time.noise, RunBatches(1, 1), storage_dir=str(tmp_path)
    )
    for a, b in zip(one_at_a_time.depths, on_disk.depths, strict=True):
        assert is_stored_on_disk(b)  # read and written by slices, never mapped for good
        torch.testing.assert_close(b[...], a, rtol=0, atol=0)


def test_auto_batch_sizes_run_on_cpu(tiny_model, clip, encoded, plan, one_at_a_time):
    batches = resolve_run_batches(tiny_model, clip.input_size, 0, plan.snippet_length, "auto", "auto")
    assert batches == RunBatches(8, 4)  # free memory unknown on a CPU: the defaults
    auto = denoise_snippets(tiny_model, encoded, plan, one_at_a_time.noise, batches)
    with pytest.raises(InvalidSettings, match="resolve_run_batches"):
        denoise_snippets(tiny_model, encoded, plan, one_at_a_time.noise, "auto")  # stages take no "auto"
    for a, b in zip(one_at_a_time.depths, auto.depths, strict=True):
        torch.testing.assert_close(b, a, rtol=0, atol=ATOL)


@torch.no_grad()
def test_working_set_does_not_grow_with_the_clip(tiny_model):
    """Memory of everything but the results is the same for N and 4N frames (the CPU
    stands in for the accelerator: every intermediate tensor is counted)."""
    transient, batches = [], []
    for num_frames in (8, 32):
        source = SyntheticSource(num_frames, (24, 32), seed=0)
        plan = plan_snippets(num_frames, (1, 3), 3)
        seen = []
        handle = tiny_model.unet.register_forward_pre_hook(
            lambda module, args, seen=seen: seen.append(args[0].shape[0])
        )
        try:
            with LiveBytes() as tracker:
                encoded = encode_frames(tiny_model, source, 0, RunBatches(vae=4))
                noise = make_noise(tuple(encoded.latents.shape[-2:]), 0)
                snippets = denoise_snippets(tiny_model, encoded, plan, noise, RunBatches(4, 4))
        finally:
            handle.remove()
        results = encoded.latents.nbytes + sum(d.nbytes for d in snippets.depths)
        transient.append(tracker.peak - results)
        batches.append(max(seen))
    assert batches[0] == batches[1] == 4 * 3
    assert abs(transient[1] - transient[0]) <= 0.05 * transient[0]


def test_pipeline_from_a_source_equals_from_a_tensor(tiny_model):
    source = SyntheticSource(10, (24, 40), seed=9)
    frames = source.read(0, 10)
    settings = dataclasses.replace(
        PRESETS["paper"], processing_resolution=0, dilations=(1, 3), refine_steps=2,
        refine_start_dilation=2,
    )
    kwargs = dict(seed=4, coalign_settings=CoalignSettings(num_iterations=10))
    lazy = estimate_depth(tiny_model, source, settings, **kwargs)
    eager = estimate_depth(tiny_model, TensorSource(frames), settings, **kwargs)
    tensor = estimate_depth(tiny_model, frames, settings, **kwargs)
    torch.testing.assert_close(lazy.depth.inverse_depth, tensor.depth.inverse_depth, rtol=0, atol=0)
    torch.testing.assert_close(eager.depth.inverse_depth, tensor.depth.inverse_depth, rtol=0, atol=0)
