"""Core helpers added for the node pack (issue 3): each is core logic the CLI can use too.

- `load_model(..., compute_device=)`: dtype chosen for the device the model will run on,
  while the weights wait on another one (ComfyUI parks them on the CPU).
- `coalign.available_methods` / `DEFAULT_METHOD`: the solver menu.
- `colormaps.colorize_depth`: clip-wide normalisation + colour map in one call.
- `depth_sources.to_inverse_depth`: depth from other tools as inverse depth.
- `export.output_location` / `save_depth_files`: writes that never leave the output folder.
"""

from __future__ import annotations

import inspect
import json

import numpy as np
import pytest
import torch

from rollingdepth_core import load_model
from rollingdepth_core.coalign.methods import (
    DEFAULT_METHOD,
    SOLVERS,
    available_methods,
    coalign,
    coalign_depth,
)
from rollingdepth_core.errors import InvalidInput, InvalidSettings
from rollingdepth_core.io import colormaps, depth_sources, export


def test_load_model_dtype_for_compute_device(tiny_model_dir):
    # fp16 on a CPU falls back to fp32, but weights parked on the CPU for a CUDA device keep fp16
    model = load_model(tiny_model_dir, device="cpu", dtype="fp16", compute_device="cuda")
    assert model.dtype == torch.float16
    assert next(model.unet.parameters()).dtype == torch.float16
    assert model.device.type == "cpu"
    assert load_model(tiny_model_dir, device="cpu", dtype="fp16").dtype == torch.float32


def test_available_methods_lists_registered_solvers():
    methods = available_methods()
    assert methods == tuple(sorted(SOLVERS))
    assert "reference" in methods and DEFAULT_METHOD in methods
    for function in (coalign, coalign_depth):  # the menu's default is the library's default
        assert inspect.signature(function).parameters["method"].default == DEFAULT_METHOD


def test_coalign_under_inference_mode_issue3():
    # ComfyUI runs nodes under torch.inference_mode(); the Adam solver then failed with
    # "element 0 of tensors does not require grad" (found by the real-server harness).
    from rollingdepth_core.coalign.problem import CoalignSettings
    from rollingdepth_core.types import SnippetDepths, SnippetGroup, SnippetPlan

    generator = torch.Generator().manual_seed(3)
    base = torch.rand(6, 12, 16, generator=generator) + 0.5  # N H W, one positive video
    gains = torch.tensor([0.8, 1.0, 1.2, 0.9])  # every snippet off by its own gain
    indices = torch.arange(4)[:, None] + torch.arange(3)[None, :]
    plan = SnippetPlan(num_frames=6, snippet_length=3, groups=(SnippetGroup(1, 1, indices),))
    settings = CoalignSettings(num_iterations=5, subsample=2)
    with torch.inference_mode():
        depths = base[indices] * gains[:, None, None, None]  # s n H W, an inference tensor like Denoise's
        snippets = SnippetDepths(plan=plan, depths=(depths,))
        video, alignment = coalign_depth(snippets, "reference", settings)
    # the same run outside inference mode: identical numbers
    outside = SnippetDepths(plan=plan, depths=(depths.clone(),))
    normal, expected = coalign_depth(outside, "reference", settings)
    assert video.inverse_depth.shape == (6, 12, 16)
    torch.testing.assert_close(video.inverse_depth, normal.inverse_depth, rtol=0, atol=0)
    torch.testing.assert_close(alignment.scales[0], expected.scales[0], rtol=0, atol=0)
    torch.testing.assert_close(alignment.loss_history, expected.loss_history, rtol=0, atol=0)
    # and it optimised: five Adam steps of 1e-3 lower the loss and move every scale by 3e-3 .. 5e-3
    assert alignment.loss_history.shape == (5,) and bool((alignment.loss_history.diff() < 0).all())
    assert bool(((alignment.scales[0] - 1).abs() > 2.5e-3).all())


def test_colorize_depth_is_clip_wide():
    depth = torch.stack([torch.full((2, 3), 1.0), torch.full((2, 3), 3.0)])  # N H W
    rgb = colormaps.colorize_depth(depth, "gray")
    assert rgb.shape == (2, 2, 3, 3)
    torch.testing.assert_close(rgb[0], torch.zeros(2, 3, 3))  # not stretched per frame
    torch.testing.assert_close(rgb[1], torch.ones(2, 3, 3))
    torch.testing.assert_close(colormaps.colorize_depth(depth, "gray", invert=True), 1 - rgb)
    with pytest.raises(InvalidSettings, match="Unknown colour map"):
        colormaps.colorize_depth(depth, "rainbow")


def test_to_inverse_depth_kinds():
    values = torch.tensor([[[0.0, 0.5, 1.0, 2.0]]])  # 1 1 4
    same = depth_sources.to_inverse_depth(values, "inverse_depth")
    torch.testing.assert_close(same, values)
    assert same.data_ptr() != values.data_ptr()
    inverse = depth_sources.to_inverse_depth(values, "depth", near_limit=0.1)
    torch.testing.assert_close(inverse, torch.tensor([[[10.0, 4.0, 2.0, 1.0]]]))
    with pytest.raises(InvalidInput, match="choose 'inverse_depth'"):
        depth_sources.to_inverse_depth(values - 1, "depth")
    with pytest.raises(InvalidSettings, match="Unknown depth kind"):
        depth_sources.to_inverse_depth(values, "disparity")
    with pytest.raises(InvalidInput, match="NaN"):
        depth_sources.to_inverse_depth(values * float("nan"), "depth")


@pytest.mark.parametrize("prefix", ["../escape", "/abs/depth", "a/../../escape", "C:/depth", "", "a/", "."])
def test_output_location_refuses_leaving_root(tmp_path, prefix):
    with pytest.raises(InvalidSettings):
        export.output_location(tmp_path, prefix)


def test_save_depth_files_takes_and_formats(tmp_path):
    depth = torch.linspace(0, 1, 2 * 4 * 6).reshape(2, 4, 6)
    first = export.save_depth_files(tmp_path, "clips/depth", depth, ("npz", "exr", "png16"))
    folder = tmp_path / "clips"
    assert first[0] == folder / "depth_00001.npz"
    assert sorted(p.name for p in (folder / "depth_00001_exr").iterdir()) == [
        "depth.depth.0000.exr", "depth.depth.0001.exr"
    ]
    assert (folder / "depth_00001_png16" / "depth_range.json") in first
    np.testing.assert_allclose(np.load(first[0])["inverse_depth"], depth.numpy())
    exr_frame = export.read_exr(folder / "depth_00001_exr" / "depth.depth.0001.exr", "depth.Z")
    np.testing.assert_allclose(exr_frame, depth[1])
    lo_hi = json.loads((folder / "depth_00001_png16" / "depth_range.json").read_text())
    assert lo_hi["min"] == 0.0 and lo_hi["max"] == pytest.approx(1.0)
    second = export.save_depth_files(tmp_path, "clips/depth", depth)
    assert second == [folder / "depth_00002.npz"]
    assert all(p.resolve().is_relative_to(tmp_path.resolve()) for p in first + second)
    with pytest.raises(InvalidSettings, match="formats"):
        export.save_depth_files(tmp_path, "depth", depth, ("tiff",))
