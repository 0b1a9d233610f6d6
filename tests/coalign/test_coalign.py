"""Co-alignment: the reference objective, the Adam solver and the merge, against golden data."""

import pytest
import torch

from rollingdepth_core.coalign.merge import merge_aligned, normalize_depth
from rollingdepth_core.coalign.methods import SOLVERS, coalign, coalign_depth
from rollingdepth_core.coalign.problem import (
    CoalignSettings,
    frame_means,
    global_minimum,
    objective,
    objective_value,
    optimisation_pixels,
    prepare_problem,
    regulariser,
)
from rollingdepth_core.errors import InvalidInput, InvalidSettings
from rollingdepth_core.hooks import Hooks
from rollingdepth_core.stages.snippets import plan_snippets
from rollingdepth_core.types import Alignment, SnippetDepths


def golden_snippets(data, num_frames, dilations):
    plan = plan_snippets(num_frames, dilations, 3)
    depths = tuple(data[f"snippet_depth_d{d}"][:, :, 0] for d in dilations)
    return SnippetDepths(plan=plan, depths=depths)


def golden_alignment(data, dilations, offset):
    return Alignment(
        scales=tuple(data[f"coalign_scale_d{d}"].flatten() for d in dilations),
        shifts=tuple(data[f"coalign_translation_d{d}"].flatten() for d in dilations),
        offset=offset, objective=float("nan"), method="golden",
    )


def identity(problem):
    return (tuple(torch.ones(v.shape[0]) for v in problem.values),
            tuple(torch.zeros(v.shape[0]) for v in problem.values))


@pytest.fixture(scope="module")
def case_a_snippets(case_a):
    return golden_snippets(case_a, 40, (1, 10))


@pytest.fixture(scope="module")
def small_snippets(align_small):
    return golden_snippets(align_small, 250, (1, 10, 25))


@pytest.fixture(scope="module")
def case_a_reference(case_a_snippets):
    return coalign(case_a_snippets, method="reference")


def test_optimisation_pixels_crop_then_stride():
    depth = torch.arange(20 * 30, dtype=torch.float32).reshape(20, 30)
    out = optimisation_pixels(depth, 2, 10)
    torch.testing.assert_close(out, depth[2:-2, 2:-2][::10, ::10])
    assert optimisation_pixels(torch.zeros(3, 3), 2, 1).shape == (3, 3)  # border too large: skipped


def test_problem_layout(case_a_snippets):
    problem = prepare_problem(case_a_snippets, CoalignSettings())
    assert [tuple(v.shape) for v in problem.values] == [(38, 3, 30), (20, 3, 30)]  # 5 x 6 grid
    assert problem.num_rows == 6 and problem.num_frames == 40
    assert problem.offset == pytest.approx(global_minimum(case_a_snippets))
    assert min(float(v.min()) for v in problem.values) >= 0


def test_loss_at_identity_matches_golden(case_a_snippets, small_snippets, case_a, align_small):
    for snippets, data in ((case_a_snippets, case_a), (small_snippets, align_small)):
        problem = prepare_problem(snippets, CoalignSettings())
        value = objective_value(problem, *identity(problem), CoalignSettings())
        assert value == pytest.approx(float(data["coalign_loss_history"][0, 0]), rel=1e-5)


def test_objective_at_golden_parameters(small_snippets, align_small):
    problem = prepare_problem(small_snippets, CoalignSettings())
    alignment = golden_alignment(align_small, (1, 10, 25), problem.offset)
    value = objective_value(problem, alignment.scales, alignment.shifts, CoalignSettings())
    assert value == pytest.approx(0.23782172799110413, rel=1e-5)  # golden README §7


def test_objective_normalisations(case_a_snippets):
    problem = prepare_problem(case_a_snippets, CoalignSettings())
    scales, shifts = identity(problem)
    dense = objective(problem, scales, shifts, CoalignSettings())
    sparse = objective(problem, scales, shifts, CoalignSettings(dense_normalization=False))
    filled = sum(v.shape[0] * v.shape[1] for v in problem.values) / (problem.num_rows * problem.num_frames)
    assert float(dense) == pytest.approx(float(sparse) * filled, rel=1e-6)


def test_objective_indexes_on_the_values_device(case_a_snippets, monkeypatch):
    # values on another device than the plan's CPU indices (the reference solver on a GPU):
    # the data terms must get frame indices where the values are ("meta" stands in for a GPU)
    from rollingdepth_core.coalign import problem as problem_module

    cpu = prepare_problem(case_a_snippets, CoalignSettings())
    moved = problem_module.AlignmentProblem(
        tuple(v.to("meta") for v in cpu.values), cpu.indices, cpu.num_frames, cpu.offset
    )
    seen = []

    def record(aligned, frames, num_frames):
        seen.append((aligned.device.type, frames.device.type, tuple(frames.shape), num_frames))
        return aligned.sum()

    monkeypatch.setattr(problem_module, "_relative_l1", record)
    scales = tuple(torch.ones(v.shape[0], device="meta") for v in cpu.values)
    shifts = tuple(torch.zeros(v.shape[0], device="meta") for v in cpu.values)
    assert objective(moved, scales, shifts, CoalignSettings()).device.type == "meta"
    rows = sum(i.numel() for i in cpu.indices)
    assert seen == [("meta", "meta", (rows,), 40)] * 2


def test_regulariser_by_hand():
    scales = (torch.tensor([0.5, 1.5]), torch.tensor([1.0]))
    shifts = (torch.tensor([0.1, -0.3]), torch.tensor([0.2]))
    expected = 0.1 * (0.25 + 0) / 2 + 10 * (0.01 + 0.09) / 2 + 0.1 * 0 + 10 * 0.04
    assert float(regulariser(scales, shifts, CoalignSettings())) == pytest.approx(expected)


def test_frame_means():
    values = torch.tensor([[1.0, 2.0], [3.0, 4.0], [5.0, 6.0]])
    frames = torch.tensor([0, 2, 0])
    torch.testing.assert_close(frame_means(values, frames, 3)[[0, 2]], torch.tensor([[3.0, 4.0], [3.0, 4.0]]))


def test_merge_with_golden_parameters(case_a_snippets, case_a, small_snippets, align_small):
    alignment = golden_alignment(case_a, (1, 10), global_minimum(case_a_snippets))
    merged = merge_aligned(case_a_snippets, alignment)
    torch.testing.assert_close(merged, case_a["depth_coaligned_raw"][:, 0], rtol=0, atol=1e-5)
    merged = merge_aligned(small_snippets,
                           golden_alignment(align_small, (1, 10, 25), global_minimum(small_snippets)))
    torch.testing.assert_close(merged, align_small["merged"][:, 0], rtol=0, atol=1e-5)


def test_renormalisation_matches_golden(case_a):
    torch.testing.assert_close(normalize_depth(case_a["depth_coaligned_raw"][:, 0]),
                               case_a["depth_coaligned"][:, 0], rtol=0, atol=1e-6)


def test_reference_solver_matches_golden_case_a(case_a_reference, case_a_snippets, case_a):
    history = case_a_reference.loss_history
    assert history.shape == (2000,)
    assert float(history[0]) == pytest.approx(float(case_a["coalign_loss_history"][0, 0]), rel=1e-5)
    for k, d in enumerate((1, 10)):
        torch.testing.assert_close(case_a_reference.scales[k], case_a[f"coalign_scale_d{d}"].flatten(),
                                   rtol=0, atol=5e-3)
        torch.testing.assert_close(case_a_reference.shifts[k], case_a[f"coalign_translation_d{d}"].flatten(),
                                   rtol=0, atol=5e-3)
    merged = merge_aligned(case_a_snippets, case_a_reference)
    torch.testing.assert_close(merged, case_a["depth_coaligned_raw"][:, 0], rtol=0, atol=5e-3)


def test_reference_solver_on_align_small(small_snippets, align_small):
    alignment = coalign(small_snippets, method="reference")
    # same objective as the authors' code, up to Adam's float sensitivity (golden README §5)
    assert alignment.objective <= 0.23782172799110413 * (1 + 1e-4)
    for k, d in enumerate((1, 10, 25)):
        torch.testing.assert_close(alignment.scales[k], align_small[f"coalign_scale_d{d}"].flatten(),
                                   rtol=0, atol=5e-3)
    merged = merge_aligned(small_snippets, alignment)
    torch.testing.assert_close(merged, align_small["merged"][:, 0], rtol=0, atol=5e-3)


def test_coalign_depth_is_normalised(case_a_snippets, case_a):
    video, alignment = coalign_depth(case_a_snippets, "reference", CoalignSettings(num_iterations=50))
    assert video.inverse_depth.shape == (40, 48, 64)
    assert float(video.inverse_depth.min()) == -1.0 and float(video.inverse_depth.max()) == 1.0
    assert alignment.method == "reference" and alignment.loss_history.shape == (50,)


def test_solver_registry():
    from rollingdepth_core.coalign import reference as coalign_adam

    assert SOLVERS["reference"] is coalign_adam.solve_adam


def test_progress_and_cancel(case_a_snippets):
    calls = []
    coalign(case_a_snippets, "reference", CoalignSettings(num_iterations=45),
            Hooks(progress=lambda d, t: calls.append((d, t))))
    assert calls == [(0, 45), (20, 45), (40, 45), (45, 45)]

    class Stop(Exception):
        pass

    def stop():
        raise Stop

    with pytest.raises(Stop):
        coalign(case_a_snippets, "reference", CoalignSettings(num_iterations=45), Hooks(check_cancel=stop))


def test_bad_inputs(case_a_snippets):
    with pytest.raises(InvalidSettings, match="Unknown co-alignment method"):
        coalign(case_a_snippets, method="magic")
    with pytest.raises(InvalidSettings, match="subsample"):
        CoalignSettings(subsample=0)
    wrong = SnippetDepths(plan=case_a_snippets.plan, depths=case_a_snippets.depths[:1])
    with pytest.raises(InvalidInput, match="groups"):
        coalign(wrong)
    nan = case_a_snippets.depths[0].clone()
    nan[3, 1, 2, 2] = float("nan")
    with pytest.raises(InvalidInput, match="NaN"):
        coalign(SnippetDepths(plan=case_a_snippets.plan, depths=(nan, case_a_snippets.depths[1])))
    shape = SnippetDepths(plan=case_a_snippets.plan,
                          depths=(case_a_snippets.depths[0][:5], case_a_snippets.depths[1]))
    with pytest.raises(InvalidInput, match="must be `s n H W`"):
        coalign(shape)


def test_merge_refuses_foreign_alignment(case_a_snippets, case_a_reference):
    other = Alignment(scales=case_a_reference.scales[:1], shifts=case_a_reference.shifts[:1],
                      offset=0.0, objective=0.0, method="x")
    with pytest.raises(InvalidInput, match="other snippet depths"):
        merge_aligned(case_a_snippets, other)


def test_merge_reads_fp16_storage(case_a_snippets, case_a_reference):
    half = SnippetDepths(plan=case_a_snippets.plan, depths=tuple(d.half() for d in case_a_snippets.depths))
    merged = merge_aligned(half, case_a_reference)
    reference = merge_aligned(case_a_snippets, case_a_reference)
    torch.testing.assert_close(merged, reference, rtol=0, atol=2e-3)
    assert merged.dtype == torch.float32
