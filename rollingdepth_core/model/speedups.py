"""Optional speed-ups of a loaded model: memory format, attention kernel, torch.compile.

None of them changes what is computed; they change how (kernel choice, fusion), so
results agree with the plain model to float rounding. Apply once after loading:

    model = load_model(..., speed=SpeedOptions(channels_last=True, compile=True))
    # or: apply_speedups(model, SpeedOptions(...))
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import torch

from ..errors import InvalidSettings
from ..types import DepthModel
from .attention import install_cross_frame_attention

logger = logging.getLogger(__name__)

ATTENTION_BACKENDS = ("auto", "flash", "efficient", "cudnn", "math")


@dataclass(frozen=True)
class SpeedOptions:
    """How to run the model faster.

    Attributes:
        channels_last: store conv weights (and so activations) as NHWC; faster convolutions
            with fp16/bf16 tensor cores, mostly in the VAE.
        attention_backend: SDPA kernel of the UNet's attention: "auto" lets PyTorch pick
            (flash attention where available), or force "flash", "efficient" (memory
            efficient), "cudnn" or "math".
        compile: `torch.compile` the UNet and the VAE's encoder and decoder (opt-in: the
            first calls compile for a while; new batch sizes may recompile once).
        compile_mode: passed to `torch.compile` (e.g. "max-autotune"); None: the default.
    """

    channels_last: bool = False
    attention_backend: str = "auto"
    compile: bool = False
    compile_mode: str | None = None

    def __post_init__(self) -> None:
        if self.attention_backend not in ATTENTION_BACKENDS:
            raise InvalidSettings(
                f"attention_backend must be one of {', '.join(ATTENTION_BACKENDS)}; "
                f"got {self.attention_backend!r}."
            )


def sdpa_backends(name: str) -> list:
    """The `torch.nn.attention.SDPBackend` list for a backend name ("auto": all of them)."""
    from torch.nn.attention import SDPBackend

    table = {
        "flash": [SDPBackend.FLASH_ATTENTION],
        "efficient": [SDPBackend.EFFICIENT_ATTENTION],
        "cudnn": [SDPBackend.CUDNN_ATTENTION],
        "math": [SDPBackend.MATH],
    }
    if name == "auto":
        return [b for backends in table.values() for b in backends]
    return table[name]


def set_attention_backend(unet, name: str) -> None:
    """Restrict the SDPA kernels of every attention layer of ``unet`` (in place)."""
    install_cross_frame_attention(unet, None if name == "auto" else sdpa_backends(name))


def apply_speedups(model: DepthModel, options: SpeedOptions) -> DepthModel:
    """Apply ``options`` to ``model`` in place and return it."""
    if options.channels_last:
        for module in (model.unet, model.vae):
            torch.nn.Module.to(module, memory_format=torch.channels_last)
    if options.attention_backend != "auto":
        set_attention_backend(model.unet, options.attention_backend)
    if options.compile:
        kwargs = {} if options.compile_mode is None else {"mode": options.compile_mode}
        for module in (model.unet, model.vae.encoder, model.vae.decoder):
            module.compile(**kwargs)
    logger.info(
        "Speed options: channels_last=%s, attention=%s, compile=%s.",
        options.channels_last, options.attention_backend,
        options.compile_mode or options.compile,
    )
    return model
