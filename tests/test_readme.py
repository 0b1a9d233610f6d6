"""Every code block of the README runs as written (issue 9: the stage-by-stage example used an
undefined `frames`), with these substitutions, and only these:

- the checkpoint ``"prs-eth/rollingdepth-v1-0"`` -> the tiny test checkpoint (tests never download),
  ``"cuda"`` -> ``"cpu"`` and ``"fp16"`` -> ``"fp32"`` (CI has no GPU);
- ``my_video.mp4`` is an 8-frame copy of workflows/input/rollingdepth_sample.mp4 in the block's
  working folder (each block runs in a fresh folder);
- processing resolutions (``PRESETS["fast"]``, ``processing_resolution=768``, ``--res 768``, or none
  given on a command line) -> 64 px: the tiny model at 768 px takes minutes on a CPU;
- the disk example's clip ``1000, 432, 768`` -> ``40, 24, 32`` (6 GB of files otherwise);
- ``rollingdepth ...`` -> ``python -m rollingdepth_core ...`` of this interpreter, with
  ``-m <tiny checkpoint>`` added;
- ``workflows/...`` (the sample plate) is the repository's: each block's folder links it.

Commands that cannot run here are listed in `NOT_RUN` with the reason; a block with a command
that is neither run nor listed fails this test (classify it there).
"""

from __future__ import annotations

import os
import re
import shlex
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

ROOT = Path(__file__).resolve().parents[1]
README = ROOT / "README.md"
BLOCK = re.compile(r"^```(\w*)\n(.*?)^```", re.S | re.M)
SMALL = 64

# command prefix -> why it is not run by the tests
NOT_RUN = {
    "pip install": "installs packages (CI's .ci/run does exactly this on a clean clone)",
    "python -m pip install": "installs packages (as .ci/run)",
    "python -m pytest": "the test suite itself",
    "cd ComfyUI": "needs a ComfyUI installation (checked by hand: README, How it was checked)",
    "git clone": "network",
    "<python of your ComfyUI>": "needs a ComfyUI installation",
    "NODES=": "the real-ComfyUI check (a server and a browser; run by hand)",
    "python tools/cpu_workflows.py": "the real-ComfyUI check",
    "python3 ../shared/comfy/comfy_harness.py": "the real-ComfyUI check",
    "NODE_PATH=": "the real-ComfyUI check",
    "python tools/check_caching.py": "the real-ComfyUI check",
    "python -m rollingdepth_core.bench": "benchmarks: minutes to hours or a GPU (figures in the README)",
    "python tools/mutation_check.py": (
        "minutes (each mutation runs the tests that guard it): run by hand; "
        "tests/test_mutation_check.py only checks that every mutation still applies"),
    "rollingdepth-farm": "starts Ray on example shot folders; tests/farm/ runs the farm on the tiny model",
    "python -m rollingdepth_core.farm": "as rollingdepth-farm",
    "git worktree add": "checks out old commits (the layout check in Changes, run by hand)",
    "(cd ../before": "runs an old checkout on the sample clip (the layout check, by hand; minutes)",
    "python tools/compare_outputs.py": "compares folders made by hand (tests/test_compare_outputs.py)",
}


def blocks(language: str) -> list[str]:
    return [body for lang, body in BLOCK.findall(README.read_text()) if lang == language]


def commands(block: str) -> list[str]:
    """The block's commands: continuation lines joined, comments and blank lines dropped."""
    joined = re.sub(r"\\\n\s*", " ", block)
    lines = [re.sub(r"(^|\s)#.*$", "", line).strip() for line in joined.splitlines()]
    return [line for line in lines if line]


@pytest.fixture(scope="module")
def my_video(tmp_path_factory) -> Path:
    from rollingdepth_core.io.export import save_video
    from rollingdepth_core.io.sources import VideoFileSource

    clip = VideoFileSource(ROOT / "workflows" / "input" / "rollingdepth_sample.mp4").read(0, 8)
    rgb = (clip.permute(0, 2, 3, 1) + 1) / 2  # N H W 3 in 0..1
    return save_video(tmp_path_factory.mktemp("clip") / "my_video.mp4", rgb, 12)


def in_folder(folder: Path, my_video: Path) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "my_video.mp4").write_bytes(my_video.read_bytes())
    (folder / "workflows").symlink_to(ROOT / "workflows", target_is_directory=True)
    return folder


def substitute_python(code: str, model_dir: Path) -> str:
    code = code.replace('"prs-eth/rollingdepth-v1-0"', repr(str(model_dir)))
    code = code.replace('device="cuda"', 'device="cpu"').replace('dtype="fp16"', 'dtype="fp32"')
    small = f'dataclasses.replace(PRESETS["fast"], processing_resolution={SMALL})'
    code = code.replace('PRESETS["fast"]', small)
    code = code.replace("processing_resolution=768", f"processing_resolution={SMALL}")
    return code.replace("= 1000, 432, 768", "= 40, 24, 32")


def substitute_command(words: list[str], model_dir: Path) -> list[str]:
    if words[0] == "rollingdepth":
        words = [sys.executable, "-m", "rollingdepth_core", *words[1:]]
    elif words[:3] == ["python", "-m", "rollingdepth_core"]:
        words = [sys.executable, *words[1:]]
    size_options = ("-r", "--res", "--resolution", "--processing-resolution")
    sizes = [i for i, w in enumerate(words) if w in size_options]
    for i in sizes:
        words[i + 1] = str(SMALL)
    return [*words, "-m", str(model_dir)] + ([] if sizes else ["-r", str(SMALL)])


def test_every_command_is_run_or_listed():
    unknown = [c for b in blocks("bash") for c in commands(b)
               if not c.startswith(("rollingdepth ", "python -m rollingdepth_core "))
               and not c.startswith(tuple(NOT_RUN))]
    assert unknown == [], "classify these README commands in tests/test_readme.py (run them or say why not)"
    assert blocks("python") and blocks("bash")


def test_python_blocks_run_as_written(tiny_model_dir, my_video, tmp_path):
    namespace: dict = {"dataclasses": __import__("dataclasses")}
    before = Path.cwd()
    os.chdir(in_folder(tmp_path, my_video))
    try:
        for code in blocks("python"):  # in order: later blocks use what earlier ones made (`model`)
            exec(compile(substitute_python(code, tiny_model_dir), str(README), "exec"), namespace)
        depth, refined, merged = namespace["inverse_depth"], namespace["refined"], namespace["merged"]
        assert depth.shape == (8, 36, 64) and bool(torch.isfinite(depth).all())
        assert refined.shape == (8, 36, 64)  # the stage-by-stage example ran to the end
        assert merged.shape == (40, 24, 32) and np.isfinite(merged.float().numpy()).all()  # merged.bin here
    finally:
        os.chdir(before)


def test_command_lines_run_as_written(tiny_model_dir, my_video, tmp_path):
    runs = [c for b in blocks("bash") for c in commands(b)
            if c.startswith(("rollingdepth ", "python -m rollingdepth_core "))]
    assert len(runs) >= 2
    for i, command in enumerate(runs):
        folder = in_folder(tmp_path / f"run{i}", my_video)
        words = substitute_command(shlex.split(command), tiny_model_dir)
        result = subprocess.run(words, cwd=folder, capture_output=True, text=True, timeout=600)
        assert result.returncode == 0, f"{command}\n{result.stderr}"
        if "rollingdepth_plate" in command:  # the sample plate, to linear Z with its frame numbers
            out = folder / words[words.index("-o") + 1]
            with np.load(out / "rollingdepth_plate_depth.npz") as data:
                assert data["z"].shape == (24, 54, 96) and data["frame_numbers"][0] == 1001
            assert (out / "rollingdepth_plate_depth_exr" / "rollingdepth_plate.depth.1024.exr").is_file()
            continue
        with np.load(folder / "outputs" / "my_video_depth.npz") as data:
            assert data["inverse_depth"].shape[0] == 8


def test_install_commands_give_the_cpu_build_before_the_package():
    # issue 9: "CPU only, no downloads" above `pip install torch==2.13.0` (PyPI's CUDA build, GBs)
    # and `pip install -e .` with nothing before it (pulls the newest CUDA torch)
    installs = [commands(b) for b in blocks("bash") if any("pip install" in c for c in commands(b))]
    assert installs
    for block in installs:
        torch_lines = [i for i, c in enumerate(block) if re.search(r"pip install torch\b", c)]
        package_lines = [i for i, c in enumerate(block) if re.search(r"pip install -e\b", c)]
        for i in torch_lines:
            assert "--index-url https://download.pytorch.org/whl/cpu" in block[i], block[i]
        if torch_lines and package_lines:
            assert min(torch_lines) < min(package_lines), block
    assert any(re.search(r"pip install torch\b", c) for c in installs[0])  # the first install: torch first
