"""The fast co-alignment solver (issue 5): the reference's result, from far fewer steps.

Golden figures (golden/README.md §7, align_small): the reference's objective at its returned
parameters is 0.23782 (0.32712 at s = 1, t = 0), AbsRel 13.25 %, delta1 80.91 %, TC 0.0038.
The reference's own accuracy moves by ~0.05 points with float-level changes (our Adam port:
13.27 / 80.86; 1e-6 input noise: 13.28 / 80.83; 10,000 iterations: 13.29), so accuracy is
compared within that band; the objective must not be higher.
"""

from __future__ import annotations

import inspect
import json
import logging

import pytest
import torch

from rollingdepth_core import pipeline
from rollingdepth_core.bench.sweep import AffineClip
from rollingdepth_core.coalign import fast as fast_module
from rollingdepth_core.coalign import polish
from rollingdepth_core.coalign.fast_system import frame_chunk, newton_system, stage_data
from rollingdepth_core.coalign.merge import merge_aligned, normalize_depth
from rollingdepth_core.coalign.methods import SOLVERS, coalign, coalign_depth
from rollingdepth_core.coalign.newton_setup import pixel_subset
from rollingdepth_core.coalign.polish import exact_objective
from rollingdepth_core.coalign.problem import (
    CoalignSettings,
    objective_value,
    prepare_problem,
)
from rollingdepth_core.errors import InvalidSettings
from rollingdepth_core.evaluation.metrics import evaluate_depth
from rollingdepth_core.hooks import Hooks
from rollingdepth_core.stages.snippets import plan_snippets
from rollingdepth_core.types import Alignment, SnippetDepths

REFERENCE_OBJECTIVE = 0.23782
REFERENCE_ABSREL, REFERENCE_DELTA1, REFERENCE_TC = 13.25, 80.91, 0.0038
# the reference's own float-level spread (0.1 / 0.3), plus what fast's polish moves: it ends
# 0.2 % below the reference's objective (issue 12 §1) and a lower objective is not a better
# depth (README, Co-alignment): absrel 13.30 -> 13.35, delta1 80.76 -> 80.40 on this clip
BAND_ABSREL, BAND_DELTA1 = 0.15, 0.6
PARITY = 5e-3  # SPEC §6: full reference optimisation, scales / shifts / merged video


def golden_snippets(tensors: dict, num_frames: int, dilations: tuple[int, ...]) -> SnippetDepths:
    plan = plan_snippets(num_frames, dilations, 3)
    for group in plan.groups:
        assert torch.equal(group.indices, tensors[f"snippet_idx_d{group.dilation}"])
    return SnippetDepths(plan, tuple(tensors[f"snippet_depth_d{d}"][:, :, 0] for d in dilations))


@pytest.fixture(scope="module")
def small_snippets(align_small) -> SnippetDepths:
    return golden_snippets(align_small, 250, (1, 10, 25))


@pytest.fixture(scope="module")
def fast_small(small_snippets):
    return coalign(small_snippets, "fast")


def test_fast_objective_not_above_reference_on_align_small(small_snippets, fast_small):
    problem = prepare_problem(small_snippets, CoalignSettings())
    recomputed = objective_value(problem, fast_small.scales, fast_small.shifts, CoalignSettings())
    assert fast_small.method == "fast"
    assert fast_small.objective == pytest.approx(recomputed, rel=1e-5)
    assert fast_small.objective <= REFERENCE_OBJECTIVE
    assert fast_small.objective < 0.2379  # and well below the start, 0.32712


def test_fast_equals_reference_within_parity_tolerance(align_small, small_snippets, fast_small):
    for group, scales, shifts in zip((1, 10, 25), fast_small.scales, fast_small.shifts,
                                     strict=True):
        torch.testing.assert_close(scales, align_small[f"coalign_scale_d{group}"].flatten(),
                                   atol=PARITY, rtol=0)
        torch.testing.assert_close(shifts, align_small[f"coalign_translation_d{group}"].flatten(),
                                   atol=PARITY, rtol=0)
    merged = merge_aligned(small_snippets, fast_small)
    torch.testing.assert_close(merged, align_small["merged"][:, 0], atol=PARITY, rtol=0)


def test_fast_accuracy_matches_reference_on_align_small(align_small, small_snippets, fast_small):
    scores = evaluate_depth(merge_aligned(small_snippets, fast_small), align_small["gt_inverse_depth"])
    assert scores.absrel <= REFERENCE_ABSREL + BAND_ABSREL
    assert scores.delta1 >= REFERENCE_DELTA1 - BAND_DELTA1
    assert round(scores.temporal_error, 4) <= REFERENCE_TC
    assert scores.absrel < 33.69 / 2  # far better than the naive mean


def test_fast_objective_not_above_reference_on_case_a(case_a, golden_dir, caplog):
    """Golden case_a: the authors' Adam ends ABOVE its own start (loss history 0.014996 at
    s = 1, t = 0, 0.015088 at the end), and so does the fixed point fast finds (0.01509).
    Issue 12 §1: never return a result worse than the start, say so in the log. The start
    (polished) is returned; the objective is far below the reference's, and the normalised
    co-aligned video (what refinement consumes) stays within SPEC §6 of the authors'.
    Before: the fixed point was returned without a word (up to 10 % worse than the start
    passed, `FALLBACK_MARGIN`)."""
    snippets = golden_snippets(case_a, 40, (1, 10))
    problem = prepare_problem(snippets, CoalignSettings())
    reference = objective_value(
        problem,
        tuple(case_a[f"coalign_scale_d{d}"].flatten() for d in (1, 10)),
        tuple(case_a[f"coalign_translation_d{d}"].flatten() for d in (1, 10)),
        CoalignSettings(),
    )
    # the authors' loss history ends within Adam's last steps of its returned parameters:
    # our objective at those parameters must lie where their last 10 recorded losses lie
    history = case_a["coalign_loss_history"][:, 0]
    recorded = json.loads((golden_dir / "tiny_v1" / "case_a.json").read_text())["coalign"]["loss_last"]
    assert recorded == pytest.approx(float(history[-1]), rel=1e-7)
    last = history[-10:]
    assert float(last.min()) * (1 - 1e-5) <= reference <= float(last.max()) * (1 + 1e-5)
    start = float(history[0])  # the loss at s = 1, t = 0
    assert reference > start  # the reference itself ends above its start
    with caplog.at_level(logging.WARNING, logger=fast_module.__name__):
        alignment = coalign(snippets, "fast")
    assert "the start (scales 1, shifts 0) has a lower objective" in caplog.text
    assert alignment.objective <= start * (1 + 1e-6) and alignment.objective <= reference
    assert alignment.objective == pytest.approx(
        objective_value(problem, alignment.scales, alignment.shifts, CoalignSettings()), rel=1e-5)
    for scales, shifts in zip(alignment.scales, alignment.shifts, strict=True):  # polished start
        torch.testing.assert_close(scales, torch.ones_like(scales), atol=polish.RADIUS + 1e-6, rtol=0)
        torch.testing.assert_close(shifts, torch.zeros_like(shifts), atol=polish.RADIUS + 1e-6, rtol=0)
    video = normalize_depth(merge_aligned(snippets, alignment))
    torch.testing.assert_close(video, case_a["depth_coaligned"][:, 0], atol=PARITY, rtol=0)


def test_default_method_is_fast_and_others_selectable():
    assert inspect.signature(coalign).parameters["method"].default == "fast"
    assert inspect.signature(coalign_depth).parameters["method"].default == "fast"
    assert inspect.signature(pipeline.estimate_depth).parameters["coalign_method"].default == "fast"
    assert set(SOLVERS) == {"fast", "reference", "robust"}  # listed explicitly, no import side effects


def test_unknown_method_raises_with_choices(small_snippets):
    with pytest.raises(InvalidSettings, match="Choose one of fast, reference, robust"):
        coalign(small_snippets, "adam")


def test_fast_progress_totals_and_cancel(small_snippets):
    calls: list[tuple[int, int]] = []
    coalign(small_snippets, "fast", hooks=Hooks(progress=lambda d, t: calls.append((d, t))))
    totals = {t for _, t in calls}
    assert len(totals) == 1
    total = totals.pop()
    assert calls[-1] == (total, total)
    assert [d for d, _ in calls[:-1]] == list(range(1, len(calls)))

    class Stop(Exception):
        pass

    def cancel():
        raise Stop

    with pytest.raises(Stop):
        coalign(small_snippets, "fast", hooks=Hooks(check_cancel=cancel))


def test_fast_without_iterations_returns_the_start(small_snippets):
    alignment = coalign(small_snippets, "fast", CoalignSettings(num_iterations=0))
    assert all(bool((s == 1).all()) for s in alignment.scales)
    assert all(bool((t == 0).all()) for t in alignment.shifts)
    assert alignment.objective == pytest.approx(0.32712, abs=1e-5)


def test_fast_is_deterministic_and_fp16_storage_agrees(small_snippets, fast_small):
    again = coalign(small_snippets, "fast")
    for a, b in zip(again.scales, fast_small.scales, strict=True):
        assert torch.equal(a, b)
    half = SnippetDepths(small_snippets.plan, tuple(d.half() for d in small_snippets.depths))
    from_half = coalign(half, "fast")
    assert from_half.objective == pytest.approx(fast_small.objective, abs=2e-4)
    for a, b in zip(from_half.scales, fast_small.scales, strict=True):
        torch.testing.assert_close(a, b, atol=5e-3, rtol=0)


def test_fast_without_dense_normalisation_uses_prediction_count(small_snippets):
    settings = CoalignSettings(dense_normalization=False)
    alignment = coalign(small_snippets, "fast", settings)
    problem = prepare_problem(small_snippets, settings)
    assert alignment.objective == pytest.approx(
        objective_value(problem, alignment.scales, alignment.shifts, settings), rel=1e-5)


def frame_spread(snippets: SnippetDepths, alignment) -> float:
    """Largest over frames of (std / mean) of the frame's aligned predictions (0: they agree)."""
    predictions: dict[int, list[torch.Tensor]] = {}
    for group, depth, scales, shifts in zip(snippets.plan.groups, snippets.depths, alignment.scales,
                                            alignment.shifts, strict=True):
        for k, frames in enumerate(group.indices.tolist()):
            for position, frame in enumerate(frames):
                aligned = (depth[k, position] - alignment.offset) * scales[k] + shifts[k]
                predictions.setdefault(frame, []).append(aligned)
    spreads = [torch.stack(p).std(0, unbiased=False).mean() / torch.stack(p).mean().abs()
               for p in predictions.values() if len(p) > 1]
    return float(max(spreads)) if spreads else 0.0


def affine_snippets(num_frames: int) -> SnippetDepths:
    """Snippets that are exact affine copies of one positive video, each with its own gain
    (x0.82..x1.22) and offset (+-0.1), frames of 12x16: perfect agreement exists
    (`bench/sweep.py` AffineClip, seed = number of frames)."""
    return AffineClip(num_frames, num_frames, 12, 16).snippets()


@pytest.mark.parametrize("num_frames", [1, 2])
def test_fast_on_a_single_snippet_keeps_the_start(num_frames):
    """N < n: one snippet holds the clip (every dilation is capped to 1, run once). Nothing to
    align: the answer is the start (the regulariser's minimum) and the merge is the snippet."""
    snippets = affine_snippets(num_frames)
    assert snippets.plan.num_snippets == 1 and snippets.plan.snippet_length == num_frames
    alignment = coalign(snippets, "fast")
    torch.testing.assert_close(alignment.scales[0], torch.ones(1), rtol=0, atol=1e-6)
    torch.testing.assert_close(alignment.shifts[0], torch.zeros(1), rtol=0, atol=1e-6)
    assert alignment.objective == pytest.approx(0.0, abs=1e-9)
    torch.testing.assert_close(merge_aligned(snippets, alignment),
                               snippets.depths[0][0] - alignment.offset, rtol=0, atol=1e-6)


def test_fast_aligns_disagreeing_snippets_of_a_short_clip():
    """N = 5: three overlapping snippets, each off by its own gain and offset (frames disagree
    by 22 % at the start); the solved snippets agree (spread below 1 %) and the objective
    drops to an eighth of its start."""
    snippets = affine_snippets(5)
    start = coalign(snippets, "fast", CoalignSettings(num_iterations=0))
    alignment = coalign(snippets, "fast")
    assert frame_spread(snippets, start) > 0.2
    assert frame_spread(snippets, alignment) < 0.01
    assert alignment.objective < start.objective / 8
    problem = prepare_problem(snippets, CoalignSettings())
    assert alignment.objective == pytest.approx(
        objective_value(problem, alignment.scales, alignment.shifts, CoalignSettings()), rel=1e-5)


def test_fast_not_above_the_reference_with_two_pixels_per_frame(caplog):
    """Issue 12 §1, the open case: 7 frames of 12x16, 2 optimisation pixels per frame. The
    last stage hit its cap (the L1 conditions hold on whole sets of points) and fast
    ended 9 % above the reference (0.03389 against 0.03107). Now the last stage runs at
    several smoothings and the common map of the video is chosen by the objective."""
    snippets = affine_snippets(7)
    problem = prepare_problem(snippets, CoalignSettings())
    assert problem.num_pixels < fast_module.FEW_PIXELS
    reference = coalign(snippets, "reference")
    alignment = coalign(snippets, "fast")
    assert alignment.objective <= reference.objective * (1 + 1e-4)
    assert alignment.objective == pytest.approx(
        objective_value(problem, alignment.scales, alignment.shifts, CoalignSettings()), rel=1e-5)


def affine_objective():
    """The 7-frame affine clip (5 snippets of one group), its problem, and its exact objective
    as `(scales, shifts, with_gradient) -> ExactTerms`, the evaluator the polish stages get."""
    snippets = affine_snippets(7)
    settings = CoalignSettings()
    problem = prepare_problem(snippets, settings)
    data = stage_data(problem, settings, 0, torch.float32)
    group_size = torch.full((5,), 5.0, dtype=torch.float64)

    def evaluate(scales, shifts, with_gradient):
        return exact_objective(data.slots, data.denominator, scales, shifts, group_size, settings,
                               frame_chunk(data.slots), with_gradient)

    return snippets, problem, evaluate


def test_common_map_lowers_the_objective_and_keeps_the_normalised_video():
    snippets, problem, evaluate = affine_objective()
    scales = torch.linspace(0.5, 0.7, 5, dtype=torch.float64)  # all scales too small
    shifts = torch.linspace(-0.03, 0.03, 5, dtype=torch.float64)
    before = evaluate(scales, shifts, False).value
    new_scales, new_shifts, after = polish.common_map(evaluate, scales, shifts)
    assert after < before * 0.9
    assert after == pytest.approx(evaluate(new_scales, new_shifts, False).value, rel=1e-12)
    gain = new_scales / scales  # one common gain, one common offset
    torch.testing.assert_close(gain, gain[:1].expand(5), rtol=1e-9, atol=0)
    offset = new_shifts - gain * shifts
    torch.testing.assert_close(offset, offset[:1].expand(5), rtol=0, atol=1e-12)
    videos = []
    for s, t in ((scales, shifts), (new_scales, new_shifts)):
        alignment = Alignment((s.float(),), (t.float(),), problem.offset, 0.0, "test")
        videos.append(normalize_depth(merge_aligned(snippets, alignment)))
    torch.testing.assert_close(videos[0], videos[1], rtol=0, atol=1e-5)


@pytest.mark.parametrize("radius", [polish.RADIUS, polish.WIDE_RADIUS])
def test_polish_descends_within_its_radius_and_never_ends_above_the_start(radius):
    _, _, evaluate = affine_objective()
    scales = torch.linspace(0.9, 1.1, 5, dtype=torch.float64)  # snippets that disagree
    shifts = torch.linspace(-0.03, 0.03, 5, dtype=torch.float64)
    before = evaluate(scales, shifts, False).value
    calls = []
    new_scales, new_shifts, after = polish.polish(evaluate, scales, shifts, 20,
                                                  lambda: calls.append(1), radius)
    assert len(calls) == 20
    assert after < before and after == evaluate(new_scales, new_shifts, False).value
    moved = torch.stack([new_scales - scales, new_shifts - shifts]).abs().max()
    assert radius / 4 < float(moved) <= radius * (1 + 1e-9)  # it moves, never past the radius
    # started again from its answer it never returns a higher objective
    again = polish.polish(evaluate, new_scales, new_shifts, 3, radius=radius)
    assert again[2] <= after


def test_exact_objective_matches_the_reference_objective(small_snippets):
    settings = CoalignSettings()
    problem = prepare_problem(small_snippets, settings)
    data = stage_data(problem, settings, 0, torch.float32)
    k = data.slots.num_snippets
    generator = torch.Generator().manual_seed(0)
    scales = 1 + 0.1 * torch.rand(k, generator=generator, dtype=torch.float64)
    shifts = 0.05 * torch.randn(k, generator=generator, dtype=torch.float64)
    group_size = torch.cat([torch.full((int(v.shape[0]),), float(v.shape[0]))
                            for v in problem.values]).double()
    sizes = [int(v.shape[0]) for v in problem.values]
    expected = objective_value(problem, torch.split(scales.float(), sizes),
                               torch.split(shifts.float(), sizes), settings)
    exact = exact_objective(data.slots, data.denominator, scales, shifts, group_size, settings,
                            frame_chunk(data.slots))
    assert exact.value == pytest.approx(expected, rel=1e-5)
    system = newton_system(data, scales, shifts, group_size, 1e-3, settings)
    assert system.blocks.shape == (len(data.pairs), 2, 2)
    assert system.gradient.shape == (k, 2)


def test_pixel_subset_is_even_and_bounded():
    assert pixel_subset(60, 512) is None
    assert pixel_subset(100, 0) is None
    subset = pixel_subset(3311, 512)
    assert subset.numel() == 512
    assert int(subset[0]) == 0 and int(subset[-1]) == 3310
    assert bool((subset.diff() > 0).all())


def test_conditions_are_the_detached_gradient_of_the_smoothed_loss(small_snippets):
    """What the reference's Adam follows: d/d(s, t) with targets and frame scales fixed."""
    settings = CoalignSettings()
    problem = prepare_problem(small_snippets, settings)
    data = stage_data(problem, settings, 0, torch.float64)
    k = data.slots.num_snippets
    generator = torch.Generator().manual_seed(1)
    scales = (1 + 0.2 * torch.rand(k, generator=generator, dtype=torch.float64)).requires_grad_()
    shifts = (0.05 * torch.randn(k, generator=generator, dtype=torch.float64)).requires_grad_()
    delta = 1e-3
    slots = data.slots
    mask = slots.mask.double()[..., None]
    aligned = slots.values * slots.gather(scales)[..., None] + slots.gather(shifts)[..., None]
    counts = mask.sum(1)
    loss = 0.0
    for x in (aligned, torch.reciprocal(aligned.clamp(min=settings.min_inverse_depth)) * mask):
        target = (x.sum(1) / counts).detach()
        scale = target.abs().mean(-1).detach()[:, None, None]
        e = (x - target[:, None]) * mask
        loss = loss + (torch.sqrt(e.square() + (delta * scale) ** 2) / scale).sum()
    (loss / data.denominator).backward()
    group_size = torch.cat([torch.full((int(v.shape[0]),), float(v.shape[0]))
                            for v in problem.values]).double()
    system = newton_system(data, scales.detach(), shifts.detach(), group_size, delta,
                           CoalignSettings(scale_reg_weight=0.0, shift_reg_weight=0.0))
    torch.testing.assert_close(system.gradient[:, 0], scales.grad, rtol=1e-6, atol=1e-12)
    torch.testing.assert_close(system.gradient[:, 1], shifts.grad, rtol=1e-6, atol=1e-12)


def test_singular_newton_systems_are_damped():
    from rollingdepth_core.coalign.linalg.block_tridiagonal import assemble, block_layout
    from rollingdepth_core.coalign.newton_setup import factor_robustly

    layout = block_layout(torch.tensor([0, 1]), 5)
    bands = assemble(layout, torch.tensor([0]), torch.tensor([0]), torch.zeros(1, 2, 2),
                     torch.zeros(2, 2, dtype=torch.float64))
    bands[:, 1] = 0.0
    bands[0, 1, 0, 0] = 1.0  # one non-zero entry: singular without damping
    factors = factor_robustly(bands)
    solution = factors.solve(torch.ones(1, bands.shape[-1], dtype=torch.float64))
    assert bool(torch.isfinite(solution).all())
