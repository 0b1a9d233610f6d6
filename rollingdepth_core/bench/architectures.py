"""Random-weight RollingDepth models with the real architecture, for benchmarks.

`full` has the published checkpoint's shapes (Stable Diffusion 2 UNet with 8 input channels,
the SD VAE), so it costs exactly the same compute and memory as the real model; `tiny`
has the shapes of ``golden/tiny_v1`` (for CPU smoke runs). Values of random weights do not
change the cost of a forward pass; they only have to keep activations finite.
"""

from __future__ import annotations

import math

import torch

from ..model.attention import install_cross_frame_attention
from ..types import DepthModel

# the published checkpoint's DDIMScheduler config (golden/README.md §1)
SCHEDULER_CONFIG = {
    "num_train_timesteps": 1000,
    "beta_start": 0.00085,
    "beta_end": 0.012,
    "beta_schedule": "scaled_linear",
    "prediction_type": "v_prediction",
    "timestep_spacing": "trailing",
    "clip_sample": False,
    "set_alpha_to_one": False,
    "steps_offset": 1,
    "rescale_betas_zero_snr": True,
}

_DOWN = ("CrossAttnDownBlock2D", "CrossAttnDownBlock2D", "CrossAttnDownBlock2D", "DownBlock2D")
_UP = ("UpBlock2D", "CrossAttnUpBlock2D", "CrossAttnUpBlock2D", "CrossAttnUpBlock2D")


def unet_config(name: str) -> dict:
    """`UNet2DConditionModel` config of architecture ``name`` ("full" or "tiny")."""
    common = dict(
        in_channels=8, out_channels=4, down_block_types=_DOWN, up_block_types=_UP,
        layers_per_block=2, use_linear_projection=True, upcast_attention=False,
        sample_size=96, flip_sin_to_cos=True, freq_shift=0,
    )
    if name == "full":  # SD2: head dims 64, i.e. 5/10/20/20 heads (diffusers' SD2 naming)
        return dict(common, block_out_channels=(320, 640, 1280, 1280),
                    attention_head_dim=(5, 10, 20, 20), cross_attention_dim=1024,
                    norm_num_groups=32)
    if name == "tiny":
        return dict(common, block_out_channels=(16, 32, 32, 32), attention_head_dim=(2, 2, 2, 2),
                    cross_attention_dim=32, norm_num_groups=8)
    raise ValueError(f"Unknown architecture {name!r}; choose full or tiny.")


def vae_config(name: str) -> dict:
    """`AutoencoderKL` config of architecture ``name`` ("full" or "tiny")."""
    common = dict(
        in_channels=3, out_channels=3, latent_channels=4, layers_per_block=2,
        down_block_types=("DownEncoderBlock2D",) * 4, up_block_types=("UpDecoderBlock2D",) * 4,
        scaling_factor=0.18215, sample_size=768,
    )
    if name == "full":
        return dict(common, block_out_channels=(128, 256, 512, 512), norm_num_groups=32)
    if name == "tiny":
        return dict(common, block_out_channels=(8, 16, 16, 16), norm_num_groups=4)
    raise ValueError(f"Unknown architecture {name!r}; choose full or tiny.")


@torch.no_grad()
def randomize_(module: torch.nn.Module, seed: int, pool_size: int = 1 << 20) -> None:
    """Fill every parameter in place: weights ~ N(0, 1/fan_in), biases 0, norm scales 1.

    Weights are cut from one pool of ``pool_size`` Gaussian values at seeded offsets, so a
    full-size model fills at memory speed (drawing 950M fresh values takes half a minute on
    a small CPU) and the same seed gives the same weights in every process.
    """
    generator = torch.Generator("cpu").manual_seed(seed)
    pool = torch.randn(2 * pool_size, generator=generator)
    for name, param in module.named_parameters():
        if param.ndim >= 2:
            fan_in = math.prod(param.shape[1:])
            flat = param.view(-1)
            for start in range(0, flat.numel(), pool_size):
                stop = min(start + pool_size, flat.numel())
                offset = int(torch.randint(pool_size, (1,), generator=generator))
                chunk = pool[offset : offset + stop - start].to(flat.device) / math.sqrt(fan_in)
                flat[start:stop].copy_(chunk)
        elif name.endswith("bias"):
            param.zero_()
        else:
            param.fill_(1.0)


def build_model(
    name: str = "full",
    device: torch.device | str = "cpu",
    dtype: torch.dtype = torch.float32,
    seed: int = 0,
) -> DepthModel:
    """A `DepthModel` of architecture ``name`` with random weights, cross-frame attention on.

    The empty-prompt embedding is random too (`1 2 c`, as the tokenised "" gives 2 tokens).
    """
    from diffusers import AutoencoderKL, UNet2DConditionModel

    device = torch.device(device)
    with torch.device("meta"):
        unet = UNet2DConditionModel(**unet_config(name))
        vae = AutoencoderKL(**vae_config(name))
    for index, module in enumerate((unet, vae)):
        # nn.Module.to: diffusers' own `to` warns about dtype casts meant for checkpoints
        torch.nn.Module.to(module.to_empty(device=device), dtype)
        randomize_(module, seed + index)
        module.eval().requires_grad_(False)
    install_cross_frame_attention(unet)
    generator = torch.Generator("cpu").manual_seed(seed)
    embed = torch.randn(1, 2, unet.config.cross_attention_dim, generator=generator)
    model = DepthModel(
        unet=unet, vae=vae, scheduler_config=dict(SCHEDULER_CONFIG),
        empty_text_embed=embed.to(device, dtype), dtype=dtype, source=f"random:{name}",
    )
    return model
