"""A plate (image sequence) as ComfyUI's VIDEO, read lazily.

`PlateVideo` has the methods of ComfyUI's `VideoInput` (the bridge adds the class itself
inside ComfyUI): core nodes get the frames as an IMAGE batch (`get_components`), our nodes
read them batch by batch at processing size through ``frame_source()`` (see
`io.sources.video_input_source`), so a long 4K EXR plate never becomes one float batch.
"""

from __future__ import annotations

from fractions import Fraction

import torch

from ..rollingdepth_core.io.plates import ImageSequenceSource


class PlateVideo:
    """The VIDEO a Load Plate Sequence node returns (no ComfyUI import here).

    Args:
        source: the plate, checked and colour-resolved.
    """

    def __init__(self, source: ImageSequenceSource):
        self.source = source

    def frame_source(self) -> ImageSequenceSource:
        """The lazy `FrameSource` our nodes read (processing size, colour-converted)."""
        return self.source

    def images(self) -> torch.Tensor:
        """Every frame as an IMAGE batch `N H W 3` float32 in 0..1 (sRGB display encoding),
        at the stored size: what core nodes get from `get_components()`."""
        return self.source.read_images(0, self.source.num_frames)

    def get_dimensions(self) -> tuple[int, int]:
        """`(width, height)` in stored pixels."""
        height, width = self.source.stored_size
        return width, height

    def get_frame_count(self) -> int:
        return self.source.num_frames

    def get_frame_rate(self) -> Fraction:
        return self.source.frame_rate

    def get_duration(self) -> float:
        return float(self.source.num_frames / self.source.frame_rate)

    def get_container_format(self) -> str:
        return "image2"  # FFmpeg's name for image sequences

    def __repr__(self) -> str:
        return f"PlateVideo({self.source.sequence.describe()}, {self.source.colour.description})"
