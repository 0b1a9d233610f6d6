"""End to end: frames + seed -> depth, against the reference run golden/tiny_v1/case_a."""

import dataclasses

import pytest
import torch

from rollingdepth_core import PRESETS, CoalignSettings, Preset, estimate_depth
from rollingdepth_core.errors import InvalidInput, InvalidSettings

CASE_A = Preset(processing_resolution=0, dilations=(1, 10), dtype="fp32", refine_steps=4,
                cap_dilation=True, snippet_length=3, refine_start_dilation=3)
QUICK_ALIGN = CoalignSettings(num_iterations=30)  # for tests that are not about co-alignment


@pytest.fixture(scope="module")
def case_a_result(tiny_model, case_a):
    return estimate_depth(tiny_model, case_a["input_frames"][0], CASE_A, seed=1234,
                          coalign_method="reference", snippets_per_batch=16)


def test_end_to_end_matches_golden(case_a_result, case_a):
    depth = case_a_result.depth.inverse_depth
    assert depth.shape == (40, 48, 64) and depth.dtype == torch.float32
    torch.testing.assert_close(depth, case_a["depth_pred"][:, 0], rtol=0, atol=5e-3)


def test_intermediates_match_golden(case_a_result, case_a):
    for group, depth in zip(case_a_result.snippets.plan.groups, case_a_result.snippets.depths, strict=True):
        torch.testing.assert_close(depth, case_a[f"snippet_depth_d{group.dilation}"][:, :, 0],
                                   rtol=0, atol=1e-4)
    torch.testing.assert_close(case_a_result.snippets.encoded.latents, case_a["rgb_latent"][0],
                               rtol=0, atol=1e-4)
    torch.testing.assert_close(case_a_result.coaligned.inverse_depth, case_a["depth_coaligned"][:, 0],
                               rtol=0, atol=5e-3)
    assert set(case_a_result.timings) == {"encode", "denoise", "coalign", "refine"}


def test_explicit_noise_equals_seed(tiny_model, case_a):
    frames = case_a["input_frames"][0][:8]
    settings = dataclasses.replace(CASE_A, dilations=(1, 2), refine_steps=1)
    by_seed = estimate_depth(tiny_model, frames, settings, seed=1234, coalign_settings=QUICK_ALIGN)
    by_noise = estimate_depth(tiny_model, frames, settings, noise=case_a["init_noise"],
                              coalign_settings=QUICK_ALIGN)
    torch.testing.assert_close(by_seed.depth.inverse_depth, by_noise.depth.inverse_depth, rtol=0, atol=0)
    other = estimate_depth(tiny_model, frames, settings, seed=1, coalign_settings=QUICK_ALIGN)
    assert not torch.allclose(other.depth.inverse_depth, by_seed.depth.inverse_depth)


@pytest.mark.parametrize("num_frames", [1, 2, 3])
def test_short_clips(tiny_model, num_frames):
    frames = torch.rand(num_frames, 3, 24, 32) * 2 - 1
    result = estimate_depth(tiny_model, frames, dataclasses.replace(PRESETS["fast"], processing_resolution=32,
                                                                     refine_steps=2), seed=0,
                            coalign_settings=QUICK_ALIGN)
    depth = result.depth.inverse_depth
    assert depth.shape == (num_frames, 24, 32)
    assert bool(torch.isfinite(depth).all())


def test_odd_size_processing_and_restore(tiny_model):
    frames = torch.rand(4, 3, 45, 71) * 2 - 1
    settings = dataclasses.replace(PRESETS["paper"], processing_resolution=37, refine_steps=1)
    result = estimate_depth(tiny_model, frames, settings, seed=0, coalign_settings=QUICK_ALIGN)
    assert result.depth.inverse_depth.shape == (4, 23, 37)  # int(45 * 37 / 71) = 23, not a multiple of 8
    restored = estimate_depth(tiny_model, frames, settings, seed=0, restore_size=True,
                              coalign_settings=QUICK_ALIGN)
    assert restored.depth.inverse_depth.shape == (4, 45, 71)


def test_no_refinement_returns_coaligned(tiny_model):
    frames = torch.rand(5, 3, 16, 16) * 2 - 1
    settings = dataclasses.replace(PRESETS["fast"], processing_resolution=16)
    result = estimate_depth(tiny_model, frames, settings, coalign_settings=QUICK_ALIGN)
    assert result.depth is result.coaligned
    assert "refine" not in result.timings


def test_stage_hooks_are_requested_per_stage(tiny_model):
    from rollingdepth_core.hooks import Hooks

    seen = {}

    def hooks_for(stage):
        return Hooks(progress=lambda d, t: seen.setdefault(stage, []).append((d, t)))

    settings = dataclasses.replace(PRESETS["full"], processing_resolution=16, refine_steps=1)
    estimate_depth(tiny_model, torch.rand(6, 3, 16, 16) * 2 - 1, settings, hooks_for=hooks_for,
                   coalign_settings=QUICK_ALIGN)
    assert set(seen) == {"encode", "denoise", "coalign", "refine"}
    assert all(calls[-1][0] == calls[-1][1] for calls in seen.values())


def test_bad_inputs(tiny_model):
    with pytest.raises(InvalidInput, match="empty"):
        estimate_depth(tiny_model, torch.zeros(0, 3, 8, 8), PRESETS["fast"])
    frames = torch.zeros(3, 3, 8, 8)
    with pytest.raises(InvalidSettings, match="include 1"):
        estimate_depth(tiny_model, frames, dataclasses.replace(PRESETS["fast"], dilations=(5,)))
    with pytest.raises(InvalidSettings, match="snippet_length"):
        estimate_depth(tiny_model, frames, dataclasses.replace(PRESETS["fast"], snippet_length=0))
