"""A synthetic clip, generated as it is read (no memory held for the frames)."""

from __future__ import annotations

import math

import torch
from torch import Tensor

from ..io.frames import resize_frames
from ..io.sources import check_range


class SyntheticSource:
    """`N` frames of a smooth pattern that pans and changes brightness over time.

    Frame `i` is a fixed random smooth image rolled by `i` pixels, so consecutive frames
    are related as in a video. Reading is cheap and deterministic.
    """

    def __init__(self, num_frames: int, input_size: tuple[int, int], seed: int = 0):
        self._num_frames = int(num_frames)
        self._input_size = (int(input_size[0]), int(input_size[1]))
        generator = torch.Generator("cpu").manual_seed(seed)
        coarse = torch.rand(1, 3, 12, 20, generator=generator) * 2 - 1
        self._base = torch.nn.functional.interpolate(
            coarse, size=self._input_size, mode="bicubic", align_corners=False
        ).clamp(-1, 1)[0]  # 3 H W
        self.seed = seed

    @property
    def num_frames(self) -> int:
        return self._num_frames

    @property
    def input_size(self) -> tuple[int, int]:
        return self._input_size

    def read(self, start: int, stop: int, size: tuple[int, int] | None = None) -> Tensor:
        check_range(self, start, stop)
        frames = torch.stack([
            torch.roll(self._base, shifts=i, dims=-1) * (0.8 + 0.2 * math.cos(i / 10))
            for i in range(start, stop)
        ])  # b 3 H W in -1..1
        return frames if size is None else resize_frames(frames, tuple(size))

    def fingerprint(self) -> tuple:
        return ("synthetic", self._num_frames, self._input_size, self.seed)
