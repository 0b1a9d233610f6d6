"""The spread of the aligned predictions (SPEC §8), computed during the merge."""

from __future__ import annotations

import pytest
import torch

from rollingdepth_core.coalign.merge import (
    merge_aligned,
    merge_with_spread,
    normalization_scale,
    normalize_depth,
    spread_in_units_of,
)
from rollingdepth_core.coalign.methods import coalign_depth
from rollingdepth_core.errors import InvalidInput
from rollingdepth_core.evaluation.snippet_simulation import CLEAN, SnippetNoise, simulate_snippets
from rollingdepth_core.evaluation.synthetic import render_inverse_depth
from rollingdepth_core.runtime.storage import DiskTensor
from rollingdepth_core.stages.snippets import plan_snippets
from rollingdepth_core.types import Alignment


@pytest.fixture(scope="module")
def noisy():
    truth = render_inverse_depth(30, 12, 16)
    plan = plan_snippets(30, (1, 4), 3)
    simulated = simulate_snippets(truth, plan, SnippetNoise(noise_std=0.05), seed=3)
    generator = torch.Generator().manual_seed(0)
    scales = tuple(1 + 0.1 * torch.rand(g.num_snippets, generator=generator) for g in plan.groups)
    shifts = tuple(0.1 * torch.randn(g.num_snippets, generator=generator) for g in plan.groups)
    alignment = Alignment(scales, shifts, offset=-0.3, objective=0.0, method="test")
    return simulated.snippets, alignment


def brute_force(snippets, alignment):
    """Every frame's aligned predictions collected one by one, then torch's mean and std."""
    plan = snippets.plan
    per_frame = [[] for _ in range(plan.num_frames)]
    for g, group in enumerate(plan.groups):
        for k, frames in enumerate(group.indices.tolist()):
            for position, frame in enumerate(frames):
                value = snippets.depths[g][k, position].double() - alignment.offset
                scale, shift = alignment.scales[g][k].double(), alignment.shifts[g][k].double()
                per_frame[frame].append(value * scale + shift)
    stacks = [torch.stack(p) for p in per_frame]
    mean = torch.stack([s.mean(0) for s in stacks])
    std = torch.stack([s.std(0, correction=0) for s in stacks])
    return mean, std, [len(p) for p in per_frame]


def test_spread_is_the_standard_deviation_of_each_pixels_aligned_predictions(noisy):
    snippets, alignment = noisy
    merged, spread = merge_with_spread(snippets, alignment, chunk=3)
    mean, std, counts = brute_force(snippets, alignment)
    assert min(counts) >= 2 and max(counts) == 6
    torch.testing.assert_close(merged.double(), mean, atol=1e-5, rtol=0)
    torch.testing.assert_close(spread.double(), std, atol=1e-5, rtol=0)
    assert torch.equal(merged, merge_aligned(snippets, alignment))  # the mean is unchanged, bit for bit
    assert float(spread.mean()) > 0.01


def test_spread_streams_into_disk_arrays_and_does_not_depend_on_chunk(noisy, tmp_path):
    snippets, alignment = noisy
    _, in_memory = merge_with_spread(snippets, alignment, chunk=1)
    out = DiskTensor.empty(tmp_path / "m.bin", (30, 12, 16), torch.float32)
    spread_out = DiskTensor.empty(tmp_path / "s.bin", (30, 12, 16), torch.float32)
    merge_with_spread(snippets, alignment, chunk=7, out=out, spread_out=spread_out)
    torch.testing.assert_close(spread_out[...], in_memory, atol=1e-6, rtol=0)
    with pytest.raises(InvalidInput, match="spread_out must be"):
        merge_with_spread(snippets, alignment, spread_out=torch.empty(2, 12, 16))


def test_exact_snippets_have_no_spread():
    truth = render_inverse_depth(20, 8, 12)
    plan = plan_snippets(20, (1, 3), 3)
    snippets = simulate_snippets(truth, plan, CLEAN, seed=1).snippets
    alignment = Alignment(
        tuple(torch.ones(g.num_snippets) for g in plan.groups),
        tuple(torch.zeros(g.num_snippets) for g in plan.groups), 0.0, 0.0, "test",
    )
    simulated = simulate_snippets(truth, plan, CLEAN, seed=1)
    # undo each snippet's own normalisation: all predictions of a pixel then agree exactly
    pairs = zip(simulated.offsets, simulated.gains, strict=True)
    exact = Alignment(
        tuple(1 / g for g in simulated.gains), tuple(-o / g for o, g in pairs), 0.0, 0.0, "test",
    )
    _, spread = merge_with_spread(snippets, exact)
    assert float(spread.max()) < 1e-5
    _, unaligned = merge_with_spread(snippets, alignment)
    assert float(unaligned.max()) > 0.05


def test_coalign_depth_spread_is_in_the_units_of_the_normalised_video(noisy):
    snippets, _ = noisy
    video, alignment = coalign_depth(snippets, "fast", spread=True)
    plain, _ = coalign_depth(snippets, "fast")
    assert plain.spread is None and torch.equal(plain.inverse_depth, video.inverse_depth)
    merged, raw = merge_with_spread(snippets, alignment)
    torch.testing.assert_close(video.spread, raw * normalization_scale(merged))
    torch.testing.assert_close(normalize_depth(merged), video.inverse_depth)
    assert video.spread.shape == video.inverse_depth.shape and float(video.spread.min()) >= 0


def test_spread_in_units_of_follows_an_affine_change_and_a_resize():
    before = torch.rand(3, 8, 10)
    spread = torch.rand(3, 8, 10)
    after = -2.5 * before + 4.0
    torch.testing.assert_close(spread_in_units_of(spread, before, after), 2.5 * spread)
    bigger = torch.nn.functional.interpolate(before[:, None], size=(16, 20), mode="bilinear")[:, 0] * 3
    carried = spread_in_units_of(spread, before, bigger)
    assert carried.shape == (3, 16, 20)
    assert float(carried.mean()) == pytest.approx(3 * float(spread.mean()), rel=0.05)
    with pytest.raises(InvalidInput, match="same frames"):
        spread_in_units_of(spread, before, after[:2])
