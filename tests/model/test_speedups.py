"""Speed options change how, not what: outputs agree with the plain model."""

from __future__ import annotations

import pytest
import torch

from rollingdepth_core import load_model
from rollingdepth_core.errors import InvalidSettings
from rollingdepth_core.model.latents import decode_depth
from rollingdepth_core.model.speedups import SpeedOptions, apply_speedups

# fp32 on the CPU: NHWC convolutions and other SDPA kernels reorder sums (about 3e-6 seen)
ATOL = 2e-5


@pytest.fixture
def fresh_model(tiny_model_dir):
    """A model of our own: speed options change it in place."""
    return load_model(tiny_model_dir, device="cpu", dtype="fp32")


@torch.no_grad()
def unet_output(model, num_frames=3):
    """UNet output for 6 frames, as snippets of ``num_frames``."""
    generator = torch.Generator().manual_seed(0)
    sample = torch.randn(6, 8, 6, 8, generator=generator)
    return model.unet(
        sample, torch.tensor(999), encoder_hidden_states=model.empty_text_embed,
        cross_attention_kwargs={"num_frames": num_frames},
    ).sample


def test_channels_last_same_outputs(tiny_model, fresh_model):
    apply_speedups(fresh_model, SpeedOptions(channels_last=True))
    weight = fresh_model.vae.decoder.conv_in.weight
    assert weight.is_contiguous(memory_format=torch.channels_last)
    torch.testing.assert_close(unet_output(fresh_model), unet_output(tiny_model), rtol=0, atol=ATOL)
    latents = torch.randn(3, 4, 6, 8, generator=torch.Generator().manual_seed(1))
    torch.testing.assert_close(
        decode_depth(fresh_model.vae, latents), decode_depth(tiny_model.vae, latents), rtol=0, atol=ATOL
    )


@pytest.mark.parametrize("backend", ["math", "flash"])
def test_attention_backend_keeps_cross_frame_attention(tiny_model, fresh_model, backend):
    """Regression: a processor whose __call__ does not name `num_frames` silently gets none
    from diffusers, and the model becomes the single-frame model (a 50 % change here)."""
    apply_speedups(fresh_model, SpeedOptions(attention_backend=backend))
    expected = unet_output(tiny_model)
    got = unet_output(fresh_model)
    torch.testing.assert_close(got, expected, rtol=0, atol=ATOL)
    assert (unet_output(tiny_model, num_frames=1) - expected).abs().max() > 100 * ATOL


def test_unknown_attention_backend():
    with pytest.raises(InvalidSettings, match="attention_backend"):
        SpeedOptions(attention_backend="xformers")


def test_compile_option_compiles_unet_and_vae(fresh_model, monkeypatch):
    compiled = []
    monkeypatch.setattr(
        torch.nn.Module, "compile", lambda self, **kwargs: compiled.append((self, kwargs)),
    )
    apply_speedups(fresh_model, SpeedOptions(compile=True, compile_mode="max-autotune"))
    modules = [module for module, _ in compiled]
    assert modules == [fresh_model.unet, fresh_model.vae.encoder, fresh_model.vae.decoder]
    assert all(kwargs == {"mode": "max-autotune"} for _, kwargs in compiled)


def test_load_model_applies_speed_options(tiny_model_dir, tiny_model):
    model = load_model(tiny_model_dir, dtype="fp32", speed=SpeedOptions(channels_last=True))
    assert model.unet.conv_in.weight.is_contiguous(memory_format=torch.channels_last)
    torch.testing.assert_close(unet_output(model), unet_output(tiny_model), rtol=0, atol=ATOL)
