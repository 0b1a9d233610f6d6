"""End to end: frames + seed -> depth, against the reference run golden/tiny_v1/case_a.

Two runs of the whole case: the reference's co-alignment (`coalign_method="reference"`, the
parity path) and the DEFAULT path users get (`fast`), both at the SPEC §6 tolerances. Short
clips and odd sizes are compared with results computed another way: the single-image model
run with stock diffusers only, the authors' own snippet from the golden file, and a run on
frames padded by hand.
"""

import dataclasses

import pytest
import torch
import torch.nn.functional as F

from rollingdepth_core import PRESETS, CoalignSettings, Preset, estimate_depth
from rollingdepth_core.coalign import polish
from rollingdepth_core.coalign.merge import normalize_depth
from rollingdepth_core.coalign.methods import coalign_depth
from rollingdepth_core.coalign.problem import objective_value, prepare_problem
from rollingdepth_core.errors import InvalidInput, InvalidSettings
from rollingdepth_core.model.noise import make_noise
from rollingdepth_core.stages.refine import refine_depth

CASE_A = Preset(processing_resolution=0, dilations=(1, 10), dtype="fp32", refine_steps=4,
                cap_dilation=True, snippet_length=3, refine_start_dilation=3)
QUICK_ALIGN = CoalignSettings(num_iterations=30)  # for tests that are not about co-alignment
END_TO_END = 5e-3  # SPEC §6: frames + seed -> depth_pred
STAGE = 1e-4  # SPEC §6: encode, decode, UNet, snippet latents and depths
ALIGNMENT = 5e-3  # SPEC §6: full optimisation (scales, shifts, merged video)
OBJECTIVE = 1e-4  # SPEC §6: or the objective value, relative


@pytest.fixture(scope="module")
def case_a_result(tiny_model, case_a):
    return estimate_depth(tiny_model, case_a["input_frames"][0], CASE_A, seed=1234,
                          coalign_method="reference", snippets_per_batch=16)


@pytest.fixture(scope="module")
def case_a_default(tiny_model, case_a):
    """The default path (no co-alignment method given: `fast`), as users run it."""
    return estimate_depth(tiny_model, case_a["input_frames"][0], CASE_A, seed=1234,
                          snippets_per_batch=16)


def test_end_to_end_matches_golden(case_a_result, case_a):
    depth = case_a_result.depth.inverse_depth
    assert depth.shape == (40, 48, 64) and depth.dtype == torch.float32
    torch.testing.assert_close(depth, case_a["depth_pred"][:, 0], rtol=0, atol=END_TO_END)


def test_intermediates_match_golden(case_a_result, case_a):
    for group, depth in zip(case_a_result.snippets.plan.groups, case_a_result.snippets.depths, strict=True):
        torch.testing.assert_close(depth, case_a[f"snippet_depth_d{group.dilation}"][:, :, 0],
                                   rtol=0, atol=STAGE)
    torch.testing.assert_close(case_a_result.snippets.encoded.latents, case_a["rgb_latent"][0],
                               rtol=0, atol=STAGE)
    torch.testing.assert_close(case_a_result.coaligned.inverse_depth, case_a["depth_coaligned"][:, 0],
                               rtol=0, atol=ALIGNMENT)
    assert set(case_a_result.timings) == {"encode", "denoise", "coalign", "refine"}


def test_default_path_end_to_end_matches_golden(case_a_default, case_a):
    """Issue 12: users get `fast`; its whole run must meet the same SPEC §6 tolerances.

    On case_a the authors' Adam ends above its own start (loss 0.014996 at scales 1 /
    shifts 0, 0.015088 at the end), so `fast` returns the start, polished (issue 12 §1, the
    lead's decision of 14:33): SPEC §6 compares the aligner by objective there; the scales
    stay within the polish's radius of 1 / 0 instead of at the authors' (4e-2 away), and
    the normalised videos (co-aligned and final) stay at the SPEC §6 tolerances."""
    result = case_a_default
    assert result.alignment.method == "fast"
    torch.testing.assert_close(result.depth.inverse_depth, case_a["depth_pred"][:, 0],
                               rtol=0, atol=END_TO_END)
    for group, depth in zip(result.snippets.plan.groups, result.snippets.depths, strict=True):
        torch.testing.assert_close(depth, case_a[f"snippet_depth_d{group.dilation}"][:, :, 0],
                                   rtol=0, atol=STAGE)
    for scales, shifts in zip(result.alignment.scales, result.alignment.shifts, strict=True):
        torch.testing.assert_close(scales, torch.ones_like(scales), rtol=0, atol=polish.RADIUS + 1e-6)
        torch.testing.assert_close(shifts, torch.zeros_like(shifts), rtol=0, atol=polish.RADIUS + 1e-6)
    torch.testing.assert_close(result.coaligned.inverse_depth, case_a["depth_coaligned"][:, 0],
                               rtol=0, atol=ALIGNMENT)
    # the objective at the authors' parameters, on our own snippet depths
    problem = prepare_problem(result.snippets, CoalignSettings())
    reference = objective_value(
        problem, tuple(case_a[f"coalign_scale_d{d}"].flatten() for d in (1, 10)),
        tuple(case_a[f"coalign_translation_d{d}"].flatten() for d in (1, 10)), CoalignSettings())
    assert result.alignment.objective <= reference * (1 + OBJECTIVE)
    assert result.alignment.objective == pytest.approx(
        objective_value(problem, result.alignment.scales, result.alignment.shifts, CoalignSettings()),
        rel=1e-5)


def test_explicit_noise_equals_seed(tiny_model, case_a):
    frames = case_a["input_frames"][0][:8]
    settings = dataclasses.replace(CASE_A, dilations=(1, 2), refine_steps=1)
    by_seed = estimate_depth(tiny_model, frames, settings, seed=1234, coalign_settings=QUICK_ALIGN)
    by_noise = estimate_depth(tiny_model, frames, settings, noise=case_a["init_noise"],
                              coalign_settings=QUICK_ALIGN)
    torch.testing.assert_close(by_seed.depth.inverse_depth, by_noise.depth.inverse_depth, rtol=0, atol=0)
    other = estimate_depth(tiny_model, frames, settings, seed=1, coalign_settings=QUICK_ALIGN)
    assert not torch.allclose(other.depth.inverse_depth, by_seed.depth.inverse_depth)


# --- short clips and odd sizes, against results computed another way -------------------------


@pytest.fixture(scope="module")
def stock_parts(tiny_model_dir):
    """UNet, VAE and scheduler of the tiny checkpoint loaded by stock diffusers (its own
    attention processors, nothing of ours)."""
    from diffusers import AutoencoderKL, DDIMScheduler, UNet2DConditionModel

    unet = UNet2DConditionModel.from_pretrained(tiny_model_dir, subfolder="unet").eval()
    vae = AutoencoderKL.from_pretrained(tiny_model_dir, subfolder="vae").eval()
    return unet, vae, lambda: DDIMScheduler.from_pretrained(tiny_model_dir, subfolder="scheduler")


@torch.no_grad()
def single_image_depth(parts, frame, noise, embed, refine_steps):
    """One frame through the image model the Marigold way, written out with stock diffusers:
    one denoising step from the shared noise, decode, min-max to -1..1, then `refine_steps`
    DDIM steps from the re-encoded depth noised to the middle of the schedule.

    Args:
        frame: `3 H W` in -1..1 (sides multiples of 8). noise: `1 4 h w`. embed: `1 2 c`.

    Returns:
        `(coaligned, depth)`, each `1 H W`.
    """
    unet, vae, make_scheduler = parts
    scale = 0.18215
    rgb = vae.encode(frame[None]).latent_dist.mean * scale
    scheduler = make_scheduler()
    scheduler.set_timesteps(1)
    step = scheduler.timesteps[0]
    v = unet(torch.cat([rgb, noise], 1), step, encoder_hidden_states=embed).sample
    latent = scheduler.step(v, step, noise).prev_sample
    depth = vae.decode(latent / scale).sample.mean(1)
    coaligned = (depth - depth.min()) / (depth.max() - depth.min()) * 2 - 1
    if refine_steps == 0:
        return coaligned, coaligned
    latent = vae.encode(coaligned[:, None].expand(-1, 3, -1, -1)).latent_dist.mean * scale
    scheduler.set_timesteps(2 * refine_steps)
    timesteps = scheduler.timesteps[refine_steps:]
    latent = scheduler.add_noise(latent, noise, timesteps[:1])
    for step in timesteps:
        v = unet(torch.cat([rgb, latent], 1), step, encoder_hidden_states=embed).sample
        latent = scheduler.step(v, step, latent).prev_sample
    return coaligned, vae.decode(latent / scale).sample.mean(1)


SHORT = dataclasses.replace(PRESETS["fast"], processing_resolution=0, refine_steps=2)


@pytest.fixture(scope="module")
def one_frame(tiny_model, case_a):
    return estimate_depth(tiny_model, case_a["input_frames"][0][:1], SHORT,
                          noise=case_a["init_noise"], coalign_settings=QUICK_ALIGN)


def test_one_frame_is_the_single_image_model(one_frame, stock_parts, case_a):
    """N = 1: single-frame inference and single-frame refinement (SPEC §3.4)."""
    coaligned, depth = single_image_depth(stock_parts, case_a["input_frames"][0, 0], case_a["init_noise"],
                                          case_a["empty_text_embed"], SHORT.refine_steps)
    assert one_frame.depth.inverse_depth.shape == (1, 48, 64)
    torch.testing.assert_close(one_frame.coaligned.inverse_depth, coaligned, rtol=0, atol=STAGE)
    torch.testing.assert_close(one_frame.depth.inverse_depth, depth, rtol=0, atol=STAGE)


@pytest.mark.parametrize("num_frames", [2, 3])
def test_short_still_clip_equals_one_frame(tiny_model, case_a, one_frame, num_frames):
    """N < n and N = n: shorter snippets attend over identical frames, which gives exactly
    the single image's attention; with the shared noise every frame must be the N = 1 depth."""
    frames = case_a["input_frames"][0][:1].expand(num_frames, -1, -1, -1)
    result = estimate_depth(tiny_model, frames, SHORT, noise=case_a["init_noise"],
                            coalign_settings=QUICK_ALIGN)
    assert result.snippets.plan.snippet_length == num_frames
    expected = one_frame.depth.inverse_depth.expand(num_frames, -1, -1)
    torch.testing.assert_close(result.depth.inverse_depth, expected, rtol=0, atol=STAGE)


def test_three_frames_are_the_authors_first_snippet(tiny_model, case_a):
    """N = 3: one snippet, frames 0-2 with cross-frame attention: the golden run's first
    snippet (dilation 1, same frames, same noise), and its min-max normalisation."""
    preset = dataclasses.replace(SHORT, refine_steps=0)
    result = estimate_depth(tiny_model, case_a["input_frames"][0][:3], preset,
                            noise=case_a["init_noise"], coalign_settings=QUICK_ALIGN)
    golden = case_a["snippet_depth_d1"][0, :, 0]  # n H W
    torch.testing.assert_close(result.snippets.depths[0][0], golden, rtol=0, atol=STAGE)
    torch.testing.assert_close(result.depth.inverse_depth, normalize_depth(golden), rtol=0, atol=2 * STAGE)


def test_odd_size_processing_and_restore(tiny_model):
    """45 x 71 at 37 px is processed at 23 x 37 (not multiples of 8): the same as resizing and
    edge-padding by hand to 24 x 40, running there and cropping; restoring is a bilinear resize."""
    frames = torch.rand(4, 3, 45, 71, generator=torch.Generator().manual_seed(0)) * 2 - 1
    settings = dataclasses.replace(PRESETS["paper"], processing_resolution=37, refine_steps=1)
    result = estimate_depth(tiny_model, frames, settings, seed=0, coalign_settings=QUICK_ALIGN)
    assert result.depth.inverse_depth.shape == (4, 23, 37)  # int(45 * 37 / 71) = 23
    resized = F.interpolate(frames, size=(23, 37), mode="bilinear", align_corners=False, antialias=True)
    padded = F.pad(resized, (0, 3, 0, 1), mode="replicate")  # 24 x 40
    by_hand = estimate_depth(tiny_model, padded, dataclasses.replace(settings, processing_resolution=0),
                             seed=0, coalign_settings=QUICK_ALIGN)
    for ours, theirs in zip(result.snippets.depths, by_hand.snippets.depths, strict=True):
        torch.testing.assert_close(ours, theirs[..., :23, :37], rtol=0, atol=1e-5)
    cropped = dataclasses.replace(by_hand.snippets,
                                  depths=tuple(d[..., :23, :37] for d in by_hand.snippets.depths))
    video, _ = coalign_depth(cropped, "fast", QUICK_ALIGN)
    torch.testing.assert_close(result.coaligned.inverse_depth, video.inverse_depth, rtol=0, atol=1e-5)
    refined = refine_depth(tiny_model, by_hand.snippets.encoded,
                           F.pad(video.inverse_depth[:, None], (0, 3, 0, 1), mode="replicate")[:, 0],
                           make_noise((3, 5), seed=0),
                           num_steps=1, start_dilation=settings.refine_start_dilation,
                           cap_dilation=settings.cap_dilation)
    torch.testing.assert_close(result.depth.inverse_depth, refined[:, :23, :37], rtol=0, atol=1e-5)
    restored = estimate_depth(tiny_model, frames, settings, seed=0, restore_size=True,
                              coalign_settings=QUICK_ALIGN)
    assert restored.depth.inverse_depth.shape == (4, 45, 71)
    expected = F.interpolate(result.depth.inverse_depth[:, None], size=(45, 71), mode="bilinear",
                             align_corners=False)[:, 0]
    torch.testing.assert_close(restored.depth.inverse_depth, expected, rtol=0, atol=1e-5)


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
