"""Depth conversion with known answers: normalised, near/far planes, fits to reference depth."""

from __future__ import annotations

import math

import pytest
import torch

from rollingdepth_core.conversion import (
    DepthConversion,
    convert_depth,
    fit_inverse_depth,
    from_depth_video,
    normalized_depth,
    parse_points,
    read_points,
    samples_from_depth_maps,
    samples_from_points,
    z_from_fit,
    z_from_planes,
)
from rollingdepth_core.errors import InvalidInput, InvalidSettings
from rollingdepth_core.evaluation.synthetic import render_inverse_depth
from rollingdepth_core.types import ClipInfo, DepthVideo

ALPHA, BETA = 0.37, -0.8  # our d = ALPHA / Z + BETA: an unknown affine map of true inverse depth


@pytest.fixture(scope="module")
def scene():
    """True Z (metres) of a small synthetic clip and the model-like inverse depth of it."""
    truth = render_inverse_depth(6, 24, 32).double()  # 1/Z in 1/m
    z = 1.0 / truth
    d = (ALPHA * truth + BETA).float()
    spread = torch.full_like(d, 0.01)
    clip = ClipInfo(name="plate", frame_numbers=tuple(range(1001, 1007)))
    return z, DepthVideo(inverse_depth=d, spread=spread, clip=clip)


def test_normalized_maps_the_percentiles_to_zero_and_one(scene):
    _, video = scene
    out = normalized_depth(video, 0.0, 100.0)
    d = video.inverse_depth
    expected = (d - d.min()) / (d.max() - d.min())
    torch.testing.assert_close(out.values, expected)
    assert out.kind == "normalized" and out.clip.name == "plate"
    torch.testing.assert_close(out.spread, video.spread / (d.max() - d.min()))
    robust = normalized_depth(video, 5.0, 95.0)
    assert float(robust.values.min()) == 0.0 and float(robust.values.max()) == 1.0
    share_at_one = float((robust.values == 1.0).float().mean())
    assert 0.04 < share_at_one < 0.08  # about 5 % of pixels are nearer than the 95th percentile


def test_planes_recover_true_z_when_the_planes_are_the_true_range(scene):
    z, video = scene
    near, far = float(z.min()), float(z.max())
    out = z_from_planes(video, near, far, 0.0, 100.0)
    torch.testing.assert_close(out.values.double(), z, rtol=2e-5, atol=0)
    p = out.parameters
    assert p["scale"] == pytest.approx(1 / ALPHA, rel=1e-4)
    assert p["shift"] == pytest.approx(-BETA / ALPHA, rel=1e-4)
    assert out.kind == "z" and out.units == "m"


def test_planes_clamp_and_count_outside_values(scene):
    z, video = scene
    out = z_from_planes(video, 2.0, 10.0, 10.0, 90.0)
    assert float(out.values.min()) == 2.0 and float(out.values.max()) == 10.0
    assert out.parameters["clamped_to_near"] > 0 and out.parameters["clamped_to_far"] > 0
    with pytest.raises(InvalidSettings, match="0 < near < far"):
        z_from_planes(video, 10.0, 2.0)


def test_spread_is_propagated_to_first_order(scene):
    z, video = scene
    out = z_from_planes(video, float(z.min()), float(z.max()), 0.0, 100.0)
    a, b = out.parameters["scale"], out.parameters["shift"]
    torch.testing.assert_close(out.spread, a * out.values**2 * 0.01)
    eps = 1e-4  # finite difference of Z = 1 / (a d + b) under the same map
    d = video.inverse_depth.double()
    dz_dd = (1 / (a * (d + eps) + b) - 1 / (a * (d - eps) + b)).abs() / (2 * eps)
    torch.testing.assert_close((dz_dd * 0.01).float(), out.spread, rtol=1e-3, atol=0)


def test_fit_to_points_recovers_the_affine_map_exactly(scene):
    z, video = scene
    places = ((0, 3, 5), (2, 20, 10), (5, 30, 22), (4, 8, 18))
    text = "\n".join(f"{1001 + f},{x},{y},{float(z[f, y, x]):.9f}" for f, x, y in places)
    points = parse_points(text, frame_numbers=video.clip.frame_numbers, size=(24, 32))
    assert points[1].frame == 2 and points[1].x == 20
    out, fit = convert_depth(video, DepthConversion(mode="fit"), points=points)
    assert fit.scale == pytest.approx(1 / ALPHA, rel=1e-5)
    assert fit.shift == pytest.approx(-BETA / ALPHA, rel=1e-5)
    assert fit.num_samples == 4 and fit.median_relative_error < 1e-5 and fit.rms_inverse < 1e-6
    torch.testing.assert_close(out.values.double(), z, rtol=1e-4, atol=0)
    assert out.parameters["num_samples"] == 4 and "4 points" in fit.describe()


def test_robust_fit_ignores_a_wrong_point(scene):
    z, video = scene
    places = ((4, 4), (16, 12), (28, 20), (10, 22))
    rows = [(f, x, y, float(z[f, y, x])) for f in range(6) for x, y in places]
    rows[5] = (rows[5][0], rows[5][1], rows[5][2], rows[5][3] * 3)  # a typo: 3x too far
    points = parse_points("\n".join(f"{f} {x} {y} {d}" for f, x, y, d in rows))
    d, zs = samples_from_points(video.inverse_depth, points)
    fit = fit_inverse_depth(d, zs)
    assert fit.scale == pytest.approx(1 / ALPHA, rel=2e-3)
    assert fit.median_relative_error < 2e-3
    design = torch.stack([d, torch.ones_like(d)], 1)
    plain_scale = torch.linalg.lstsq(design, (1 / zs)[:, None]).solution[0, 0]
    # plain least squares is pulled away by the wrong point
    assert abs(float(plain_scale) * ALPHA - 1) > 5 * abs(fit.scale * ALPHA - 1)


def test_fit_to_a_metric_depth_map_with_holes(scene):
    z, video = scene
    reference = z[[1, 4]].float().clone()
    reference[0, :5] = float("nan")  # holes and sky are ignored
    reference[1, :, :3] = 0.0
    small = torch.nn.functional.interpolate(reference[:, None], size=(12, 16), mode="nearest")[:, 0]
    out, fit = convert_depth(
        video, DepthConversion(mode="fit"), reference=reference, reference_frames=[1, 4]
    )
    assert fit.scale == pytest.approx(1 / ALPHA, rel=1e-4)
    assert fit.num_samples == 2 * 24 * 32 - 5 * 32 - 3 * 24
    d, zs = samples_from_depth_maps(video.inverse_depth, small, [1, 4])
    assert d.numel() == zs.numel() > 0
    few_d, _ = samples_from_depth_maps(video.inverse_depth, reference, [1, 4], max_samples=100)
    assert 50 <= few_d.numel() <= 200


def test_impossible_fits_name_their_cause(scene):
    z, video = scene
    same = parse_points("0 3 3 5.0\n1 20 10 5.0\n2 9 9 5.0")
    with pytest.raises(InvalidInput, match=r"fewer than 2 distinct reference depths \(all 3 at 5 m\)"):
        convert_depth(video, DepthConversion(mode="fit"), points=same)
    flat = DepthVideo(inverse_depth=torch.ones(2, 8, 8))
    with pytest.raises(InvalidInput, match="same at every reference sample"):
        convert_depth(flat, DepthConversion(mode="fit"), points=parse_points("0 1 1 2\n1 2 2 9"))
    d, zs = samples_from_points(video.inverse_depth, parse_points("0 16 20 50\n0 16 2 2"))
    assert float(d[0]) > float(d[1])  # pixel (16, 20) is nearer in our depth, yet said to be farther
    with pytest.raises(InvalidInput, match="reverses near and far"):
        fit_inverse_depth(d, zs)


def test_fit_beyond_infinity_is_an_error_unless_clamped(scene):
    z, video = scene
    near_only = [(0, x, y) for x, y in ((16, 23), (5, 23), (28, 22))]  # ground at the bottom: near
    rows = [f"{f} {x} {y} {float(z[f, y, x]) * (1 + 0.4 * i)}" for i, (f, x, y) in enumerate(near_only)]
    points = parse_points("\n".join(rows))
    with pytest.raises(InvalidInput, match=r"negative or infinite at \d+ pixels \(frames 1001"):
        convert_depth(video, DepthConversion(mode="fit"), points=points)
    out, fit = convert_depth(video, DepthConversion(mode="fit", max_depth=500.0), points=points)
    assert float(out.values.max()) == 500.0 and out.parameters["beyond_infinity"] > 0
    assert torch.isfinite(out.values).all()
    with pytest.raises(InvalidSettings, match="max_depth"):
        z_from_fit(video, fit, max_depth=-1.0)


def test_parse_points_checks_and_conventions(tmp_path):
    points = parse_points("# frame x y Z\n1001, 0, 0, 2.5 ; 1002 31 23 4", frame_numbers=(1001, 1002),
                          size=(24, 32), origin="bottom-left")
    assert [(p.frame, p.x, p.y, p.distance) for p in points] == [(0, 0.0, 23.0, 2.5), (1, 31.0, 0.0, 4.0)]
    cases = (("1 2 3", "frame x y distance"), ("a b c d", "not numbers"), ("1 2 3 -4", "> 0"),
             ("1003 1 1 2", "not in the clip"), ("1001 40 1 2", "outside the 32x24"), ("", "no reference"))
    for text, message in cases:
        with pytest.raises(InvalidSettings, match=message):
            parse_points(text, frame_numbers=(1001, 1002), size=(24, 32))
    path = tmp_path / "points.csv"
    path.write_text("frame,x,y,distance\n0,1,2,3.5\n")
    assert read_points(path)[0].distance == 3.5
    with pytest.raises(InvalidSettings, match="origin"):
        parse_points("0 1 1 1", origin="centre")


def test_convert_depth_checks_settings_first(scene):
    _, video = scene
    for conversion, message in ((DepthConversion(mode="metric"), "must be one of"),
                                (DepthConversion(mode="planes", near=0.0), "0 < near"),
                                (DepthConversion("normalized", 1, 2, 60, 40), "percentiles"),
                                (DepthConversion(mode="fit"), "needs reference depth"),
                                (DepthConversion(units=" "), "units")):
        with pytest.raises(InvalidSettings, match=message):
            convert_depth(video, conversion)
    with pytest.raises(InvalidSettings, match="only used by the 'fit'"):
        convert_depth(video, DepthConversion(mode="planes"), points=parse_points("0 1 1 1"))
    same, fit = convert_depth(video, DepthConversion())
    assert fit is None and same.kind == "inverse_depth" and torch.equal(same.values, video.inverse_depth)
    assert from_depth_video(video).parameters == {"method": "none"}
    assert math.isclose(convert_depth(video, DepthConversion("normalized"))[0].values.max().item(), 1.0)
