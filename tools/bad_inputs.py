"""Try every bad input of issue 9 (and more) and write what each gets to docs/bad_inputs.md.

Each case runs for real: the command line in-process (`cli.main`, its exit code and its error
line), the Python API (the exception and its message), the nodes (what ``VALIDATE_INPUTS``
answers when you queue, or what the node raises). Paths are relative to a scratch folder
holding a 12-frame copy of the sample clip (``clip.mp4``), an image folder, a file called
``taken.txt`` and an earlier result (``done/clip_depth.npz``). Three conditions are set up
rather than found, and the table says so: free host memory is fixed at 16 GB for the memory
case (so that the figures do not depend on the machine), the probe write of the unwritable
folder raises PermissionError (this machine runs as root), and the Hugging Face cache is an
empty folder for the offline case. tests/test_bad_inputs_doc.py checks that the table is what
the code answers today.

    PYTHONPATH=. python tools/bad_inputs.py [--out docs/bad_inputs.md]
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import io
import os
import sys
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from pack_loader import load_pack

ROOT = Path(__file__).resolve().parents[1]
SAMPLE = ROOT / "workflows" / "input" / "rollingdepth_sample.mp4"
PLATE = ROOT / "workflows" / "input" / "rollingdepth_plate"
HEADER = """# Bad inputs and what they get

Every row was run with `PYTHONPATH=. python tools/bad_inputs.py` (which wrote this file) on the
code of this repository; `tests/test_bad_inputs_doc.py` fails when an answer changes. Command
line rows give the exit code and the one line printed on stderr (exit code 2 for every error
a user can fix; 130 after Ctrl-C); Python rows the exception and its message; node rows what
the front end shows when you queue (`VALIDATE_INPUTS`) or what the node raises. Paths are
relative to a scratch folder with `clip.mp4` (12 frames of the sample clip), `frames/` (images),
`plate/plate.####.exr` (frames 1001-1003 of the sample plate), `taken.txt` (a file) and
`done/clip_depth.npz` (an earlier result). Nothing in this table
loads the model before it answers, except where the row says so.

Also checked by tests, not listed below: Ctrl-C while Python imports torch or while the files
are written (one line, exit 130, earlier results untouched, no partial file:
`tests/test_cli_safety.py`), a run whose results appear in the folder while it computes
(`tests/io/test_result_set.py`), an error line after a progress bar (starts on its own line).

| # | where | bad input | answer |
|---|---|---|---|
"""


@dataclass(frozen=True)
class Case:
    """One bad input: where it goes in, what it is, and how to try it.

    Attributes:
        where: "CLI", "Python" or "node".
        what: the bad input, as the table shows it.
        run: ``run(context) -> answer`` (see `Context`).
    """

    where: str
    what: str
    run: Callable[[Context], str]


@dataclass
class Context:
    """What the cases need: the scratch folder, the tiny model folder and, once loaded, the model."""

    folder: Path
    model_dir: Path
    model: object = None
    pack: object = None

    def loaded(self):
        if self.model is None:
            from rollingdepth_core import load_model

            self.model = load_model(self.model_dir, device="cpu", dtype="fp32")
        return self.model


def cli(*words: str, setup: Callable[[], contextlib.AbstractContextManager] | None = None):
    """A command-line case: exit code and the last line on stderr."""

    def run(context: Context) -> str:
        from rollingdepth_core.cli import main

        argv = [w.replace("{model}", str(context.model_dir)) for w in words]
        stderr = io.StringIO()
        with working_folder(context.folder), contextlib.redirect_stderr(stderr), \
                (setup() if setup else contextlib.nullcontext()):
            code = main(argv)
        lines = [line for line in stderr.getvalue().splitlines() if line.strip()]
        text = lines[-1] if lines else ""
        return f"exit {code}: `{clean(text, context)}`"

    return run


def python(call: Callable[[Context], object]):
    """A Python case: the exception raised (or what came back)."""

    def run(context: Context) -> str:
        try:
            with working_folder(context.folder):
                result = call(context)
        except Exception as error:  # the answer is the exception, whatever it is
            return f"`{type(error).__name__}: {clean(str(error), context)}`"
        return f"accepted: {result}"

    return run


def queue(name: str, *values):
    """A node case: what the node's ``VALIDATE_INPUTS`` answers when the graph is queued."""

    def run(context: Context) -> str:
        answer = node(context.pack, name).VALIDATE_INPUTS(*values)
        return "accepted" if answer is True else f"refused when queued: `{clean(answer, context)}`"

    return run


def graph(name: str, **values):
    """A node case for a plain range: ComfyUI refuses it when queued (the declared limits are
    the core's); the expensive nodes also stop a graph holding it (`widgets.check_graph`)."""

    def run(context: Context) -> str:
        from rollingdepth_pack.nodes.widgets import check_graph

        try:
            check_graph({"4": {"class_type": name, "inputs": values}})
        except Exception as error:  # the answer is the exception
            return f"refused when queued (ComfyUI's range check); a graph holding it stops first: `{error}`"
        return "accepted"

    return run


def clean(text: str, context: Context) -> str:
    """``text`` without the machine's paths and pipe characters that would break the table."""
    text = text.replace(str(context.folder.resolve()) + os.sep, "").replace(str(context.folder), ".")
    text = text.replace(str(context.model_dir), "<tiny model>")
    return text.replace("|", "\\|")


def fixed_free_memory():
    from rollingdepth_core.runtime import memory_estimate

    return _patched(memory_estimate, "available_host_memory", lambda: 16_000_000_000)


def refused_probe():
    def refuse(self, data):
        raise PermissionError(13, "Permission denied")

    return _patched(Path, "write_bytes", refuse)


def empty_hub_cache(context_folder: str = "hf-cache"):
    @contextlib.contextmanager
    def patched():
        before = os.environ.get("HF_HUB_CACHE")
        os.environ["HF_HUB_CACHE"] = str(Path(context_folder).resolve())
        try:
            yield
        finally:
            if before is None:
                os.environ.pop("HF_HUB_CACHE", None)
            else:
                os.environ["HF_HUB_CACHE"] = before

    return patched()


@contextlib.contextmanager
def working_folder(folder: Path):
    before = os.getcwd()
    os.chdir(folder)
    try:
        yield
    finally:
        os.chdir(before)


@contextlib.contextmanager
def _patched(owner, name, value):
    before = getattr(owner, name)
    setattr(owner, name, value)
    try:
        yield
    finally:
        setattr(owner, name, before)


def frames(value_range: str) -> torch.Tensor:
    """4 frames `N 3 H W` of noise in ``value_range`` ("0..255", "0..1", "-1..1")."""
    noise = torch.rand(4, 3, 24, 32, generator=torch.Generator().manual_seed(0))
    return {"0..255": noise * 255, "0..1": noise, "-1..1": noise * 2 - 1}[value_range]


def node(pack, name: str):
    return pack.nodes.NODE_CLASS_MAPPINGS[name]


def _estimate(context: Context, clip, settings="fast", **kwargs):
    from rollingdepth_core import estimate_depth

    return estimate_depth(context.loaded(), clip, settings, **kwargs)


def _replace(**changes):
    from rollingdepth_core import PRESETS

    return dataclasses.replace(PRESETS["fast"], **changes)


def _node_graph_check(context: Context) -> object:
    pack = context.pack
    inputs = {"depth": ["5", 0], "filename_prefix": "../x", "save_exr": True, "save_png16": False,
              "save_npz": False}
    prompt = {"9": {"class_type": "RollingDepthSaveDepth", "inputs": inputs}}
    return node(pack, "RollingDepthDenoiseSnippets").execute(
        model=None, plan=None, processing_resolution=768, seed=0, snippets_per_batch=0, prompt=prompt)


def _plan(*args):
    from rollingdepth_core import plan_snippets

    plan = plan_snippets(*args)
    return f"`{plan.describe().splitlines()[0]}`, dilations {plan.dilations}"


CASES: list[Case] = [
    # --- command line: the output folder
    Case("CLI", "`-o` is a file: `rollingdepth clip.mp4 -o taken.txt`",
         cli("clip.mp4", "-o", "taken.txt", "-q")),
    Case("CLI", "`-o` inside a file: `-o taken.txt/sub`", cli("clip.mp4", "-o", "taken.txt/sub", "-q")),
    Case("CLI", "`-o` not writable (simulated: the probe file cannot be written)",
         cli("clip.mp4", "-o", "locked", "-q", setup=refused_probe)),
    Case("CLI", "`--storage-dir` is a file: `--storage-dir taken.txt`",
         cli("clip.mp4", "--storage-dir", "taken.txt", "-q")),
    Case("CLI", "results of the same name there: `-o done` (holds `clip_depth.npz`)",
         cli("clip.mp4", "-o", "done", "-q")),
    Case("CLI", "`--overwrite --new-take`", cli("clip.mp4", "--overwrite", "--new-take", "-q")),
    # --- command line: the input
    Case("CLI", "input missing: `nothing.mp4`", cli("nothing.mp4", "-q")),
    Case("CLI", "input is not a video: `taken.txt`", cli("taken.txt", "-q")),
    Case("CLI", "image folder without images: `empty/`", cli("empty", "-q")),
    Case("CLI", "`--start-frame 50` on a 12-frame clip", cli("clip.mp4", "--start-frame", "50", "-q")),
    Case("CLI", "no input", cli("-o", "out", "-q")),
    Case("CLI", "two inputs: `clip.mp4 -i frames`", cli("clip.mp4", "-i", "frames", "-q")),
    # --- command line: settings (all checked before the model loads)
    Case("CLI", "`--snippet-length 0`", cli("clip.mp4", "--snippet-length", "0", "-q")),
    Case("CLI", "`--snip-len 2 3` (one length per dilation, as the authors allow)",
         cli("clip.mp4", "--snip-len", "2", "3", "-q")),
    Case("CLI", "`-r -5`", cli("clip.mp4", "-r", "-5", "-q")),
    Case("CLI", "`-r 100000`", cli("clip.mp4", "-r", "100000", "-q")),
    Case("CLI", "`-r 4096` (fits no memory; free host memory set to 16 GB)",
         cli("clip.mp4", "-r", "4096", "-q", setup=fixed_free_memory)),
    Case("CLI", "`--refine-steps -1`", cli("clip.mp4", "--refine-steps", "-1", "-q")),
    Case("CLI", "`--refine-steps 1000`", cli("clip.mp4", "--refine-steps", "1000", "-q")),
    Case("CLI", "`--refine-start-dilation 0`", cli("clip.mp4", "--refine-start-dilation", "0", "-q")),
    Case("CLI", "`-d 5,10` (no 1)", cli("clip.mp4", "-d", "5,10", "-q")),
    Case("CLI", "`-d 1,1.5`", cli("clip.mp4", "-d", "1,1.5", "-q")),
    Case("CLI", "`-d 1,0`", cli("clip.mp4", "-d", "1,0", "-q")),
    Case("CLI", "`--seed -1`", cli("clip.mp4", "--seed", "-1", "-q")),
    Case("CLI", "`--dtype fp8`", cli("clip.mp4", "--dtype", "fp8", "-q")),
    Case("CLI", "`--device cuda` on a machine without a GPU", cli("clip.mp4", "--device", "cuda", "-q")),
    Case("CLI", "`--device gpu0`", cli("clip.mp4", "--device", "gpu0", "-q")),
    Case("CLI", "`--snippets-per-batch 0`", cli("clip.mp4", "--snippets-per-batch", "0", "-q")),
    Case("CLI", "`--vae-batch-size many`", cli("clip.mp4", "--vae-batch-size", "many", "-q")),
    Case("CLI", "`--coalign-method magic`", cli("clip.mp4", "--coalign-method", "magic", "-q")),
    Case("CLI", "`--coalign-iterations -4`", cli("clip.mp4", "--coalign-iterations", "-4", "-q")),
    Case("CLI", "`--frame-count -2`", cli("clip.mp4", "--frame-count", "-2", "-q")),
    Case("CLI", "`--outputs gif`", cli("clip.mp4", "--outputs", "gif", "-q")),
    Case("CLI", "`--colormap rainbow`", cli("clip.mp4", "--colormap", "rainbow", "-q")),
    Case("CLI", "`--fps -3`", cli("clip.mp4", "--fps", "-3", "-q")),
    Case("CLI", "`--cap-dilation maybe`", cli("clip.mp4", "-o", "o2", "--cap-dilation", "maybe", "-q")),
    # --- plates, colour and depth conversion (image sequences, OpenColorIO, Z, EXR)
    Case("CLI", "`--frame-range 2000-2010` outside the plate (frames 1001-1003)",
         cli("plate/plate.####.exr", "-o", "p1", "--frame-range", "2000-2010", "-q")),
    Case("CLI", "`--frame-range 1003-1001`",
         cli("plate/plate.####.exr", "-o", "p1", "--frame-range", "1003-1001", "-q")),
    Case("CLI", "`--frame-range abc`", cli("plate/plate.####.exr", "-o", "p1", "--frame-range", "abc", "-q")),
    Case("CLI", "sequence with no frames: `missing.####.exr`", cli("missing.####.exr", "-o", "p1", "-q")),
    Case("CLI", "`--colour-space NotASpace`",
         cli("plate/plate.####.exr", "-o", "p1", "--colour-space", "NotASpace", "-q")),
    Case("CLI", "`--ocio-config nope.ocio` (missing)",
         cli("plate/plate.####.exr", "-o", "p1", "--ocio-config", "nope.ocio", "-q")),
    Case("CLI", "`--view \"Nope\"`", cli("plate/plate.####.exr", "-o", "p1", "--view", "Nope", "-q")),
    Case("CLI", "`--layer diffuse` on a plate without layers",
         cli("plate/plate.####.exr", "-o", "p1", "--layer", "diffuse", "-q")),
    Case("CLI", "`--depth planes --near 10 --far 5`",
         cli("clip.mp4", "-o", "p2", "--depth", "planes", "--near", "10", "--far", "5", "-q")),
    Case("CLI", "`--depth normalized --percentiles 99,1`",
         cli("clip.mp4", "-o", "p2", "--depth", "normalized", "--percentiles", "99,1", "-q")),
    Case("CLI", "`--depth fit` without known depth",
         cli("clip.mp4", "-o", "p2", "--depth", "fit", "-q")),
    Case("CLI", "`--depth fit --fit-points \"0 500 500 3\"` (outside the 128x72 picture)",
         cli("clip.mp4", "-o", "p2", "--depth", "fit", "--fit-points", "0 500 500 3", "-q")),
    Case("CLI", "`--depth fit --fit-reference nope.npy` (missing)",
         cli("clip.mp4", "-o", "p2", "--depth", "fit", "--fit-reference", "nope.npy", "-q")),
    Case("CLI", "`--max-depth -1`",
         cli("clip.mp4", "-o", "p2", "--depth", "fit", "--fit-points", "0 5 5 3", "--max-depth", "-1", "-q")),
    Case("CLI", "`--exr-channel \"\"`",
         cli("clip.mp4", "-o", "p2", "--outputs", "exr", "--exr-channel", "", "-q")),
    # --- command line: the model (these load nothing heavy before failing)
    Case("CLI", "`-m missing/model/dir`", cli("clip.mp4", "-o", "o3", "-m", "missing/model/dir", "-q")),
    Case("CLI", "`--offline` with nothing downloaded (empty Hugging Face cache)",
         cli("clip.mp4", "-o", "o4", "--offline", "-q", setup=empty_hub_cache)),
    # --- Python API
    Case("Python", "`estimate_depth(model, frames, \"fastest\")` (the model is loaded for these rows)",
         python(lambda c: _estimate(c, frames("-1..1"), "fastest"))),
    Case("Python", "`estimate_depth(model, frames, {\"processing_resolution\": 768})`",
         python(lambda c: _estimate(c, frames("-1..1"), {"processing_resolution": 768}))),
    Case("Python", "frames `N 3 H W` with values 0..255", python(lambda c: _estimate(c, frames("0..255")))),
    Case("Python", "images `N H W 3` with values -1..1 (0..1 expected)",
         python(lambda c: _estimate(c, frames("-1..1").permute(0, 2, 3, 1).contiguous()))),
    Case("Python", "images `N H W 3` with values 0..255 as float",
         python(lambda c: _estimate(c, frames("0..255").permute(0, 2, 3, 1).contiguous()))),
    Case("Python", "`refine_steps=-1` in the preset",
         python(lambda c: _estimate(c, frames("-1..1"), _replace(refine_steps=-1)))),
    Case("Python", "`snippet_length=0` in the preset",
         python(lambda c: _estimate(c, frames("-1..1"), _replace(snippet_length=0)))),
    Case("Python", "`seed=-1`", python(lambda c: _estimate(c, frames("-1..1"), seed=-1))),
    Case("Python", "`coalign_settings={\"num_iterations\": 3}`",
         python(lambda c: _estimate(c, frames("-1..1"), coalign_settings={"num_iterations": 3}))),
    Case("Python", "`snippets_per_batch=0`",
         python(lambda c: _estimate(c, frames("-1..1"), snippets_per_batch=0))),
    Case("Python", "`noise` of the wrong shape",
         python(lambda c: _estimate(c, frames("-1..1"), noise=torch.zeros(1, 4, 3, 3)))),
    Case("Python", "`plan_snippets(10, (1.5,))`", python(lambda c: _plan(10, (1.5,)))),
    Case("Python", "`plan_snippets(40, \"1,10\")`", python(lambda c: _plan(40, "1,10"))),
    Case("Python", "`plan_snippets(10, 25)`", python(lambda c: _plan(10, 25))),
    Case("Python", "`coalign_depth(tensor)`",
         python(lambda c: __import__("rollingdepth_core").coalign_depth(torch.zeros(3, 3, 4, 4)))),
    Case("Python", "`load_model(folder, device=\"cuda\")` without a GPU",
         python(lambda c: __import__("rollingdepth_core").load_model(c.model_dir, device="cuda"))),
    Case("Python", "`load_model(\"missing/model/dir\")`",
         python(lambda c: __import__("rollingdepth_core").load_model("missing/model/dir"))),
    Case("Python", "`load_model(repo, allow_download=False)`, nothing downloaded",
         python(lambda c: __import__("rollingdepth_core").load_model(
             "prs-eth/rollingdepth-v1-0", allow_download=False, cache_dir="hf-cache"))),
    # --- nodes (what the front end shows when you queue)
    Case("node", "Save Depth `filename_prefix = ../x`",
         queue("RollingDepthSaveDepth", "../x", True, False, False)),
    Case("node", "Save Depth `filename_prefix = /tmp/x`",
         queue("RollingDepthSaveDepth", "/tmp/x", True, False, False)),
    Case("node", "Save Depth with every format off",
         queue("RollingDepthSaveDepth", "x", False, False, False)),
    Case("node", "Save Depth `../x` in a graph whose other outputs are valid (ComfyUI runs those): "
         "what Denoise Snippets raises, before any work", python(_node_graph_check)),
    Case("node", "Sample Snippets `dilations = 10,25`", queue("RollingDepthSampleSnippets", "10,25")),
    Case("node", "Sample Snippets `dilations = 1,2.5`", queue("RollingDepthSampleSnippets", "1,2.5")),
    Case("node", "Sample Snippets `snippet_length = 0`",
         graph("RollingDepthSampleSnippets", snippet_length=0)),
    Case("node", "Denoise Snippets `processing_resolution = 8192`",
         graph("RollingDepthDenoiseSnippets", processing_resolution=8192)),
    Case("node", "Denoise Snippets `seed = -1`", graph("RollingDepthDenoiseSnippets", seed=-1)),
    Case("node", "Refine `num_steps = 0`", graph("RollingDepthRefine", num_steps=0)),
    Case("node", "Co-align `learning_rate = 0`", graph("RollingDepthCoalign", learning_rate=0.0)),
    Case("node", "Co-align `subsample = 0`", graph("RollingDepthCoalign", subsample=0)),
    Case("node", "Depth to Image `low_percentile = 98, high_percentile = 2`",
         queue("RollingDepthDepthToImage", 98.0, 2.0)),
    Case("node", "Load Plate Sequence `frame_range = 1100-1001`",
         queue("RollingDepthLoadPlateSequence", "1100-1001", "auto")),
    Case("node", "Load Plate Sequence `colour_space = NotASpace`",
         queue("RollingDepthLoadPlateSequence", "", "NotASpace")),
    Case("node", "Convert Depth `planes`, `near = 10`, `far = 5`",
         queue("RollingDepthConvertDepth", "planes", 10.0, 5.0, 1.0, 99.0, "m")),
    Case("node", "Convert Depth `low_percentile = 99`, `high_percentile = 1`",
         queue("RollingDepthConvertDepth", "normalized", 1.0, 100.0, 99.0, 1.0, "m")),
    Case("node", "RollingDepth (one node) `resolution_override = 5000`",
         graph("RollingDepth", resolution_override=5000)),
]


def scratch(folder: Path) -> None:
    """The files the cases refer to."""
    from rollingdepth_core.io.export import save_video
    from rollingdepth_core.io.sources import VideoFileSource

    clip = VideoFileSource(SAMPLE).read(0, 12)  # 12 3 72 128 in -1..1
    save_video(folder / "clip.mp4", ((clip.permute(0, 2, 3, 1) + 1) / 2).clamp(0, 1), fps=12)
    (folder / "frames").mkdir()
    import cv2

    for i in range(3):
        cv2.imwrite(str(folder / "frames" / f"{i:03d}.png"), np.full((24, 32, 3), 40 * i, np.uint8))
    (folder / "empty").mkdir()
    (folder / "taken.txt").write_text("a file, not a folder")
    (folder / "done").mkdir()
    (folder / "done" / "clip_depth.npz").write_bytes(b"an earlier result")
    (folder / "hf-cache").mkdir()
    (folder / "plate").mkdir()
    for frame in (1001, 1002, 1003):  # 3 frames of the sample plate
        name = f"rollingdepth_plate.{frame}.exr"
        (folder / "plate" / f"plate.{frame}.exr").write_bytes((PLATE / name).read_bytes())


def answers(model_dir: Path, model=None) -> list[tuple[str, str, str]]:
    """`(where, bad input, answer)` of every case, run in a fresh scratch folder."""
    with tempfile.TemporaryDirectory(prefix="rd-bad-inputs-") as name:
        folder = Path(name)
        scratch(folder)
        context = Context(folder, Path(model_dir), model, load_pack())
        return [(case.where, case.what, case.run(context)) for case in CASES]


def render(rows: list[tuple[str, str, str]]) -> str:
    lines = [f"| {i} | {where} | {what} | {answer} |" for i, (where, what, answer) in enumerate(rows, 1)]
    return HEADER + "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, default=ROOT / "docs" / "bad_inputs.md")
    parser.add_argument("--model", type=Path, default=Path(os.environ.get(
        "ROLLINGDEPTH_GOLDEN", ROOT.parent / "shared" / "golden")) / "tiny_v1" / "model")
    args = parser.parse_args()
    args.out.write_text(render(answers(args.model)))
    sys.stdout.write(f"wrote {args.out} ({len(CASES)} cases)\n")


if __name__ == "__main__":
    main()
