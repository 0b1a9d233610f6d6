"""docs/bad_inputs.md says what each bad input gets (issue 9): the table must be what the code
answers today. Regenerate it with `PYTHONPATH=. python tools/bad_inputs.py`."""

import importlib.util
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def load_tool(monkeypatch):
    """tools/bad_inputs.py with tools/ on the import path, as when python runs it (pack_loader)."""
    monkeypatch.syspath_prepend(str(ROOT / "tools"))
    spec = importlib.util.spec_from_file_location("bad_inputs_tool", ROOT / "tools" / "bad_inputs.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up while the file runs
    spec.loader.exec_module(module)
    return module


def test_the_bad_input_table_is_what_the_code_answers(tiny_model_dir, tiny_model, monkeypatch):
    tool = load_tool(monkeypatch)
    rows = tool.answers(tiny_model_dir, tiny_model)
    written = (ROOT / "docs" / "bad_inputs.md").read_text()
    assert written == tool.render(rows), "docs/bad_inputs.md is out of date: run tools/bad_inputs.py"
    answers = [answer for _, _, answer in rows]
    # the command line's promise: every error one line, exit code 2
    assert all(a.startswith("exit 2: `") for (where, _, a) in rows if where == "CLI")
    assert all("Traceback" not in a and "\n" not in a for a in answers)
    # messages fit the interface: no command-line flags in Python or node answers
    python_and_nodes = [a.replace("--local-dir", "") for (where, _, a) in rows if where != "CLI"]
    assert not [a for a in python_and_nodes if " --" in a or "(--" in a]
    assert len(rows) >= 45
