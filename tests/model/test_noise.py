"""The shared noise draw."""

import pytest
import torch

from rollingdepth_core.errors import InvalidInput, InvalidSettings
from rollingdepth_core.model.noise import check_noise, make_noise


def test_noise_matches_golden(case_a):
    torch.testing.assert_close(make_noise((6, 8), 1234), case_a["init_noise"], rtol=0, atol=0)


def test_noise_is_drawn_on_cpu_generator():
    expected = torch.randn((1, 4, 3, 5), generator=torch.Generator("cpu").manual_seed(7))
    torch.testing.assert_close(make_noise((3, 5), 7), expected, rtol=0, atol=0)


def test_bad_seed():
    with pytest.raises(InvalidSettings, match="seed"):
        make_noise((2, 2), -1)


def test_check_noise_shapes():
    noise = torch.randn(4, 6, 8)
    assert check_noise(noise, (6, 8)).shape == (1, 4, 6, 8)
    with pytest.raises(InvalidInput, match=r"\(1, 4, 6, 8\)"):
        check_noise(torch.randn(1, 4, 6, 9), (6, 8))
    with pytest.raises(InvalidInput, match="NaN"):
        check_noise(torch.full((1, 4, 6, 8), float("nan")), (6, 8))
