"""Image files written with OpenImageIO for the plate tests (small, made by each test)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest


def write_image(
    path: Path, pixels: np.ndarray, pixel_type: str = "half", channels: tuple[str, ...] | None = None,
    data_window: tuple[int, int] | None = None, display_window: tuple[int, int, int, int] | None = None,
    bits: int = 0, **attributes,
) -> Path:
    """Write `h w c` ``pixels`` (float 0..1 or any float for EXR) to ``path`` with OpenImageIO."""
    import OpenImageIO as oiio

    pixels = np.asarray(pixels, dtype=np.float32)
    if pixels.ndim == 2:
        pixels = pixels[:, :, None]
    height, width, count = pixels.shape
    spec = oiio.ImageSpec(width, height, count, pixel_type)
    if channels is not None:
        spec.channelnames = tuple(channels)
    if data_window is not None:
        spec.x, spec.y = data_window
    if display_window is not None:
        spec.full_x, spec.full_y, spec.full_width, spec.full_height = display_window
    if bits:
        spec.attribute("oiio:BitsPerSample", bits)
    for name, value in attributes.items():
        spec.attribute(name.replace("__", ":"), value)
    out = oiio.ImageOutput.create(str(path))
    assert out is not None, oiio.geterror()
    assert out.open(str(path), spec), out.geterror()
    assert out.write_image(pixels), out.geterror()
    out.close()
    return path


@pytest.fixture
def make_image():
    return write_image


@pytest.fixture
def plate_pixels():
    """`pixels(frame, h, w)`: smooth float RGB in 0..1 that changes from frame to frame."""

    def pixels(frame: int, height: int = 12, width: int = 16, channels: int = 3) -> np.ndarray:
        y = np.linspace(0, 1, height)[:, None, None]
        x = np.linspace(0, 1, width)[None, :, None]
        c = np.arange(channels)[None, None, :]
        return (0.5 + 0.4 * np.sin(3 * x + 2 * y + 0.3 * frame + c)).astype(np.float32)

    return pixels
