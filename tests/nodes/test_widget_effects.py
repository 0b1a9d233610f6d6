"""Every widget of every node changed from its default, and its effect checked (issue 12 §2).

`WIDGET_TESTS` names, for each node and widget, the test here that runs the node with two
values of the widget and checks what the change does: the node's output equals the core
called with that value AND differs from the output with the other value (a node that dropped
the widget would give the same output twice). `test_every_widget_has_an_effect_test` keeps
the table complete: a new widget fails it until a test for it is added.
"""

from __future__ import annotations

import json

import cv2
import numpy as np
import pytest
import torch
from rollingdepth_pack.nodes import NODE_CLASS_MAPPINGS as NODES
from rollingdepth_pack.nodes import comfy_bridge
from rollingdepth_pack.nodes import load_model as load_model_node
from rollingdepth_pack.nodes import pipeline as pipeline_node
from rollingdepth_pack.rollingdepth_core.coalign.methods import coalign_depth
from rollingdepth_pack.rollingdepth_core.coalign.problem import CoalignSettings
from rollingdepth_pack.rollingdepth_core.errors import CheckpointError
from rollingdepth_pack.rollingdepth_core.io.export import read_exr
from rollingdepth_pack.rollingdepth_core.presets import PRESETS
from rollingdepth_pack.rollingdepth_core.stages.denoise import predict_snippets
from rollingdepth_pack.rollingdepth_core.stages.refine import refine_video
from rollingdepth_pack.rollingdepth_core.stages.snippets import plan_snippets
from rollingdepth_pack.rollingdepth_core.types import DepthVideo, RunBatches, SnippetDepths

EXACT = {"rtol": 0.0, "atol": 1e-6}
WIDGET_TYPES = {"INT", "FLOAT", "STRING", "BOOLEAN"}

WIDGET_TESTS = {
    "RollingDepthLoadModel": {
        "model_name": "test_load_model_widgets", "dtype": "test_load_model_widgets",
        "download_if_missing": "test_load_model_widgets",
    },
    "RollingDepthSampleSnippets": {
        "dilations": "test_sample_snippets_widgets", "snippet_length": "test_sample_snippets_widgets",
        "cap_dilation": "test_sample_snippets_widgets", "num_frames": "test_sample_snippets_widgets",
    },
    "RollingDepthDenoiseSnippets": {
        "processing_resolution": "test_denoise_widgets", "seed": "test_denoise_widgets",
        "snippets_per_batch": "test_denoise_widgets",
    },
    "RollingDepthCoalign": {
        name: "test_coalign_widgets" for name in (
            "method", "num_iterations", "learning_rate", "depth_term_weight", "scale_reg_weight",
            "shift_reg_weight", "subsample")
    },
    "RollingDepthRefine": {
        name: "test_refine_widgets" for name in (
            "num_steps", "start_dilation", "snippet_length", "cap_dilation", "processing_resolution",
            "seed", "snippets_per_batch")
    },
    "RollingDepthDepthToImage": {
        name: "test_depth_to_image_widgets" for name in (
            "colormap", "invert", "low_percentile", "high_percentile")
    },
    "RollingDepthImageToDepth": {
        "source": "test_image_to_depth_widgets", "near_limit": "test_image_to_depth_widgets",
    },
    "RollingDepthSaveDepth": {
        name: "test_save_depth_widgets" for name in (
            "filename_prefix", "save_exr", "save_png16", "save_npz", "exr_channel", "exr_pixel_type",
            "exr_compression", "save_spread")
    },
    "RollingDepthLoadPlateSequence": {
        name: "test_load_plate_sequence_widgets" for name in (
            "sequence", "frame_range", "colour_space", "view", "layer", "window", "frame_rate")
    },
    "RollingDepthConvertDepth": {
        name: "test_convert_depth_widgets" for name in (
            "mode", "near", "far", "units", "low_percentile", "high_percentile", "points", "points_origin",
            "max_depth", "reference_scale", "output_size")
    },
    "RollingDepth": {
        name: "test_one_node_widgets" for name in (
            "preset", "seed", "snippets_per_batch", "resolution_override", "output_size")
    },
}


def widgets_of(cls) -> dict[str, dict]:
    """Name -> options of every widget (menus and INT/FLOAT/STRING/BOOLEAN inputs)."""
    spec = cls.INPUT_TYPES()
    inputs = {**spec.get("required", {}), **spec.get("optional", {})}
    return {name: (options[0] if options else {}) for name, (kind, *options) in inputs.items()
            if isinstance(kind, list) or kind in WIDGET_TYPES}


def test_every_widget_has_an_effect_test():
    assert set(WIDGET_TESTS) == set(NODES)
    for node_id, cls in NODES.items():
        assert set(WIDGET_TESTS[node_id]) == set(widgets_of(cls)), node_id
    for test in {name for widgets in WIDGET_TESTS.values() for name in widgets.values()}:
        assert callable(globals().get(test)), test


def run(node_id: str, **inputs):
    """Call a node as ComfyUI does (under inference mode); outputs as a tuple."""
    cls = NODES[node_id]
    with torch.inference_mode():
        out = getattr(cls(), cls.FUNCTION)(**inputs)
    return out["result"] if isinstance(out, dict) else out


def default(node_id: str, widget: str):
    return widgets_of(NODES[node_id])[widget]["default"]


def differ(a: torch.Tensor, b: torch.Tensor, at_least: float = 1e-4) -> bool:
    return a.shape != b.shape or float((a - b).abs().max()) > at_least


class UnetCalls:
    """Counts UNet forward calls (batches) while active."""

    def __init__(self, model):
        self.unet, self.count = model.unet, 0

    def __enter__(self):
        def hook(*_):
            self.count += 1
        self.handle = self.unet.register_forward_hook(hook)
        return self

    def __exit__(self, *exc):
        self.handle.remove()


# --- Co-align: no model, the authors' snippets of golden case_a ----------------------------


@pytest.fixture(scope="module")
def case_a_snippets(case_a):
    plan = plan_snippets(40, (1, 10), 3)
    return SnippetDepths(plan, tuple(case_a[f"snippet_depth_d{d}"][:, :, 0] for d in (1, 10)))


COALIGN_BASE = {"method": "fast", "num_iterations": 2000, "learning_rate": 1e-3, "depth_term_weight": 1.0,
                "scale_reg_weight": 0.1, "shift_reg_weight": 10.0, "subsample": 10}
COALIGN_CHANGES = {  # widget -> (base overrides, changed value)
    "method": ({}, "robust"),
    "num_iterations": ({}, 3),
    "learning_rate": ({"method": "reference", "num_iterations": 30}, 2e-2),
    "depth_term_weight": ({}, 0.0),
    "scale_reg_weight": ({}, 2.0),
    "shift_reg_weight": ({}, 0.5),
    "subsample": ({}, 4),
}


def test_coalign_widgets(case_a_snippets):
    node_id = "RollingDepthCoalign"
    assert {k: default(node_id, k) for k in COALIGN_BASE} == COALIGN_BASE  # the base is the defaults
    assert set(COALIGN_CHANGES) == set(COALIGN_BASE)
    outputs = {}
    for widget, (overrides, value) in COALIGN_CHANGES.items():
        base = dict(COALIGN_BASE, **overrides)
        key = tuple(sorted(base.items()))
        if key not in outputs:
            outputs[key] = run(node_id, snippet_depths=case_a_snippets, **base)[0].inverse_depth
        changed = dict(base, **{widget: value})
        depth, report, spread = run(node_id, snippet_depths=case_a_snippets, **changed)
        settings = CoalignSettings(**{k: v for k, v in changed.items() if k != "method"})
        expected, alignment = coalign_depth(case_a_snippets, changed["method"], settings, spread=True)
        torch.testing.assert_close(depth.inverse_depth, expected.inverse_depth, **EXACT)
        torch.testing.assert_close(spread, expected.spread, **EXACT)
        assert report.startswith(f"{changed['method']}:") and f"objective {alignment.objective:.5f}" in report
        assert differ(depth.inverse_depth, outputs[key]), f"{widget}={value} changed nothing"


# --- nodes that run the model ------------------------------------------------------------


@pytest.fixture(scope="module")
def plan9():
    return plan_snippets(9, (1, 3), 3)


def test_denoise_widgets(pack_model, pack_images, plan9):
    node_id = "RollingDepthDenoiseSnippets"
    frames = pack_images.permute(0, 3, 1, 2) * 2 - 1
    base = {"processing_resolution": 64, "seed": 7, "snippets_per_batch": 4}
    assert default(node_id, "seed") == 0 and default(node_id, "snippets_per_batch") == 0  # 0 = auto
    (reference,) = run(node_id, model=pack_model, plan=plan9, images=pack_images, **base)
    for widget, value in (("processing_resolution", 32), ("seed", 8)):
        changed = dict(base, **{widget: value})
        (snippets,) = run(node_id, model=pack_model, plan=plan9, images=pack_images, **changed)
        expected = predict_snippets(pack_model.model, frames, plan9, changed["processing_resolution"],
                                    seed=changed["seed"], batches=RunBatches(4))
        for ours, theirs, before in zip(snippets.depths, expected.depths, reference.depths, strict=True):
            torch.testing.assert_close(ours, theirs, **EXACT)
            assert differ(ours, before), f"{widget}={value} changed nothing"
    assert snippets.size == (40, 64) and reference.size == (40, 64)
    (small,) = run(node_id, model=pack_model, plan=plan9, images=pack_images,
                   **dict(base, processing_resolution=32))
    assert small.size == (20, 32)
    # snippets_per_batch: same depths, fewer UNet calls (7 + 5 snippets)
    for per_batch, calls in ((1, 12), (5, 2 + 1), (0, 2)):  # 0 = automatic: 8 on a CPU
        with UnetCalls(pack_model.model) as counter:
            (snippets,) = run(node_id, model=pack_model, plan=plan9, images=pack_images,
                              **dict(base, snippets_per_batch=per_batch))
        assert counter.count == calls, per_batch
        for ours, theirs in zip(snippets.depths, reference.depths, strict=True):
            torch.testing.assert_close(ours, theirs, rtol=0, atol=1e-5)


@pytest.fixture(scope="module")
def smooth_depth(pack_images):
    """A depth video of the 9 frames (any inverse depth can be refined)."""
    return DepthVideo(inverse_depth=pack_images.mean(-1) * 2 - 1)


REFINE_BASE = {"num_steps": 2, "start_dilation": 3, "snippet_length": 3, "cap_dilation": False,
               "processing_resolution": 0, "seed": 7, "snippets_per_batch": 4}
REFINE_CHANGES = {"num_steps": 1, "start_dilation": 2, "snippet_length": 2, "cap_dilation": True,
                  "processing_resolution": 32, "seed": 8}


def test_refine_widgets(pack_model, pack_images, smooth_depth):
    node_id = "RollingDepthRefine"
    frames = pack_images.permute(0, 3, 1, 2) * 2 - 1
    (reference,) = run(node_id, model=pack_model, depth=smooth_depth, images=pack_images, **REFINE_BASE)
    for widget, value in REFINE_CHANGES.items():
        assert value != default(node_id, widget) or REFINE_BASE[widget] != default(node_id, widget)
        changed = dict(REFINE_BASE, **{widget: value})
        (refined,) = run(node_id, model=pack_model, depth=smooth_depth, images=pack_images, **changed)
        core_depth = smooth_depth
        if changed["processing_resolution"]:  # the node hands the depth over as it is
            core_depth = DepthVideo(inverse_depth=smooth_depth.inverse_depth)
        core_args = {k: v for k, v in changed.items() if k != "snippets_per_batch"}
        expected = refine_video(pack_model.model, frames, core_depth,
                                batches=RunBatches(changed["snippets_per_batch"]), **core_args)
        torch.testing.assert_close(refined.inverse_depth, expected.inverse_depth, **EXACT)
        assert differ(refined.inverse_depth, reference.inverse_depth), f"{widget}={value} changed nothing"
    # cap_dilation: 9 frames, length 3 -> the start dilation 3 is capped to int(9 / 3) - 1 = 2
    # snippets_per_batch: same depth, fewer UNet calls (2 steps at dilations 3, 2: 3 + 5 snippets)
    for per_batch, calls in ((1, 8), (4, 1 + 2), (0, 1 + 1)):
        with UnetCalls(pack_model.model) as counter:
            (refined,) = run(node_id, model=pack_model, depth=smooth_depth, images=pack_images,
                             **dict(REFINE_BASE, snippets_per_batch=per_batch))
        assert counter.count == calls, per_batch
        torch.testing.assert_close(refined.inverse_depth, reference.inverse_depth, rtol=0, atol=1e-5)


def test_one_node_widgets(pack_model, pack_images, monkeypatch):
    """The one-node pipeline hands its widgets to `estimate_depth`: recorded here (the runs
    themselves are compared with the core in test_graph.py)."""
    calls = []
    real = pipeline_node.estimate_depth
    monkeypatch.setattr(pipeline_node, "estimate_depth", lambda *a, **k: _recorded(calls, real, *a, **k))
    base = {"preset": "fast", "seed": 0, "snippets_per_batch": 0, "resolution_override": 32,
            "output_size": "processing"}
    assert {k: default("RollingDepth", k) for k in base if k != "resolution_override"} == {
        k: v for k, v in base.items() if k != "resolution_override"}
    outputs = {}
    for widget, value in (("preset", "full"), ("seed", 5), ("snippets_per_batch", 3),
                          ("resolution_override", 24), ("output_size", "input"), (None, None)):
        inputs = dict(base) if widget is None else dict(base, **{widget: value})
        depth, _ = run("RollingDepth", model=pack_model, images=pack_images[:5], **inputs)
        outputs[widget] = depth.inverse_depth
    by_widget = dict(zip(("preset", "seed", "snippets_per_batch", "resolution_override", "output_size",
                          None), calls, strict=True))
    expected_full = dict(vars(PRESETS["full"]), processing_resolution=32)
    assert vars(by_widget["preset"]["settings"]) == expected_full
    assert vars(by_widget[None]["settings"]) == dict(vars(PRESETS["fast"]), processing_resolution=32)
    assert by_widget["seed"]["seed"] == 5 and by_widget[None]["seed"] == 0
    # the bridge resolves the widget once (0 = "auto": the CPU defaults here) and hands it down
    assert by_widget["snippets_per_batch"]["batches"] == RunBatches(3, 4)
    assert by_widget[None]["batches"] == RunBatches(8, 4)
    assert by_widget["resolution_override"]["settings"].processing_resolution == 24
    assert by_widget["output_size"]["restore_size"] is True and by_widget[None]["restore_size"] is False
    assert outputs[None].shape == (5, 20, 32)
    assert outputs["resolution_override"].shape == (5, 15, 24)
    assert outputs["output_size"].shape == (5, 40, 64)
    for widget in ("preset", "seed"):
        assert differ(outputs[widget], outputs[None]), widget
    torch.testing.assert_close(outputs["snippets_per_batch"], outputs[None], rtol=0, atol=1e-5)


def _recorded(calls, real, model, source, settings, **kwargs):
    calls.append(dict(settings=settings, **kwargs))
    return real(model, source, settings, coalign_settings=CoalignSettings(num_iterations=20), **kwargs)


# --- nodes without the model ---------------------------------------------------------------


def test_sample_snippets_widgets(pack_images):
    node_id = "RollingDepthSampleSnippets"
    assert (default(node_id, "dilations"), default(node_id, "snippet_length"),
            default(node_id, "cap_dilation"), default(node_id, "num_frames")) == ("1,25", 3, True, 0)
    plan, _ = run(node_id, dilations="1,25", snippet_length=3, cap_dilation=True, num_frames=0,
                  images=pack_images)
    assert plan.num_frames == 9 and plan.dilations == (1, 2)  # 25 capped to int(9 / 3) - 1
    other, _ = run(node_id, dilations="1,3", snippet_length=3, cap_dilation=False, num_frames=0,
                   images=pack_images)
    assert other.dilations == (1, 3)  # not capped: 0, 3, 6 .. 2, 5, 8 fit
    assert torch.equal(other.groups[1].indices, torch.tensor([[0, 3, 6], [1, 4, 7], [2, 5, 8]]))
    short, _ = run(node_id, dilations="1,25", snippet_length=2, cap_dilation=True, num_frames=0,
                   images=pack_images)
    assert short.snippet_length == 2 and short.dilations == (1, 3)  # int(9 / 2) - 1 = 3
    assert torch.equal(short.groups[0].indices, torch.stack([torch.arange(8), torch.arange(1, 9)], 1))
    counted, _ = run(node_id, dilations="1,25", snippet_length=3, cap_dilation=True, num_frames=100)
    assert counted.num_frames == 100 and counted.dilations == (1, 25)
    assert counted.groups[1].num_snippets == 100 - 2 * 25


def test_depth_to_image_widgets(smooth_depth):
    node_id = "RollingDepthDepthToImage"
    assert (default(node_id, "colormap"), default(node_id, "invert"), default(node_id, "low_percentile"),
            default(node_id, "high_percentile")) == ("gray", False, 0.0, 100.0)
    values = smooth_depth.inverse_depth
    base = {"colormap": "gray", "invert": False, "low_percentile": 0.0, "high_percentile": 100.0}
    (gray,) = run(node_id, depth=smooth_depth, **base)
    expected = (values - values.min()) / (values.max() - values.min())
    torch.testing.assert_close(gray, expected[..., None].expand(-1, -1, -1, 3), rtol=0, atol=1e-6)
    (inverted,) = run(node_id, depth=smooth_depth, **dict(base, invert=True))
    torch.testing.assert_close(inverted, 1 - gray, rtol=0, atol=1e-6)
    (clipped,) = run(node_id, depth=smooth_depth, **dict(base, low_percentile=10.0, high_percentile=80.0))
    lo, hi = np.percentile(values.numpy(), [10.0, 80.0])
    by_hand = ((values - float(lo)) / float(hi - lo)).clamp(0, 1)
    torch.testing.assert_close(clipped[..., 0], by_hand, rtol=0, atol=1e-5)
    assert float((clipped[..., 0] == 0).float().mean()) == pytest.approx(0.10, abs=0.01)
    assert float((clipped[..., 0] == 1).float().mean()) == pytest.approx(0.20, abs=0.01)
    (spectral,) = run(node_id, depth=smooth_depth, **dict(base, colormap="Spectral"))
    assert differ(spectral, gray, 0.05) and not torch.equal(spectral[..., 0], spectral[..., 2])
    # Spectral runs red (far) -> blue (near): the nearest pixel is bluer than red, the farthest redder
    near, far = values.argmax(), values.argmin()
    flat = spectral.reshape(-1, 3)
    assert flat[near, 2] > flat[near, 0] and flat[far, 0] > flat[far, 2]


def test_image_to_depth_widgets():
    node_id = "RollingDepthImageToDepth"
    assert (default(node_id, "source"), default(node_id, "near_limit")) == ("inverse_depth", 0.01)
    grey = torch.linspace(0, 1, 2 * 4 * 5).reshape(2, 4, 5)
    images = grey[..., None].expand(-1, -1, -1, 3).contiguous()
    (same,) = run(node_id, images=images, source="inverse_depth", near_limit=0.01)
    torch.testing.assert_close(same.inverse_depth, grey, rtol=0, atol=1e-7)  # mean of 3 channels
    for near_limit in (0.01, 0.25):
        (inverse,) = run(node_id, images=images, source="depth", near_limit=near_limit)
        torch.testing.assert_close(inverse.inverse_depth, 1 / grey.clamp(min=near_limit * float(grey.max())),
                                   rtol=1e-6, atol=0)
        assert float(inverse.inverse_depth.max()) == pytest.approx(1 / near_limit)


def test_save_depth_widgets(pack_folders, smooth_depth):
    node_id = "RollingDepthSaveDepth"
    assert (default(node_id, "filename_prefix"), default(node_id, "save_exr"), default(node_id, "save_png16"),
            default(node_id, "save_npz")) == ("rollingdepth/depth", True, False, False)
    values = smooth_depth.inverse_depth
    output = pack_folders["output"]
    exr = {"exr_channel": "depth.Z", "exr_pixel_type": "float", "exr_compression": "zip",
           "save_spread": False}
    assert {k: default(node_id, k) for k in exr} == exr
    (listing,) = run(node_id, depth=smooth_depth, filename_prefix="rollingdepth/depth", save_exr=True,
                     save_png16=False, save_npz=False, **exr)
    assert listing.splitlines() == [f"rollingdepth/depth_00001_exr/depth.depth.{i:04d}.exr" for i in range(9)]
    torch.testing.assert_close(torch.from_numpy(read_exr(output / listing.splitlines()[4], "depth.Z")),
                               values[4], rtol=0, atol=0)
    # the EXR widgets: channel, pixel type, compression, spread channel
    import OpenImageIO as oiio

    with_spread = DepthVideo(values, spread=values.abs() * 0.1)
    changed = {"exr_channel": "Z", "exr_pixel_type": "half", "exr_compression": "piz", "save_spread": True}
    (listing,) = run(node_id, depth=with_spread, filename_prefix="exr/b", save_exr=True, save_png16=False,
                     save_npz=False, **changed)
    spec = oiio.ImageInput.open(str(output / listing.splitlines()[4])).spec()
    assert spec.channelnames == ("Z", "spread") and str(spec.format) == "half"
    assert spec.get_string_attribute("compression") == "piz"
    spread = read_exr(output / listing.splitlines()[4], "spread")
    np.testing.assert_allclose(spread, 0.1 * values[4].abs().numpy(), rtol=1e-3, atol=1e-4)
    (listing,) = run(node_id, depth=smooth_depth, filename_prefix="shots/a", save_exr=False,
                     save_png16=True, save_npz=True, **exr)
    files = listing.splitlines()
    assert files[0] == "shots/a_00001.npz" and not any(f.endswith(".exr") for f in files)
    np.testing.assert_array_equal(np.load(output / files[0])["inverse_depth"], values.numpy())
    pngs = sorted(f for f in files if f.endswith(".png"))
    assert pngs == [f"shots/a_00001_png16/a_{i:05d}.png" for i in range(9)]
    limits = json.loads((output / "shots/a_00001_png16/a_range.json").read_text())
    frame = cv2.imread(str(output / pngs[2]), cv2.IMREAD_UNCHANGED)
    assert frame.dtype == np.uint16
    decoded = limits["min"] + frame / 65535.0 * (limits["max"] - limits["min"])
    np.testing.assert_allclose(decoded, values[2].numpy(), atol=(limits["max"] - limits["min"]) / 65535)


def test_load_model_widgets(pack_folders, tiny_model_dir, monkeypatch):
    node_id = "RollingDepthLoadModel"
    defaults = tuple(default(node_id, w) for w in ("model_name", "dtype", "download_if_missing"))
    assert defaults == (comfy_bridge.DEFAULT_MODEL_NAME, "auto", True)
    (pack_folders["models"] / "my-finetune").symlink_to(tiny_model_dir, target_is_directory=True)
    assert list(NODES[node_id].INPUT_TYPES()["required"]["model_name"][0]) == [
        comfy_bridge.DEFAULT_MODEL_NAME, "my-finetune"]
    (handle,) = run(node_id, model_name="my-finetune", dtype="fp32", download_if_missing=False)
    assert str(handle.model.source).endswith("my-finetune")
    # dtype: for a GPU (weights parked on the CPU) the widget's precision is kept
    monkeypatch.setattr(comfy_bridge, "compute_device", lambda: torch.device("cuda"))
    for dtype, expected in (("fp32", torch.float32), ("bf16", torch.bfloat16), ("fp16", torch.float16),
                            ("auto", torch.float16)):  # auto outside ComfyUI: fp16 on CUDA
        (handle,) = run(node_id, model_name="my-finetune", dtype=dtype, download_if_missing=False)
        assert handle.model.dtype == expected and next(handle.model.unet.parameters()).dtype == expected
    # download_if_missing: the default checkpoint's folder is missing
    (pack_folders["models"] / comfy_bridge.DEFAULT_MODEL_NAME).unlink()
    with pytest.raises(CheckpointError, match="download_if_missing"):
        run(node_id, model_name=comfy_bridge.DEFAULT_MODEL_NAME, dtype="fp32", download_if_missing=False)
    asked = {}

    def fake_load(source, **kwargs):
        asked.update(kwargs, source=source)
        raise CheckpointError("offline in tests")

    monkeypatch.setattr(load_model_node, "load_model", fake_load)
    with pytest.raises(CheckpointError, match="offline in tests"):
        run(node_id, model_name=comfy_bridge.DEFAULT_MODEL_NAME, dtype="fp32", download_if_missing=True)
    assert asked["source"] == "prs-eth/rollingdepth-v1-0" and asked["allow_download"] is True
    assert asked["local_dir"] == pack_folders["models"] / comfy_bridge.DEFAULT_MODEL_NAME


# --- plates: Load Plate Sequence and Convert Depth ------------------------------------------


@pytest.fixture
def plates_input(tmp_path, monkeypatch, make_image, plate_pixels):
    """input/a.1001.exr .. a.1004.exr (half, a diffuse layer, an 8x8 data window inside the 16x12
    frame) and input/b.0001.exr .. b.0004.exr (float), in a temporary ComfyUI input folder."""
    monkeypatch.delenv("OCIO", raising=False)
    folder = tmp_path / "input"
    folder.mkdir()
    for i in range(4):
        rgb = plate_pixels(i, 12, 16) * 3.0
        layers = np.concatenate([rgb, rgb[::-1] * 0.5], axis=-1)
        names = ("R", "G", "B", "diffuse.R", "diffuse.G", "diffuse.B")
        make_image(folder / f"a.{1001 + i}.exr", layers[2:10, 4:12], "half", channels=names,
                   data_window=(4, 2), display_window=(0, 0, 16, 12))
        make_image(folder / f"b.{i + 1:04d}.exr", plate_pixels(i + 7, 12, 16), "float")
    monkeypatch.setattr(comfy_bridge, "FALLBACK_INPUT_FOLDER", folder)
    return folder


PLATE_BASE = {"sequence": "a.####.exr", "frame_range": "", "colour_space": "auto", "view": "default",
              "layer": "", "window": "display", "frame_rate": 0.0}
PLATE_CHANGES = {"sequence": "b.####.exr", "frame_range": "1002-1003", "colour_space": "raw",
                 "view": "Un-tone-mapped", "layer": "diffuse", "window": "data", "frame_rate": 25.0}


def test_load_plate_sequence_widgets(plates_input):
    from fractions import Fraction

    from rollingdepth_pack.rollingdepth_core.io.plates import ImageSequenceSource

    node_id = "RollingDepthLoadPlateSequence"
    assert {k: default(node_id, k) for k in PLATE_BASE} == {**PLATE_BASE, "sequence": "plate.####.exr"}
    base_video, _ = run(node_id, **PLATE_BASE)
    base = base_video.images()
    for widget, value in PLATE_CHANGES.items():
        changed = dict(PLATE_BASE, **{widget: value})
        video, info = run(node_id, **changed)
        source = video.frame_source()
        expected = ImageSequenceSource(
            plates_input / changed["sequence"], changed["frame_range"] or None,
            colour_space=changed["colour_space"],
            view=None if changed["view"] == "default" else changed["view"], layer=changed["layer"] or None,
            window=changed["window"], frame_rate=changed["frame_rate"] or None,
        )
        assert source.frame_numbers == expected.frame_numbers and source.frame_rate == expected.frame_rate
        if widget == "frame_rate":
            assert video.get_frame_rate() == Fraction(25) != base_video.get_frame_rate()
            continue
        images = video.images()
        if widget == "window":  # the data window is smaller than the frame: only its stored pixels
            assert images.shape[1:3] == (8, 8) and base.shape[1:3] == (12, 16)
            torch.testing.assert_close(images, base[:, 2:10, 4:12], **EXACT)
        torch.testing.assert_close(images, expected.read_images(0, expected.num_frames), **EXACT)
        assert differ(images, base), f"{widget}={value} changed nothing"


CONVERT_BASE = {"mode": "planes", "near": 1.0, "far": 100.0, "units": "m", "low_percentile": 1.0,
                "high_percentile": 99.0, "points": "", "points_origin": "top-left", "max_depth": 0.0,
                "reference_scale": 1.0, "output_size": "plate"}


def test_convert_depth_widgets():
    from rollingdepth_pack.rollingdepth_core.conversion.convert import DepthConversion, convert_clip
    from rollingdepth_pack.rollingdepth_core.types import ClipInfo

    node_id = "RollingDepthConvertDepth"
    assert {k: default(node_id, k) for k in CONVERT_BASE} == CONVERT_BASE
    truth = 1.0 / (2.0 + torch.linspace(0, 1, 4 * 10 * 12).reshape(4, 10, 12) * 30)  # 1/Z, Z 2..32 m
    clip = ClipInfo(name="p", frame_numbers=(1001, 1002, 1003, 1004), stored_size=(20, 24))
    depth = DepthVideo(truth * 3 - 0.2, spread=torch.full((4, 10, 12), 0.01), clip=clip)
    points = "1001 0 0 {:.6f}\n1004 23 19 {:.6f}\n1002 10 4 {:.6f}"
    z_at = lambda f, x, y: 1 / float(truth[f, y // 2, x // 2])  # noqa: E731 - plate pixel -> our pixel
    fit_points = points.format(z_at(0, 0, 0), z_at(3, 23, 19), z_at(1, 10, 4))
    reference = (1 / truth)[:, :, :, None].expand(4, 10, 12, 3) / 10.0  # an IMAGE holding Z / 10
    cases = {  # widget -> (base overrides, changed value, extra node inputs)
        "mode": ({}, "normalized", {}),
        "near": ({}, 0.5, {}),
        "far": ({}, 60.0, {}),
        "units": ({}, "cm", {}),
        "low_percentile": ({}, 10.0, {}),
        "high_percentile": ({}, 90.0, {}),
        "points": ({"mode": "fit", "max_depth": 1000.0}, fit_points, {}),
        "points_origin": ({"mode": "fit", "points": fit_points, "max_depth": 1000.0}, "bottom-left", {}),
        "max_depth": ({"mode": "fit", "points": fit_points}, 10.0, {}),
        "reference_scale": ({"mode": "fit"}, 10.0, {"reference_depth": reference}),
        "output_size": ({}, "depth", {}),
    }
    assert set(cases) == set(CONVERT_BASE)
    for widget, (overrides, value, extra) in cases.items():
        base_inputs = dict(CONVERT_BASE, **overrides)
        if widget == "points":
            base_inputs["points"] = points.format(5.0, 9.0, 7.0)  # other distances
        before, _ = run(node_id, depth=depth, **base_inputs, **extra)
        changed = dict(base_inputs, **{widget: value})
        after, report = run(node_id, depth=depth, **changed, **extra)
        conversion = DepthConversion(changed["mode"], changed["near"], changed["far"],
                                     changed["low_percentile"], changed["high_percentile"], changed["units"],
                                     changed["max_depth"] or None)
        reference_maps = None
        if "reference_depth" in extra:
            reference_maps = extra["reference_depth"].mean(-1) * changed["reference_scale"]
        expected, expected_report = convert_clip(depth, conversion, changed["output_size"],
                                                 changed["points"], changed["points_origin"], reference_maps)
        torch.testing.assert_close(after.values, expected.values, **EXACT)
        assert report == expected_report and after.units == (changed["units"] if after.kind == "z" else "")
        if widget == "units":
            assert before.units == "m" and after.units == "cm"
        else:
            assert differ(after.values, before.values), f"{widget}={value} changed nothing"
