"""VAE encode/decode against the golden reference."""

import torch

from rollingdepth_core.model.latents import decode_depth, encode_depth, encode_images
from rollingdepth_core.model.vae_batches import decode_depth_to_host
from rollingdepth_core.runtime.batch_loop import ShrinkingBatch


def test_encode_matches_golden(tiny_model, case_a):
    latents = encode_images(tiny_model.vae, case_a["input_frames"][0], batch_size=4)
    assert latents.shape == (40, 4, 6, 8) and latents.dtype == torch.float32
    torch.testing.assert_close(latents, case_a["rgb_latent"][0], rtol=0, atol=1e-4)


def test_encode_batch_size_does_not_matter(tiny_model, case_a):
    frames = case_a["input_frames"][0][:6]
    torch.testing.assert_close(
        encode_images(tiny_model.vae, frames, 1), encode_images(tiny_model.vae, frames, 6),
        rtol=0, atol=1e-5,
    )


def test_decode_snippets_matches_golden(tiny_model, case_a):
    latents = case_a["snippet_latent_d10"].flatten(0, 1)  # (s n) 4 h w
    expected = case_a["snippet_depth_d10"].flatten(0, 1)[:, 0]
    depth = decode_depth_to_host(tiny_model, latents, tuple(expected.shape[-2:]), ShrinkingBatch(7))
    torch.testing.assert_close(depth, expected, rtol=0, atol=1e-4)


def test_decode_final_matches_golden(tiny_model, case_a):
    depth = decode_depth(tiny_model.vae, case_a["refine_latent_final"][0])
    torch.testing.assert_close(depth, case_a["depth_pred"][:, 0], rtol=0, atol=1e-4)


def test_encode_depth_matches_golden(tiny_model, case_a):
    latents = encode_depth(tiny_model.vae, case_a["depth_coaligned"][:, 0], batch_size=4)
    torch.testing.assert_close(latents, case_a["depth_coaligned_latent"][0], rtol=0, atol=1e-4)


def test_progress_and_out_device(tiny_model, case_a):
    from rollingdepth_core.hooks import Hooks

    calls = []
    encode_images(tiny_model.vae, case_a["input_frames"][0][:5], 2, Hooks(lambda d, t: calls.append((d, t))))
    assert calls == [(2, 5), (4, 5), (5, 5)]
