"""The example workflows are consistent: UI templates in workflows/, their API twins in
workflows/api/ (written by tools/build_workflows.js from the real front end), only core ComfyUI
nodes and ours, widget values our nodes accept, a small sample clip they can run on.

Running them is the manual real-server check (README, ComfyUI); this is the static part CI runs.
"""

from __future__ import annotations

import inspect
import json
from pathlib import Path

import pytest
from rollingdepth_pack.nodes import NODE_CLASS_MAPPINGS

ROOT = Path(__file__).resolve().parents[2]
WORKFLOWS = ROOT / "workflows"
CORE_NODES = {"LoadVideo", "GetVideoComponents", "CreateVideo", "SaveVideo", "PreviewAny", "ImageStitch",
              "PreviewImage"}
FRONT_END_ONLY = {"Note"}
API_OVERRIDES = {"processing_resolution": 0, "resolution_override": 128}  # see tools/build_workflows.js
UI_FILES = sorted(WORKFLOWS.glob("*.json"))


def widget_names(cls) -> list[str]:
    spec = cls.INPUT_TYPES()
    inputs = {**spec["required"], **spec.get("optional", {})}
    return [name for name, (kind, *_rest) in inputs.items()
            if isinstance(kind, list) or kind in {"INT", "FLOAT", "STRING", "BOOLEAN"}]


def test_there_are_the_promised_workflows():
    names = [p.stem for p in UI_FILES]
    assert len(names) >= 4
    assert any("fast" in n for n in names) and any("refine" in n and "exr" in n for n in names)
    assert sorted(p.stem for p in (WORKFLOWS / "api").glob("*.json")) == names


@pytest.mark.parametrize("path", UI_FILES, ids=lambda p: p.stem)
def test_ui_workflow_and_api_twin(path):
    ui = json.loads(path.read_text())
    api = json.loads((WORKFLOWS / "api" / path.name).read_text())
    assert ui["version"] == 0.4 and isinstance(ui["nodes"], list)
    types = {node["type"] for node in ui["nodes"]}
    assert types <= set(NODE_CLASS_MAPPINGS) | CORE_NODES | FRONT_END_ONLY, types
    nodes = {str(node["id"]): node for node in ui["nodes"] if node["type"] not in FRONT_END_ONLY}
    assert set(api) == set(nodes)
    links = {link[0]: link for link in ui["links"]}
    for node_id, node in nodes.items():
        entry = api[node_id]
        assert entry["class_type"] == node["type"]
        for slot in node.get("inputs", []):  # every UI link is an API link
            if slot.get("link") is not None:
                _, origin, origin_slot, *_ = links[slot["link"]]
                assert entry["inputs"][slot["name"]] == [str(origin), origin_slot]
        cls = NODE_CLASS_MAPPINGS.get(node["type"])
        if cls is None:
            continue
        names = widget_names(cls)
        assert len(node["widgets_values"]) == len(names)
        spec = {**cls.INPUT_TYPES()["required"], **cls.INPUT_TYPES().get("optional", {})}
        for name, value in zip(names, node["widgets_values"], strict=True):
            expected = API_OVERRIDES.get(name, value)
            assert entry["inputs"][name] == expected, f"{node['type']}.{name}"
            kind, info = spec[name][0], spec[name][1]
            if isinstance(kind, list):
                assert value in kind
            elif kind in {"INT", "FLOAT"}:
                assert info["min"] <= value <= info["max"] and info["min"] <= expected <= info["max"]
        validate = getattr(cls, "VALIDATE_INPUTS", None)
        if validate is not None:
            wanted = inspect.signature(validate).parameters
            arguments = {k: entry["inputs"][k] for k in wanted}
            assert validate(**arguments) is True


def test_sample_clips_are_there_and_small():
    referenced = set()
    for path in UI_FILES:
        for node in json.loads(path.read_text())["nodes"]:
            if node["type"] == "LoadVideo":
                referenced.add(node["widgets_values"][0])
    assert referenced == {"rollingdepth_sample.mp4", "rollingdepth_sample_depth.mp4"}
    for name in referenced:
        clip = WORKFLOWS / "input" / name
        assert clip.is_file() and clip.stat().st_size < 200_000


def test_sample_plate_is_there_complete_and_small():
    from rollingdepth_pack.rollingdepth_core.io.plates import ImageSequenceSource

    referenced = {node["widgets_values"][0] for path in UI_FILES
                  for node in json.loads(path.read_text())["nodes"]
                  if node["type"] == "RollingDepthLoadPlateSequence"}
    assert referenced == {"rollingdepth_plate/rollingdepth_plate.####.exr"}
    plate = ImageSequenceSource(WORKFLOWS / "input" / "rollingdepth_plate" / "rollingdepth_plate.####.exr")
    assert plate.frame_numbers == tuple(range(1001, 1025)) and plate.headers[0].pixel_type == "half"
    assert float(plate.frame_rate) == pytest.approx(23.976, abs=1e-3)
    files = list((WORKFLOWS / "input" / "rollingdepth_plate").iterdir())
    assert sum(f.stat().st_size for f in files) < 400_000
    points = (WORKFLOWS / "input" / "rollingdepth_plate" / "points.txt").read_text().splitlines()
    assert len([p for p in points if p and not p.startswith("#")]) >= 4
