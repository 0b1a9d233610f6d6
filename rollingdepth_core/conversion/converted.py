"""A converted depth video: values, what they mean (kind, units) and how they were made."""

from __future__ import annotations

import json
from dataclasses import dataclass, field

import torch
from torch import Tensor

from ..errors import InvalidInput, InvalidSettings
from ..types import ClipInfo, DepthVideo

KINDS = ("inverse_depth", "normalized", "z")
MEANINGS = {
    "inverse_depth": "affine-invariant inverse depth (larger = nearer; unknown scale and shift)",
    "normalized": "normalised inverse depth, 0..1 (near = 1, far = 0; one range for the clip)",
    "z": "linear Z depth (distance along the camera's optical axis)",
}
SPREAD_MEANING = (
    "spread: standard deviation of the co-aligned snippet predictions of each pixel, in the "
    "units of the depth channel (first-order propagation through the conversion); larger = "
    "the predictions disagree, trust the depth less"
)
QUANTILE_SAMPLES = 4_000_000  # torch.quantile needs fewer than 16M values


@dataclass(frozen=True)
class ConvertedDepth:
    """Depth in units a compositing tool can use.

    Attributes:
        values: `N H W` float32.
        kind: "inverse_depth" (the model's own), "normalized" (0..1, near = 1) or "z"
            (linear depth along the optical axis).
        units: units of the values ("m", "cm", ... for Z; "" otherwise).
        parameters: how the values were made (method, `1/Z = scale * d + shift`, planes,
            percentiles, fit residuals): JSON-serialisable, written into file metadata.
        spread: `N H W` float32 spread in the units of ``values`` (SPEC §8), or None.
        clip: where the frames came from, or None.
    """

    values: Tensor
    kind: str
    units: str = ""
    parameters: dict = field(default_factory=dict)
    spread: Tensor | None = None
    clip: ClipInfo | None = None

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise InvalidSettings(f"depth kind must be one of {', '.join(KINDS)}; got {self.kind!r}.")
        if self.values.ndim != 3 or self.values.shape[0] == 0:
            raise InvalidInput(f"depth values must be `N H W` with N >= 1; got {tuple(self.values.shape)}.")

    @property
    def num_frames(self) -> int:
        return int(self.values.shape[0])

    @property
    def size(self) -> tuple[int, int]:
        return int(self.values.shape[-2]), int(self.values.shape[-1])

    def meaning(self) -> str:
        """What the values are, in words (with units)."""
        units = f", in {self.units}" if self.units else ""
        return MEANINGS[self.kind] + units

    def describe(self) -> str:
        """One line: meaning and parameters (for logs, node reports)."""
        return f"{self.meaning()}; {json.dumps(self.parameters, sort_keys=True)}"


def from_depth_video(video: DepthVideo) -> ConvertedDepth:
    """A depth video as it is: affine-invariant inverse depth (no conversion)."""
    check_depth_video(video)
    return ConvertedDepth(
        values=video.inverse_depth.float(), kind="inverse_depth", units="",
        parameters={"method": "none"}, spread=video.spread, clip=video.clip,
    )


def check_depth_video(video: object) -> DepthVideo:
    """Raise ``InvalidInput`` unless ``video`` is a finite `N H W` `DepthVideo`."""
    if not isinstance(video, DepthVideo):
        raise InvalidInput(f"expected a depth video (DepthVideo); got {type(video).__name__}.")
    depth = video.inverse_depth
    if depth.ndim != 3 or depth.shape[0] == 0:
        raise InvalidInput(f"depth must be `N H W` with N >= 1; got {tuple(depth.shape)}.")
    if not bool(torch.isfinite(depth).all()):
        raise InvalidInput("the depth video holds NaN or infinite values; nothing was converted.")
    return video


def check_percentiles(low: float, high: float) -> None:
    if not 0.0 <= low < high <= 100.0:
        raise InvalidSettings(
            f"percentiles must satisfy 0 <= low < high <= 100; got {low} and {high}."
        )


def robust_range(values: Tensor, low_percentile: float, high_percentile: float) -> tuple[float, float]:
    """Clip-wide percentiles of ``values`` (min/max for 0 and 100; sampled for big clips).

    Raises:
        InvalidInput: the values are constant between the two percentiles.
    """
    check_percentiles(low_percentile, high_percentile)
    flat = values.reshape(-1).float()
    if low_percentile == 0.0 and high_percentile == 100.0:
        low, high = float(flat.min()), float(flat.max())
    else:
        sample = flat[:: max(1, flat.numel() // QUANTILE_SAMPLES)]
        low = float(torch.quantile(sample, low_percentile / 100.0))
        high = float(torch.quantile(sample, high_percentile / 100.0))
    if not high > low:
        raise InvalidInput(
            f"the depth is constant between the {low_percentile} and {high_percentile} percentiles "
            f"({low:.6g}); it holds no depth to convert."
        )
    return low, high
