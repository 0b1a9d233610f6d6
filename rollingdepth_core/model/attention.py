"""Cross-frame self-attention for stock diffusers (SPEC §2), with torch SDPA.

In every UNet self-attention (`attn1`) the tokens of a snippet's `n` frames form one
sequence: `(s n) hw c -> s (n hw) c`, attend, and back. Cross-attention (`attn2`) stays
per frame. The number of frames travels with each UNet call as
``cross_attention_kwargs={"num_frames": n}``; `n = 1` is the plain single-image model.
"""

from __future__ import annotations

import contextlib

import torch.nn.functional as F
from einops import rearrange
from torch import Tensor


def fold_frames(tokens: Tensor, num_frames: int) -> Tensor:
    """Join a snippet's frames into one attention sequence.

    Args:
        tokens: `(s n) hw c`, the frames of each snippet next to each other.
        num_frames: `n`.

    Returns:
        `s (n hw) c`.
    """
    return rearrange(tokens, "(s n) hw c -> s (n hw) c", n=num_frames)


def unfold_frames(tokens: Tensor, num_frames: int) -> Tensor:
    """Inverse of `fold_frames`: `s (n hw) c -> (s n) hw c`."""
    return rearrange(tokens, "s (n hw) c -> (s n) hw c", n=num_frames)


class FrameAttnProcessor:
    """SDPA attention processor that knows how many frames form a snippet.

    Installed on both attention layers of every transformer block. With ``cross_frame``
    (self-attention) the frames of a snippet attend to each other; without it (cross-attention
    to the text embedding) each frame attends on its own, as in the image model.
    ``backends`` (a list of `torch.nn.attention.SDPBackend`) restricts the SDPA kernels it may
    use (`speedups.SpeedOptions.attention_backend`); None lets PyTorch pick.

    diffusers passes a processor only the keyword arguments its ``__call__`` names, so
    ``num_frames`` must stay in the signature.
    """

    def __init__(self, cross_frame: bool, backends: list | None = None):
        self.cross_frame = cross_frame
        self.backends = backends

    def __call__(
        self,
        attn,
        hidden_states: Tensor,
        encoder_hidden_states: Tensor | None = None,
        attention_mask: Tensor | None = None,
        temb: Tensor | None = None,
        num_frames: int = 1,
    ) -> Tensor:
        """Attention over `b hw c` tokens; `b = s n` when ``num_frames`` is `n`."""
        if attention_mask is not None:
            raise NotImplementedError("RollingDepth's UNet uses no attention mask.")
        if hidden_states.ndim != 3 or attn.spatial_norm is not None or attn.group_norm is not None:
            raise NotImplementedError("FrameAttnProcessor expects transformer-block attention.")
        residual = hidden_states
        fold = self.cross_frame and encoder_hidden_states is None and num_frames > 1
        if fold:
            hidden_states = fold_frames(hidden_states, num_frames)  # s (n hw) c
        context = hidden_states if encoder_hidden_states is None else encoder_hidden_states
        if context.shape[0] != hidden_states.shape[0]:
            context = context.expand(hidden_states.shape[0], -1, -1)
        if attn.norm_cross and encoder_hidden_states is not None:
            context = attn.norm_encoder_hidden_states(context)

        query = rearrange(attn.to_q(hidden_states), "b t (a d) -> b a t d", a=attn.heads)
        key = rearrange(attn.to_k(context), "b t (a d) -> b a t d", a=attn.heads)
        value = rearrange(attn.to_v(context), "b t (a d) -> b a t d", a=attn.heads)
        if attn.norm_q is not None:
            query = attn.norm_q(query)
        if attn.norm_k is not None:
            key = attn.norm_k(key)
        with self._kernels():
            out = F.scaled_dot_product_attention(query, key, value, dropout_p=0.0, is_causal=False)
        out = rearrange(out, "b a t d -> b t (a d)").to(query.dtype)
        out = attn.to_out[1](attn.to_out[0](out))
        if fold:
            out = unfold_frames(out, num_frames)  # (s n) hw c
        if attn.residual_connection:
            out = out + residual
        return out / attn.rescale_output_factor

    def _kernels(self):
        """The SDPA kernel restriction, or nothing."""
        if self.backends is None:
            return contextlib.nullcontext()
        from torch.nn.attention import sdpa_kernel

        return sdpa_kernel(self.backends)


def install_cross_frame_attention(unet, backends: list | None = None) -> None:
    """Install `FrameAttnProcessor` on every attention layer of ``unet`` (in place).

    Self-attention layers (`attn1`) get the cross-frame variant. Calls must then pass
    ``cross_attention_kwargs={"num_frames": n}``.

    Args:
        backends: SDPA kernels the processors may use (None: PyTorch's choice).
    """
    processors = {
        name: FrameAttnProcessor(name.endswith("attn1.processor"), backends)
        for name in unet.attn_processors
    }
    unet.set_attn_processor(processors)
