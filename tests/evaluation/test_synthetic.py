"""Synthetic ground truth and simulated snippets for the co-alignment benchmark."""

from __future__ import annotations

import pytest
import torch

from rollingdepth_core.errors import InvalidInput, InvalidSettings
from rollingdepth_core.evaluation import synthetic
from rollingdepth_core.evaluation.snippet_simulation import CLEAN, SnippetNoise, simulate_snippets
from rollingdepth_core.runtime.storage import DiskTensor
from rollingdepth_core.stages.snippets import plan_snippets

N, H, W = 100, 24, 32


@pytest.fixture(scope="module")
def truth() -> torch.Tensor:
    return synthetic.render_inverse_depth(N, H, W)


def test_rendered_clip_shape_range_and_story(truth):
    assert truth.shape == (N, H, W) and truth.dtype == torch.float32
    assert bool(torch.isfinite(truth).all())
    assert float(truth.min()) == pytest.approx(1 / synthetic.BACK_Z, rel=0.02)  # the back wall
    nearest = truth.flatten(1).max(1).values
    start, end = (int(f * (N - 1)) + 1 for f in synthetic.SPHERE_TIME)
    assert float(nearest[start:end].max()) > 0.8  # the sphere enters the near field
    assert float(nearest[: int(0.5 * N)].max()) < 0.35  # before it, nothing closer than ~3 m
    assert float(nearest[-1]) > float(nearest[int(0.85 * N)]) + 0.05  # closing in on the panel


def test_camera_stands_still_in_the_static_stretch(truth):
    still = [f for f in range(N) if synthetic.STILL[0] < f / (N - 1) < synthetic.STILL[1]]
    assert len(still) >= 8
    for frame in still[1:]:
        assert torch.equal(truth[frame], truth[still[0]])
    poses = [synthetic.camera_pose(f, N).position[2] for f in range(N)]
    assert poses[0] == 0.0 and poses[-1] == pytest.approx(synthetic.TRAVEL)
    assert all(b >= a for a, b in zip(poses, poses[1:], strict=False))


def test_render_into_disk_tensor_and_bad_sizes(tmp_path, truth):
    out = DiskTensor.empty(tmp_path / "truth.bin", (N, H, W), torch.float32)
    synthetic.render_inverse_depth(N, H, W, out=out)
    assert torch.equal(out[...], truth)
    with pytest.raises(InvalidSettings, match="height"):
        synthetic.render_inverse_depth(3, 0, 8)
    with pytest.raises(InvalidSettings, match="out must be"):
        synthetic.render_inverse_depth(3, 4, 8, out=torch.empty(3, 4, 9))


def test_snippets_follow_the_pipeline_plan_and_exact_normalisation(truth):
    """CLEAN: every snippet is its 3 frames mapped jointly so that their 2nd and 98th
    percentiles become -1 and 1 (as the model was trained); computed here from the truth."""
    plan = plan_snippets(N, (1, 10, 25), 3)
    simulated = simulate_snippets(truth, plan, CLEAN, seed=1)
    assert simulated.snippets.plan is plan
    levels = torch.tensor([0.02, 0.98])
    for group, depth, gain, offset in zip(plan.groups, simulated.snippets.depths, simulated.gains,
                                          simulated.offsets, strict=True):
        assert depth.shape == (group.num_snippets, 3, H, W)
        frames = truth[group.indices]  # s n H W
        low, high = torch.quantile(frames.flatten(1), levels, dim=1)  # 2 s (N H W = 2304 < the sample)
        expected = 2 * (frames - low[:, None, None, None]) / (high - low)[:, None, None, None] - 1
        torch.testing.assert_close(depth, expected, atol=1e-5, rtol=0)
        torch.testing.assert_close(gain, 2 / (high - low), rtol=1e-5, atol=0)
        torch.testing.assert_close(offset, -2 * low / (high - low) - 1, rtol=0, atol=1e-5)
        ends = torch.quantile(depth.flatten(1), levels, dim=1)
        torch.testing.assert_close(ends, torch.tensor([[-1.0], [1.0]]).expand_as(ends), rtol=0, atol=1e-5)


def test_noise_outliers_and_storage(truth, tmp_path):
    plan = plan_snippets(N, (1, 10, 25), 3)
    noise = SnippetNoise(jitter=0.1, noise_std=0.02, outlier_fraction=0.01, blob_fraction=0.0)
    a = simulate_snippets(truth, plan, noise, seed=7, dtype=torch.float16)
    b = simulate_snippets(truth, plan, noise, seed=7, dtype=torch.float16)
    c = simulate_snippets(truth, plan, noise, seed=8, dtype=torch.float16)
    assert a.snippets.depths[0].dtype == torch.float16
    assert torch.equal(a.snippets.depths[1], b.snippets.depths[1])
    assert not torch.equal(a.snippets.depths[1], c.snippets.depths[1])
    group = plan.groups[0]
    clean = a.gains[0][:, None, None, None] * truth[group.indices] + a.offsets[0][:, None, None, None]
    error = (a.snippets.depths[0].float() - clean).abs()
    assert float(error.median()) == pytest.approx(0.02 * 0.674, rel=0.1)  # Gaussian noise
    assert float((error > 0.2).float().mean()) == pytest.approx(0.01 * 0.8, rel=0.3)  # outliers
    counter = iter(range(3))
    on_disk = simulate_snippets(
        truth, plan, noise, seed=7, dtype=torch.float16,
        allocate=lambda shape, dtype: DiskTensor.empty(tmp_path / f"{next(counter)}.bin", shape, dtype),
    )
    assert isinstance(on_disk.snippets.depths[2], DiskTensor)
    assert torch.equal(on_disk.snippets.depths[2][...], a.snippets.depths[2])


def test_bad_simulation_inputs_raise(truth):
    plan = plan_snippets(N + 1, (1,), 3)
    with pytest.raises(InvalidInput, match="N = 101"):
        simulate_snippets(truth, plan)
    with pytest.raises(InvalidSettings, match="noise_std"):
        SnippetNoise(noise_std=-1.0)
    with pytest.raises(InvalidSettings, match="shares"):
        SnippetNoise(outlier_fraction=2.0)
