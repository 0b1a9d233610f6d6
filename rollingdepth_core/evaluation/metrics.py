"""Accuracy of a depth video against ground truth (SPEC §7).

Protocol, per video: one least-squares scale and shift maps the predicted inverse depth to
the ground-truth inverse depth (valid pixels); the result is clamped to the ground truth's
inverse-depth range and inverted to depth; then AbsRel = mean |d^ - d| / d and delta1 =
share of pixels with max(d^ / d, d / d^) < 1.25 (both in %). Temporal error = mean over
frame pairs and pixels of | |p_{i+1} - p_i| - |g_{i+1} - g_i| | on the aligned, clamped
inverse depth (lower is better).

Everything streams over frames in chunks, so clips larger than memory (`DiskTensor`s)
can be scored; sums are accumulated in float64.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

from ..errors import InvalidInput

DELTA1_THRESHOLD = 1.25


@dataclass(frozen=True)
class AffineFit:
    """`aligned = scale * prediction + shift`, clamped to `[low, high]`."""

    scale: float
    shift: float
    low: float
    high: float

    def apply(self, prediction: Tensor) -> Tensor:
        """`... H W` prediction -> aligned inverse depth, float64, clamped."""
        return (prediction.double() * self.scale + self.shift).clamp(self.low, self.high)


@dataclass(frozen=True)
class DepthMetrics:
    """SPEC §7 figures of one video.

    Attributes:
        absrel: mean absolute relative depth error, %.
        delta1: share of pixels within a factor 1.25 of the true depth, %.
        temporal_error: temporal-consistency error on inverse depth (lower is better).
        fit: the per-video affine map used.
    """

    absrel: float
    delta1: float
    temporal_error: float
    fit: AffineFit


def _check_pair(prediction: Tensor, truth: Tensor) -> None:
    if prediction.ndim != 3 or tuple(prediction.shape) != tuple(truth.shape):
        raise InvalidInput(
            f"prediction and ground truth must both be `N H W` of the same size; got "
            f"{tuple(prediction.shape)} and {tuple(truth.shape)}."
        )
    if prediction.shape[0] == 0:
        raise InvalidInput("the video has no frames.")


def _valid(truth: Tensor) -> Tensor:
    """Pixels with a finite, positive ground-truth inverse depth."""
    return torch.isfinite(truth) & (truth > 0)


def fit_affine(prediction: Tensor, truth: Tensor, chunk: int = 16) -> AffineFit:
    """Least-squares scale and shift from prediction to ground-truth inverse depth.

    Args:
        prediction: `N H W` predicted inverse depth (any affine-invariant units).
        truth: `N H W` ground-truth inverse depth; non-positive or non-finite = invalid.
        chunk: frames per step.

    Returns:
        The fit, with the clamp range set to the ground truth's valid range.
    """
    _check_pair(prediction, truth)
    sums = torch.zeros(5, dtype=torch.float64)  # n, x, y, xx, xy
    low, high = float("inf"), float("-inf")
    for start in range(0, prediction.shape[0], chunk):
        g = truth[start:start + chunk].double()
        valid = _valid(g)
        x = prediction[start:start + chunk].double()[valid]
        y = g[valid]
        if y.numel() == 0:
            continue
        sums += torch.stack([torch.tensor(float(y.numel()), dtype=torch.float64), x.sum(), y.sum(),
                             (x * x).sum(), (x * y).sum()])
        low, high = min(low, float(y.min())), max(high, float(y.max()))
    count, sx, sy, sxx, sxy = sums.tolist()
    if count < 2:
        raise InvalidInput("the ground truth has fewer than 2 valid pixels (all <= 0 or NaN).")
    variance = sxx - sx * sx / count
    scale = (sxy - sx * sy / count) / variance if variance > 0 else 0.0
    shift = (sy - scale * sx) / count
    return AffineFit(scale=scale, shift=shift, low=low, high=high)


def per_frame_errors(
    prediction: Tensor, truth: Tensor, fit: AffineFit, chunk: int = 16
) -> tuple[Tensor, Tensor]:
    """AbsRel (%) and delta1 (%) of every frame under one video-level fit.

    Returns:
        `N` AbsRel and `N` delta1, float64 (NaN for frames without valid pixels).
    """
    _check_pair(prediction, truth)
    absrel, delta1 = [], []
    for start in range(0, prediction.shape[0], chunk):
        g = truth[start:start + chunk].double()
        valid = _valid(g)
        depth = 1.0 / fit.apply(prediction[start:start + chunk])
        true_depth = 1.0 / g.clamp(min=1e-12)
        rel = (depth - true_depth).abs() / true_depth
        ratio = torch.maximum(depth / true_depth, true_depth / depth)
        count = valid.flatten(1).sum(1).double()
        absrel.append(torch.where(valid, rel, 0.0).flatten(1).sum(1) / count * 100)
        good = (ratio < DELTA1_THRESHOLD) & valid
        delta1.append(good.flatten(1).sum(1).double() / count * 100)
    return torch.cat(absrel), torch.cat(delta1)


def temporal_error(prediction: Tensor, truth: Tensor, fit: AffineFit, chunk: int = 16) -> float:
    """Mean of | |p_{i+1} - p_i| - |g_{i+1} - g_i| | over frame pairs and valid pixels.

    Args:
        prediction: `N H W`; ``fit`` maps it to aligned inverse depth `p`.
        truth: `N H W` ground-truth inverse depth `g`.

    Returns:
        The error (0.0 for a single frame).
    """
    _check_pair(prediction, truth)
    total, count = 0.0, 0
    previous_p = previous_g = None
    for start in range(0, prediction.shape[0], chunk):
        p = fit.apply(prediction[start:start + chunk])
        g = truth[start:start + chunk].double()
        if previous_p is not None:
            p = torch.cat([previous_p, p])
            g = torch.cat([previous_g, g])
        if p.shape[0] > 1:
            valid = _valid(g[1:]) & _valid(g[:-1])
            diff = ((p[1:] - p[:-1]).abs() - (g[1:] - g[:-1]).abs()).abs()
            total += float(diff[valid].sum())
            count += int(valid.sum())
        previous_p, previous_g = p[-1:], g[-1:]
    return total / count if count else 0.0


def evaluate_depth(prediction: Tensor, truth: Tensor, chunk: int = 16) -> DepthMetrics:
    """SPEC §7 metrics of a predicted inverse-depth video (see module doc).

    Args:
        prediction: `N H W` predicted inverse depth (larger = nearer, any affine units).
        truth: `N H W` ground-truth inverse depth.
        chunk: frames per step (memory).
    """
    fit = fit_affine(prediction, truth, chunk)
    absrel_sum = delta1_sum = 0.0
    count = 0
    for start in range(0, prediction.shape[0], chunk):
        g = truth[start:start + chunk].double()
        valid = _valid(g)
        depth = 1.0 / fit.apply(prediction[start:start + chunk])[valid]
        true_depth = 1.0 / g[valid]
        absrel_sum += float(((depth - true_depth).abs() / true_depth).sum())
        ratio = torch.maximum(depth / true_depth, true_depth / depth)
        delta1_sum += float((ratio < DELTA1_THRESHOLD).sum())
        count += int(valid.sum())
    return DepthMetrics(
        absrel=absrel_sum / count * 100,
        delta1=delta1_sum / count * 100,
        temporal_error=temporal_error(prediction, truth, fit, chunk),
        fit=fit,
    )
