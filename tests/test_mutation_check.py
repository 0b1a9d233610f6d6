"""tools/mutation_check.py stays applicable: each mutation's code is still there (once) and its
tests exist. The check itself (minutes) is run by hand; see the README, "Tests"."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def load_tool():
    spec = importlib.util.spec_from_file_location("mutation_check", ROOT / "tools" / "mutation_check.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules["mutation_check"] = module  # dataclasses look their module up
    spec.loader.exec_module(module)
    return module


def test_every_mutation_still_applies():
    tool = load_tool()
    assert len({m.name for m in tool.MUTATIONS}) == len(tool.MUTATIONS) >= 10
    for mutation in tool.MUTATIONS:
        text = (ROOT / mutation.path).read_text()
        assert text.count(mutation.old) == 1, (
            f"{mutation.name}: {mutation.old!r} is no longer found exactly once in {mutation.path}; "
            "update tools/mutation_check.py to the new code")
        assert mutation.new != mutation.old
        for test in mutation.tests:
            path, _, name = test.partition("::")
            assert (ROOT / path).is_file(), f"{mutation.name}: no {path}"
            assert not name or f"def {name.split('[')[0]}(" in (ROOT / path).read_text(), test
