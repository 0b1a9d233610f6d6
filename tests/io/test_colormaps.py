"""Display normalisation and colour maps."""

import pytest
import torch

from rollingdepth_core.errors import InvalidInput, InvalidSettings
from rollingdepth_core.io.colormaps import COLORMAPS, apply_colormap, colormap_lut, normalize_for_display


def test_normalisation_is_clip_wide():
    depth = torch.stack([torch.full((2, 2), 1.0), torch.full((2, 2), 3.0)])
    out = normalize_for_display(depth)
    torch.testing.assert_close(out[0], torch.zeros(2, 2))  # not stretched per frame
    torch.testing.assert_close(out[1], torch.ones(2, 2))
    torch.testing.assert_close(normalize_for_display(depth, invert=True), 1 - out)


def test_percentiles_clamp_outliers():
    depth = torch.linspace(0, 1, 101).reshape(1, 1, 101)
    depth[0, 0, -1] = 100.0
    out = normalize_for_display(depth, low_percentile=0, high_percentile=99)
    assert float(out.max()) == 1.0 and float(out[0, 0, 50]) == pytest.approx(0.5051, abs=1e-3)


def test_nan_is_ignored_for_range():
    depth = torch.tensor([[[0.0, float("nan"), 2.0]]])
    torch.testing.assert_close(normalize_for_display(depth), torch.tensor([[[0.0, 0.0, 1.0]]]))


def test_bad_inputs():
    with pytest.raises(InvalidInput, match="N H W"):
        normalize_for_display(torch.zeros(3, 3))
    with pytest.raises(InvalidInput, match="no finite"):
        normalize_for_display(torch.full((1, 2, 2), float("nan")))
    with pytest.raises(InvalidSettings, match="percentiles"):
        normalize_for_display(torch.zeros(1, 2, 2), low_percentile=50, high_percentile=10)
    with pytest.raises(InvalidSettings, match="Unknown colour map"):
        colormap_lut("rainbow_unicorn")


@pytest.mark.parametrize("name", COLORMAPS)
def test_every_colormap(name):
    lut = colormap_lut(name)
    assert lut.shape == (256, 3) and float(lut.min()) >= 0 and float(lut.max()) <= 1
    rgb = apply_colormap(torch.tensor([[[0.0, 1.0]]]), name)
    torch.testing.assert_close(rgb[0, 0], lut[[0, 255]])


def test_gray_is_identity_and_spectral_anchors():
    values = torch.rand(2, 3, 4)
    torch.testing.assert_close(apply_colormap(values, "gray"), values[..., None].expand(-1, -1, -1, 3))
    spectral = colormap_lut("Spectral")
    torch.testing.assert_close(spectral[0], torch.tensor([0x9E, 0x01, 0x42]) / 255.0)
    torch.testing.assert_close(colormap_lut("Spectral_r")[0], spectral[-1])
