"""The one shared noise draw of a run (SPEC §3.2)."""

from __future__ import annotations

import torch
from torch import Tensor

from ..errors import InvalidInput, InvalidSettings


def make_noise(latent_size: tuple[int, int], seed: int) -> Tensor:
    """`1 4 h w` float32 Gaussian noise from a CPU generator seeded with ``seed``.

    Drawn on the CPU so that one seed gives the same depth on every device.
    """
    if int(seed) != seed or seed < 0:
        raise InvalidSettings(f"seed must be a whole number >= 0; got {seed!r}.")
    generator = torch.Generator("cpu").manual_seed(int(seed))
    return torch.randn((1, 4, *latent_size), generator=generator)


def check_noise(noise: Tensor, latent_size: tuple[int, int]) -> Tensor:
    """``noise`` as float32 `1 4 h w`, checked against the latent size `(h, w)`."""
    expected = (1, 4, *latent_size)
    if tuple(noise.shape) == expected[1:]:
        noise = noise[None]
    if tuple(noise.shape) != expected:
        raise InvalidInput(
            f"noise must have shape {expected} (1 4 h w, the latent size of the padded frames); "
            f"got {tuple(noise.shape)}."
        )
    if not bool(torch.isfinite(noise).all()):
        raise InvalidInput("noise contains NaN or infinite values.")
    return noise.float()
