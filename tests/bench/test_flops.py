"""FLOP counts of the benchmark against counts derived by hand from the architecture.

`bench.flops.call_flops` counts with PyTorch's FlopCounterMode on shape-only tensors; here the
same figures come from the layer list (convolutions, linear layers, attention matmuls; 2 FLOPs
per multiply-add), so a change of architecture, cross-frame grouping or counting shows.
"""

from __future__ import annotations

import math

import pytest

from rollingdepth_core.bench.architectures import unet_config, vae_config
from rollingdepth_core.bench.flops import call_flops
from rollingdepth_core.bench.runner import BenchConfig, model_flops


def conv(cin, cout, k, pixels):
    return 2 * cin * cout * k * k * pixels


def linear(cin, cout, tokens):
    return 2 * cin * cout * tokens


def half(size):
    return (math.ceil(size[0] / 2), math.ceil(size[1] / 2))


def area(size):
    return size[0] * size[1]


def unet_flops(config, latent, frames):
    """One UNet call on one snippet of `frames` frames (cross-frame self-attention)."""
    ch = config["block_out_channels"]
    temb = 4 * ch[0]
    text = config["cross_attention_dim"]
    total = frames * (linear(ch[0], temb, 1) + linear(temb, temb, 1))  # time embedding

    def resnet(cin, cout, px):
        out = conv(cin, cout, 3, px) + linear(temb, cout, 1) + conv(cout, cout, 3, px)
        return frames * (out + (conv(cin, cout, 1, px) if cin != cout else 0))

    def transformer(c, px):
        per_frame = (linear(c, c, px) * 2  # proj_in, proj_out
                     + linear(c, c, px) * 4  # attn1 q k v out
                     + linear(c, c, px) * 2 + linear(text, c, 2) * 2  # attn2 q out, k v on 2 tokens
                     + 4 * px * 2 * c  # attn2 scores and values
                     + linear(c, 8 * c, px) + linear(4 * c, c, px))  # GEGLU feed-forward
        return frames * per_frame + 4 * (frames * px) ** 2 * c  # attn1 over the snippet's frames

    sizes = [tuple(latent)]
    for _ in ch[1:]:
        sizes.append(half(sizes[-1]))
    total += frames * conv(config["in_channels"], ch[0], 3, area(sizes[0]))
    skips = [ch[0]]
    cin = ch[0]
    for level, (kind, cout) in enumerate(zip(config["down_block_types"], ch, strict=True)):
        px = area(sizes[level])
        for _ in range(config["layers_per_block"]):
            total += resnet(cin, cout, px) + (transformer(cout, px) if kind.startswith("CrossAttn") else 0)
            cin = cout
            skips.append(cout)
        if level < len(ch) - 1:
            total += frames * conv(cout, cout, 3, area(sizes[level + 1]))
            skips.append(cout)
    px = area(sizes[-1])
    total += 2 * resnet(ch[-1], ch[-1], px) + transformer(ch[-1], px)
    prev = ch[-1]
    for i, kind in enumerate(config["up_block_types"]):
        level = len(ch) - 1 - i
        cout = ch[level]
        px = area(sizes[level])
        for _ in range(config["layers_per_block"] + 1):
            total += resnet(prev + skips.pop(), cout, px)
            total += transformer(cout, px) if kind.startswith("CrossAttn") else 0
            prev = cout
        if level > 0:
            total += frames * conv(cout, cout, 3, area(sizes[level - 1]))
    return total + frames * conv(ch[0], config["out_channels"], 3, area(sizes[0]))


def vae_flops(config, size):
    """(decoder on one latent frame incl. post_quant_conv, encoder on one frame incl. quant_conv)."""
    ch = config["block_out_channels"]
    latent = config["latent_channels"]
    layers = config["layers_per_block"]

    def resnet(cin, cout, px):
        shortcut = conv(cin, cout, 1, px) if cin != cout else 0
        return conv(cin, cout, 3, px) + conv(cout, cout, 3, px) + shortcut

    def attention(c, px):
        return linear(c, c, px) * 4 + 4 * px * px * c

    sizes = [tuple(size)]
    for _ in ch[1:]:
        sizes.append(half(sizes[-1]))
    encode = conv(3, ch[0], 3, area(sizes[0]))
    cin = ch[0]
    for level, cout in enumerate(ch):
        for _ in range(layers):
            encode += resnet(cin, cout, area(sizes[level]))
            cin = cout
        if level < len(ch) - 1:
            encode += conv(cout, cout, 3, area(sizes[level + 1]))
    px = area(sizes[-1])
    encode += 2 * resnet(ch[-1], ch[-1], px) + attention(ch[-1], px)
    encode += conv(ch[-1], 2 * latent, 3, px) + conv(2 * latent, 2 * latent, 1, px)
    decode = conv(latent, latent, 1, px) + conv(latent, ch[-1], 3, px)
    decode += 2 * resnet(ch[-1], ch[-1], px) + attention(ch[-1], px)
    cin = ch[-1]
    for level in reversed(range(len(ch))):
        cout = ch[level]
        for _ in range(layers + 1):
            decode += resnet(cin, cout, area(sizes[level]))
            cin = cout
        if level > 0:
            decode += conv(cout, cout, 3, area(sizes[level - 1]))
    decode += conv(ch[0], config["out_channels"], 3, area(sizes[0]))
    return decode, encode


@pytest.mark.parametrize(("arch", "size", "frames"), [
    ("full", (432, 768), 3),  # the published model at 768 x 432
    ("full", (72, 128), 1),  # one frame: no cross-frame attention
    ("tiny", (48, 64), 3),
    ("tiny", (40, 72), 2),  # 5 x 9 latents: odd sizes at every level
])
def test_call_flops_equal_the_layer_count(arch, size, frames):
    flops = call_flops(unet_config(arch), vae_config(arch), size, frames)
    assert flops.unet_snippet == unet_flops(unet_config(arch), (size[0] // 8, size[1] // 8), frames)
    assert (flops.decode_frame, flops.encode_frame) == vae_flops(vae_config(arch), size)


def test_published_model_at_768x432_in_round_figures():
    """Orders of magnitude to recognise: 4.36 TFLOP per snippet of 3 frames, 3.19 TFLOP to
    decode and 1.42 TFLOP to encode a frame."""
    flops = call_flops(unet_config("full"), vae_config("full"), (432, 768), 3)
    assert (round(flops.unet_snippet / 1e10), round(flops.decode_frame / 1e10),
            round(flops.encode_frame / 1e10)) == (436, 319, 142)


def snippet_count(frames: int, length: int, dilation: int) -> int:
    return frames - (length - 1) * dilation


def test_run_flops_from_the_plan():
    """Whole-run FLOPs: one UNet call per snippet, every snippet frame decoded, every frame
    encoded; refinement one call per snippet per step plus a VAE round trip per frame."""
    config = BenchConfig(arch="tiny", frames=30, input_size=(48, 64), resolution=0, preset="full",
                         dilations=(1, 4, 25), refine_steps=3)
    flops = model_flops(config)
    unet = unet_flops(unet_config("tiny"), (6, 8), 3)
    decode, encode = vae_flops(vae_config("tiny"), (48, 64))
    snippets = sum(snippet_count(30, 3, d) for d in (1, 4, 9))  # 25 -> int(30 / 3) - 1 = 9
    # refinement, 3 steps from dilation 6: gap int((1 - i / 3) * 5) = 5, 3, 1
    refine_snippets = sum(snippet_count(30, 3, d) for d in (6, 4, 2))
    assert flops["num_snippets"] == snippets == 28 + 22 + 12
    assert flops["unet"] == snippets * unet
    assert flops["decode"] == snippets * 3 * decode
    assert flops["encode"] == 30 * encode
    assert flops["refine"] == refine_snippets * unet + 30 * (encode + decode)
    assert flops["total"] == flops["unet"] + flops["decode"] + flops["encode"] + flops["refine"]
