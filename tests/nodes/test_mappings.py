"""Every node declares what ComfyUI and its front end need, consistently, and the pack imports
without ComfyUI."""

from __future__ import annotations

import ast
import inspect
import json
import subprocess
import sys
from pathlib import Path

import pytest
from rollingdepth_pack.nodes import NODE_CLASS_MAPPINGS, NODE_DISPLAY_NAME_MAPPINGS

ROOT = Path(__file__).resolve().parents[2]
WIDGET_TYPES = {"INT", "FLOAT", "STRING", "BOOLEAN"}
SOCKET_TYPES = {"IMAGE", "VIDEO", "MASK", "ROLLINGDEPTH_MODEL", "ROLLINGDEPTH_SNIPPET_PLAN",
                "ROLLINGDEPTH_SNIPPET_DEPTHS", "ROLLINGDEPTH_DEPTH", "ROLLINGDEPTH_CONVERTED_DEPTH"}
CLASSES = sorted(NODE_CLASS_MAPPINGS.items())


def inputs_of(cls) -> dict[str, tuple]:
    spec = cls.INPUT_TYPES()
    assert set(spec) <= {"required", "optional", "hidden"}
    return {**spec.get("required", {}), **spec.get("optional", {})}


def test_mappings_match():
    assert set(NODE_CLASS_MAPPINGS) == set(NODE_DISPLAY_NAME_MAPPINGS)
    assert all(name.startswith("RollingDepth") for name in NODE_CLASS_MAPPINGS)
    assert all(label.startswith("RollingDepth") for label in NODE_DISPLAY_NAME_MAPPINGS.values())
    assert len(set(NODE_DISPLAY_NAME_MAPPINGS.values())) == len(NODE_DISPLAY_NAME_MAPPINGS)


@pytest.mark.parametrize(("node_id", "cls"), CLASSES)
def test_node_declaration(node_id, cls):
    assert cls.CATEGORY == "RollingDepth"
    assert cls.DESCRIPTION and cls.__doc__
    function = getattr(cls, cls.FUNCTION)
    assert callable(function)
    assert isinstance(inspect.getattr_static(cls, cls.FUNCTION), classmethod)  # no instance state
    returns = cls.RETURN_TYPES
    assert isinstance(returns, tuple) and len(cls.RETURN_NAMES) == len(returns) == len(cls.OUTPUT_TOOLTIPS)
    assert all(isinstance(t, str) for t in returns)
    assert all(t in SOCKET_TYPES | {"STRING"} for t in returns)
    assert returns or getattr(cls, "OUTPUT_NODE", False)
    inputs = inputs_of(cls)
    parameters = list(inspect.signature(function).parameters)
    hidden = cls.INPUT_TYPES().get("hidden", {})
    assert sorted(parameters) == sorted([*inputs, *hidden]), "execute takes exactly the declared inputs"
    assert all(inspect.signature(function).parameters[name].default is None for name in hidden)
    optional = cls.INPUT_TYPES().get("optional", {})
    for name in optional:
        assert inspect.signature(function).parameters[name].default is None
    for name, (kind, *options) in inputs.items():
        assert options and options[0].get("tooltip"), f"{node_id}.{name} has no tooltip"
        if isinstance(kind, list):  # a menu: its default is one of the choices
            assert kind and options[0].get("default", kind[0]) in kind
        elif kind in WIDGET_TYPES:
            info = options[0]
            assert "default" in info, f"{node_id}.{name} has no default"
            if kind in {"INT", "FLOAT"}:
                assert info["min"] <= info["default"] <= info["max"]
        else:  # a socket, or a union of sockets "A,B" (ComfyUI splits on commas)
            assert set(kind.split(",")) <= SOCKET_TYPES, f"{node_id}.{name}: unknown socket {kind}"
        if name == "seed":
            assert options[0]["control_after_generate"] is False  # a fixed seed keeps the cache
    validate = getattr(cls, "VALIDATE_INPUTS", None)
    if validate is not None:
        assert set(inspect.signature(validate).parameters) <= set(inputs)
    json.dumps(cls.INPUT_TYPES())  # /object_info must serialise it


def test_pack_imports_without_comfyui():
    code = (
        "import importlib.util, sys; from pathlib import Path; root = Path(sys.argv[1]);"
        "spec = importlib.util.spec_from_file_location('pack', root / '__init__.py',"
        " submodule_search_locations=[str(root)]);"
        "m = importlib.util.module_from_spec(spec); sys.modules['pack'] = m; spec.loader.exec_module(m);"
        "assert len(m.NODE_CLASS_MAPPINGS) == 11;"
        "bad = [n for n in sys.modules"
        " if n.split('.')[0] in ('comfy', 'comfy_api', 'folder_paths', 'server')];"
        "assert not bad, bad"
    )
    subprocess.run([sys.executable, "-c", code, str(ROOT)], check=True)


def test_root_init_is_inert_as_plain_module():
    # pytest or tools may import the checkout's __init__.py as a top-level module
    result = subprocess.run(
        [sys.executable, "-c", "import runpy, sys; g = runpy.run_path(sys.argv[1]); "
         "assert 'NODE_CLASS_MAPPINGS' not in g", str(ROOT / "__init__.py")],
        check=False,
    )
    assert result.returncode == 0


def test_only_the_bridge_imports_comfyui():
    forbidden = {"comfy", "comfy_api", "folder_paths", "server", "nodes", "execution"}
    for path in sorted((ROOT / "nodes").glob("*.py")):
        tree = ast.parse(path.read_text())
        for node in ast.walk(tree):
            names = []
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level == 0:
                names = [node.module or ""]
            for name in names:
                if name.split(".")[0] in forbidden:
                    assert path.name == "comfy_bridge.py", f"{path.name} imports {name}"
                    assert node.col_offset > 0, f"comfy_bridge imports {name} at module level"
