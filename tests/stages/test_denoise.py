"""Batched snippet denoising: golden parity, batched == one at a time, errors, hooks."""

import pytest
import torch

from rollingdepth_core.errors import InvalidInput, NumericalError
from rollingdepth_core.hooks import Hooks
from rollingdepth_core.stages.denoise import (
    check_finite_depth,
    denoise_snippets,
    denoise_step,
    predict_snippets,
    storage_dtype_for,
    unet_velocity,
)
from rollingdepth_core.stages.snippets import plan_snippets
from rollingdepth_core.types import EncodedFrames, RunBatches


@pytest.fixture(scope="module")
def golden_encoded(case_a):
    return EncodedFrames(latents=case_a["rgb_latent"][0], size=(48, 64), input_size=(48, 64))


@pytest.fixture(scope="module")
def golden_snippets(tiny_model, case_a, golden_encoded):
    plan = plan_snippets(40, (1, 10), 3)
    return denoise_snippets(tiny_model, golden_encoded, plan, case_a["init_noise"], RunBatches(16))


def test_snippet_depths_match_golden(golden_snippets, case_a):
    assert golden_snippets.plan.dilations == (1, 10)
    for group, depth in zip(golden_snippets.plan.groups, golden_snippets.depths, strict=True):
        assert depth.dtype == torch.float32  # fp32 model: full-precision storage
        expected = case_a[f"snippet_depth_d{group.dilation}"][:, :, 0]
        torch.testing.assert_close(depth, expected, rtol=0, atol=1e-4)


def test_denoise_step_matches_golden_snippet_latents(tiny_model, case_a):
    scheduler = tiny_model.make_scheduler()
    scheduler.set_timesteps(1)
    idx = case_a["snippet_idx_d10"][:4].flatten()
    rgb = case_a["rgb_latent"][0][idx]
    noise = case_a["init_noise"].expand(len(idx), -1, -1, -1)
    latents = denoise_step(tiny_model, scheduler, rgb, noise, 999, 3)
    expected = case_a["snippet_latent_d10"][:4].flatten(0, 1)
    torch.testing.assert_close(latents, expected, rtol=0, atol=1e-4)


def test_batched_equals_one_at_a_time(tiny_model, golden_encoded, golden_snippets, case_a):
    plan = plan_snippets(40, (1, 10), 3)
    single = denoise_snippets(tiny_model, golden_encoded, plan, case_a["init_noise"],
                              batches=RunBatches(1, 1))
    for a, b in zip(single.depths, golden_snippets.depths, strict=True):
        torch.testing.assert_close(a, b, rtol=0, atol=1e-5)


def test_progress_total_and_cancel(tiny_model, golden_encoded, case_a):
    plan = plan_snippets(40, (1, 10), 3)
    calls = []
    denoise_snippets(tiny_model, golden_encoded, plan, case_a["init_noise"], RunBatches(25),
                     hooks=Hooks(progress=lambda d, t: calls.append((d, t))))
    assert calls == [(25, 58), (38, 58), (58, 58)]

    class Stop(Exception):
        pass

    seen = []

    def cancel_after_two():
        seen.append(1)
        if len(seen) > 2:
            raise Stop

    with pytest.raises(Stop):
        denoise_snippets(tiny_model, golden_encoded, plan, case_a["init_noise"], RunBatches(5),
                         hooks=Hooks(check_cancel=cancel_after_two))
    assert len(seen) == 3


def test_plan_for_other_clip_is_refused(tiny_model, golden_encoded, case_a):
    with pytest.raises(InvalidInput, match="plan is for 12 frames"):
        denoise_snippets(tiny_model, golden_encoded, plan_snippets(12, (1,), 3), case_a["init_noise"])


def test_wrong_noise_shape_is_refused(tiny_model, golden_encoded):
    with pytest.raises(InvalidInput, match="noise must have shape"):
        denoise_snippets(tiny_model, golden_encoded, plan_snippets(40, (1,), 3), torch.zeros(1, 4, 5, 5))


def test_storage_dtype():
    assert storage_dtype_for(torch.float32) == torch.float32
    assert storage_dtype_for(torch.float16) == torch.float16
    assert storage_dtype_for(torch.bfloat16) == torch.float16


def test_nan_depth_names_frames_and_dtype():
    depth = torch.zeros(4, 3, 2, 2)
    depth[2, 1, 0, 0] = float("nan")
    frames = torch.arange(12).reshape(4, 3)
    with pytest.raises(NumericalError, match=r"frames \[7\] \(dtype float16\).*fp32"):
        check_finite_depth(depth, frames, "snippet depths", torch.float16)
    check_finite_depth(torch.zeros(2, 2, 2), None, "depth", torch.float32)


def test_nan_from_model_is_caught(tiny_model, golden_encoded, case_a, monkeypatch):
    import rollingdepth_core.stages.denoise as denoise

    real = denoise.decode_depth

    def broken(vae, latents):
        out = real(vae, latents)
        out[0, 0, 0] = float("nan")
        return out

    monkeypatch.setattr(denoise, "decode_depth", broken)
    with pytest.raises(NumericalError, match="NaN or infinite values in snippet depths"):
        denoise_snippets(tiny_model, golden_encoded, plan_snippets(40, (1,), 3), case_a["init_noise"])


@pytest.mark.parametrize("num_frames", [1, 2, 3])
def test_short_clips_and_odd_sizes(tiny_model, num_frames):
    frames = torch.rand(num_frames, 3, 21, 35) * 2 - 1
    plan = plan_snippets(num_frames, (1, 10), 3)
    snippets = predict_snippets(tiny_model, frames, plan, processing_resolution=0, seed=3)
    assert snippets.size == (21, 35)
    assert snippets.depths[0].shape == (plan.groups[0].num_snippets, min(3, num_frames), 21, 35)
    assert bool(torch.isfinite(snippets.depths[0]).all())


def test_predict_snippets_progress_counts_frames_and_snippets(tiny_model):
    frames = torch.rand(6, 3, 16, 24) * 2 - 1
    plan = plan_snippets(6, (1, 2), 3)
    calls = []
    snippets = predict_snippets(tiny_model, frames, plan, processing_resolution=0, seed=0,
                                hooks=Hooks(progress=lambda d, t: calls.append((d, t))))
    total = 6 + plan.num_snippets
    assert calls[-1] == (total, total) and all(t == total for _, t in calls)
    assert snippets.encoded.num_frames == 6 and snippets.noise.shape == (1, 4, 2, 3)


def test_unet_call_convention_matches_golden_probe(tiny_model, case_a):
    """`unet_velocity`: a snippet's frames side by side, `num_frames` = frames per snippet."""
    rgb = case_a["probe_init_rgb_latent"][0]  # n 4 h w, the first snippet's frames
    depth = case_a["probe_init_depth_latent"][0]
    timestep = int(case_a["probe_init_timestep"][0])
    velocity = unet_velocity(tiny_model, rgb, depth, timestep, num_frames=3)
    torch.testing.assert_close(velocity, case_a["probe_init_noise_pred"][0], rtol=0, atol=1e-4)
    single = unet_velocity(tiny_model, rgb, depth, timestep, num_frames=1)  # no cross-frame attention
    torch.testing.assert_close(single, case_a["probe_init_noise_pred_single_frame"][0], rtol=0, atol=1e-4)
    assert (single - velocity).abs().max() > 1e-3  # the grouping matters


def test_unet_call_groups_frames_by_snippet_only(tiny_model, case_a):
    """Two snippets in one call equal each alone; a frame only sees its own snippet's frames."""
    rgb = case_a["rgb_latent"][0][:6]  # (s n) with s = 2, n = 3
    depth = case_a["init_noise"].expand(6, -1, -1, -1)
    both = unet_velocity(tiny_model, rgb, depth, 999, 3)
    first = unet_velocity(tiny_model, rgb[:3], depth[:3], 999, 3)
    torch.testing.assert_close(both[:3], first, rtol=0, atol=1e-5)
    changed = rgb.clone()
    changed[5] = -changed[5]  # the second snippet's last frame
    again = unet_velocity(tiny_model, changed, depth, 999, 3)
    torch.testing.assert_close(again[:3], both[:3], rtol=0, atol=1e-5)
    assert (again[3:5] - both[3:5]).abs().max() > 1e-4
    with pytest.raises(InvalidInput, match="n = 4"):
        unet_velocity(tiny_model, rgb, depth, 999, 4)


def test_snippet_latents_returned_on_request(tiny_model, golden_encoded, golden_snippets, case_a, tmp_path):
    from rollingdepth_core.model.latents import decode_depth
    from rollingdepth_core.runtime.storage import is_stored_on_disk

    assert golden_snippets.latents is None  # by default only depths are kept
    plan = plan_snippets(40, (1, 10), 3)
    snippets = denoise_snippets(tiny_model, golden_encoded, plan, case_a["init_noise"],
                                RunBatches(7, 5), return_latents=True)
    for group, latents, depth in zip(plan.groups, snippets.latents, snippets.depths, strict=True):
        assert latents.shape == (group.num_snippets, 3, 4, 6, 8) and latents.dtype == torch.float32
        expected = case_a[f"snippet_latent_d{group.dilation}"]
        torch.testing.assert_close(latents, expected, rtol=0, atol=1e-4)
        decoded = decode_depth(tiny_model.vae, latents.flatten(0, 1)).unflatten(0, (-1, 3))
        torch.testing.assert_close(decoded, depth, rtol=0, atol=1e-5)  # the depths came from them
    on_disk = denoise_snippets(tiny_model, golden_encoded, plan_snippets(40, (1,), 3), case_a["init_noise"],
                               RunBatches(7, 5), storage_dir=str(tmp_path), return_latents=True)
    assert is_stored_on_disk(on_disk.latents[0]) and is_stored_on_disk(on_disk.depths[0])
    torch.testing.assert_close(on_disk.latents[0][...], snippets.latents[0], rtol=0, atol=0)
