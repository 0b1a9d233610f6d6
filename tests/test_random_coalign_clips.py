"""tools/random_coalign_clips.py: random tiny-model clips, fast against the reference."""

from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def tool():
    spec = importlib.util.spec_from_file_location("random_coalign_clips",
                                                  ROOT / "tools" / "random_coalign_clips.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


def test_batches_are_reproducible_and_varied(tool):
    clips = tool.draw_clips(2, 40, small=False)
    assert clips == tool.draw_clips(2, 40, small=False)
    assert [c.seed for c in clips] == list(range(3200, 3240))
    assert clips != tool.draw_clips(4, 40, small=False)
    assert len({c.num_frames for c in clips}) >= 8 and len({c.dilations for c in clips}) >= 20
    assert all(c.dilations[0] == 1 and 2 <= len(c.dilations) <= 4 for c in clips)
    assert any(c.height % 2 and c.width % 2 for c in clips)
    small = tool.draw_clips(3, 40, small=True)
    assert max(c.height for c in small) < 60 and max(c.width for c in small) < 80
    for clip in clips + small:  # a row's name gives its clip back
        assert tool.clip_of({"clip": clip.name}) == clip


def test_draw_writes_complete_rows_and_never_replaces_a_batch(tool, tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(tool, "prepare_clip", lambda clip, cache: cache / clip.key)
    monkeypatch.setattr(tool, "load_clip", lambda clip, path: clip)

    def compare(name, clip):
        assert not (tmp_path / "out" / "random_7.jsonl").exists()  # only its final name when done
        return {"clip": name, "reference": 1.0, "fast": 0.5, "ratio": 0.5}

    monkeypatch.setattr(tool, "compare", compare)
    assert tool.main(["--cache-dir", str(tmp_path), "draw", "--batch", "7", "--count", "3",
                      "--out", str(tmp_path / "out")]) == 0
    rows = (tmp_path / "out" / "random_7.jsonl").read_text().splitlines()
    assert [json.loads(r)["clip"] for r in rows] == [c.name for c in tool.draw_clips(7, 3, False)]
    assert not list((tmp_path / "out").glob("*.partial"))
    assert tool.main(["--cache-dir", str(tmp_path), "draw", "--batch", "7", "--count", "3",
                      "--out", str(tmp_path / "out")]) == 2
    assert "exists" in capsys.readouterr().err
    assert (tmp_path / "out" / "random_7.jsonl").read_text().splitlines() == rows


def test_recheck_flags_a_clip_above_the_reference(tool, tmp_path, monkeypatch, capsys):
    from rollingdepth_core.bench.sweep import AFFINE_CLIPS

    affine = AFFINE_CLIPS[0]  # 7 frames of 16x12, no model needed
    monkeypatch.setattr(tool, "prepare_clip", lambda clip, cache: None)
    monkeypatch.setattr(tool, "load_clip", lambda clip, path: affine.snippets())
    from rollingdepth_core.coalign.methods import coalign

    fast = coalign(affine.snippets(), "fast").objective
    name = tool.draw_clips(1, 1, False)[0].name
    (tmp_path / "a.jsonl").write_text(json.dumps({"clip": name, "reference": fast * 1.01}) + "\n")
    assert tool.main(["recheck", str(tmp_path)]) == 0
    assert "1 clips: fast / reference worst 0.990" in capsys.readouterr().out
    (tmp_path / "a.jsonl").write_text(json.dumps({"clip": name, "reference": fast * 0.99}) + "\n")
    assert tool.main(["recheck", str(tmp_path)]) == 1
    out = capsys.readouterr().out
    assert f"{name}" in out and "ABOVE" in out and "1 above the reference" in out
