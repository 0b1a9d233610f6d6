"""Import boundaries (STYLE §1-2): the core never imports ComfyUI, imports go down the layers,
and nothing in the package forms an import loop. Every core file is parsed, nothing is run."""

import ast
from pathlib import Path

import pytest

FORBIDDEN = {"comfy", "comfy_api", "comfy_extras", "folder_paths", "server", "nodes", "execution"}
CORE = Path(__file__).resolve().parents[1] / "rollingdepth_core"
PACKAGE = "rollingdepth_core"

# Layers, lowest first: a module may import its own layer and the ones below, never above.
LAYERS = (
    ("errors", "hooks", "types", "presets", "wording"),
    ("io", "evaluation", "conversion"),
    ("runtime",),
    ("model",),
    ("coalign",),
    ("stages",),
    ("validation",),
    ("pipeline",),
    ("cli", "__main__", "__init__", "launcher"),
    ("farm",),  # scale-out on Ray (optional extra); the only part that imports ray
    ("bench",),  # benchmarks may run anything, the farm included
)
# Optional heavy dependencies: who may import them (the rest of the core imports without them).
OPTIONAL_IMPORTS = {"ray": ("farm",), "scenedetect": ("io",)}
LOWER = ("io", "conversion", "runtime", "model")
NEVER_BELOW = ("stages", "coalign", "pipeline", "cli")


def imported_roots(path: Path) -> set[str]:
    roots = set()
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.Import):
            roots |= {alias.name.split(".")[0] for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            roots.add(node.module.split(".")[0])
    return roots


def module_name(path: Path, root: Path = CORE, package: str = PACKAGE) -> str:
    parts = [package, *path.relative_to(root).with_suffix("").parts]
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def import_graph(root: Path = CORE, package: str = PACKAGE) -> dict[str, set[str]]:
    """Module -> the package's modules it imports (at any depth of the file, lazy ones too).

    ``from .x import name`` points at ``x``, or at ``x.name`` when that is a module itself.
    """
    files = {module_name(p, root, package): p for p in sorted(root.rglob("*.py"))}
    graph: dict[str, set[str]] = {}
    for name, path in files.items():
        is_package = path.name == "__init__.py"
        here = name.split(".") if is_package else name.split(".")[:-1]
        targets: set[str] = set()
        for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
            if isinstance(node, ast.Import):
                targets |= {a.name for a in node.names if a.name.split(".")[0] == package}
            elif isinstance(node, ast.ImportFrom):
                if node.level:
                    base = here[: len(here) - node.level + 1]
                    module = ".".join(base + (node.module.split(".") if node.module else []))
                elif node.module and node.module.split(".")[0] == package:
                    module = node.module
                else:
                    continue
                for alias in node.names:
                    sub = f"{module}.{alias.name}"
                    targets.add(sub if sub in files else module)
        graph[name] = {t for t in targets if t in files and t != name}
    return graph


def find_cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Every strongly connected group of two or more modules (Tarjan), sorted."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    groups: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for nxt in sorted(graph.get(node, ())):
            if nxt not in index:
                visit(nxt)
                low[node] = min(low[node], low[nxt])
            elif nxt in on_stack:
                low[node] = min(low[node], index[nxt])
        if low[node] == index[node]:
            group = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                group.append(member)
                if member == node:
                    break
            if len(group) > 1:
                groups.append(sorted(group))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return sorted(groups)


def part_of(module: str) -> str:
    """The top-level part a module belongs to: `rollingdepth_core.io.sources` -> `io`."""
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else "__init__"


def layer_of(module: str) -> int:
    part = part_of(module)
    return next(i for i, layer in enumerate(LAYERS) if part in layer)


def test_core_imports_nothing_from_comfyui():
    files = sorted(CORE.rglob("*.py"))
    assert len(files) > 10
    offenders = {str(p.relative_to(CORE)): imported_roots(p) & FORBIDDEN for p in files}
    assert {k: v for k, v in offenders.items() if v} == {}


def test_only_the_farm_imports_ray():
    offenders = {
        str(p.relative_to(CORE)): sorted(imported_roots(p) & set(OPTIONAL_IMPORTS))
        for p in sorted(CORE.rglob("*.py"))
    }
    allowed = {
        path: [name for name in names if path.split("/")[0] not in OPTIONAL_IMPORTS[name]]
        for path, names in offenders.items()
    }
    assert {k: v for k, v in allowed.items() if v} == {}
    assert "ray" in imported_roots(CORE / "farm" / "cluster.py")


def test_core_imports_and_runs_without_the_optional_extras():
    """With ray and scenedetect unimportable, the package, its CLI and the farm's Ray-free
    parts import, and the farm command fails with one line naming the extra."""
    import subprocess
    import sys

    code = (
        "import sys; sys.modules['ray'] = None; sys.modules['scenedetect'] = None\n"
        "import rollingdepth_core, rollingdepth_core.cli, rollingdepth_core.io.cuts\n"
        "import rollingdepth_core.farm.shots, rollingdepth_core.farm.manifest\n"
        "from rollingdepth_core.farm.cli import main\n"
        "sys.exit(main(['missing_shots', '-o', 'nowhere']))\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                            cwd=CORE.parent, timeout=120)
    assert result.returncode == 2, result.stderr
    assert 'pip install "rollingdepth[farm]"' in result.stderr
    assert "Traceback" not in result.stderr


def test_checker_catches_a_comfy_import(tmp_path):
    bad = tmp_path / "bad.py"
    bad.write_text("import os\nfrom comfy.model_management import get_torch_device\n"
                   "def f():\n    import folder_paths\n")
    assert imported_roots(bad) & FORBIDDEN == {"comfy", "folder_paths"}


def test_no_import_cycles_in_the_core():
    assert find_cycles(import_graph()) == []


def test_every_core_module_has_a_layer():
    assert {part_of(m) for m in import_graph()} <= {p for layer in LAYERS for p in layer}


def test_imports_go_down_the_layers():
    upward = [
        f"{module} -> {target}"
        for module, targets in import_graph().items()
        for target in sorted(targets)
        if layer_of(target) > layer_of(module)
    ]
    assert upward == []


def test_lower_layers_never_import_the_method():
    graph = import_graph()
    offenders = [
        f"{module} -> {target}"
        for module, targets in graph.items() if part_of(module) in LOWER
        for target in sorted(targets) if part_of(target) in NEVER_BELOW
    ]
    assert offenders == []


def write_package(root: Path, files: dict[str, str]) -> Path:
    for name, text in files.items():
        path = root / "pkg" / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    return root / "pkg"


def test_graph_walk_finds_a_loop_through_a_lazy_import(tmp_path):
    root = write_package(tmp_path, {
        "__init__.py": "",
        "a.py": "from .b import thing\n",
        "b.py": "def thing():\n    from .sub import c\n",
        "sub/__init__.py": "",
        "sub/c.py": "from ..a import x\n",
        "d.py": "from . import a\n",
    })
    graph = import_graph(root, "pkg")
    assert graph["pkg.d"] == {"pkg.a"}
    assert graph["pkg.b"] == {"pkg.sub.c"}
    assert find_cycles(graph) == [["pkg.a", "pkg.b", "pkg.sub.c"]]


@pytest.mark.parametrize("module, target, upward", [
    ("rollingdepth_core.io.sources", "rollingdepth_core.stages.encode", True),
    ("rollingdepth_core.runtime.batch_sizes", "rollingdepth_core.model.latents", True),
    ("rollingdepth_core.coalign.merge", "rollingdepth_core.stages.refine", True),
    ("rollingdepth_core.stages.refine", "rollingdepth_core.coalign.merge", False),
    ("rollingdepth_core.cli", "rollingdepth_core.pipeline", False),
])
def test_layer_order_flags_upward_imports(module, target, upward):
    assert (layer_of(target) > layer_of(module)) is upward
