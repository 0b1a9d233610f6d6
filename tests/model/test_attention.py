"""Cross-frame self-attention on stock diffusers."""

import pytest
import torch
from diffusers import UNet2DConditionModel

from rollingdepth_core.model.attention import (
    FrameAttnProcessor,
    fold_frames,
    install_cross_frame_attention,
    unfold_frames,
)


def run_unet(unet, sample, embed, num_frames=None):
    kwargs = {} if num_frames is None else {"cross_attention_kwargs": {"num_frames": num_frames}}
    with torch.no_grad():
        return unet(sample, torch.tensor(999), encoder_hidden_states=embed, **kwargs).sample


def probe_input(case_a):
    rgb = case_a["probe_init_rgb_latent"][0]
    depth = case_a["probe_init_depth_latent"][0]
    return torch.cat([rgb, depth], dim=1)  # 3 8 h w


def test_fold_unfold_roundtrip():
    tokens = torch.arange(2 * 3 * 4 * 5, dtype=torch.float32).reshape(6, 4, 5)
    folded = fold_frames(tokens, 3)
    assert folded.shape == (2, 12, 5)
    torch.testing.assert_close(folded[0, 4:8], tokens[1])  # frame 1 of snippet 0
    torch.testing.assert_close(unfold_frames(folded, 3), tokens)


def test_processors_installed_on_every_layer(tiny_model):
    processors = tiny_model.unet.attn_processors
    assert processors and all(isinstance(p, FrameAttnProcessor) for p in processors.values())
    assert all(p.cross_frame == name.endswith("attn1.processor") for name, p in processors.items())


def test_cross_frame_probe_matches_golden(tiny_model, case_a):
    out = run_unet(tiny_model.unet, probe_input(case_a), case_a["empty_text_embed"], 3)
    torch.testing.assert_close(out, case_a["probe_init_noise_pred"][0], rtol=0, atol=1e-4)


def test_single_frame_probe_matches_golden(tiny_model, case_a):
    out = run_unet(tiny_model.unet, probe_input(case_a), case_a["empty_text_embed"], 1)
    torch.testing.assert_close(out, case_a["probe_init_noise_pred_single_frame"][0], rtol=0, atol=1e-4)


def test_one_frame_equals_stock_diffusers(tiny_model_dir, case_a):
    stock = UNet2DConditionModel.from_pretrained(tiny_model_dir, subfolder="unet").eval()
    ours = UNet2DConditionModel.from_pretrained(tiny_model_dir, subfolder="unet").eval()
    install_cross_frame_attention(ours)
    sample, embed = probe_input(case_a), case_a["empty_text_embed"].expand(3, -1, -1)
    torch.testing.assert_close(
        run_unet(ours, sample, embed, 1), run_unet(stock, sample, embed), rtol=0, atol=1e-5
    )


def test_snippets_in_one_batch_equal_one_at_a_time(tiny_model, case_a):
    sample = probe_input(case_a)
    other = sample.flip(0) * 0.5
    embed = case_a["empty_text_embed"]
    together = run_unet(tiny_model.unet, torch.cat([sample, other]), embed, 3)
    apart = torch.cat([run_unet(tiny_model.unet, sample, embed, 3),
                       run_unet(tiny_model.unet, other, embed, 3)])
    torch.testing.assert_close(together, apart, rtol=0, atol=1e-5)


def test_processor_rejects_masks(tiny_model):
    attn = next(m for n, m in tiny_model.unet.named_modules() if n.endswith("attn1"))
    with pytest.raises(NotImplementedError, match="mask"):
        attn.processor(attn, torch.zeros(1, 4, attn.query_dim), attention_mask=torch.zeros(1, 4))
