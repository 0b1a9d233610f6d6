"""The full-resolution merge streams frame by frame from compact or disk storage."""

from __future__ import annotations

import pytest
import torch

from rollingdepth_core.coalign.merge import merge_aligned
from rollingdepth_core.coalign.problem import (
    CoalignSettings,
    check_snippet_depths,
    global_minimum,
    prepare_problem,
    value_range,
)
from rollingdepth_core.errors import InvalidInput, InvalidSettings
from rollingdepth_core.hooks import Hooks
from rollingdepth_core.runtime.storage import DiskTensor
from rollingdepth_core.stages.snippets import plan_snippets
from rollingdepth_core.types import Alignment, SnippetDepths

DILATIONS = (1, 10, 25)


@pytest.fixture(scope="module")
def golden(align_small):
    plan = plan_snippets(250, DILATIONS, 3)
    snippets = SnippetDepths(plan, tuple(align_small[f"snippet_depth_d{d}"][:, :, 0] for d in DILATIONS))
    alignment = Alignment(
        scales=tuple(align_small[f"coalign_scale_d{d}"].flatten() for d in DILATIONS),
        shifts=tuple(align_small[f"coalign_translation_d{d}"].flatten() for d in DILATIONS),
        offset=global_minimum(snippets), objective=0.23782, method="reference",
    )
    return snippets, alignment


def on_disk(snippets: SnippetDepths, folder, dtype=torch.float16) -> SnippetDepths:
    stores = []
    for number, depth in enumerate(snippets.depths):
        store = DiskTensor.empty(folder / f"g{number}.bin", tuple(depth.shape), dtype)
        store[...] = depth
        stores.append(store)
    return SnippetDepths(snippets.plan, tuple(stores))


def test_merge_with_golden_parameters_reproduces_golden_merge(golden, align_small):
    snippets, alignment = golden
    merged = merge_aligned(snippets, alignment)
    assert merged.shape == (250, 64, 96) and merged.dtype == torch.float32
    torch.testing.assert_close(merged, align_small["merged"][:, 0], atol=1e-5, rtol=1e-5)


def test_merge_from_memory_mapped_fp16_equals_in_memory_fp16(golden, tmp_path):
    snippets, alignment = golden
    half = SnippetDepths(snippets.plan, tuple(d.half() for d in snippets.depths))
    stored = on_disk(snippets, tmp_path)
    assert isinstance(stored.depths[0], DiskTensor)
    in_memory = merge_aligned(half, alignment)
    streamed = merge_aligned(stored, alignment, chunk=7)
    assert torch.equal(streamed, in_memory)
    out = DiskTensor.empty(tmp_path / "merged.bin", (250, 64, 96), torch.float32)
    merge_aligned(stored, alignment, out=out)
    assert torch.equal(out[...], in_memory)
    torch.testing.assert_close(in_memory, merge_aligned(snippets, alignment), atol=2e-3, rtol=0)


def test_problem_from_disk_equals_problem_from_memory(golden, tmp_path):
    snippets, _ = golden
    stored = on_disk(snippets, tmp_path, dtype=torch.float32)
    a = prepare_problem(snippets, CoalignSettings())
    b = prepare_problem(stored, CoalignSettings())
    assert a.offset == b.offset == pytest.approx(-1.2573384, abs=1e-6)
    for x, y in zip(a.values, b.values, strict=True):
        assert torch.equal(x, y)
    assert a.values[0].shape == (248, 3, 60)


def test_merge_progress_counts_frames_and_cancel_stops(golden):
    snippets, alignment = golden
    calls: list[tuple[int, int]] = []
    merge_aligned(snippets, alignment, chunk=100, hooks=Hooks(progress=lambda d, t: calls.append((d, t))))
    assert calls == [(100, 250), (200, 250), (250, 250)]

    class Stop(Exception):
        pass

    def cancel():
        raise Stop

    with pytest.raises(Stop):
        merge_aligned(snippets, alignment, hooks=Hooks(check_cancel=cancel))


def test_merge_rejects_mismatched_alignment_and_bad_chunk(golden):
    snippets, alignment = golden
    short = Alignment(alignment.scales[:2], alignment.shifts[:2], 0.0, 0.0, "x")
    with pytest.raises(InvalidInput, match="other snippet depths"):
        merge_aligned(snippets, short)
    with pytest.raises(InvalidSettings, match="chunk"):
        merge_aligned(snippets, alignment, chunk=0)
    with pytest.raises(InvalidInput, match="out must be"):
        merge_aligned(snippets, alignment, out=torch.empty(3, 64, 96))


def test_value_range_and_bad_values_are_reported(golden):
    snippets, _ = golden
    low, high = value_range(snippets)
    assert low == pytest.approx(-1.2573384, abs=1e-6)
    assert high > low
    broken = [d.clone() for d in snippets.depths]
    broken[1][17, 0, 3, 3] = float("nan")
    bad = SnippetDepths(snippets.plan, tuple(broken))
    with pytest.raises(InvalidInput, match=r"dilation 10 contain NaN or inf \(snippets \[17\]\)"):
        prepare_problem(bad, CoalignSettings())
    check_snippet_depths(bad, finite=False)  # the cheap check only looks at shapes
    wrong = SnippetDepths(snippets.plan, (snippets.depths[0], snippets.depths[1][:, :, :10]))
    with pytest.raises(InvalidInput, match="groups but the plan has 3"):
        check_snippet_depths(wrong)
