"""tools/pack_loader.py: the node pack loaded the way ComfyUI loads it, once per process."""

import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_load_pack_reuses_the_loaded_pack_or_loads_the_checkout(monkeypatch):
    monkeypatch.syspath_prepend(str(ROOT / "tools"))  # as when python runs a tool
    from pack_loader import load_pack

    loaded = sys.modules["rollingdepth_pack"]  # tests/conftest.py loaded it
    assert load_pack() is loaded
    monkeypatch.delitem(sys.modules, "rollingdepth_pack")  # put back after the test
    fresh = load_pack()
    assert fresh is not loaded and sys.modules["rollingdepth_pack"] is fresh
    assert Path(fresh.__file__) == ROOT / "__init__.py" and list(fresh.__path__) == [str(ROOT)]
    assert fresh.__package__ == "rollingdepth_pack"  # a package: the nodes' relative imports work
    assert list(fresh.NODE_CLASS_MAPPINGS) == list(loaded.NODE_CLASS_MAPPINGS)
    assert len(fresh.NODE_CLASS_MAPPINGS) >= 11
    assert load_pack() is fresh  # loaded once
