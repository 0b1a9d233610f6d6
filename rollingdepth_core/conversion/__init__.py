"""Depth conversion (SPEC §8): the model's affine-invariant inverse depth -> values tools use.

The model gives inverse depth `d` with an unknown scale and shift per clip (`1/Z = a d + b`).
This part turns it into

- normalised 0..1 (near = 1) with one robust range for the clip (`normalized`), for
  ControlNets and displacement;
- linear Z between near and far planes the user gives (`planes`);
- linear Z fitted to reference depth, a few known distances or a metric depth map or video,
  with one robust scale and shift per clip and its residuals (`references`, `fit`);

carrying the spread of the predictions into the new units. It is arithmetic on depth
videos, not I/O and not the method, so it is its own part, in the layer of `io` and
`evaluation` (it imports only the base: errors, types).
"""

from .convert import MODES, DepthConversion, convert_depth
from .converted import KINDS, ConvertedDepth, from_depth_video, robust_range
from .fit import DepthFit, fit_inverse_depth, z_from_fit
from .normalized import normalized_depth
from .planes import z_from_planes
from .references import (
    ReferencePoint,
    parse_points,
    read_points,
    samples_from_depth_maps,
    samples_from_points,
)

__all__ = [
    "KINDS", "MODES", "ConvertedDepth", "DepthConversion", "DepthFit", "ReferencePoint",
    "convert_depth", "fit_inverse_depth", "from_depth_video", "normalized_depth", "parse_points",
    "read_points", "robust_range", "samples_from_depth_maps", "samples_from_points", "z_from_fit",
    "z_from_planes",
]
