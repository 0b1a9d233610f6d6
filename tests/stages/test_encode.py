"""Encoding clips at the processing resolution."""

import pytest
import torch

from rollingdepth_core.errors import InvalidInput, InvalidSettings
from rollingdepth_core.hooks import Hooks
from rollingdepth_core.io.frames import frames_fingerprint
from rollingdepth_core.stages.encode import encode_frames
from rollingdepth_core.types import RunBatches


def test_encode_matches_golden(tiny_model, case_a):
    encoded = encode_frames(tiny_model, case_a["input_frames"][0], processing_resolution=0,
                            batches=RunBatches(vae=4))
    assert encoded.size == (48, 64) and encoded.padded_size == (48, 64) and encoded.num_frames == 40
    torch.testing.assert_close(encoded.latents, case_a["rgb_latent"][0], rtol=0, atol=1e-4)
    assert encoded.latents.device.type == "cpu"


def test_resize_and_pad(tiny_model):
    frames = torch.rand(3, 3, 50, 90) * 2 - 1
    encoded = encode_frames(tiny_model, frames, processing_resolution=60, batches=RunBatches(vae=2))
    assert encoded.input_size == (50, 90) and encoded.size == (33, 60)
    assert encoded.latents.shape == (3, 4, 5, 8)  # 33 x 60 padded to 40 x 64
    exact = encode_frames(tiny_model, frames, batches=RunBatches(vae=2), size=(16, 24))
    assert exact.size == (16, 24) and exact.latents.shape == (3, 4, 2, 3)


def test_progress_and_bad_input(tiny_model):
    calls = []
    encode_frames(tiny_model, torch.zeros(5, 3, 8, 8), 0, RunBatches(vae=2),
                  Hooks(lambda d, t: calls.append((d, t))))
    assert calls == [(2, 5), (4, 5), (5, 5)]
    with pytest.raises(InvalidInput, match="3 colour channels"):
        encode_frames(tiny_model, torch.zeros(2, 4, 8, 8))
    with pytest.raises(InvalidSettings, match="vae must be a whole number"):
        encode_frames(tiny_model, torch.zeros(2, 3, 8, 8), batches=RunBatches(vae=0))
    with pytest.raises(InvalidSettings, match="batches must be RunBatches"):
        encode_frames(tiny_model, torch.zeros(2, 3, 8, 8), 0, 2)  # a bare number


def test_fingerprint_tells_clips_apart():
    frames = torch.rand(4, 3, 16, 16)
    assert frames_fingerprint(frames) == frames_fingerprint(frames.clone())
    assert frames_fingerprint(frames) != frames_fingerprint(frames.flip(0))
    assert frames_fingerprint(frames)[:3] == (4, 16, 16)
