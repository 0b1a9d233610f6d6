"""The nodes chained as a ComfyUI graph would, on the tiny model, without ComfyUI.

Every stage output is compared with calling the pack's core directly; inputs must come out
of every node unchanged; progress, cancel, validation and errors behave as in ComfyUI.
"""

from __future__ import annotations

import copy
import dataclasses
import functools
from types import MappingProxyType

import pytest
import torch
from rollingdepth_pack.nodes import NODE_CLASS_MAPPINGS as NODES
from rollingdepth_pack.nodes import comfy_bridge
from rollingdepth_pack.nodes import pipeline as pipeline_node
from rollingdepth_pack.rollingdepth_core import PRESETS, CoalignSettings, RunBatches, estimate_depth
from rollingdepth_pack.rollingdepth_core.coalign.methods import DEFAULT_METHOD, coalign_depth
from rollingdepth_pack.rollingdepth_core.errors import CheckpointError, InvalidInput, InvalidSettings
from rollingdepth_pack.rollingdepth_core.hooks import Hooks
from rollingdepth_pack.rollingdepth_core.io.export import read_exr
from rollingdepth_pack.rollingdepth_core.presets import Preset
from rollingdepth_pack.rollingdepth_core.stages.denoise import predict_snippets
from rollingdepth_pack.rollingdepth_core.stages.refine import refine_video
from rollingdepth_pack.rollingdepth_core.stages.snippets import plan_snippets

EXACT = {"rtol": 0.0, "atol": 1e-6}  # same code, same order of operations: equal up to rounding
RESOLUTION = 64
ITERATIONS = 60
COALIGN = {"method": "reference", "num_iterations": ITERATIONS, "learning_rate": 1e-3,
           "depth_term_weight": 1.0, "scale_reg_weight": 0.1, "shift_reg_weight": 10.0, "subsample": 10}
SAVE_EXR = {"exr_channel": "depth.Z", "exr_pixel_type": "float", "exr_compression": "zip",
            "save_spread": False}
REFINE = {"num_steps": 2, "start_dilation": 3, "snippet_length": 3, "cap_dilation": True,
          "processing_resolution": 0, "seed": 7, "snippets_per_batch": 4}


def run(node_id: str, **inputs):
    """Call a node the way ComfyUI does: FUNCTION on an instance under torch.inference_mode()
    (execution.py), outputs as a tuple."""
    cls = NODES[node_id]
    with torch.inference_mode():
        out = getattr(cls(), cls.FUNCTION)(**inputs)
    return out["result"] if isinstance(out, dict) else out


@pytest.fixture(scope="module")
def chain(pack_model, pack_images):
    """Sample -> Denoise -> Co-align -> Refine -> Depth to image, with every input checked afterwards."""
    images_before = pack_images.clone()
    plan, summary = run("RollingDepthSampleSnippets", dilations="1,3", snippet_length=3, cap_dilation=True,
                        num_frames=0, images=pack_images)
    (snippets,) = run("RollingDepthDenoiseSnippets", model=pack_model, images=pack_images, plan=plan,
                      processing_resolution=RESOLUTION, seed=7, snippets_per_batch=3)
    snippet_copy = tuple(d.clone() for d in snippets.depths)
    depth, report, spread = run("RollingDepthCoalign", snippet_depths=snippets, **COALIGN)
    coaligned_copy = depth.inverse_depth.clone()
    (refined,) = run("RollingDepthRefine", model=pack_model, images=pack_images, depth=depth, **REFINE)
    refined_copy = refined.inverse_depth.clone()
    (preview,) = run("RollingDepthDepthToImage", depth=refined, colormap="Spectral", invert=False,
                     low_percentile=0.0, high_percentile=100.0)
    unchanged = {
        "images": torch.equal(pack_images, images_before),
        "snippet depths": all(torch.equal(a, b) for a, b in zip(snippets.depths, snippet_copy, strict=True)),
        "co-aligned depth": torch.equal(depth.inverse_depth, coaligned_copy),
        "refined depth": torch.equal(refined.inverse_depth, refined_copy),
    }
    return dict(plan=plan, summary=summary, snippets=snippets, depth=depth, report=report,
                refined=refined, preview=preview, unchanged=unchanged, spread=spread)


def test_stage_chain_matches_core(chain, pack_model, pack_images):
    frames = pack_images.permute(0, 3, 1, 2) * 2 - 1
    plan = plan_snippets(9, (1, 3), 3, True)
    assert chain["plan"].dilations == plan.dilations == (1, 2)
    for ours, theirs in zip(chain["plan"].groups, plan.groups, strict=True):
        assert torch.equal(ours.indices, theirs.indices)
    assert chain["summary"] == plan.describe() and "dilation 2 (asked 3)" in chain["summary"]
    model = pack_model.model
    snippets = predict_snippets(model, frames, plan, RESOLUTION, seed=7, batches=RunBatches(3))
    for ours, theirs in zip(chain["snippets"].depths, snippets.depths, strict=True):
        torch.testing.assert_close(ours, theirs, **EXACT)
    settings = dataclasses.replace(CoalignSettings(), num_iterations=ITERATIONS)
    depth, alignment = coalign_depth(snippets, "reference", settings, spread=True)
    torch.testing.assert_close(chain["depth"].inverse_depth, depth.inverse_depth, **EXACT)
    torch.testing.assert_close(chain["spread"], depth.spread, **EXACT)  # Co-align's MASK output
    assert chain["spread"].shape == (9, 40, 64) and float(chain["spread"].max()) > 0
    assert f"objective {alignment.objective:.5f}" in chain["report"]
    refine_args = {k: v for k, v in REFINE.items() if k != "snippets_per_batch"}
    refined = refine_video(model, frames, depth, batches=RunBatches(REFINE["snippets_per_batch"]),
                           **refine_args)
    torch.testing.assert_close(chain["refined"].inverse_depth, refined.inverse_depth, **EXACT)
    assert chain["refined"].inverse_depth.shape == (9, 40, 64)
    assert chain["preview"].shape == (9, 40, 64, 3) and chain["preview"].dtype == torch.float32
    assert 0.0 <= float(chain["preview"].min()) and float(chain["preview"].max()) <= 1.0


def test_nodes_never_mutate_inputs(chain):
    assert chain["unchanged"] == {k: True for k in chain["unchanged"]}


def test_one_node_matches_core_and_stage_chain(pack_model, pack_images, monkeypatch):
    preset = Preset(RESOLUTION, (1, 3), "fp32", refine_steps=2, refine_start_dilation=3)
    monkeypatch.setattr(pipeline_node, "PRESETS", MappingProxyType({**PRESETS, "tiny": preset}))
    monkeypatch.setattr(comfy_bridge, "hooks", lambda: Hooks())
    # the preset's co-alignment runs 2000 iterations; 60 keep the test fast
    short = dataclasses.replace(CoalignSettings(), num_iterations=ITERATIONS)
    patched = functools.partial(estimate_depth, coalign_settings=short)
    monkeypatch.setattr(pipeline_node, "estimate_depth", patched)
    depth, preview = run("RollingDepth", model=pack_model, images=pack_images, preset="tiny", seed=3,
                         snippets_per_batch=8, resolution_override=0, output_size="processing")
    frames = pack_images.permute(0, 3, 1, 2) * 2 - 1
    result = estimate_depth(pack_model.model, frames, preset, seed=3, coalign_settings=short)
    expected = result.depth.inverse_depth
    torch.testing.assert_close(depth.inverse_depth, expected, **EXACT)
    gray = (expected - expected.min()) / (expected.max() - expected.min())
    torch.testing.assert_close(preview, gray[..., None].expand(-1, -1, -1, 3), rtol=0, atol=1e-5)
    # the same settings wired stage by stage give the same depth
    plan, _ = run("RollingDepthSampleSnippets", dilations="1,3", snippet_length=3, cap_dilation=True,
                  num_frames=0, images=pack_images)
    (snippets,) = run("RollingDepthDenoiseSnippets", model=pack_model, images=pack_images, plan=plan,
                      processing_resolution=RESOLUTION, seed=3, snippets_per_batch=8)
    # the one-node pipeline uses the default co-alignment method (issue 5: "fast")
    coaligned, *_ = run("RollingDepthCoalign", snippet_depths=snippets,
                       **dict(COALIGN, method=DEFAULT_METHOD))
    (refined,) = run("RollingDepthRefine", model=pack_model, images=pack_images, depth=coaligned,
                     **dict(REFINE, seed=3, snippets_per_batch=8))
    torch.testing.assert_close(refined.inverse_depth, expected, **EXACT)
    (restored, _) = run("RollingDepth", model=pack_model, images=pack_images[:, :20, :32], preset="tiny",
                        seed=3, snippets_per_batch=8, resolution_override=48, output_size="input")
    assert restored.inverse_depth.shape == (9, 20, 32)


class Recorder:
    """Hooks that record progress and raise ``Interrupted`` on the n-th cancel check."""

    class Interrupted(Exception):
        """Stands in for ComfyUI's InterruptProcessingException."""

    def __init__(self, cancel_at: int | None = None) -> None:
        self.calls: list[tuple[int, int]] = []
        self.checks = 0
        self.cancel_at = cancel_at

    def check(self) -> None:
        self.checks += 1
        if self.cancel_at is not None and self.checks >= self.cancel_at:
            raise Recorder.Interrupted()

    def hooks(self) -> Hooks:
        return Hooks(progress=lambda done, total: self.calls.append((done, total)), check_cancel=self.check)


def test_progress_reaches_the_stage_total(chain, pack_model, pack_images, monkeypatch):
    recorder = Recorder()
    monkeypatch.setattr(comfy_bridge, "hooks", recorder.hooks)
    run("RollingDepthDenoiseSnippets", model=pack_model, images=pack_images, plan=chain["plan"],
        processing_resolution=RESOLUTION, seed=7, snippets_per_batch=3)
    total = 9 + chain["plan"].num_snippets  # frames encoded + snippets denoised
    assert {t for _, t in recorder.calls} == {total}
    assert recorder.calls[-1] == (total, total)
    assert [d for d, _ in recorder.calls] == sorted(d for d, _ in recorder.calls)
    recorder.calls.clear()
    run("RollingDepthCoalign", snippet_depths=chain["snippets"], **COALIGN)
    assert recorder.calls[-1] == (ITERATIONS, ITERATIONS)
    recorder.calls.clear()
    run("RollingDepthRefine", model=pack_model, images=pack_images, depth=chain["depth"], **REFINE)
    # 2 steps at dilations 2 then 1 on 9 frames: 5 + 7 snippets
    assert recorder.calls[-1] == (12, 12)


def test_cancel_between_batches_propagates(chain, pack_model, pack_images, monkeypatch):
    recorder = Recorder(cancel_at=4)
    monkeypatch.setattr(comfy_bridge, "hooks", recorder.hooks)
    with pytest.raises(Recorder.Interrupted):
        run("RollingDepthDenoiseSnippets", model=pack_model, images=pack_images, plan=chain["plan"],
            processing_resolution=RESOLUTION, seed=7, snippets_per_batch=1)
    assert recorder.checks == 4 and 0 < len(recorder.calls) < 9 + chain["plan"].num_snippets
    recorder = Recorder(cancel_at=2)
    monkeypatch.setattr(comfy_bridge, "hooks", recorder.hooks)
    with pytest.raises(Recorder.Interrupted):
        run("RollingDepthCoalign", snippet_depths=chain["snippets"], **COALIGN)


def test_load_model_node(pack_folders):
    cls = NODES["RollingDepthLoadModel"]
    menu = cls.INPUT_TYPES()["required"]["model_name"][0]
    assert menu[0] == comfy_bridge.DEFAULT_MODEL_NAME
    (handle,) = run("RollingDepthLoadModel", model_name=menu[0], dtype="auto", download_if_missing=False)
    assert handle.model.dtype == torch.float32  # auto on a CPU
    assert handle.patcher is None and "rollingdepth-v1-0" in repr(handle)
    with pytest.raises(CheckpointError, match="No checkpoint named 'elsewhere'"):
        run("RollingDepthLoadModel", model_name="elsewhere", dtype="auto", download_if_missing=False)
    (pack_folders["models"] / comfy_bridge.DEFAULT_MODEL_NAME).unlink()
    with pytest.raises(CheckpointError, match="download_if_missing"):
        run("RollingDepthLoadModel", model_name=menu[0], dtype="fp32", download_if_missing=False)


def test_save_depth_node_stays_in_output(chain, pack_folders, tmp_path):
    depth = chain["depth"]
    out = NODES["RollingDepthSaveDepth"]().execute(
        depth=depth, filename_prefix="clips/take", save_exr=True, save_png16=False, save_npz=True,
        **SAVE_EXR,
    )
    listing = out["result"][0].splitlines()
    assert listing[0] == "clips/take_00001.npz"
    assert listing[1:] == [f"clips/take_00001_exr/take.depth.{i:04d}.exr" for i in range(9)]
    frame = read_exr(pack_folders["output"] / listing[4], "depth.Z")
    torch.testing.assert_close(torch.from_numpy(frame), depth.inverse_depth[3], rtol=0, atol=0)
    before = sorted(p.relative_to(tmp_path) for p in tmp_path.rglob("*"))
    for prefix in ("../escape", "/tmp/escape", "clips/../../escape"):
        assert "outside the output folder" in NODES["RollingDepthSaveDepth"].VALIDATE_INPUTS(prefix)
        with pytest.raises(InvalidSettings, match="outside the output folder"):
            run("RollingDepthSaveDepth", depth=depth, filename_prefix=prefix, save_exr=True,
                save_png16=True, save_npz=True, **SAVE_EXR)
    assert sorted(p.relative_to(tmp_path) for p in tmp_path.rglob("*")) == before
    with pytest.raises(InvalidSettings, match="Nothing to save"):
        run("RollingDepthSaveDepth", depth=depth, filename_prefix="x", save_exr=False, save_png16=False,
            save_npz=False, **SAVE_EXR)


def test_image_to_depth_round_trip_and_refine(chain, pack_model, pack_images):
    depth = chain["depth"]
    (gray,) = run("RollingDepthDepthToImage", depth=depth, colormap="gray", invert=False,
                  low_percentile=0.0, high_percentile=100.0)
    gray_copy = gray.clone()
    (back,) = run("RollingDepthImageToDepth", images=gray, source="inverse_depth", near_limit=0.01)
    values = depth.inverse_depth
    torch.testing.assert_close(back.inverse_depth, (values - values.min()) / (values.max() - values.min()),
                               rtol=0, atol=1e-6)
    (inverted,) = run("RollingDepthDepthToImage", depth=depth, colormap="gray", invert=True,
                      low_percentile=0.0, high_percentile=100.0)
    (as_depth,) = run("RollingDepthImageToDepth", images=inverted, source="depth", near_limit=0.05)
    expected = 1 / inverted[..., 0].clamp(min=0.05)
    torch.testing.assert_close(as_depth.inverse_depth, expected, rtol=1e-6, atol=0)
    assert torch.equal(gray, gray_copy)
    (refined,) = run("RollingDepthRefine", model=pack_model, images=pack_images, depth=back, **REFINE)
    assert refined.inverse_depth.shape == (9, 40, 64)
    assert bool(torch.isfinite(refined.inverse_depth).all())


def test_bad_inputs_raise_actionable_errors(chain, pack_model, pack_images):
    plan = chain["plan"]
    denoise = dict(model=pack_model, plan=plan, processing_resolution=RESOLUTION, seed=0,
                   snippets_per_batch=8)
    rgba = torch.cat([pack_images, torch.ones_like(pack_images[..., :1])], -1)
    with pytest.raises(InvalidInput, match="Remove the alpha channel"):
        run("RollingDepthDenoiseSnippets", images=rgba, **denoise)
    with pytest.raises(InvalidInput, match="empty"):
        run("RollingDepthDenoiseSnippets", images=pack_images[:0], **denoise)
    with pytest.raises(InvalidInput, match="8 frames but the snippet plan was made for 9"):
        run("RollingDepthDenoiseSnippets", images=pack_images[:8], **denoise)
    with pytest.raises(InvalidInput, match="NaN"):
        run("RollingDepthDenoiseSnippets", images=pack_images * float("nan"), **denoise)
    with pytest.raises(InvalidInput, match="num_frames"):
        run("RollingDepthSampleSnippets", dilations="1,3", snippet_length=3, cap_dilation=True, num_frames=0)
    plan_only, _ = run("RollingDepthSampleSnippets", dilations="1,10", snippet_length=3, cap_dilation=True,
                       num_frames=40)
    assert plan_only.num_frames == 40 and plan_only.dilations == (1, 10)
    with pytest.raises(InvalidSettings, match="must include 1"):
        run("RollingDepthSampleSnippets", dilations="10,25", snippet_length=3, cap_dilation=True,
            num_frames=40)
    with pytest.raises(InvalidInput, match="must come from Denoise Snippets"):
        run("RollingDepthCoalign", snippet_depths=pack_images, **COALIGN)
    with pytest.raises(InvalidInput, match="Image to depth"):
        run("RollingDepthDepthToImage", depth=pack_images, colormap="gray", invert=False,
            low_percentile=0.0, high_percentile=100.0)
    with pytest.raises(InvalidInput, match="8 frames but the depth video was made for 9"):
        run("RollingDepthRefine", model=pack_model, images=pack_images[:8], depth=chain["depth"], **REFINE)
    with pytest.raises(InvalidSettings, match="Unknown co-alignment method"):
        run("RollingDepthCoalign", snippet_depths=chain["snippets"], **dict(COALIGN, method="magic"))


def test_validate_inputs_catch_cheap_mistakes():
    validate = NODES["RollingDepthSampleSnippets"].VALIDATE_INPUTS
    assert validate("1,10,25") is True and validate(" 1, 25 ") is True
    assert "must include 1" in validate("10,25")
    assert "whole numbers" in validate("1,ten")
    assert validate(None) is True  # linked from another node: checked at run time
    check_range = NODES["RollingDepthDepthToImage"].VALIDATE_INPUTS
    assert check_range(2.0, 98.0) is True
    assert "low_percentile must be below high_percentile" in check_range(60.0, 40.0)
    assert "low_percentile must be at least 0.0" in check_range(-1.0, 40.0)


def test_chain_outputs_are_independent_of_the_cache(chain, pack_model, pack_images):
    """Running a node twice on the same cached inputs gives the same values (ComfyUI may re-run
    only part of a graph and hand the same cached objects to several consumers)."""
    snippets_before = copy.deepcopy(chain["snippets"].depths)
    again, *_ = run("RollingDepthCoalign", snippet_depths=chain["snippets"], **COALIGN)
    torch.testing.assert_close(again.inverse_depth, chain["depth"].inverse_depth, rtol=0, atol=0)
    assert all(torch.equal(a, b) for a, b in zip(chain["snippets"].depths, snippets_before, strict=True))
