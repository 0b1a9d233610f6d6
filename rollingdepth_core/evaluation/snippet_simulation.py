"""Model-like snippet predictions from ground-truth inverse depth (benchmarks, tests).

A snippet model normalises its own content: it was trained on depth mapped jointly over
the snippet's frames to -1..1 with the 2nd and 98th percentiles. So each simulated snippet
is `s_k (2 (gt - lo) / (hi - lo) - 1) + t_k`, `lo`/`hi` the snippet's joint percentiles,
with a random gain and offset (`s_k = exp(U(-j, j))`, `t_k = U(-j, j)`), then Gaussian
noise, a fraction of pixels replaced by uniform outliers, and on some snippets a bright
ellipse on one frame (a hallucinated object). Snippets follow the same dilated index plan
as the real pipeline (`plan_snippets`).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import Tensor

from ..errors import InvalidInput, InvalidSettings
from ..types import SnippetDepths, SnippetPlan

PERCENTILES = (0.02, 0.98)
PERCENTILE_SAMPLES = 65536  # pixels used to estimate a snippet's percentiles


@dataclass(frozen=True)
class SnippetNoise:
    """How far simulated snippets are from an exact per-snippet normalisation.

    Attributes:
        jitter: half-width of the log-gain and offset perturbations.
        noise_std: standard deviation of the Gaussian noise.
        outlier_fraction: share of pixels replaced by `U(-outlier_range, outlier_range)`.
        outlier_range: amplitude of the outliers.
        blob_fraction: share of snippets with a bright ellipse on one frame.
        blob_value: what the ellipse adds.
    """

    jitter: float = 0.1
    noise_std: float = 0.02
    outlier_fraction: float = 0.001
    outlier_range: float = 1.0
    blob_fraction: float = 0.03
    blob_value: float = 0.4

    def __post_init__(self) -> None:
        for name in ("jitter", "noise_std", "outlier_fraction", "outlier_range", "blob_fraction"):
            if getattr(self, name) < 0:
                raise InvalidSettings(f"{name} must be >= 0; got {getattr(self, name)}.")
        if self.outlier_fraction > 1 or self.blob_fraction > 1:
            raise InvalidSettings("outlier_fraction and blob_fraction are shares in 0..1.")


CLEAN = SnippetNoise(0.0, 0.0, 0.0, 0.0, 0.0, 0.0)


@dataclass(frozen=True)
class SimulatedSnippets:
    """Simulated snippet depths and the affine maps that made them.

    Attributes:
        snippets: `SnippetDepths` (per group `s n H W`).
        gains, offsets: per group `s`: before noise, `pred = gain * gt + offset`.
    """

    snippets: SnippetDepths
    gains: tuple[Tensor, ...]
    offsets: tuple[Tensor, ...]


def _allocate_in_memory(shape: tuple[int, ...], dtype: torch.dtype):
    return torch.empty(shape, dtype=dtype)


def snippet_percentiles(frames: Tensor, generator: torch.Generator) -> tuple[float, float]:
    """Joint 2nd / 98th percentiles of `n H W` frames (estimated on a pixel sample)."""
    flat = frames.reshape(-1).float()
    if flat.numel() > PERCENTILE_SAMPLES:
        flat = flat[torch.randint(flat.numel(), (PERCENTILE_SAMPLES,), generator=generator)]
    low, high = torch.quantile(flat, torch.tensor(PERCENTILES)).tolist()
    return low, high


def _ellipse(height: int, width: int, generator: torch.Generator) -> Tensor:
    """`H W` bool mask of an ellipse with radii 12 % of the sides at a random centre."""
    cy, cx = (torch.rand(2, generator=generator) * torch.tensor([height, width])).tolist()
    ry, rx = max(1.0, 0.12 * height), max(1.0, 0.12 * width)
    y = torch.arange(height, dtype=torch.float32)[:, None]
    x = torch.arange(width, dtype=torch.float32)[None, :]
    return ((y - cy) / ry) ** 2 + ((x - cx) / rx) ** 2 <= 1


def simulate_snippets(
    truth,
    plan: SnippetPlan,
    noise: SnippetNoise = SnippetNoise(),
    seed: int = 0,
    dtype: torch.dtype = torch.float32,
    allocate: Callable[[tuple[int, ...], torch.dtype], object] = _allocate_in_memory,
) -> SimulatedSnippets:
    """Simulate every snippet of ``plan`` from ground-truth inverse depth.

    Args:
        truth: `N H W` ground-truth inverse depth (a tensor or `DiskTensor`).
        plan: the snippet plan (`plan_snippets(N, ...)`).
        noise: perturbations (`CLEAN` for exact per-snippet normalisation).
        seed: seed of the CPU generator that draws everything.
        dtype: storage dtype of the snippet depths (float16 like fp16 model runs).
        allocate: ``allocate(shape, dtype)`` returns the writable array of one group
            (default: a tensor in memory; pass a `DiskTensor` factory for long clips).

    Returns:
        `SimulatedSnippets`.
    """
    if len(truth.shape) != 3 or int(truth.shape[0]) != plan.num_frames:
        raise InvalidInput(
            f"truth must be `N H W` with N = {plan.num_frames} (the plan's frames); "
            f"got {tuple(truth.shape)}."
        )
    generator = torch.Generator("cpu").manual_seed(seed)
    height, width = int(truth.shape[1]), int(truth.shape[2])
    depths, gains, offsets = [], [], []
    for group in plan.groups:
        out = allocate((group.num_snippets, group.snippet_length, height, width), dtype)
        num = group.num_snippets
        log_gain = (torch.rand(num, generator=generator) * 2 - 1) * noise.jitter
        shift = (torch.rand(num, generator=generator) * 2 - 1) * noise.jitter
        gain_k, offset_k = torch.empty(num), torch.empty(num)
        for k in range(num):
            frames = torch.stack([truth[int(i)] for i in group.indices[k]]).float()  # n H W
            low, high = snippet_percentiles(frames, generator)
            spread = max(high - low, 1e-6)
            scale = float(torch.exp(log_gain[k]))
            gain_k[k] = 2 * scale / spread
            offset_k[k] = scale * (-2 * low / spread - 1) + float(shift[k])
            pred = gain_k[k] * frames + offset_k[k]
            pred = pred + noise.noise_std * torch.randn(frames.shape, generator=generator)
            if noise.outlier_fraction > 0:
                hit = torch.rand(frames.shape, generator=generator) < noise.outlier_fraction
                wild = (torch.rand(frames.shape, generator=generator) * 2 - 1) * noise.outlier_range
                pred = torch.where(hit, wild, pred)
            if noise.blob_fraction > 0 and float(torch.rand(1, generator=generator)) < noise.blob_fraction:
                which = int(torch.randint(group.snippet_length, (1,), generator=generator))
                pred[which] += noise.blob_value * _ellipse(height, width, generator)
            out[k] = pred.to(dtype)
        depths.append(out)
        gains.append(gain_k)
        offsets.append(offset_k)
    return SimulatedSnippets(
        snippets=SnippetDepths(plan=plan, depths=tuple(depths)),
        gains=tuple(gains), offsets=tuple(offsets),
    )
