"""The nodes' side of issue 9: widget values refused at queue time by the core's own checks,
one progress bar for the one-node RollingDepth, a still image noticed, messages written for
ComfyUI (no command-line wording), Save Depth takes written atomically."""

from __future__ import annotations

import dataclasses
import json
import logging
import os
from pathlib import Path
from types import MappingProxyType

import pytest
import torch
from rollingdepth_pack.nodes import NODE_CLASS_MAPPINGS as NODES
from rollingdepth_pack.nodes import NODE_DISPLAY_NAME_MAPPINGS as NODES_DISPLAY
from rollingdepth_pack.nodes import comfy_bridge
from rollingdepth_pack.nodes import pipeline as pipeline_node
from rollingdepth_pack.nodes.widgets import check_graph
from rollingdepth_pack.rollingdepth_core import PRESETS
from rollingdepth_pack.rollingdepth_core.errors import CheckpointError, InvalidSettings
from rollingdepth_pack.rollingdepth_core.hooks import Hooks
from rollingdepth_pack.rollingdepth_core.io import export
from rollingdepth_pack.rollingdepth_core.presets import Preset
from rollingdepth_pack.rollingdepth_core.runtime import memory_estimate


def run(node_id: str, **inputs):
    cls = NODES[node_id]
    with torch.inference_mode():
        out = getattr(cls(), cls.FUNCTION)(**inputs)
    return out["result"] if isinstance(out, dict) else out


@pytest.mark.parametrize("node, values, message", [
    ("RollingDepthSampleSnippets", dict(dilations="1,2.5"),
     "dilations must be whole numbers separated by commas"),
    ("RollingDepthSampleSnippets", dict(dilations="10,25"), "dilations must include 1; got (10, 25)."),
    ("RollingDepthDepthToImage", dict(low_percentile=98.0, high_percentile=2.0),
     "low_percentile must be below high_percentile; got 98.0 and 2.0."),
    ("RollingDepthDepthToImage", dict(low_percentile=2.0, high_percentile=101.0),
     "high_percentile must be at most 100.0; got 101.0."),
    ("RollingDepthSaveDepth", dict(filename_prefix="../x", save_exr=True, save_png16=False, save_npz=False),
     "points outside the output folder"),
    ("RollingDepthSaveDepth", dict(filename_prefix="/abs/x", save_exr=True, save_png16=False, save_npz=False),
     "points outside the output folder"),
    ("RollingDepthSaveDepth", dict(filename_prefix="x", save_exr=False, save_png16=False, save_npz=False),
     "Nothing to save: turn on save_exr, save_png16 or save_npz."),
])
def test_widget_values_are_refused_at_queue_time(node, values, message):
    # issue 9: a prefix leaving the output folder (and other cheap mistakes) ran the whole graph first
    result = NODES[node].VALIDATE_INPUTS(**values)
    assert isinstance(result, str) and message in result
    assert "--" not in result  # node wording, not the command line's


@pytest.mark.parametrize("node, values, message", [
    ("RollingDepthSampleSnippets", dict(dilations="1,25", snippet_length=0),
     "snippet_length must be at least 1"),
    ("RollingDepthDenoiseSnippets", dict(processing_resolution=8192, seed=0),
     "processing_resolution must be at most 4096; got 8192."),
    ("RollingDepthDenoiseSnippets", dict(processing_resolution=768, seed=-1),
     "seed must be at least 0; got -1."),
    ("RollingDepthCoalign", dict(learning_rate=0.0, subsample=10),
     "learning_rate must be at least 1e-06; got 0.0."),
    ("RollingDepthCoalign", dict(learning_rate=1e-3, subsample=0), "subsample must be at least 1; got 0."),
    ("RollingDepthRefine", dict(num_steps=0), "num_steps must be at least 1; got 0."),
    ("RollingDepthRefine", dict(num_steps=501), "num_steps must be at most 500; got 501."),
    ("RollingDepth", dict(seed=0, resolution_override=5000), "resolution_override must be at most 4096"),
    ("RollingDepthSaveDepth", dict(filename_prefix="../x", save_exr=True),
     "points outside the output folder"),
])
def test_the_graph_check_catches_every_widget_mistake(node, values, message):
    # ComfyUI refuses plain range mistakes itself (the declared limits are the core's), but runs the
    # other outputs of the graph: the expensive nodes stop a graph holding any of them
    with pytest.raises(InvalidSettings) as caught:
        check_graph({"4": {"class_type": node, "inputs": {**values, "model": ["1", 0]}}})
    assert str(caught.value).startswith(f"{NODES_DISPLAY[node]} (node 4): ") and message in str(caught.value)
    check_graph({"4": {"class_type": node, "inputs": {"model": ["1", 0]}}})  # linked or default: fine


def test_good_and_linked_widget_values_pass():
    assert NODES["RollingDepthSampleSnippets"].VALIDATE_INPUTS("1,10,25") is True
    assert NODES["RollingDepthSampleSnippets"].VALIDATE_INPUTS(None) is True  # linked
    assert NODES["RollingDepthSaveDepth"].VALIDATE_INPUTS("rollingdepth/depth", False, None, False) is True
    assert NODES["RollingDepthDepthToImage"].VALIDATE_INPUTS(2.0, 98.0) is True
    check_graph({str(i): {"class_type": name, "inputs": {}} for i, name in enumerate(NODES)})


def test_widget_ranges_come_from_the_core():
    from rollingdepth_pack.rollingdepth_core.validation import MAX_PROCESSING_RESOLUTION, MAX_REFINE_STEPS

    denoise = NODES["RollingDepthDenoiseSnippets"].INPUT_TYPES()["required"]
    refine = NODES["RollingDepthRefine"].INPUT_TYPES()["required"]
    assert denoise["processing_resolution"][1]["max"] == MAX_PROCESSING_RESOLUTION
    assert refine["num_steps"][1]["max"] == MAX_REFINE_STEPS


class Bars:
    """Stands in for ComfyUI's progress bars: how many were made and what each was told."""

    def __init__(self):
        self.bars: list[list[tuple[int, int]]] = []

    def hooks(self) -> Hooks:
        calls: list[tuple[int, int]] = []
        self.bars.append(calls)
        return Hooks(progress=lambda done, total: calls.append((done, total)))


def test_one_node_shows_one_bar_weighted_by_stage_cost(pack_model, pack_images, monkeypatch):
    # issue 9: the one-node RollingDepth restarted its bar for frames, snippets and co-alignment
    tiny = Preset(32, (1, 3), "fp32", refine_steps=1, refine_start_dilation=3)
    # PRESETS is read-only (issue 8): the node module's table gets the extra preset instead
    monkeypatch.setattr(pipeline_node, "PRESETS", MappingProxyType({**PRESETS, "tiny": tiny}))
    bars = Bars()
    monkeypatch.setattr(comfy_bridge, "hooks", bars.hooks)
    run("RollingDepth", model=pack_model, images=pack_images, preset="tiny", seed=0, snippets_per_batch=8,
        resolution_override=0, output_size="processing")
    (bar,) = bars.bars
    done = [d for d, _ in bar]
    assert {t for _, t in bar} == {1000} and done[-1] == 1000
    assert done == sorted(done)  # never goes back
    # the denoising stage (most of the cost) covers most of the bar, not a third of it
    from rollingdepth_pack.rollingdepth_core.pipeline import stage_costs
    from rollingdepth_pack.rollingdepth_core.stages.snippets import plan_snippets

    costs = stage_costs(plan_snippets(9, (1, 3)), tiny)
    assert list(costs) == ["encode", "denoise", "coalign", "refine"]
    assert costs["denoise"] > costs["encode"] and costs["coalign"] < 0.05 * sum(costs.values())


def test_a_still_image_is_noticed(pack_images, caplog):
    # issue 9: a still image connected as the video was taken as a 1-frame clip without a word
    with caplog.at_level(logging.WARNING):
        _, summary = run("RollingDepthSampleSnippets", dilations="1,25", snippet_length=3, cap_dilation=True,
                         num_frames=0, images=pack_images[:1])
    assert "one frame only (a still image?): video depth of one frame is single-image depth" in summary
    assert "a still image connected as the video?" in caplog.text
    caplog.clear()
    with caplog.at_level(logging.WARNING):
        _, summary = run("RollingDepthSampleSnippets", dilations="1,25", snippet_length=3, cap_dilation=True,
                         num_frames=0, images=pack_images)
    assert "still image" not in summary and "still image" not in caplog.text


def test_offline_download_message_is_for_comfyui(pack_folders, monkeypatch):
    # issue 9: the node's offline error ended "then pass that folder as the model" (CLI wording)
    (pack_folders["models"] / comfy_bridge.DEFAULT_MODEL_NAME).unlink()

    def offline(*args, **kwargs):
        raise ConnectionError("no network")

    monkeypatch.setattr("huggingface_hub.snapshot_download", offline)
    with pytest.raises(CheckpointError) as caught:
        run("RollingDepthLoadModel", model_name=comfy_bridge.DEFAULT_MODEL_NAME, dtype="fp32",
            download_if_missing=True)
    message = str(caught.value)
    target = pack_folders["models"] / comfy_bridge.DEFAULT_MODEL_NAME
    assert f"and copy it to {target}." in message and "hf download prs-eth/rollingdepth-v1-0" in message
    assert "pass that folder" not in message and "--" not in message.replace("--local-dir", "")


def test_load_model_names_the_folder_it_loaded(pack_folders, caplog):
    # issue 9: the load log said "Loaded prs-eth/rollingdepth-v1-0" when a local folder was loaded
    with caplog.at_level(logging.INFO):
        run("RollingDepthLoadModel", model_name=comfy_bridge.DEFAULT_MODEL_NAME, dtype="fp32",
            download_if_missing=True)
    folder = pack_folders["models"] / comfy_bridge.DEFAULT_MODEL_NAME
    assert f"Loaded {folder} (float32) on cpu." in caplog.text and "prs-eth" not in caplog.text


def test_one_node_memory_message_names_the_widget(pack_model, pack_images, monkeypatch):
    monkeypatch.setattr(memory_estimate, "available_host_memory", lambda: 1_000_000)
    with pytest.raises(Exception) as caught:
        run("RollingDepth", model=pack_model, images=pack_images, preset="full", seed=0, snippets_per_batch=8,
            resolution_override=0, output_size="processing")
    assert "needs about" in str(caught.value) and "Lower resolution_override" in str(caught.value)


def test_save_depth_interrupted_leaves_no_partial_take(pack_folders, pack_images, monkeypatch):
    (depth,) = run("RollingDepthImageToDepth", images=pack_images, source="inverse_depth", near_limit=0.01)
    run("RollingDepthSaveDepth", depth=depth, filename_prefix="takes/d", save_exr=False, save_png16=True,
        save_npz=True)
    before = sorted(os.listdir(pack_folders["output"] / "takes"))

    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(export, "save_png16", interrupted)
    with pytest.raises(KeyboardInterrupt):
        run("RollingDepthSaveDepth", depth=depth, filename_prefix="takes/d", save_exr=False, save_png16=True,
            save_npz=True)
    assert sorted(os.listdir(pack_folders["output"] / "takes")) == before == ["d_00001.npz", "d_00001_png16"]


def test_a_bad_widget_anywhere_stops_the_graph_before_any_work(pack_model, pack_images, monkeypatch):
    # issue 9: ComfyUI runs the valid outputs and only marks an invalid Save Depth (no dialog), so the
    # expensive nodes check the whole graph first and stop with an error the front end shows
    from rollingdepth_pack.nodes import denoise_snippets

    def never(*args, **kwargs):
        raise AssertionError("work started")

    monkeypatch.setattr(denoise_snippets, "predict_snippets", never)
    plan, _ = run("RollingDepthSampleSnippets", dilations="1,3", snippet_length=3, cap_dilation=True,
                  num_frames=0, images=pack_images)
    prompt = {
        "3": {"class_type": "RollingDepthDenoiseSnippets", "inputs": {"model": ["1", 0], "plan": ["2", 0]}},
        "9": {"class_type": "RollingDepthSaveDepth",
              "inputs": {"depth": ["5", 0], "filename_prefix": "../x", "save_exr": True, "save_png16": False,
                         "save_npz": False}},
        "10": {"class_type": "SaveVideo", "inputs": {"filename_prefix": "../anything"}},  # not ours
    }
    expected = r"^RollingDepth Save Depth \(node 9\): filename_prefix '\.\./x' points outside"
    with pytest.raises(InvalidSettings, match=expected + r".* Nothing was computed"):
        run("RollingDepthDenoiseSnippets", model=pack_model, plan=plan, processing_resolution=32, seed=0,
            snippets_per_batch=0, images=pack_images, prompt=prompt)
    prompt["9"]["inputs"]["filename_prefix"] = "rollingdepth/depth"
    with pytest.raises(AssertionError, match="work started"):  # a good graph goes on to the work
        run("RollingDepthDenoiseSnippets", model=pack_model, plan=plan, processing_resolution=32, seed=0,
            snippets_per_batch=0, images=pack_images, prompt=prompt)


WORKFLOWS = Path(__file__).resolve().parents[2] / "workflows"
PX_PER_CHAR = 6.3  # the front end's 14px Arial on these titles (measured in front end 1.27.10: 5.9-6.4)
TITLE_MARGIN = 50  # the collapse dot on the left and the room it keeps on the right before cutting


@pytest.mark.parametrize("path", sorted(WORKFLOWS.glob("*.json")), ids=lambda p: p.name)
def test_custom_node_titles_fit_their_nodes(path):
    # issue 9: custom titles in templates 03 and 04 were cut off ("Co-align A (fast, reference obje...")
    for node in json.loads(path.read_text())["nodes"]:
        if "title" in node:
            assert len(node["title"]) * PX_PER_CHAR + TITLE_MARGIN <= node["size"][0], node["title"]


def test_template_02_savers_number_their_takes_alike():
    # issue 9: Save Depth and Save Video shared a prefix, so a run's depth and video got different numbers
    api = json.loads((WORKFLOWS / "api" / "02_full_quality_refine_exr.json").read_text())
    prefixes = [n["inputs"]["filename_prefix"] for n in api.values() if "filename_prefix" in n["inputs"]]
    assert sorted(prefixes) == ["rollingdepth/full_depth", "rollingdepth/full_preview"]


def test_the_sample_clip_runs_every_preset_as_designed():
    # issue 9: the 32-frame sample capped dilation 25 to 9 in every template
    from rollingdepth_pack.rollingdepth_core.io.sources import VideoFileSource
    from rollingdepth_pack.rollingdepth_core.stages.snippets import plan_snippets

    source = VideoFileSource(WORKFLOWS / "input" / "rollingdepth_sample.mp4")
    assert source.num_frames >= 100 and source.input_size == (72, 128)
    for preset in PRESETS.values():
        plan = plan_snippets(source.num_frames, preset.dilations, preset.snippet_length, preset.cap_dilation)
        assert [g.dilation for g in plan.groups] == list(preset.dilations)


def test_denoise_node_refuses_a_clip_that_cannot_fit(pack_model, pack_images, monkeypatch):
    from rollingdepth_pack.nodes import denoise_snippets

    def never(*args, **kwargs):
        raise AssertionError("encoding started")

    monkeypatch.setattr("rollingdepth_pack.rollingdepth_core.stages.encode.encode_frames", never)
    monkeypatch.setattr(memory_estimate, "available_host_memory", lambda: 1_000_000)
    plan, _ = run("RollingDepthSampleSnippets", dilations="1,3", snippet_length=3, cap_dilation=True,
                  num_frames=0, images=pack_images)
    with pytest.raises(InvalidSettings, match=r"9 frame\(s\) at 1024x640 needs about .* of host memory .*"
                                              r"Lower processing_resolution or snippets_per_batch"):
        run("RollingDepthDenoiseSnippets", model=pack_model, plan=plan, processing_resolution=1024, seed=0,
            snippets_per_batch=0, images=pack_images)
    assert denoise_snippets.predict_snippets.__module__.endswith("stages.denoise")


# what each Co-align setting is used by (the tooltips must say so, and it must be true)
COALIGN_USES = {
    "num_iterations": {"reference"}, "learning_rate": {"reference"},
    "depth_term_weight": {"fast", "reference"}, "scale_reg_weight": {"fast", "reference"},
    "shift_reg_weight": {"fast", "reference"}, "subsample": {"fast", "reference", "robust"},
}
COALIGN_CHANGED = {"num_iterations": 3000, "learning_rate": 2e-2, "depth_term_weight": 0.0,
                   "scale_reg_weight": 2.0, "shift_reg_weight": 0.5, "subsample": 4}


def test_coalign_tooltips_say_which_methods_use_each_setting():
    # issue 9: Co-align showed the reference's Adam settings (2000 iterations, learning_rate)
    # with `fast` selected and no word on which method uses what
    from rollingdepth_pack.rollingdepth_core.coalign.methods import available_methods

    methods = set(available_methods())
    widgets = NODES["RollingDepthCoalign"].INPUT_TYPES()["required"]
    assert set(COALIGN_USES) == {name for name in widgets if name not in ("snippet_depths", "method")}
    for name, users in COALIGN_USES.items():
        tooltip = widgets[name][1]["tooltip"]
        first = tooltip.split(":")[0]  # "reference only", "fast and reference", "Every method"
        named = {m for m in methods if m in first.split()}
        assert named == (set() if users == methods else users), (name, tooltip)
        if users == methods:
            assert first == "Every method", tooltip
        for other in methods - users:  # and the others are told they do not use it
            assert other in tooltip.split(":", 1)[1] and ("not use it" in tooltip or "only a cap" in tooltip)


@pytest.fixture(scope="module")
def case_a_snippets(case_a):
    from rollingdepth_pack.rollingdepth_core.stages.snippets import plan_snippets
    from rollingdepth_pack.rollingdepth_core.types import SnippetDepths

    plan = plan_snippets(40, (1, 10), 3)
    return SnippetDepths(plan, tuple(case_a[f"snippet_depth_d{d}"][:, :, 0] for d in (1, 10)))


@pytest.mark.parametrize("method", ["fast", "reference", "robust"])
def test_coalign_settings_change_only_the_methods_said_to_use_them(method, case_a_snippets):
    from rollingdepth_pack.rollingdepth_core.coalign.methods import coalign
    from rollingdepth_pack.rollingdepth_core.coalign.problem import CoalignSettings

    base = CoalignSettings(num_iterations=30) if method == "reference" else CoalignSettings()

    def scales_shifts(settings: CoalignSettings) -> torch.Tensor:
        alignment = coalign(case_a_snippets, method, settings)
        return torch.cat([*map(torch.flatten, alignment.scales), *map(torch.flatten, alignment.shifts)])

    before = scales_shifts(base)
    for name, value in COALIGN_CHANGED.items():
        if name == "num_iterations" and method == "reference":
            value = 60  # Adam runs exactly this many steps
        after = scales_shifts(dataclasses.replace(base, **{name: value}))
        change = float((after - before).abs().max())
        if method in COALIGN_USES[name]:
            assert change > 1e-5, f"{method} ignores {name}"
        else:
            assert change == 0.0, f"{method} uses {name} ({change}); its tooltip says it does not"
