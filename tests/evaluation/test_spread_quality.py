"""Spread-versus-error agreement: rank correlation and deciles on cases with known answers."""

import pytest
import torch

from rollingdepth_core.errors import InvalidInput
from rollingdepth_core.evaluation.spread_quality import ranks, spearman, spread_error_agreement


def test_spearman_known_values():
    x = torch.arange(100.0)
    assert spearman(x, x**3) == pytest.approx(1.0)
    assert spearman(x, -x) == pytest.approx(-1.0)
    expected = torch.tensor([2.0, 0.0, 1.0], dtype=torch.float64)
    assert torch.equal(ranks(torch.tensor([3.0, 1.0, 2.0])), expected)
    noise = torch.rand(20000, generator=torch.Generator().manual_seed(0))
    assert abs(spearman(x.repeat(200), noise)) < 0.03


def test_a_spread_that_is_the_error_agrees_and_a_random_one_does_not():
    generator = torch.Generator().manual_seed(1)
    truth = 0.2 + torch.rand(4, 20, 30, generator=generator)
    sign = torch.sign(torch.randn(4, 20, 30, generator=generator))
    error = 0.05 * torch.rand(4, 20, 30, generator=generator) * sign
    prediction = 3.0 * (truth + error) - 1.0  # some affine units
    good = spread_error_agreement(prediction, 3.0 * error.abs(), truth)
    assert good.spearman > 0.95 and good.top_decile_recall > 0.7  # the fit is least squares, not exact
    assert list(good.decile_errors) == sorted(good.decile_errors)
    assert good.decile_spreads[-1] == pytest.approx(max(good.decile_spreads))
    bad = spread_error_agreement(prediction, torch.rand(4, 20, 30, generator=generator), truth)
    assert abs(bad.spearman) < 0.1 and bad.top_decile_recall < 0.2
    assert good.num_pixels == 4 * 20 * 30


def test_shapes_must_match():
    with pytest.raises(InvalidInput, match="one size"):
        spread_error_agreement(torch.zeros(2, 3, 4), torch.zeros(2, 3, 5), torch.ones(2, 3, 4))
