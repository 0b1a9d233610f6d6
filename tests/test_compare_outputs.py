"""tools/compare_outputs.py: the before/after check of the layout change (README, Changes)."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def tool():
    spec = importlib.util.spec_from_file_location("compare_outputs", ROOT / "tools" / "compare_outputs.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


def write_run(folder: Path, depth: np.ndarray, png_value: int, note: str) -> Path:
    (folder / "frames").mkdir(parents=True)
    np.savez(folder / "clip_depth.npz", inverse_depth=depth)
    cv2.imwrite(str(folder / "frames" / "f_00001.png"), np.full((4, 6), png_value, np.uint16))
    (folder / "range.json").write_text(f'{{"note": "{note}", "min": 0}}')
    (folder / "readme.txt").write_text(note)  # not an output kind: not compared
    import OpenImageIO as oiio

    exr = oiio.ImageOutput.create(str(folder / "f.exr"))
    exr.open(str(folder / "f.exr"), oiio.ImageSpec(6, 4, 1, "float"))
    exr.write_image(np.full((4, 6, 1), depth.flat[0], np.float32))
    exr.close()
    return folder


def test_identical_runs_differ_by_zero(tool, tmp_path, capsys):
    depth = np.linspace(0, 1, 24, dtype=np.float32).reshape(2, 3, 4)
    a = write_run(tmp_path / "a", depth, 1000, "same")
    b = write_run(tmp_path / "b", depth.copy(), 1000, "same")
    assert tool.compare(a, b)[:2] == (0.0, 4)  # npz key, png, exr channel, json
    assert tool.main([str(a), str(b)]) == 0
    assert capsys.readouterr().out.strip() == "4 arrays compared; max abs difference 0"


def test_differences_are_measured_per_array(tool, tmp_path, capsys):
    depth = np.zeros((2, 3, 4), np.float32)
    changed = depth.copy()
    changed[0, 0, 0] = 0.5  # the EXR holds this value
    changed[1, 2, 3] = 0.25
    a = write_run(tmp_path / "a", depth, 1000, "x")
    b = write_run(tmp_path / "b", changed, 1007, "y")
    worst, compared, lines = tool.compare(a, b)
    assert compared == 4 and worst == float("inf")  # the JSON text differs
    assert "clip_depth.npz [inverse_depth]: max abs difference 0.5" in lines
    assert "f.exr [Y]: max abs difference 0.5" in lines
    assert "frames/f_00001.png [pixels]: max abs difference 7" in lines
    assert "range.json [json]: max abs difference inf" in lines
    assert tool.main([str(a), str(b)]) == 1
    assert capsys.readouterr().out.splitlines()[-1] == "4 arrays compared; max abs difference inf"


def test_missing_files_and_shapes_count_as_different(tool, tmp_path, capsys):
    a = write_run(tmp_path / "a", np.zeros((2, 3, 4), np.float32), 0, "n")
    b = write_run(tmp_path / "b", np.zeros((2, 3, 5), np.float32), 0, "n")
    (b / "frames" / "f_00001.png").unlink()
    worst, _compared, lines = tool.compare(a, b)
    assert worst == float("inf")
    assert f"only in {a}: frames/f_00001.png" in lines
    assert "clip_depth.npz [inverse_depth]: max abs difference inf" in lines
    assert tool.main([str(a), str(tmp_path / "nowhere")]) == 2
    assert "is not a folder" in capsys.readouterr().err
