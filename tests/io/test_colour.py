"""Input colour conversion, checked against OpenColorIO applied directly."""

from __future__ import annotations

import numpy as np
import PyOpenColorIO as ocio
import pytest

from rollingdepth_core.errors import InvalidSettings
from rollingdepth_core.io.colour import (
    BUILTIN_CONFIG,
    check_colour_space,
    colour_space_names,
    config_location,
    resolve_colour,
)

ACES_VIEW = "ACES 2.0 - SDR 100 nits (Rec.709)"


def studio():
    return ocio.Config.CreateFromFile(BUILTIN_CONFIG)


def direct(transform, pixels: np.ndarray) -> np.ndarray:
    """OpenColorIO applied by hand, clipped like the reader clips."""
    out = pixels.copy()
    studio().getProcessor(transform).getDefaultCPUProcessor().applyRGB(out)
    return np.clip(out, 0, 1)


def hdr_pixels() -> np.ndarray:
    values = np.geomspace(1e-4, 1e4, 60, dtype=np.float32)
    rgb = np.stack([values, values * 0.5, values[::-1]], axis=-1)
    return np.ascontiguousarray(rgb.reshape(6, 10, 3))


@pytest.mark.parametrize(
    "space", ["ACEScg", "ACES2065-1", "Linear Rec.709 (sRGB)", "ACEScct", "ARRI LogC3 (EI800)"]
)
def test_scene_referred_spaces_go_through_the_standard_view(space, monkeypatch):
    monkeypatch.delenv("OCIO", raising=False)
    pixels = hdr_pixels() if "Log" not in space and "cct" not in space else hdr_pixels() / 1e4
    transform = resolve_colour(space, is_float=True)
    assert (transform.display, transform.view) == ("sRGB - Display", ACES_VIEW)
    out, bad = transform.apply(pixels)
    expected = direct(ocio.DisplayViewTransform(src=space, display="sRGB - Display", view=ACES_VIEW), pixels)
    np.testing.assert_allclose(out, expected, atol=1e-6)
    assert bad == 0 and np.isfinite(out).all() and out.min() >= 0 and out.max() <= 1


def test_auto_float_is_scene_linear_rec709_and_bright_values_roll_off_without_wrapping(monkeypatch):
    monkeypatch.delenv("OCIO", raising=False)
    transform = resolve_colour("auto", is_float=True)
    assert transform.source == "Linear Rec.709 (sRGB)" and transform.uses_ocio
    grey = np.repeat(np.geomspace(1e-3, 1e5, 200, dtype=np.float32)[None, :, None], 3, axis=-1)
    out, _ = transform.apply(grey)
    assert np.isfinite(out).all() and out.max() <= 1.0
    assert np.all(np.diff(out[0, :, 0]) >= -1e-6)  # monotone: no wrap-around above display white
    assert out[0, -1, 0] > 0.95 and out[0, 0, 0] < 0.01


def test_auto_integer_files_are_srgb_as_stored():
    transform = resolve_colour("auto", is_float=False)
    assert not transform.uses_ocio and "sRGB" in transform.description
    pixels = np.linspace(0, 1, 30, dtype=np.float32).reshape(1, 10, 3)
    out, _ = transform.apply(pixels)
    np.testing.assert_array_equal(out, pixels)


def test_srgb_is_identity_and_gamma22_is_reencoded(monkeypatch):
    monkeypatch.delenv("OCIO", raising=False)
    pixels = np.linspace(0, 1, 30, dtype=np.float32).reshape(1, 10, 3)
    for name in ("sRGB Encoded Rec.709 (sRGB)", "srgb_tx"):
        transform = resolve_colour(name)
        assert not transform.uses_ocio and "identity" in transform.description
        np.testing.assert_array_equal(transform.apply(pixels)[0], pixels)
    gamma = resolve_colour("Gamma 2.2 Encoded Rec.709")
    expected = direct(ocio.ColorSpaceTransform(src="Gamma 2.2 Encoded Rec.709",
                                               dst="sRGB Encoded Rec.709 (sRGB)"), pixels)
    np.testing.assert_allclose(gamma.apply(pixels)[0], expected, atol=1e-6)


def test_display_referred_srgb_is_left_as_it_is(monkeypatch):
    monkeypatch.delenv("OCIO", raising=False)
    pixels = np.linspace(0, 1, 30, dtype=np.float32).reshape(1, 10, 3)
    out, _ = resolve_colour("sRGB - Display").apply(pixels)
    np.testing.assert_allclose(out, pixels, atol=1e-6)


def test_non_finite_inputs_become_zero_and_are_counted(monkeypatch):
    monkeypatch.delenv("OCIO", raising=False)
    pixels = np.full((1, 3, 3), 0.18, np.float32)
    pixels[0, 0, 0], pixels[0, 1, 1] = np.nan, np.inf
    out, bad = resolve_colour("ACEScg").apply(pixels)
    assert bad == 2 and np.isfinite(out).all()
    assert pixels[0, 0, 0] != pixels[0, 0, 0]  # the input is not changed


def test_raw_view_choice_and_bad_names(monkeypatch):
    monkeypatch.delenv("OCIO", raising=False)
    assert not resolve_colour("raw", is_float=True).uses_ocio
    untone = resolve_colour("ACEScg", view="Un-tone-mapped")
    assert untone.view == "Un-tone-mapped"
    with pytest.raises(InvalidSettings, match=r"'ACEScgg' is not in .* Close matches: ACEScg"):
        resolve_colour("ACEScgg")
    with pytest.raises(InvalidSettings, match="not a view of display"):
        resolve_colour("ACEScg", view="Filmic")
    with pytest.raises(InvalidSettings, match="Display 'Cinema'"):
        resolve_colour("ACEScg", display="Cinema")
    with pytest.raises(InvalidSettings, match="not in the OpenColorIO config"):
        check_colour_space("nope")
    check_colour_space("auto")
    assert "ACEScg" in colour_space_names()


def test_config_comes_from_ocio_variable_or_argument(tmp_path, monkeypatch):
    path = tmp_path / "facility.ocio"
    config = ocio.Config.CreateRaw()
    linear = ocio.ColorSpace(name="lin")
    log = ocio.ColorSpace(name="filmlog")
    log.setTransform(ocio.ExponentTransform(value=[2.0, 2.0, 2.0, 1.0]), ocio.COLORSPACE_DIR_TO_REFERENCE)
    config.addColorSpace(linear)
    config.addColorSpace(log)
    config.setRole("scene_linear", "lin")
    path.write_text(config.serialize())
    monkeypatch.setenv("OCIO", str(path))
    assert config_location() == str(path)
    transform = resolve_colour("filmlog", is_float=True)
    assert transform.config == str(path)
    monkeypatch.setenv("OCIO", str(tmp_path / "missing.ocio"))
    with pytest.raises(InvalidSettings, match="missing.ocio does not exist"):
        resolve_colour("ACEScg")
    assert resolve_colour("ACEScg", config=BUILTIN_CONFIG).view == ACES_VIEW
