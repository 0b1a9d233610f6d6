"""Automatic batch sizes: memory models, budgets, calibration (free memory faked)."""

from __future__ import annotations

import pytest
import torch

from rollingdepth_core.bench.memtrack import LiveBytes
from rollingdepth_core.errors import InvalidSettings
from rollingdepth_core.model.latents import decode_depth, encode_images
from rollingdepth_core.runtime import batch_sizes, devices
from rollingdepth_core.runtime.batch_sizes import (
    GIB,
    AutoBatch,
    MemoryModel,
    activation_budget,
    calibrate,
    resolve_batch_size,
    snippet_batch_size,
    unet_memory,
    vae_batch_size,
    vae_memory,
)


@pytest.fixture
def fake_gpu(monkeypatch):
    """Pretend the device has `state["free"]` bytes free and `state["allocated"]` in use."""
    state = {"free": 10 * GIB, "allocated": 2 * GIB}
    monkeypatch.setattr(devices, "free_memory", lambda device: state["free"])
    monkeypatch.setattr(devices, "allocated_memory", lambda device: state["allocated"])
    return state


def test_fit_is_the_largest_batch_within_budget():
    model = MemoryModel(per_item=100, fixed=50)
    assert model.fit(budget=1050, maximum=64) == 10
    assert model.fit(budget=1049, maximum=64) == 9
    assert model.fit(budget=1050, maximum=4) == 4
    assert model.fit(budget=10, maximum=64) == 1  # never 0: the OOM retry takes over
    assert MemoryModel(per_item=0).fit(budget=0, maximum=7) == 7


def test_budget_is_free_memory_minus_reserve_capped_by_limit(fake_gpu):
    assert activation_budget("cuda", reserve=GIB) == 9 * GIB
    # a 6 GiB limit with 2 GiB already allocated (the weights) leaves 4 GiB
    assert activation_budget("cuda", memory_limit=6 * GIB, reserve=GIB) == 4 * GIB
    fake_gpu["free"] = GIB // 4
    assert activation_budget("cuda", reserve=GIB) == 0


def test_budget_unknown_on_cpu():
    assert activation_budget("cpu") is None


def test_resolve_passes_numbers_and_uses_defaults_without_memory_info():
    def estimate():
        raise AssertionError("no estimate needed")

    assert resolve_batch_size(5, estimate, "cpu", default=8, maximum=32, name="x") == 5
    assert resolve_batch_size("auto", estimate, "cpu", default=8, maximum=32, name="x") == 8
    assert resolve_batch_size(AutoBatch(maximum=3), estimate, "cpu", 8, 32, "x") == 3


@pytest.mark.parametrize("bad", [0, -2, 2.5, True, "big", None])
def test_resolve_rejects_bad_values_naming_the_argument(bad):
    with pytest.raises(InvalidSettings, match="snippets_per_batch"):
        resolve_batch_size(bad, lambda: MemoryModel(1), "cpu", 8, 32, "snippets_per_batch")


def test_auto_snippets_from_free_memory(tiny_model, fake_gpu):
    per_item = unet_memory(tiny_model, (6, 8), 3).per_item
    fake_gpu["free"] = batch_sizes.DEFAULT_RESERVE + int(5.5 * per_item)
    policy = AutoBatch(measure=False)
    assert snippet_batch_size(tiny_model, (6, 8), 3, policy) == 5
    # a total limit below free memory wins: 2 GiB allocated + 3 snippets
    limited = AutoBatch(measure=False, memory_limit=2 * GIB + 3 * per_item)
    fake_gpu["free"] = 100 * GIB
    assert snippet_batch_size(tiny_model, (6, 8), 3, limited) == 3
    assert snippet_batch_size(tiny_model, (6, 8), 3, AutoBatch(measure=False)) == batch_sizes.MAX_SNIPPETS
    assert snippet_batch_size(tiny_model, (6, 8), 3, AutoBatch(measure=False, maximum=50)) == 50


def test_auto_vae_batch_scales_with_frame_size(tiny_model, fake_gpu):
    small = vae_memory(tiny_model, (48, 64)).per_item
    large = vae_memory(tiny_model, (96, 128)).per_item
    assert large == pytest.approx(4 * small, rel=1e-6)  # activations grow with the pixels
    fake_gpu["free"] = batch_sizes.DEFAULT_RESERVE + 8 * large
    assert vae_batch_size(tiny_model, (96, 128), AutoBatch(measure=False)) == 8
    assert vae_batch_size(tiny_model, (48, 64), AutoBatch(measure=False)) == batch_sizes.MAX_VAE_FRAMES


def test_calibrate_fits_a_line_to_measured_peaks(monkeypatch):
    """A fake device whose peak is 1000 (resident) + 300 (fixed) + 200 per item."""
    state = {"peak": 0}
    monkeypatch.setattr(devices, "allocated_memory", lambda device: 1000)
    monkeypatch.setattr(devices, "reset_peak_memory", lambda device: state.update(peak=0))
    monkeypatch.setattr(devices, "peak_memory", lambda device: state["peak"])
    monkeypatch.setattr(devices, "synchronize", lambda device: None)
    monkeypatch.setattr(devices, "empty_cache", lambda device: None)
    calls = []

    def run(size):
        calls.append(size)
        state["peak"] = 1000 + 300 + 200 * size

    model = calibrate(run, "cuda")
    assert calls == [1, 2]
    assert model == MemoryModel(per_item=int(200 * batch_sizes.ALLOCATOR_OVERHEAD), fixed=300)


def test_measured_model_is_preferred_when_asked(fake_gpu):
    fake_gpu["free"] = batch_sizes.DEFAULT_RESERVE + 1000

    def estimate():
        return MemoryModel(per_item=500)

    def measure():
        return MemoryModel(per_item=100)

    assert resolve_batch_size("auto", estimate, "cuda", 8, 64, "x", measure) == 10
    assert resolve_batch_size(AutoBatch(measure=False), estimate, "cuda", 8, 64, "x", measure) == 2


@torch.no_grad()
@pytest.mark.parametrize("latent_size", [(6, 8), (12, 16)])
def test_estimates_bound_measured_activations(tiny_model, latent_size):
    """The estimates hold the live activations measured op by op (and are not wasteful)."""
    h, w = latent_size
    peaks = []
    for snippets in (1, 2):
        sample = torch.randn(3 * snippets, 8, h, w)
        with LiveBytes() as tracker:
            tiny_model.unet(sample, torch.tensor(999), encoder_hidden_states=tiny_model.empty_text_embed,
                            cross_attention_kwargs={"num_frames": 3})
        peaks.append(tracker.peak)
    per_snippet = peaks[1] - peaks[0]
    estimate = unet_memory(tiny_model, latent_size, 3).per_item
    assert per_snippet <= estimate <= 1.5 * per_snippet
    peaks = []
    for frames in (1, 2):
        with LiveBytes() as tracker:
            decode_depth(tiny_model.vae, torch.randn(frames, 4, h, w))
            encode_images(tiny_model.vae, torch.randn(frames, 3, 8 * h, 8 * w), frames)
        peaks.append(tracker.peak)
    per_frame = peaks[1] - peaks[0]
    estimate = vae_memory(tiny_model, (8 * h, 8 * w)).per_item
    assert per_frame <= estimate <= 1.5 * per_frame


def test_run_activation_bytes_is_the_larger_call(tiny_model):
    from rollingdepth_core.runtime.batch_sizes import run_activation_bytes

    # 40 x 64 at its own size: latents 5 x 8, padded frames 40 x 64
    unet = unet_memory(tiny_model, (5, 8), 3).per_item
    vae = vae_memory(tiny_model, (40, 64)).per_item
    assert run_activation_bytes(tiny_model, (40, 64), 0, 3, 8, 4) == max(8 * unet, 4 * vae)
    assert run_activation_bytes(tiny_model, (40, 64), 0, 3, "auto", AutoBatch()) == max(8 * unet, 4 * vae)
    assert run_activation_bytes(tiny_model, (400, 640), 64, 3, 1, 64) == 64 * vae
    with pytest.raises(InvalidSettings, match="vae_batch_size"):
        run_activation_bytes(tiny_model, (40, 64), 0, 3, 8, -1)
