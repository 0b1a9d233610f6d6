"""The core never imports ComfyUI (STYLE §1): parse every core file."""

import ast
from pathlib import Path

FORBIDDEN = {"comfy", "comfy_api", "comfy_extras", "folder_paths", "server", "nodes", "execution"}
CORE = Path(__file__).resolve().parents[1] / "rollingdepth_core"


def imported_roots(path: Path) -> set[str]:
    roots = set()
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.Import):
            roots |= {alias.name.split(".")[0] for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            roots.add(node.module.split(".")[0])
    return roots


def test_core_imports_nothing_from_comfyui():
    files = sorted(CORE.rglob("*.py"))
    assert len(files) > 10
    offenders = {str(p.relative_to(CORE)): imported_roots(p) & FORBIDDEN for p in files}
    assert {k: v for k, v in offenders.items() if v} == {}


def test_checker_catches_a_comfy_import(tmp_path):
    bad = tmp_path / "bad.py"
    bad.write_text("import os\nfrom comfy.model_management import get_torch_device\n"
                   "def f():\n    import folder_paths\n")
    assert imported_roots(bad) & FORBIDDEN == {"comfy", "folder_paths"}
