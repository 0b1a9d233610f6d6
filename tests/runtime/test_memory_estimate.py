"""Memory of a run estimated before it starts (issue 9: `-r 100000` died allocating 67 GB)."""

import json
import logging

import pytest
import torch

from rollingdepth_core import PRESETS, InvalidSettings, estimate_depth
from rollingdepth_core.runtime import memory_estimate
from rollingdepth_core.runtime.batch_sizes import ALLOCATOR_OVERHEAD
from rollingdepth_core.runtime.memory_estimate import (
    PUBLISHED,
    Architecture,
    architecture_from_folder,
    architecture_of,
    available_host_memory,
    check_memory,
    estimate_run_memory,
)


def test_estimate_counts_what_the_run_keeps_and_one_batch():
    # 10 frames at 768x432 (latents 96x54), 60 snippet frames, fp16 on a GPU
    estimate = estimate_run_memory(10, (432, 768), 60, torch.float16, "cuda")
    pixels = 432 * 768
    assert estimate.host_parts == {
        "snippet depths": 60 * pixels * 2, "RGB latents": 10 * 4 * 54 * 96 * 4,
        "depth videos": 2 * 10 * pixels * 4,
    }
    unet = 26.0 * 320 * 54 * 96 * 3 * 2  # activations per snippet of 3 frames, bytes (fp16)
    vae = 6.0 * 128 * 432 * 768 * 2  # the decoder's activations per frame: the larger here
    assert vae > unet
    assert estimate.device_parts == {
        "weights": PUBLISHED.parameters * 2, "activations of one batch": int(vae * ALLOCATOR_OVERHEAD),
    }
    assert estimate.host == sum(estimate.host_parts.values())


def test_on_a_cpu_the_model_counts_against_the_host():
    on_disk = estimate_run_memory(10, (100, 200), 60, torch.float32, "cpu", snippets_on_disk=True,
                                  frames_in_memory=True, restore_size=True, input_size=(200, 400),
                                  snippets_per_batch=8)
    assert on_disk.device == 0 and on_disk.host_parts["snippet depths"] == 0
    assert on_disk.host_parts["frames read up front"] == 10 * 3 * 100 * 200 * 4
    assert on_disk.host_parts["depth at input size"] == 10 * 200 * 400 * 4
    assert on_disk.host_parts["weights"] == PUBLISHED.parameters * 4
    unet = 26.0 * 320 * 13 * 25 * 3 * 8 * 4  # 8 snippets: more than one VAE frame here
    assert on_disk.host_parts["activations of one batch"] == int(unet * ALLOCATOR_OVERHEAD)


def test_check_memory_refuses_with_the_figures(caplog):
    estimate = estimate_run_memory(250, (2304, 4096), 1500, torch.float16, "cpu")
    with pytest.raises(InvalidSettings) as caught:
        check_memory(estimate, "cpu", "250 frame(s) at 4096x2304", "Lower the resolution.",
                     host_free=int(16e9))
    message = str(caught.value)
    assert message.startswith("250 frame(s) at 4096x2304 needs about ")
    assert "snippet depths 28.3 GB" in message and "16.0 GB is free. Lower the resolution." in message
    with caplog.at_level(logging.WARNING):
        check_memory(estimate, "cpu", "run", "fix", host_free=int(estimate.host / 0.9))
    assert "needs about" in caplog.text
    check_memory(estimate, "cpu", "run", "fix", host_free=estimate.host * 2)  # fits, silent


def test_available_host_memory_is_known_here():
    free = available_host_memory()
    assert free is not None and 1e8 < free < 1e14


def test_architecture_of_the_tiny_checkpoint(tiny_model_dir, tiny_model):
    unet = json.loads((tiny_model_dir / "unet" / "config.json").read_text())
    from_folder = architecture_from_folder(tiny_model_dir)
    loaded = architecture_of(tiny_model)
    assert from_folder.unet_channels == loaded.unet_channels == unet["block_out_channels"][0]
    # from file sizes: the safetensors headers add a little (3 % on this tiny model)
    assert loaded.parameters <= from_folder.parameters <= 1.05 * loaded.parameters
    assert architecture_from_folder("prs-eth/rollingdepth-v1-0") == PUBLISHED
    assert isinstance(PUBLISHED, Architecture)


def test_estimate_depth_refuses_a_run_that_cannot_fit(tiny_model, monkeypatch):
    monkeypatch.setattr(memory_estimate, "available_host_memory", lambda: 50_000_000)
    frames = torch.zeros(40, 3, 36, 64)
    with pytest.raises(InvalidSettings, match=r"40 frame\(s\) at 1024x576 needs about .* of host memory"):
        estimate_depth(tiny_model, frames, PRESETS["full"])


def test_the_spread_counts_one_more_video_of_each_size():
    plain = estimate_run_memory(10, (432, 768), 60, torch.float16, "cuda", input_size=(1080, 1920),
                                restore_size=True)
    spread = estimate_run_memory(10, (432, 768), 60, torch.float16, "cuda", input_size=(1080, 1920),
                                 restore_size=True, spread=True)
    assert spread.host_parts["spread"] == 10 * 432 * 768 * 4 + 10 * 1080 * 1920 * 4
    assert spread.host - plain.host == spread.host_parts["spread"]


def test_estimate_depth_checks_the_spread_flag(tiny_model):
    with pytest.raises(InvalidSettings, match="spread must be True or False"):
        estimate_depth(tiny_model, torch.zeros(3, 3, 16, 16), PRESETS["fast"], spread="yes")
