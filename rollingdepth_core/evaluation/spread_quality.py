"""Does the spread mark where the depth is wrong? (SPEC §8, issue 10)

Against ground truth, one least-squares scale and shift per video maps the prediction to
true inverse depth (SPEC §7); a pixel's error is then `|aligned - truth|`, and its spread is
taken into the same units (times `|scale|`). Agreement is measured as

- the Spearman rank correlation between spread and error over the pixels (1: the larger the
  spread, the larger the error; 0: unrelated);
- the mean error of the pixels in each tenth of the spread (deciles, lowest first);
- how many of the worst tenth of the pixels (by error) are in the top tenth by spread.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

from ..errors import InvalidInput
from .metrics import fit_affine

MAX_PIXELS = 2_000_000  # ranks are computed on at most this many evenly strided pixels


@dataclass(frozen=True)
class SpreadAgreement:
    """How well a spread predicts the error.

    Attributes:
        spearman: rank correlation between spread and absolute error over the pixels.
        decile_errors: mean absolute error (inverse depth) of the pixels in each tenth of
            the spread, lowest spread first.
        decile_spreads: mean spread of each tenth.
        top_decile_recall: share of the 10 % largest errors that are among the 10 % largest
            spreads (0.1 if unrelated).
        num_pixels: pixels used.
    """

    spearman: float
    decile_errors: tuple[float, ...]
    decile_spreads: tuple[float, ...]
    top_decile_recall: float
    num_pixels: int


def ranks(values: Tensor) -> Tensor:
    """Ranks 0 .. n-1 of a 1-D tensor (ties in input order), float64."""
    order = torch.argsort(values, stable=True)
    out = torch.empty_like(order, dtype=torch.float64)
    out[order] = torch.arange(values.numel(), dtype=torch.float64)
    return out


def spearman(x: Tensor, y: Tensor) -> float:
    """Spearman rank correlation of two 1-D tensors of the same length."""
    rx, ry = ranks(x.flatten()), ranks(y.flatten())
    rx, ry = rx - rx.mean(), ry - ry.mean()
    denominator = float((rx * rx).sum().sqrt() * (ry * ry).sum().sqrt())
    return float((rx * ry).sum()) / denominator if denominator > 0 else 0.0


def spread_error_agreement(prediction: Tensor, spread: Tensor, truth: Tensor) -> SpreadAgreement:
    """Agreement between the spread and the error of a prediction against ground truth.

    Args:
        prediction: `N H W` inverse depth (any affine units).
        spread: `N H W` spread in the prediction's units.
        truth: `N H W` ground-truth inverse depth (non-positive or NaN = invalid).
    """
    if prediction.shape != spread.shape or prediction.shape != truth.shape or prediction.ndim != 3:
        raise InvalidInput(
            f"prediction, spread and truth must be `N H W` of one size; got {tuple(prediction.shape)}, "
            f"{tuple(spread.shape)} and {tuple(truth.shape)}."
        )
    fit = fit_affine(prediction, truth)
    valid = torch.isfinite(truth) & (truth > 0)
    error = (prediction.double() * fit.scale + fit.shift - truth.double()).abs()[valid]
    spread_aligned = spread.double()[valid] * abs(fit.scale)
    step = max(1, error.numel() // MAX_PIXELS)
    error, spread_aligned = error[::step], spread_aligned[::step]
    count = error.numel()
    if count < 10:
        raise InvalidInput(f"only {count} valid pixels; need at least 10.")
    order = torch.argsort(spread_aligned, stable=True)
    tenths = torch.tensor_split(order, 10)
    decile_errors = tuple(float(error[t].mean()) for t in tenths)
    decile_spreads = tuple(float(spread_aligned[t].mean()) for t in tenths)
    top = count // 10
    worst = set(torch.argsort(error, descending=True, stable=True)[:top].tolist())
    widest = set(order[-top:].tolist())
    return SpreadAgreement(
        spearman=spearman(spread_aligned, error),
        decile_errors=decile_errors,
        decile_spreads=decile_spreads,
        top_decile_recall=len(worst & widest) / max(1, top),
        num_pixels=count,
    )
