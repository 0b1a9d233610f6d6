"""Reading one image with OpenImageIO: formats, bit depths, layers, windows (files made here)."""

from __future__ import annotations

import numpy as np
import pytest

from rollingdepth_core.errors import InvalidInput, InvalidSettings
from rollingdepth_core.io.image_files import place_in_window, read_header, read_rgb


def ramp(height=6, width=8, channels=3, top=1.0):
    values = np.arange(height * width * channels, dtype=np.float32).reshape(height, width, channels)
    return values / values.max() * top


def test_half_and_float_exr_read_back_exactly(tmp_path, make_image):
    pixels = ramp(top=37.5)  # scene-linear values far above 1
    for pixel_type in ("half", "float"):
        path = make_image(tmp_path / f"{pixel_type}.exr", pixels, pixel_type)
        header = read_header(path)
        assert header.pixel_type == pixel_type and header.is_float and header.format_name == "openexr"
        stored = pixels.astype(np.float16).astype(np.float32) if pixel_type == "half" else pixels
        np.testing.assert_array_equal(read_rgb(header), stored)


def test_rgba_exr_ignores_alpha_and_a_named_layer_is_selectable(tmp_path, make_image):
    base = ramp(channels=4)
    diffuse = ramp(channels=3, top=5.0)[::-1].copy()
    pixels = np.concatenate([base, diffuse], axis=-1)
    names = ("R", "G", "B", "A", "diffuse.R", "diffuse.G", "diffuse.B")
    path = make_image(tmp_path / "layers.exr", pixels, "float", channels=names)
    np.testing.assert_array_equal(read_rgb(read_header(path)), base[..., :3])
    header = read_header(path, layer="diffuse")
    assert header.layers() == ["diffuse"]
    np.testing.assert_array_equal(read_rgb(header), diffuse)
    with pytest.raises(InvalidInput, match=r"no layer 'specular'.*layers: diffuse"):
        read_header(path, layer="specular")


def test_layer_in_a_named_part_of_a_multipart_exr(tmp_path):
    import OpenImageIO as oiio

    path = tmp_path / "parts.exr"
    specs = []
    for name in ("beauty", "normals"):
        spec = oiio.ImageSpec(8, 6, 3, "half")
        spec.attribute("name", name)
        specs.append(spec)
    out = oiio.ImageOutput.create(str(path))
    assert out.supports("multiimage")
    assert out.open(str(path), specs)
    out.write_image(ramp())
    assert out.open(str(path), specs[1], "AppendSubimage")
    out.write_image(ramp()[::-1].copy())
    out.close()
    header = read_header(path, layer="normals")
    assert header.subimage == 1
    np.testing.assert_allclose(read_rgb(header), ramp()[::-1], atol=1e-3)
    assert read_header(path).subimage == 0


def test_ten_bit_dpx_and_sixteen_bit_tiff_keep_every_code_value(tmp_path, make_image):
    codes10 = np.arange(6 * 8 * 3).reshape(6, 8, 3) * 7 % 1024
    dpx = make_image(tmp_path / "plate.dpx", codes10 / 1023.0, "uint16", bits=10)
    header = read_header(dpx)
    assert (header.format_name, header.bits, header.is_float) == ("dpx", 10, False)
    np.testing.assert_array_equal(np.round(read_rgb(header) * 1023), codes10)
    codes16 = np.arange(6 * 8 * 3).reshape(6, 8, 3) * 911 % 65536
    tif = make_image(tmp_path / "plate.tif", codes16 / 65535.0, "uint16")
    header = read_header(tif)
    assert (header.pixel_type, header.bits) == ("uint16", 16)
    pixels = read_rgb(header)
    assert pixels.dtype == np.float32
    np.testing.assert_array_equal(pixels, (codes16 / 65535.0).astype(np.float32))


def test_png_eight_bit_grey_and_jpeg(tmp_path, make_image):
    codes = np.arange(6 * 8).reshape(6, 8) * 5 % 256
    png = make_image(tmp_path / "grey.png", codes / 255.0, "uint8")
    pixels = read_rgb(read_header(png))
    assert pixels.shape == (6, 8, 3)
    np.testing.assert_array_equal(np.round(pixels * 255), np.repeat(codes[..., None], 3, axis=-1))
    jpeg = make_image(tmp_path / "photo.jpg", ramp(16, 16), "uint8")
    np.testing.assert_allclose(read_rgb(read_header(jpeg)), ramp(16, 16), atol=0.06)


def test_display_window_pads_and_crops_data_window(tmp_path, make_image):
    pixels = ramp(4, 5) + 0.1
    # data window 5x4 at (2, 1) inside a 8x6 display window: the rest reads as 0
    inside = make_image(tmp_path / "cropped.exr", pixels, "float", data_window=(2, 1),
                        display_window=(0, 0, 8, 6))
    header = read_header(inside)
    assert header.data_window == (2, 1, 5, 4) and header.display_window == (0, 0, 8, 6)
    full = read_rgb(header, "display")
    assert full.shape == (6, 8, 3)
    np.testing.assert_array_equal(full[1:5, 2:7], pixels)
    assert float(np.abs(full).sum() - np.abs(pixels).sum()) == pytest.approx(0.0, abs=1e-4)
    np.testing.assert_array_equal(read_rgb(header, "data"), pixels)
    # overscan: data window larger than the display window is cropped to it
    over = make_image(tmp_path / "overscan.exr", ramp(8, 10), "float", data_window=(-1, -2),
                      display_window=(0, 0, 8, 5))
    np.testing.assert_array_equal(read_rgb(read_header(over)), ramp(8, 10)[2:7, 1:9])
    with pytest.raises(InvalidSettings, match="window must be"):
        read_rgb(header, "full")


def test_place_in_window_without_overlap_is_black():
    out = place_in_window(np.ones((2, 2, 3), np.float32), (10, 10, 2, 2), (0, 0, 4, 3))
    assert out.shape == (3, 4, 3) and not out.any()


def test_non_image_with_an_image_name_is_named(tmp_path):
    fake = tmp_path / "plate.1001.exr"
    fake.write_text("not an image")
    with pytest.raises(InvalidInput, match=r"Could not read .*plate.1001.exr as an image"):
        read_header(fake)


def test_pixel_aspect_and_frame_rate_come_from_the_header(tmp_path, make_image):
    import OpenImageIO as oiio

    path = tmp_path / "anamorphic.exr"
    make_image(path, ramp(), "half", PixelAspectRatio=2.0)
    assert read_header(path).pixel_aspect == 2.0 and read_header(path).frame_rate is None
    spec = oiio.ImageSpec(8, 6, 3, "half")
    spec.attribute("FramesPerSecond", oiio.TypeDesc("rational"), (24000, 1001))
    out = oiio.ImageOutput.create(str(path))
    out.open(str(path), spec)
    out.write_image(ramp())
    out.close()
    from fractions import Fraction

    assert read_header(path).frame_rate == Fraction(24000, 1001)
