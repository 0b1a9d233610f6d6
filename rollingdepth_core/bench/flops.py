"""FLOPs of one UNet / VAE call (counted on shape-only "meta" tensors) and GPU peak rates."""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch.utils.flop_counter import FlopCounterMode

from ..model.attention import install_cross_frame_attention

# Dense (no sparsity) FP16/BF16 tensor-core TFLOPS from NVIDIA's public spec sheets.
# Matched in order against torch.cuda.get_device_name(): more specific names first.
GPU_PEAK_TFLOPS: tuple[tuple[str, float], ...] = (
    ("H100 PCIe", 756.5),
    ("H100 NVL", 835.5),
    ("H200 NVL", 835.5),
    ("H100", 989.5),  # SXM ("NVIDIA H100 80GB HBM3")
    ("H200", 989.5),  # SXM
    ("A100", 312.0),
    ("L40S", 362.05),
    ("RTX 4090", 165.2),  # with FP32 accumulation, as PyTorch uses
    ("L4", 121.0),
    ("A10", 125.0),
)


def peak_tflops(device_name: str, dtype: torch.dtype) -> float | None:
    """Dense fp16/bf16 tensor-core peak of a GPU by name; None if unknown or not fp16/bf16."""
    if dtype not in (torch.float16, torch.bfloat16):
        return None
    name = device_name.lower()
    for key, value in GPU_PEAK_TFLOPS:
        if key.lower() in name:
            return value
    return None


@dataclass(frozen=True)
class CallFlops:
    """FLOPs of one call of each network at one processing size.

    Attributes:
        unet_snippet: one UNet call on one snippet of `n` frames.
        decode_frame: the VAE decoder on one latent frame.
        encode_frame: the VAE encoder on one frame.
    """

    unet_snippet: int
    decode_frame: int
    encode_frame: int


def _count(fn) -> int:
    with FlopCounterMode(display=False) as counter:
        fn()
    return int(counter.get_total_flops())


@torch.no_grad()
def call_flops(
    unet_config: dict, vae_config: dict, padded_size: tuple[int, int], snippet_length: int
) -> CallFlops:
    """Count FLOPs of one call of each network (matmuls and convolutions, as PyTorch counts).

    Builds the networks from their configs on the "meta" device: no weights, no memory,
    no compute, a second or two.

    Args:
        unet_config, vae_config: diffusers configs (`model.unet.config`, a config.json).
        padded_size: `(H, W)` of the padded frames.
        snippet_length: frames per UNet call.
    """
    from diffusers import AutoencoderKL, UNet2DConditionModel

    with torch.device("meta"):
        unet = UNet2DConditionModel.from_config(dict(unet_config))
        vae = AutoencoderKL.from_config(dict(vae_config))
    install_cross_frame_attention(unet)
    height, width = padded_size
    latent = (height // 8, width // 8)
    meta = dict(device="meta", dtype=torch.float32)
    sample = torch.empty(snippet_length, 8, *latent, **meta)
    embed = torch.empty(1, 2, unet.config.cross_attention_dim, **meta)  # "" is 2 tokens
    unet_flops = _count(lambda: unet(
        sample, torch.tensor(999, device="meta"), encoder_hidden_states=embed,
        cross_attention_kwargs={"num_frames": snippet_length},
    ))
    decode = _count(lambda: vae.decoder(vae.post_quant_conv(torch.empty(1, 4, *latent, **meta))))
    encode = _count(lambda: vae.quant_conv(vae.encoder(torch.empty(1, 3, height, width, **meta))))
    return CallFlops(unet_snippet=unet_flops, decode_frame=decode, encode_frame=encode)
