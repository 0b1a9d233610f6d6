"""The node pack loaded the way ComfyUI loads it: the checkout folder imported as a package from
its ``__init__.py`` (named ``rollingdepth_pack``), so the nodes' relative imports work.

Used by the tools that need the nodes without a ComfyUI (`bad_inputs.py`, `cpu_workflows.py`);
python puts ``tools/`` on the import path when it runs one of them.
"""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType

ROOT = Path(__file__).resolve().parents[1]
NAME = "rollingdepth_pack"


def load_pack() -> ModuleType:
    """The pack module: the one already loaded in this process, else ``__init__.py`` loaded now."""
    if NAME in sys.modules:
        return sys.modules[NAME]
    spec = importlib.util.spec_from_file_location(
        NAME, ROOT / "__init__.py", submodule_search_locations=[str(ROOT)]
    )
    module = importlib.util.module_from_spec(spec)
    sys.modules[NAME] = module  # before it runs: its relative imports look the package up
    spec.loader.exec_module(module)
    return module
