"""SPEC §7 metrics against hand-computed values and the golden figures."""

from __future__ import annotations

import json

import pytest
import torch

from rollingdepth_core.errors import InvalidInput
from rollingdepth_core.evaluation.metrics import (
    AffineFit,
    evaluate_depth,
    fit_affine,
    per_frame_errors,
    temporal_error,
)


def test_exact_affine_prediction_scores_perfectly():
    truth = torch.tensor([[[0.5, 0.25], [0.2, 0.1]], [[0.4, 0.25], [0.2, 0.125]]])
    prediction = 3 * truth - 1
    scores = evaluate_depth(prediction, truth)
    assert scores.fit.scale == pytest.approx(1 / 3)
    assert scores.fit.shift == pytest.approx(1 / 3)
    assert scores.absrel == pytest.approx(0.0, abs=1e-4)  # float32 rounding of the prediction
    assert scores.delta1 == pytest.approx(100.0)
    assert scores.temporal_error == pytest.approx(0.0, abs=1e-7)


def test_hand_computed_example():
    # one frame, four pixels; prediction already in truth units except one pixel
    truth = torch.tensor([[[0.5, 0.25, 0.2, 0.1]]])
    prediction = torch.tensor([[[0.5, 0.25, 0.2, 0.2]]])
    fit = fit_affine(prediction, truth)
    x, y = prediction.double().flatten(), truth.double().flatten()
    scale = ((x - x.mean()) * (y - y.mean())).sum() / ((x - x.mean()) ** 2).sum()
    shift = y.mean() - scale * x.mean()
    assert fit.scale == pytest.approx(float(scale))
    assert fit.shift == pytest.approx(float(shift))
    aligned = (x * scale + shift).clamp(0.1, 0.5)
    rel = (1 / aligned - 1 / y).abs() * y
    ratio = torch.maximum(y / aligned, aligned / y)
    scores = evaluate_depth(prediction, truth)
    assert scores.absrel == pytest.approx(float(rel.mean() * 100))
    assert scores.delta1 == pytest.approx(float((ratio < 1.25).double().mean() * 100))
    assert (fit.low, fit.high) == (pytest.approx(0.1), pytest.approx(0.5))


def test_temporal_error_by_hand():
    prediction = torch.tensor([0.0, 1.0, 3.0])[:, None, None]
    truth = torch.tensor([0.0, 2.0, 2.0])[:, None, None] + 1.0  # valid (> 0), same steps
    identity = AffineFit(1.0, 1.0, float("-inf"), float("inf"))  # p = prediction + 1
    # steps |1|, |2| against |2|, |0| -> (1 + 2) / 2
    assert temporal_error(prediction, truth, identity) == pytest.approx(1.5)
    assert temporal_error(prediction, truth, identity, chunk=1) == pytest.approx(1.5)
    assert temporal_error(prediction[:1], truth[:1], identity) == 0.0


def test_invalid_pixels_are_ignored():
    truth = torch.tensor([[[0.5, 0.25, 0.0, float("nan")]]])
    prediction = torch.tensor([[[1.0, 0.5, 7.0, 9.0]]])
    scores = evaluate_depth(prediction, truth)
    assert scores.absrel == pytest.approx(0.0, abs=1e-9)
    assert scores.delta1 == pytest.approx(100.0)


def test_golden_figures_are_reproduced(align_small, golden_dir):
    figures = json.loads((golden_dir / "align_small" / "align_small.json").read_text())
    expected = figures["official"]["metrics"]
    scores = evaluate_depth(align_small["merged"][:, 0], align_small["gt_inverse_depth"], chunk=7)
    assert scores.absrel == pytest.approx(expected["absrel_pct"], abs=1e-6)
    assert scores.delta1 == pytest.approx(expected["delta1_pct"], abs=1e-6)
    assert scores.temporal_error == pytest.approx(expected["tc"], abs=1e-9)
    assert scores.fit.scale == pytest.approx(expected["lsq_scale"], abs=1e-9)
    absrel, delta1 = per_frame_errors(align_small["merged"][:, 0], align_small["gt_inverse_depth"],
                                      scores.fit)
    assert absrel.shape == (250,)
    assert float(absrel.mean()) == pytest.approx(scores.absrel, abs=1e-6)  # equal pixels per frame
    assert float(delta1.mean()) == pytest.approx(scores.delta1, abs=1e-6)


def test_bad_inputs_raise():
    with pytest.raises(InvalidInput, match="same size"):
        evaluate_depth(torch.zeros(2, 3, 4), torch.ones(2, 3, 5))
    with pytest.raises(InvalidInput, match="N H W"):
        evaluate_depth(torch.zeros(3, 4), torch.ones(3, 4))
    with pytest.raises(InvalidInput, match="no frames"):
        evaluate_depth(torch.zeros(0, 3, 4), torch.ones(0, 3, 4))
    with pytest.raises(InvalidInput, match="fewer than 2 valid"):
        evaluate_depth(torch.zeros(1, 2, 2), torch.zeros(1, 2, 2))
