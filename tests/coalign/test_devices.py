"""Co-alignment takes a `device` like every other stage (issue 8): it computes there.

No GPU in CI, so two checks on the CPU: an explicit ``device="cpu"`` gives exactly the
default's numbers, and no tensor is made without saying where (a tensor factory called
without ``device=`` would land on the CPU while the rest of the work is on a GPU).
"""

from __future__ import annotations

import traceback
from pathlib import Path

import pytest
import torch
from torch.overrides import TorchFunctionMode

import rollingdepth_core
from rollingdepth_core.coalign.merge import merge_aligned, merge_with_spread
from rollingdepth_core.coalign.methods import coalign, coalign_depth
from rollingdepth_core.coalign.problem import CoalignSettings, prepare_problem, snippets_device
from rollingdepth_core.errors import InvalidInput, InvalidSettings
from rollingdepth_core.stages.snippets import plan_snippets
from rollingdepth_core.types import SnippetDepths

PACKAGE = str(Path(rollingdepth_core.__file__).parent)
FACTORIES = {torch.zeros, torch.ones, torch.full, torch.empty, torch.arange, torch.eye,
             torch.linspace, torch.tensor, torch.rand, torch.randn, torch.sparse_csr_tensor}


class FactoryCalls(TorchFunctionMode):
    """Records tensor factories called from the package without ``device=``."""

    def __init__(self) -> None:
        super().__init__()
        self.without_device: list[str] = []

    def __torch_function__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        if func in FACTORIES and "device" not in kwargs:
            ours = [f for f in traceback.extract_stack()[:-1] if f.filename.startswith(PACKAGE)]
            if ours:
                where = ours[-1]
                self.without_device.append(f"{func.__name__} at {Path(where.filename).name}:{where.lineno}")
        return func(*args, **kwargs)


def disagreeing_snippets(num_frames: int = 30) -> SnippetDepths:
    """Snippets of one positive video, each with its own gain and offset (something to align)."""
    plan = plan_snippets(num_frames, (1, 4, 9), 3)
    generator = torch.Generator().manual_seed(3)
    base = torch.rand(num_frames, 16, 24, generator=generator) + 0.5
    depths = []
    for group in plan.groups:
        gain = torch.exp((torch.rand(group.num_snippets, generator=generator) * 2 - 1) * 0.2)
        offset = (torch.rand(group.num_snippets, generator=generator) * 2 - 1) * 0.1
        depths.append(base[group.indices] * gain[:, None, None, None] + offset[:, None, None, None])
    return SnippetDepths(plan, tuple(depths))


@pytest.fixture(scope="module")
def snippets() -> SnippetDepths:
    return disagreeing_snippets()


@pytest.mark.parametrize("method", ["fast", "reference", "robust"])
def test_explicit_cpu_equals_the_default(snippets, method):
    settings = CoalignSettings(num_iterations=40) if method == "reference" else CoalignSettings()
    default = coalign(snippets, method, settings)
    explicit = coalign(snippets, method, settings, device=torch.device("cpu"))
    assert explicit.objective == default.objective
    for a, b in zip(default.scales + default.shifts, explicit.scales + explicit.shifts, strict=True):
        assert a.device.type == "cpu" and torch.equal(a, b)  # results come back to the host
    assert torch.equal(merge_aligned(snippets, default, device="cpu"), merge_aligned(snippets, default))


@pytest.mark.parametrize("method", ["fast", "reference", "robust"])
def test_every_tensor_is_made_on_the_given_device(snippets, method):
    settings = CoalignSettings(num_iterations=40) if method == "reference" else CoalignSettings()
    with FactoryCalls() as calls:
        alignment = coalign(snippets, method, settings, device="cpu")
        merge_aligned(snippets, alignment, device="cpu")
        merge_with_spread(snippets, alignment, device="cpu")
    assert calls.without_device == []


def test_problem_goes_to_the_device_and_defaults_to_the_snippets(snippets):
    assert snippets_device(snippets) == torch.device("cpu")
    problem = prepare_problem(snippets, CoalignSettings(), device="cpu")
    assert all(v.device.type == "cpu" for v in problem.values + problem.indices)
    assert problem.device == torch.device("cpu")
    # meta tensors carry no data: the values are moved there, every chunk of them
    meta = prepare_problem(snippets, CoalignSettings(), device="meta")
    assert {v.device.type for v in meta.values + meta.indices} == {"meta"}
    assert [tuple(v.shape) for v in meta.values] == [tuple(v.shape) for v in problem.values]


def test_coalign_depth_passes_the_device_on(snippets, monkeypatch):
    from rollingdepth_core.coalign import methods

    seen = []
    real_merge = methods.merge_aligned

    def spy(snippets, alignment, **kwargs):
        seen.append(kwargs.get("device"))
        return real_merge(snippets, alignment, **kwargs)

    monkeypatch.setattr(methods, "merge_aligned", spy)
    video, alignment = coalign_depth(snippets, "fast", device="cpu")
    default_video, _ = coalign_depth(snippets, "fast")
    assert seen == [torch.device("cpu"), torch.device("cpu")]
    assert torch.equal(video.inverse_depth, default_video.inverse_depth)
    assert video.inverse_depth.device.type == "cpu"


@pytest.mark.parametrize("call", [coalign, coalign_depth])
def test_bad_inputs_are_named_before_any_work(snippets, call):
    """A tensor instead of SnippetDepths was an AttributeError in coalign_depth (it asked the
    tensor for its device first); an unknown device was torch's RuntimeError."""
    with pytest.raises(InvalidInput, match="snippets must be SnippetDepths"):
        call(snippets.depths[0])
    with pytest.raises(InvalidSettings, match="Unknown device 'gpu0'"):
        call(snippets, device="gpu0")
