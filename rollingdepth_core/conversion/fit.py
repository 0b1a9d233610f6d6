"""Linear Z fitted to reference depth: one robust scale and shift per clip (SPEC §8).

Co-alignment made one affine map valid for every frame, so one fit per clip (per shot)
suffices: minimise a robust (Huber) loss of `a d + b - 1/Z_ref` over the reference samples
by iteratively reweighted least squares, then `Z = 1 / (a d + b)`.

A fit can be impossible; each case is a clear error naming the cause:
fewer than two distinct reference depths (two unknowns), the prediction equal at every
sample, a fit that reverses near and far (`a <= 0`), and a fit that puts pixels of the clip
at or beyond infinity (`a d + b <= 0`) unless ``max_depth`` allows clamping them.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import Tensor

from ..errors import InvalidInput, InvalidSettings
from ..types import DepthVideo
from .converted import ConvertedDepth, check_depth_video

HUBER_K = 1.345  # 95 % efficiency for Gaussian residuals
MAD_TO_SIGMA = 1.4826
ITERATIONS = 50
DISTINCT = 1e-6  # relative difference below which two reference depths count as one


@dataclass(frozen=True)
class DepthFit:
    """`1/Z = scale * d + shift`, fitted to reference depth.

    Attributes:
        scale, shift: the map from our inverse depth `d` to `1/Z` (Z in ``units``).
        num_samples: reference samples used.
        rms_inverse: root mean square of `scale d + shift - 1/Z_ref` over the samples
            (1/units).
        median_abs_inverse: median absolute residual in inverse depth (1/units).
        median_relative_error: median of `|Z_fit - Z_ref| / Z_ref` over the samples.
        units: units of Z.
        source: what the reference was ("5 points", "metric depth, 3 maps").
    """

    scale: float
    shift: float
    num_samples: int
    rms_inverse: float
    median_abs_inverse: float
    median_relative_error: float
    units: str = "m"
    source: str = ""

    def describe(self) -> str:
        return (
            f"fit to {self.source or 'reference depth'}: 1/Z = {self.scale:.6g} d + {self.shift:.6g} "
            f"(Z in {self.units}); {self.num_samples} samples; residual {self.rms_inverse:.4g} "
            f"1/{self.units} RMS in inverse depth (median {self.median_abs_inverse:.4g}); median "
            f"relative Z error {100 * self.median_relative_error:.3g} %"
        )

    def as_parameters(self) -> dict:
        return {
            "method": "fit", "scale": self.scale, "shift": self.shift, "units": self.units,
            "formula": "Z = 1 / (scale * d + shift)", "num_samples": self.num_samples,
            "residual_rms_inverse_depth": self.rms_inverse,
            "residual_median_abs_inverse_depth": self.median_abs_inverse,
            "median_relative_z_error": self.median_relative_error, "reference": self.source,
        }


def _weighted_line(x: Tensor, y: Tensor, w: Tensor) -> tuple[float, float]:
    """Weighted least squares `y ~ a x + b`."""
    total = float(w.sum())
    mx, my = float((w * x).sum()) / total, float((w * y).sum()) / total
    sxx = float((w * (x - mx) ** 2).sum())
    sxy = float((w * (x - mx) * (y - my)).sum())
    a = sxy / sxx if sxx > 0 else 0.0
    return a, my - a * mx


def fit_inverse_depth(
    d: Tensor, z: Tensor, units: str = "m", source: str = "", iterations: int = ITERATIONS
) -> DepthFit:
    """Robust `1/Z = a d + b` from paired samples (Huber loss, reweighted least squares).

    Args:
        d: `S` our inverse depth at the samples.
        z: `S` reference Z (> 0) at the samples.
        units: units of ``z``.
        source: a few words about the reference (for reports).

    Raises:
        InvalidInput: fewer than 2 distinct reference depths, our depth equal at every
            sample, or a fit that makes nearer points farther (`a <= 0`).
    """
    d = d.double().flatten()
    z = z.double().flatten()
    if d.shape != z.shape:
        raise InvalidInput(f"{d.numel()} predictions but {z.numel()} reference depths.")
    keep = torch.isfinite(d) & torch.isfinite(z) & (z > 0)
    d, z = d[keep], z[keep]
    distinct = torch.unique(torch.round(torch.log(z) / DISTINCT)) if z.numel() else z
    if distinct.numel() < 2:
        shown = f" (all {z.numel()} at {float(z[0]):.6g} {units})" if z.numel() else ""
        raise InvalidInput(
            f"fewer than 2 distinct reference depths{shown}: a scale and a shift need at least "
            "two different distances. Add a point at another distance."
        )
    if float(d.max() - d.min()) <= 1e-12 * max(1.0, float(d.abs().max())):
        raise InvalidInput(
            "our depth is the same at every reference sample, so no scale can be fitted; choose "
            "points on surfaces at different distances in the picture."
        )
    y = 1.0 / z
    weights = torch.ones_like(d)
    a, b = _weighted_line(d, y, weights)
    for _ in range(iterations):
        residual = a * d + b - y
        sigma = MAD_TO_SIGMA * float((residual - residual.median()).abs().median())
        sigma = max(sigma, 1e-9 * float(y.abs().mean()))
        scaled = (residual / sigma).abs()
        weights = torch.where(scaled <= HUBER_K, torch.ones_like(scaled), HUBER_K / scaled)
        new_a, new_b = _weighted_line(d, y, weights)
        done = abs(new_a - a) <= 1e-12 * abs(a) + 1e-15 and abs(new_b - b) <= 1e-12 * abs(b) + 1e-15
        a, b = new_a, new_b
        if done:
            break
    if not a > 0:
        raise InvalidInput(
            f"the fit reverses near and far (scale {a:.4g} <= 0): the reference depths grow where our "
            "depth says nearer. Check the points' frames and x/y (origin top-left, rows down) and that "
            "the distances are depth, not inverse depth."
        )
    residual = a * d + b - y
    fitted = a * d + b
    z_fit = torch.where(fitted > 0, 1.0 / fitted.clamp(min=1e-300), torch.full_like(fitted, math.inf))
    return DepthFit(
        scale=a, shift=b, num_samples=int(d.numel()),
        rms_inverse=float(residual.pow(2).mean().sqrt()),
        median_abs_inverse=float(residual.abs().median()),
        median_relative_error=float(((z_fit - z).abs() / z).median()),
        units=units, source=source,
    )


def z_from_fit(video: DepthVideo, fit: DepthFit, max_depth: float | None = None) -> ConvertedDepth:
    """`Z = 1 / (scale d + shift)` for the whole clip.

    Args:
        video: the depth video the fit was made on.
        fit: from `fit_inverse_depth`.
        max_depth: clamp pixels farther than this (and those at or beyond infinity) to it;
            None: such pixels are an error.

    Raises:
        InvalidInput: the fit puts pixels at or beyond infinity and ``max_depth`` is None
            (the message counts them and names frames).
    """
    check_depth_video(video)
    if max_depth is not None and not (math.isfinite(max_depth) and max_depth > 0):
        raise InvalidSettings(f"max_depth must be a finite distance > 0; got {max_depth}.")
    depth = video.inverse_depth.float()
    inverse = depth * fit.scale + fit.shift
    beyond = inverse <= 0
    if max_depth is None and bool(beyond.any()):
        frames = beyond.flatten(1).any(1).nonzero().flatten().tolist()
        shown = ", ".join(str(video.clip.numbers_for(len(depth))[f] if video.clip else f) for f in frames[:8])
        raise InvalidInput(
            f"the fit makes depth negative or infinite at {int(beyond.sum())} pixels (frames {shown}"
            f"{' ...' if len(frames) > 8 else ''}): 1/Z = {fit.scale:.4g} d + {fit.shift:.4g} <= 0 where our "
            "depth is farthest. Either the reference covers only near surfaces (add a point on a far "
            "one) or it disagrees with the depth (check the points' frames and x/y); or set a maximum "
            "depth to clamp those pixels."
        )
    parameters = fit.as_parameters()
    if max_depth is not None:
        too_far = inverse <= 1.0 / max_depth
        far = torch.full_like(inverse, max_depth)
        values = torch.where(too_far, far, 1.0 / inverse.clamp(min=1.0 / max_depth))
        parameters.update(max_depth=max_depth, clamped_to_max_depth=int(too_far.sum()),
                          beyond_infinity=int(beyond.sum()))
    else:
        values = 1.0 / inverse
    spread = None if video.spread is None else fit.scale * values * values * video.spread.float()
    return ConvertedDepth(values, "z", fit.units, parameters, spread, video.clip)
