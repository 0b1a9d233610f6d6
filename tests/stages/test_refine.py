"""Refinement: golden parity from the co-aligned latents, schedule, batching, any-depth input."""

import pytest
import torch

from rollingdepth_core.coalign.merge import normalize_depth
from rollingdepth_core.errors import InvalidInput, InvalidSettings
from rollingdepth_core.hooks import Hooks
from rollingdepth_core.model.latents import decode_depth
from rollingdepth_core.stages.refine import refine_depth, refine_latents, refine_timesteps, refine_video
from rollingdepth_core.types import DepthVideo, EncodedFrames, RunBatches


@pytest.fixture(scope="module")
def golden_refined(tiny_model, case_a):
    return refine_latents(tiny_model, case_a["rgb_latent"][0], case_a["depth_coaligned_latent"][0],
                          case_a["init_noise"], num_steps=4, start_dilation=3, snippet_length=3,
                          batches=RunBatches(16))


def test_refine_timesteps_match_golden(tiny_model, case_a):
    scheduler = tiny_model.make_scheduler()
    assert refine_timesteps(scheduler, 4) == [499, 374, 249, 124]
    assert scheduler.timesteps.tolist() == case_a["refine_timesteps_all"].tolist()


def test_refined_latents_match_golden(golden_refined, case_a):
    torch.testing.assert_close(golden_refined, case_a["refine_latent_final"][0], rtol=0, atol=1e-4)


def test_per_step_latents_match_golden(tiny_model, golden_refined, case_a):
    """``on_step`` sees every step's latents: those entering the next step, then the final ones."""
    steps = []
    final = refine_latents(tiny_model, case_a["rgb_latent"][0], case_a["depth_coaligned_latent"][0],
                           case_a["init_noise"], num_steps=4, start_dilation=3, batches=RunBatches(16),
                           on_step=lambda step, t, latents: steps.append((step, t, latents.clone())))
    assert [(step, t) for step, t, _ in steps] == [(0, 499), (1, 374), (2, 249), (3, 124)]
    for step, _, latents in steps[:-1]:
        expected = case_a[f"refine_latent_before_step{step + 1}"][0]
        torch.testing.assert_close(latents, expected, rtol=0, atol=1e-4)
    assert torch.equal(steps[-1][2], final) and torch.equal(final, golden_refined)


def test_refine_depth_passes_per_step_latents(tiny_model, case_a):
    encoded = EncodedFrames(latents=case_a["rgb_latent"][0], size=(48, 64), input_size=(48, 64))
    seen = []
    depth = refine_depth(tiny_model, encoded, case_a["depth_coaligned"][:, 0], case_a["init_noise"],
                         num_steps=2, start_dilation=3, on_step=lambda *args: seen.append(args[2].clone()))
    assert len(seen) == 2 and seen[-1].shape == (40, 4, 6, 8)
    torch.testing.assert_close(decode_depth(tiny_model.vae, seen[-1]), depth, rtol=0, atol=1e-5)


def test_refined_depth_matches_golden(tiny_model, golden_refined, case_a):
    depth = decode_depth(tiny_model.vae, golden_refined)
    torch.testing.assert_close(depth, case_a["depth_pred"][:, 0], rtol=0, atol=1e-4)


def test_refine_depth_from_coaligned_video_matches_golden(tiny_model, case_a):
    encoded = EncodedFrames(latents=case_a["rgb_latent"][0], size=(48, 64), input_size=(48, 64))
    depth = refine_depth(tiny_model, encoded, case_a["depth_coaligned"][:, 0], case_a["init_noise"],
                         num_steps=4, start_dilation=3, batches=RunBatches(40))
    torch.testing.assert_close(depth, case_a["depth_pred"][:, 0], rtol=0, atol=1e-4)


def test_batched_equals_one_at_a_time(tiny_model, case_a):
    args = (tiny_model, case_a["rgb_latent"][0][:12], case_a["depth_coaligned_latent"][0][:12],
            case_a["init_noise"])
    single = refine_latents(*args, num_steps=3, start_dilation=3, batches=RunBatches(1))
    batched = refine_latents(*args, num_steps=3, start_dilation=3, batches=RunBatches(64))
    torch.testing.assert_close(single, batched, rtol=0, atol=1e-5)


def test_progress_counts_snippets_of_all_steps(tiny_model, case_a):
    calls = []
    refine_latents(tiny_model, case_a["rgb_latent"][0][:9], case_a["depth_coaligned_latent"][0][:9],
                   case_a["init_noise"], num_steps=2, start_dilation=3, batches=RunBatches(4),
                   hooks=Hooks(progress=lambda d, t: calls.append((d, t))))
    # 9 frames: step 0 dilation 2 (5 snippets), step 1 dilation 1 (7 snippets)
    assert calls == [(4, 12), (5, 12), (9, 12), (12, 12)]


def test_normalize_depth():
    depth = torch.tensor([[[2.0, 4.0]], [[3.0, 6.0]]])
    torch.testing.assert_close(normalize_depth(depth), torch.tensor([[[-1.0, 0.0]], [[-0.5, 1.0]]]))
    torch.testing.assert_close(normalize_depth(torch.ones(2, 3, 3)), torch.zeros(2, 3, 3))


def test_bad_settings(tiny_model, case_a):
    scheduler = tiny_model.make_scheduler()
    with pytest.raises(InvalidSettings, match="at most 500"):
        refine_timesteps(scheduler, 501)
    with pytest.raises(InvalidSettings, match="refine steps"):
        refine_latents(tiny_model, case_a["rgb_latent"][0], case_a["depth_coaligned_latent"][0],
                       case_a["init_noise"], num_steps=0)


def test_bad_depth(tiny_model, case_a):
    encoded = EncodedFrames(latents=case_a["rgb_latent"][0], size=(48, 64), input_size=(48, 64))
    with pytest.raises(InvalidInput, match="Resize the depth"):
        refine_depth(tiny_model, encoded, torch.zeros(40, 24, 32), case_a["init_noise"], num_steps=1)
    nan = torch.zeros(40, 48, 64)
    nan[5, 0, 0] = float("nan")
    with pytest.raises(InvalidInput, match=r"frames \[5\]"):
        refine_depth(tiny_model, encoded, nan, case_a["init_noise"], num_steps=1)
    with pytest.raises(InvalidInput, match="N H W"):
        refine_depth(tiny_model, encoded, torch.zeros(40, 1, 48, 64), case_a["init_noise"], num_steps=1)


def test_refine_video_any_depth(tiny_model):
    frames = torch.rand(5, 3, 20, 30) * 2 - 1
    foreign = DepthVideo(inverse_depth=torch.rand(5, 10, 15) * 7 + 3)  # another range and size
    refined = refine_video(tiny_model, frames, foreign, num_steps=2, seed=1)
    assert refined.inverse_depth.shape == (5, 10, 15) and refined.encoded.size == (10, 15)
    again = refine_video(tiny_model, frames, DepthVideo(foreign.inverse_depth * 3 - 1), num_steps=2, seed=1)
    # refinement normalises its input, so an affine change of the input changes nothing
    torch.testing.assert_close(again.inverse_depth, refined.inverse_depth, rtol=0, atol=1e-4)
    at_res = refine_video(tiny_model, frames, foreign, num_steps=1, seed=1, processing_resolution=24)
    assert at_res.inverse_depth.shape == (5, 16, 24)


def test_refine_video_reuses_latents_only_for_same_frames(tiny_model, monkeypatch):
    import rollingdepth_core.stages.encode as encode

    frames = torch.rand(4, 3, 16, 24) * 2 - 1
    first = refine_video(tiny_model, frames, DepthVideo(torch.rand(4, 16, 24)), num_steps=1)
    calls = []
    real = encode.encode_frames
    monkeypatch.setattr(encode, "encode_frames", lambda *a, **k: calls.append(1) or real(*a, **k))
    refine_video(tiny_model, frames, first, num_steps=1)
    assert calls == []  # same frames, same size: latents reused
    refine_video(tiny_model, frames.flip(0), first, num_steps=1)
    assert calls == [1]  # other frames: encoded again


def test_refine_video_frame_count_mismatch(tiny_model):
    with pytest.raises(InvalidInput, match="has 3 frames but the video has 4"):
        refine_video(tiny_model, torch.zeros(4, 3, 8, 8), DepthVideo(torch.zeros(3, 8, 8)), num_steps=1)
