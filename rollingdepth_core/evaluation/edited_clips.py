"""Edited clips with known cuts, for cut detection and farm tests and benchmarks."""

from __future__ import annotations

import torch
from torch import Tensor

from ..errors import InvalidSettings


def _scene(kind: int, t: Tensor, y: Tensor, x: Tensor) -> Tensor:
    """One camera shot: a smooth pattern that drifts with time, `N 3 H W` in -1..1."""
    zero = 0 * (t + y + x)
    if kind % 2 == 0:  # warm, horizontal stripes drifting right
        channels = (torch.sin(8 * x + 0.2 * t) + zero, 0.5 * torch.cos(5 * y + 0.1 * t) + zero, 0.3 + zero)
    else:  # cold, diagonal pattern drifting down
        channels = (-0.6 + zero, torch.sin(11 * y - 0.3 * t + 4 * x), torch.cos(9 * x * y + 0.15 * t))
    return torch.stack(channels, dim=1)


def edited_clip(num_frames: int, cuts: tuple[int, ...], height: int = 48, width: int = 64) -> Tensor:
    """A clip of ``num_frames`` frames that cuts to a different scene at each frame in ``cuts``.

    Args:
        num_frames: `N`.
        cuts: first frame of each new shot, increasing, each in `1 .. N - 1`.
        height, width: frame size.

    Returns:
        `N 3 H W` float32 RGB in -1..1; shots alternate between two unrelated scenes.
    """
    if list(cuts) != sorted(set(cuts)) or any(not 0 < c < num_frames for c in cuts):
        raise InvalidSettings(f"cuts must increase within 1..{num_frames - 1}; got {cuts}.")
    t = torch.arange(num_frames, dtype=torch.float32)[:, None, None]
    y = torch.linspace(0, 1, height)[None, :, None]
    x = torch.linspace(0, 1, width)[None, None, :]
    shot = torch.zeros(num_frames, dtype=torch.long)
    for cut in cuts:
        shot[cut:] += 1
    frames = torch.where((shot % 2 == 0)[:, None, None, None], _scene(0, t, y, x), _scene(1, t, y, x))
    return frames.clamp(-1, 1).float()
