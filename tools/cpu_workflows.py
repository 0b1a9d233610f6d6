"""Write a folder for the real-server check on a CPU: the API twins plus the UI templates with
the same processing-resolution overrides (so that the front-end run of the harness's
--ui-check finishes in minutes with the tiny model, as the API twins do).

    python tools/cpu_workflows.py /tmp/rollingdepth_cpu_workflows
    python3 ../shared/comfy/comfy_harness.py ... --workflows /tmp/rollingdepth_cpu_workflows \
        --input-dir "$PWD/workflows/input" --ui-check

The committed UI templates in workflows/ keep the presets' 768 / 1024 px.
"""

from __future__ import annotations

import argparse
import json
import shutil
from pathlib import Path

from pack_loader import load_pack

ROOT = Path(__file__).resolve().parents[1]
API_OVERRIDES = {"processing_resolution": 0, "resolution_override": 128}  # as tools/build_workflows.js


def widget_names(cls) -> list[str]:
    spec = cls.INPUT_TYPES()
    inputs = {**spec["required"], **spec.get("optional", {})}
    return [name for name, (kind, *_rest) in inputs.items()
            if isinstance(kind, list) or kind in {"INT", "FLOAT", "STRING", "BOOLEAN"}]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("out", type=Path)
    args = parser.parse_args()
    nodes = load_pack().NODE_CLASS_MAPPINGS
    args.out.mkdir(parents=True, exist_ok=True)
    for api in sorted((ROOT / "workflows" / "api").glob("*.json")):
        shutil.copy(api, args.out / api.name)
        workflow = json.loads((ROOT / "workflows" / api.name).read_text())
        for node in workflow["nodes"]:
            if node["type"] in nodes:
                names = widget_names(nodes[node["type"]])
                node["widgets_values"] = [API_OVERRIDES.get(n, v)
                                          for n, v in zip(names, node["widgets_values"], strict=True)]
        (args.out / f"{api.stem}.cpu_ui.json").write_text(json.dumps(workflow, indent=2) + "\n")


if __name__ == "__main__":
    main()
