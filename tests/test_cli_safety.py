"""The command line's promises (issue 9): every error one line and exit code 2, before the
model loads; outputs atomic, never mixed or silently replaced; Ctrl-C one line, exit 130.

Most tests replace the model and the method by stubs (`stub_run`): what is tested is what
happens around them, and that they are never reached when the command line must stop first.
"""

import dataclasses
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
import torch

from rollingdepth_core import PRESETS, InvalidInput, Preset, cli
from rollingdepth_core.cli import main
from rollingdepth_core.io import outputs
from rollingdepth_core.io.export import save_video
from rollingdepth_core.runtime import memory_estimate
from rollingdepth_core.types import DepthVideo

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def clip(tmp_path_factory):
    frames = torch.rand(8, 24, 32, 3, generator=torch.Generator().manual_seed(0))
    return save_video(tmp_path_factory.mktemp("in") / "walk.mp4", frames, fps=10)


@pytest.fixture
def stub_run(monkeypatch):
    """No model and no method: `calls` records what the command line asked for."""
    calls = SimpleNamespace(load=[], estimate=[])

    def load_model(source, **kwargs):
        calls.load.append((source, kwargs))
        return "model"

    def estimate_depth(model, frames, settings, hooks_for=None, **kwargs):
        calls.estimate.append(dict(frames=frames, settings=settings, **kwargs))
        size = frames.input_size if settings.processing_resolution == 0 else (24, 32)
        depth = torch.linspace(0, 1, frames.num_frames * size[0] * size[1]).reshape(frames.num_frames, *size)
        video = DepthVideo(inverse_depth=depth, clip=getattr(frames, "clip", None))  # as estimate_depth's
        return SimpleNamespace(depth=video, timings={"stub": 0.0})

    monkeypatch.setattr(cli, "load_model", load_model)
    monkeypatch.setattr(cli, "estimate_depth", estimate_depth)
    return calls


def error_lines(text: str) -> list[str]:
    return [line for line in text.splitlines() if "ERROR" in line or "error:" in line]


def run_cli(args, capsys) -> tuple[int, str]:
    code = main([str(a) for a in args])
    return code, capsys.readouterr().err


def test_output_that_is_a_file_fails_before_loading(clip, tmp_path, stub_run, capsys):
    # issue 9: `-o` at a file gave a traceback after the whole pipeline ran
    (tmp_path / "taken").write_text("x")
    code, err = run_cli([clip, "-o", tmp_path / "taken", "-q"], capsys)
    assert code == 2 and error_lines(err) == [f"ERROR rollingdepth: Output folder {tmp_path / 'taken'} "
                                              "is a file. Choose a folder."]
    code, err = run_cli([clip, "-o", tmp_path / "taken" / "sub", "-q"], capsys)
    assert code == 2 and "is a file" in err
    assert stub_run.load == [] and stub_run.estimate == []


def test_storage_folder_that_cannot_be_written_fails_before_loading(clip, tmp_path, stub_run, capsys):
    # --storage-dir at a file failed with "FileExistsError: ... 'afile'" after the model loaded and
    # every frame was encoded
    taken, out = tmp_path / "taken", tmp_path / "out"
    taken.write_text("x")
    code, err = run_cli([clip, "-o", out, "--storage-dir", taken, "-q"], capsys)
    assert code == 2
    assert error_lines(err) == [f"ERROR rollingdepth: --storage-dir {taken} is a file. Choose a folder."]
    code, err = run_cli([clip, "-o", out, "--storage-dir", taken / "sub", "-q"], capsys)
    assert code == 2 and len(error_lines(err)) == 1
    assert f"--storage-dir {taken / 'sub'} cannot be created: {taken} is a file" in err
    assert stub_run.load == [] and stub_run.estimate == []
    assert run_cli([clip, "-o", out, "--storage-dir", tmp_path / "new" / "store", "-q"], capsys)[0] == 0
    assert stub_run.estimate[0]["storage_dir"] == tmp_path / "new" / "store"


def test_unwritable_output_folder_fails_before_loading(clip, tmp_path, stub_run, capsys, monkeypatch):
    def refuse(self, data):
        raise PermissionError(13, "Permission denied")

    monkeypatch.setattr(Path, "write_bytes", refuse)
    code, err = run_cli([clip, "-o", tmp_path / "out", "-q"], capsys)
    assert code == 2 and len(error_lines(err)) == 1 and "is not writable (Permission denied)" in err
    assert stub_run.load == []


@pytest.mark.parametrize("option, message", [
    (["--snippet-length", "0"], "--snippet-length must be a whole number from 1 to 16"),
    (["-r", "-5"], "--resolution must be a whole number from 0 to 4096"),
    (["-r", "100000"], "--resolution must be a whole number from 0 to 4096"),
    (["--refine-steps", "-1"],
     "--refine-steps must be a whole number from 0 to 500 (0 turns refinement off)"),
    (["--seed", "-1"], "--seed must be a whole number from 0"),
    (["--coalign-iterations", "-4"], "--coalign-iterations must be a whole number from 0"),
    (["--frame-count", "-2"], "--frame-count must be a whole number >= 0"),
    (["-d", "1,5", "--no-cap-dilation", "--snippet-length", "3", "4"],
     "one length is used for every dilation"),
    (["--colormap", "nope", "--outputs", "video"], "unknown colour map 'nope'"),
    (["--fps", "-3"], "--fps must be a number > 0.0"),
    (["--outputs", "gif"], "--outputs must be a comma-separated subset of npz,png16,video,exr"),
    (["--device", "cuda:7"], "Device cuda:7"),
    (["--dtype", "fp8"], "argument --dtype/--data-type: invalid choice: 'fp8'"),
    (["--snippets-per-batch", "0"], "must be a whole number >= 1 or 'auto'"),
    (["--overwrite", "--new-take"], "not allowed with argument --overwrite"),
])
def test_bad_settings_fail_in_one_line_before_loading(option, message, clip, tmp_path, stub_run, capsys):
    # issue 9: --snippet-length 0, -r -5 were only checked after the model loaded; -r 100000 died
    # allocating 67 GB; --refine-steps -1 was taken as 0
    code, err = run_cli([clip, "-o", tmp_path / "out", *option, "-q"], capsys)
    assert code == 2
    lines = err.strip().splitlines()
    assert len(lines) == 1 and message in lines[0]
    assert stub_run.load == [] and not (tmp_path / "out").exists()


def test_a_run_that_cannot_fit_is_refused_with_figures(clip, tmp_path, stub_run, capsys, monkeypatch):
    monkeypatch.setattr(memory_estimate, "available_host_memory", lambda: 2_000_000_000)
    code, err = run_cli([clip, "-o", tmp_path / "out", "-r", "4096", "-q"], capsys)
    assert code == 2 and len(error_lines(err)) == 1
    assert "8 frame(s) at 4096x3072 needs about " in err
    assert ("of host memory (RAM); 2.0 GB is free. Lower --resolution or --snippets-per-batch, process fewer "
            "frames, or keep snippet depths on disk (--storage-dir).") in err
    assert stub_run.load == []


def test_missing_input_fails_before_anything(tmp_path, stub_run, capsys):
    code, err = run_cli([tmp_path / "nothing.mp4", "-o", tmp_path / "out", "-q"], capsys)
    assert code == 2 and "Input" in err and "does not exist" in err
    assert stub_run.load == [] and not (tmp_path / "out").exists()


def test_rerun_stops_before_computing_unless_overwrite_or_new_take(clip, tmp_path, stub_run, capsys):
    # issue 9: a rerun overwrote every file without a word; a shorter rerun left stale frames
    out = tmp_path / "out"
    assert run_cli([clip, "-o", out, "--outputs", "npz,png16,exr", "-q"], capsys)[0] == 0
    before = {p: p.read_bytes() for p in out.rglob("*") if p.is_file()}
    assert len(list((out / "walk_depth_png16").glob("*.png"))) == 8

    code, err = run_cli([clip, "-o", out, "--outputs", "png16", "-q"], capsys)
    assert code == 2 and len(error_lines(err)) == 1 and "already holds results named walk" in err
    assert "Use --overwrite (the whole set is replaced) or --new-take (NAME_take2 ...)." in err
    assert len(stub_run.estimate) == 1 and len(stub_run.load) == 1  # nothing loaded or computed again
    assert {p: p.read_bytes() for p in out.rglob("*") if p.is_file()} == before

    assert run_cli([clip, "-o", out, "--outputs", "png16", "--frame-count", "3", "--overwrite", "-q"],
                   capsys)[0] == 0
    assert sorted(p.name for p in out.iterdir()) == ["walk_depth_png16"]  # the whole old set replaced
    assert sorted(p.name for p in (out / "walk_depth_png16").iterdir()) == [
        "walk_00000.png", "walk_00001.png", "walk_00002.png", "walk_range.json"]

    assert run_cli([clip, "-o", out, "--outputs", "npz", "--new-take", "-q"], capsys)[0] == 0
    assert sorted(p.name for p in out.iterdir()) == ["walk_depth_png16", "walk_take2_depth.npz"]


def test_ctrl_c_while_writing_leaves_earlier_results_and_no_partial_files(clip, tmp_path, stub_run, capsys,
                                                                       monkeypatch):
    # issue 9: Ctrl-C while writing left a partial set and had already replaced the npz
    out = tmp_path / "out"
    assert run_cli([clip, "-o", out, "--outputs", "npz,png16", "-q"], capsys)[0] == 0
    before = {p: p.read_bytes() for p in out.rglob("*")  if p.is_file()}

    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(outputs, "save_png16", interrupted)
    code, err = run_cli([clip, "-o", out, "--outputs", "npz,png16", "--overwrite", "-q"], capsys)
    assert code == 130
    assert err.strip().splitlines() == [
        "ERROR rollingdepth: Cancelled; earlier results are untouched and nothing partial was left."]
    assert {p: p.read_bytes() for p in out.rglob("*") if p.is_file()} == before
    assert sorted(os.listdir(out)) == ["walk_depth.npz", "walk_depth_png16"]  # no hidden leftovers


def test_error_line_starts_on_its_own_line_after_a_progress_bar(clip, tmp_path, stub_run, capsys,
                                                                monkeypatch):
    # issue 9: the error was glued to the end of the progress bar's line
    def fails_mid_stage(model, frames, settings, hooks_for=None, **kwargs):
        hooks_for("denoise").progress(1, 4)
        raise InvalidInput("boom")

    monkeypatch.setattr(cli, "estimate_depth", fails_mid_stage)
    code, err = run_cli([clip, "-o", tmp_path / "out"], capsys)
    assert code == 2
    where = err.index("ERROR rollingdepth: boom")
    assert "denoise" in err[:where]  # a bar was drawn ...
    assert err[where - 1] in "\r\n"  # ... and the error line starts at the left edge, not after it
    assert err[where:].splitlines()[0] == "ERROR rollingdepth: boom"


def test_the_authors_command_line(clip, tmp_path, stub_run, capsys, tiny_model_dir):
    # issue 12 §4: a command line as in prs-eth/RollingDepth's README and run_video.py
    out = tmp_path / "their_out"
    code, err = run_cli([
        "-i", clip, "--output-dir", out, "-p", "full", "--res", "32", "-d", "1", "10", "25",
        "--cap-dilation", "false", "--snip-len", "3", "--refine-step", "2", "--refine-snippet-len", "3",
        "--refine-start-dilation", "4", "--from", "1", "--frames", "5", "-c", tiny_model_dir,
        "--max-vae-bs", "2", "--output-fps", "12", "--restore-res", "true", "--save-npy", "true",
        "--cmap", "Spectral_r", "Greys_r", "--unload-snippet", "true", "--save-sbs", "false",
        "--dtype", "fp32", "--seed", "7", "--verbose",
    ], capsys)
    assert code == 0, err
    (call,) = stub_run.estimate
    assert call["settings"] == Preset(32, (1, 10, 25), "fp32", 2, cap_dilation=False, snippet_length=3,
                                      refine_start_dilation=4, refine_snippet_length=3)
    assert call["seed"] == 7 and call["vae_batch_size"] == 2
    assert call["frames"].num_frames == 5 and call["frames"].source.start == 1  # --from 1 --frames 5
    assert stub_run.load[0][0] == str(tiny_model_dir) and stub_run.load[0][1]["dtype"] == "fp32"
    assert sorted(p.name for p in out.iterdir()) == [
        "walk_depth.npz", "walk_depth_png16", "walk_depth_preview.mp4", "walk_depth_preview_Greys_r.mp4"]
    with np.load(out / "walk_depth.npz") as data:
        assert data["inverse_depth"].shape == (5, 24, 32)  # --restore-res: the input's size
    notes = [line for line in err.splitlines() if line.startswith("WARNING")]
    assert notes == [
        "WARNING rollingdepth: --unload-snippet: not needed, snippet depths always go to the host as they "
        "are predicted (use --storage-dir to keep them on disk).",
        "WARNING rollingdepth: --save-sbs: no side-by-side video is written; the preview is "
        "NAME_depth_preview.mp4.",
    ]


@pytest.mark.parametrize("words", [
    ["-d", "1", "10", "25", "{clip}"],  # the input after a many-valued option
    ["--cap-dilation", "{clip}", "-d", "1,10,25"],  # ... and after a switch
    ["{clip}", "--restore-resolution", "--dilations", "1", "10,25"],
])
def test_many_valued_options_leave_the_input_alone(words, clip, tmp_path, stub_run, capsys):
    args = [w.replace("{clip}", str(clip)) for w in words]
    assert run_cli([*args, "-o", tmp_path / "out", "--outputs", "npz", "-q"], capsys)[0] == 0
    assert stub_run.estimate[0]["settings"].dilations == (1, 10, 25)


def test_the_authors_command_line_runs_the_method(clip, tmp_path, tiny_model_dir, capsys):
    code, err = run_cli(["-i", clip, "--output-dir", tmp_path / "o", "--res", "32", "-d", "1", "3",
                         "--refine-step", "0", "--snip-len", "3", "-c", tiny_model_dir, "--save-npy", "true",
                         "--cmap", "", "--seed", "0"], capsys)
    assert code == 0, err
    with np.load(tmp_path / "o" / "walk_depth.npz") as data:
        depth = data["inverse_depth"]
    from rollingdepth_core import estimate_depth, load_model
    from rollingdepth_core.io.sources import VideoFileSource

    settings = dataclasses.replace(PRESETS["fast"], processing_resolution=32, dilations=(1, 3))
    expected = estimate_depth(load_model(tiny_model_dir, dtype="fp32"), VideoFileSource(clip), settings)
    np.testing.assert_allclose(depth, expected.depth.inverse_depth.numpy(), rtol=0, atol=1e-5)
    assert sorted(p.name for p in (tmp_path / "o").iterdir()) == ["walk_depth.npz", "walk_depth_png16"]


def test_quiet_hides_the_weight_loading_bar_and_preset_fp16_is_silent_on_cpu(clip, tmp_path, tiny_model_dir,
                                                                            capsys, monkeypatch):
    # issue 9: -q still showed "Loading weights"; every CPU run of a fp16 preset warned about fp16
    monkeypatch.setattr(cli, "estimate_depth", lambda *a, **k: (_ for _ in ()).throw(InvalidInput("stop")))
    code, err = run_cli([clip, "-o", tmp_path / "a", "-m", tiny_model_dir, "-q"], capsys)
    assert code == 2 and "Loading weights" not in err and "fp16" not in err
    code, err = run_cli([clip, "-o", tmp_path / "b", "-m", tiny_model_dir], capsys)
    assert code == 2 and "Loading weights" in err and "fp16" not in err
    assert f"Loaded {tiny_model_dir} (float32) on cpu." in err
    code, err = run_cli([clip, "-o", tmp_path / "c", "-m", tiny_model_dir, "--dtype", "fp16", "-q"], capsys)
    assert "fp16 is not supported well on the CPU; using fp32 instead." in err


SLOW_TORCH = textwrap.dedent("""
    import sys, time, importlib.abc
    class SlowTorch(importlib.abc.MetaPathFinder):
        def find_spec(self, name, path, target=None):
            if name == "torch":
                print("importing torch", flush=True)
                time.sleep(60)
            return None
    sys.meta_path.insert(0, SlowTorch())
    sys.argv = ["rollingdepth", "clip.mp4"]
    from rollingdepth_core.launcher import main
    raise SystemExit(main())
""")


def test_ctrl_c_while_starting_prints_one_line_and_exits_130(tmp_path):
    # issue 9: Ctrl-C during start-up printed a KeyboardInterrupt traceback through torch's import
    script = tmp_path / "start.py"
    script.write_text(SLOW_TORCH)
    # Ctrl-C reaches a command started in a terminal: the child gets the default SIGINT action
    # even when this test runs where it is ignored (a background job, `nohup`), where Python
    # would keep it ignored and the child slept its whole minute (the test "timed out")
    process = subprocess.Popen([sys.executable, str(script)], cwd=ROOT, stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE, text=True,
                               preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    assert process.stdout.readline() == "importing torch\n"
    time.sleep(0.2)
    process.send_signal(signal.SIGINT)
    out, err = process.communicate(timeout=60)
    assert process.returncode == 130
    assert err.strip() == "rollingdepth: cancelled while starting; nothing was written."
    assert "Traceback" not in err


def test_the_package_and_the_launcher_import_without_torch():
    code = ("import sys; import rollingdepth_core, rollingdepth_core.launcher; "
            "assert 'torch' not in sys.modules, 'torch loaded'; "
            "from rollingdepth_core import PRESETS, InvalidSettings; assert 'torch' not in sys.modules; "
            "import rollingdepth_core.coalign.methods; from rollingdepth_core import coalign; "
            "assert callable(coalign) and rollingdepth_core.coalign is coalign, coalign; "
            "assert all(hasattr(rollingdepth_core, name) for name in rollingdepth_core.__all__)")
    subprocess.run([sys.executable, "-c", code], cwd=ROOT, check=True)
