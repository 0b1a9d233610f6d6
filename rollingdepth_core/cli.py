"""Command line: video file or image folder in, depth files out.

    rollingdepth INPUT -o OUTDIR [--preset fast|fast1024|full|paper] [options]

Writes ``<name>_depth.npz`` (float32 inverse depth), ``<name>_depth_png16/`` (16-bit PNG
sequence, one range for the clip), ``<name>_depth_preview.mp4`` (colour-mapped) and, on
request, ``<name>_depth_exr/`` (float32 EXR): see `io.outputs`.

Before anything loads, every option is checked (`validation`, worded with the flags),
the input is opened, the output folder is created and proven writable, results of the same
name there stop the run (unless ``--overwrite`` or ``--new-take``), and the run's memory is
estimated against what is free. Outputs are written atomically (`io.result_set`). Errors
print one line and exit with code 2; Ctrl-C prints one line and exits with code 130.

The authors' spellings (``-i``, ``--res``, ``-d 1 10 25``, ``--cap-dilation true`` ...) are
accepted; their options that make no sense here are accepted with a one-line note.

Options are added by group (`add_clip_options`); a new flag goes into its group, with its
check in `validation.SETTINGS` and its name in `CLI_WORDING`.
"""

from __future__ import annotations

import argparse
import dataclasses
import logging
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import Tensor

from . import __version__
from .coalign.methods import DEFAULT_METHOD, available_methods
from .coalign.problem import CoalignSettings
from .errors import InvalidInput, InvalidSettings, RollingDepthError
from .hooks import close_progress_bars, tqdm_hooks
from .io.colormaps import is_colormap
from .io.cuts import check_cut_detection, detect_cuts
from .io.frames import resize_depth
from .io.outputs import (
    DEFAULT_COLORMAP,
    DEFAULT_KINDS,
    OUTPUT_KINDS,
    OutputOptions,
    plan_outputs,
    segment_name,
)
from .io.outputs import write_clip as stage_clip
from .io.outputs import write_outputs as write_planned
from .io.result_set import ResultSet, check_output_folder
from .io.sources import FrameRange, FrameSource, TensorSource, VideoFileSource
from .io.video_files import probe_image_folder, read_image_folder
from .model.checkpoint import DEFAULT_REPO_ID, load_model, preset_dtype, resolve_dtype
from .pipeline import estimate_depth
from .presets import PRESETS, Preset
from .runtime.batch_sizes import AUTO
from .runtime.devices import default_device
from .runtime.memory_estimate import architecture_from_folder
from .types import DEFAULT_SNIPPETS_PER_BATCH, DEFAULT_VAE_BATCH_SIZE, DepthModel
from .validation import DTYPE_CHOICES, check_preset, check_run_memory, check_settings
from .wording import Wording

logger = logging.getLogger("rollingdepth")

OUTPUTS = OUTPUT_KINDS
USAGE_ERROR = 2  # exit code of every error a user can fix
CANCELLED = 130  # exit code after Ctrl-C (128 + SIGINT), as `launcher` uses while starting

# How messages name each setting on the command line.
CLI_WORDING = Wording("cli", {
    "processing_resolution": "--resolution", "dilations": "--dilations",
    "snippet_length": "--snippet-length", "cap_dilation": "--cap-dilation",
    "refine_steps": "--refine-steps", "refine_start_dilation": "--refine-start-dilation",
    "refine_snippet_length": "--refine-snippet-length", "dtype": "--dtype", "seed": "--seed",
    "device": "--device", "start_frame": "--start-frame", "frame_count": "--frame-count",
    "snippets_per_batch": "--snippets-per-batch", "vae_batch_size": "--vae-batch-size",
    "storage_dir": "--storage-dir", "coalign_method": "--coalign-method",
    "num_iterations": "--coalign-iterations", "outputs": "--outputs", "colormap": "--colormap",
    "fps": "--fps", "source": "--model", "restore_size": "--restore-resolution",
    "existing": "--overwrite / --new-take",
})

# The authors' options that have no job here, and what happens instead (a note, never an error).
IGNORED_OPTIONS = {
    "unload_snippet": "--unload-snippet: not needed, snippet depths always go to the host as they are "
                      "predicted (use --storage-dir to keep them on disk).",
    "save_sbs": "--save-sbs: no side-by-side video is written; the preview is NAME_depth_preview.mp4.",
    "save_snippets": "--save-snippets: snippet depths are not saved by the command line; the Python API "
                     "returns them (estimate_depth(...).snippets).",
}


class CommandLineParser(argparse.ArgumentParser):
    """An argument parser whose errors are one line (and exit code 2), like every other error."""

    def error(self, message: str):
        self.exit(USAGE_ERROR, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


def flag_value(text: str) -> bool:
    """A yes/no option value: true/false, yes/no, on/off, 1/0 (the authors' spelling)."""
    value = text.strip().lower()
    if value in ("true", "t", "yes", "y", "on", "1"):
        return True
    if value in ("false", "f", "no", "n", "off", "0"):
        return False
    raise argparse.ArgumentTypeError(f"expected true or false; got {text!r}")


class OptionalFlag(argparse.Action):
    """A switch that also takes the authors' explicit value: ``--x``, ``--x true``, ``--x false``.

    A word after it that is not a yes/no value is not swallowed: it is kept for the input
    (``--restore-resolution clip.mp4``).
    """

    def __init__(self, option_strings, dest, default=None, **kwargs):
        kwargs.setdefault("metavar", "true|false")
        super().__init__(option_strings, dest, nargs="?", const=True, default=default, **kwargs)

    def __call__(self, parser, namespace, values, option_string=None):
        if values is None or isinstance(values, bool):  # the bare switch gives `const`
            setattr(namespace, self.dest, True)
            return
        try:
            setattr(namespace, self.dest, flag_value(values))
        except argparse.ArgumentTypeError:
            setattr(namespace, self.dest, True)
            namespace.flag_words = [*getattr(namespace, "flag_words", []), (option_string, values)]


def batch_size(text: str) -> int | str:
    """A batch size argument: a whole number >= 1 or "auto"."""
    if text == AUTO:
        return AUTO
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be a whole number >= 1 or 'auto'; got {text!r}")
    return value


def build_parser() -> argparse.ArgumentParser:
    parser = CommandLineParser(
        prog="rollingdepth",
        description="Temporally consistent video depth with RollingDepth "
        "(inverse depth, larger = nearer).",
    )
    parser.add_argument("input", type=Path, nargs="?", default=None,
                        help="video file or folder of images (sorted by name)")
    parser.add_argument("-i", "--input-video", type=Path, default=None, dest="input_option",
                        help="the input, as the authors' tool spells it (instead of INPUT)")
    parser.add_argument("-o", "--output-dir", type=Path, default=Path("outputs"),
                        help="folder for the results, created if needed (default: ./outputs)")
    add_clip_options(parser)
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    return parser


def add_clip_options(parser: argparse.ArgumentParser) -> None:
    """The options of one clip's run (settings, model, frames, memory, outputs, logging), by group.

    The farm uses them too. Alternative spellings are the authors' (prs-eth/RollingDepth's
    run_video.py).
    """
    settings = parser.add_argument_group("settings (override the preset)")
    settings.add_argument("-p", "--preset", choices=sorted(PRESETS), default="fast",
                          help="settings preset (default: fast)")
    settings.add_argument("-r", "--resolution", "--processing-resolution", "--res", type=int, default=None,
                          dest="resolution", help="longest side to process at; 0 keeps the input size")
    settings.add_argument("-d", "--dilations", nargs="+", default=None, metavar="D",
                          help="snippet dilations: '1,10,25' or 1 10 25 (must include 1)")
    settings.add_argument("--snippet-length", "--snip-len", "--snippet-lengths", nargs="+",
                          default=None, dest="snippet_length", metavar="N", help="frames per snippet (3)")
    settings.add_argument("--cap-dilation", action=OptionalFlag,
                          help="shrink dilations that do not fit short clips")
    settings.add_argument("--no-cap-dilation", action="store_false", dest="cap_dilation",
                          help="same as --cap-dilation false")
    settings.add_argument("--refine-steps", "--refine-step", type=int, default=None, dest="refine_steps",
                          help="refinement steps (0: off)")
    settings.add_argument("--refine-start-dilation", type=int, default=None,
                          help="dilation of the first refinement step (6)")
    settings.add_argument("--refine-snippet-length", "--refine-snippet-len", type=int, default=None,
                          dest="refine_snippet_length", help="frames per refinement snippet (3)")
    settings.add_argument("--dtype", "--data-type", choices=DTYPE_CHOICES, default=None, dest="dtype",
                          help="compute precision (default: the preset's; fp32 on a CPU)")
    settings.add_argument("--seed", type=int, default=0, help="seed of the shared noise (default 0)")

    model = parser.add_argument_group("model and device")
    model.add_argument("-m", "--model", "-c", "--checkpoint", default=DEFAULT_REPO_ID, dest="model",
                       help=f"checkpoint folder or Hugging Face repo id (default: {DEFAULT_REPO_ID})")
    model.add_argument("--model-dir", type=Path, default=None,
                       help="download the checkpoint into this folder instead of the Hugging Face cache")
    model.add_argument("--offline", action="store_true", help="never download; use local files only")
    model.add_argument("--device", default=None, help="cuda, cuda:1, mps or cpu (default: best available)")

    frames = parser.add_argument_group("frames")
    frames.add_argument("--start-frame", "--from", type=int, default=0, dest="start_frame",
                        help="first frame to read")
    frames.add_argument("--frame-count", "--frames", type=int, default=0, dest="frame_count",
                        help="frames to read (0: all)")
    frames.add_argument("--split-at-cuts", action="store_true",
                        help="find the cuts (PySceneDetect, rollingdepth[farm]) and process each "
                        "segment as its own shot: NAME_<first>-<last>_depth..., original frame numbers")

    memory = parser.add_argument_group("memory and speed")
    memory.add_argument("--snippets-per-batch", type=batch_size, default=AUTO,
                        help="snippets per UNet call, or 'auto': what fits in free GPU memory "
                        f"({DEFAULT_SNIPPETS_PER_BATCH} on a CPU)")
    memory.add_argument("--vae-batch-size", "--max-vae-bs", type=batch_size, default=AUTO,
                        dest="vae_batch_size",
                        help=f"frames per VAE call, or 'auto' ({DEFAULT_VAE_BATCH_SIZE} on a CPU)")
    memory.add_argument("--storage-dir", type=Path, default=None,
                        help="keep snippet depths in temporary files here (flat RAM on very long clips)")

    coalign = parser.add_argument_group("co-alignment")
    coalign.add_argument("--coalign-method", choices=available_methods(), default=DEFAULT_METHOD,
                         help=f"solver (default: {DEFAULT_METHOD}; 'reference' is the authors' "
                         "Adam loop, 'robust' a drift-resistant objective)")
    coalign.add_argument("--coalign-iterations", type=int, default=None,
                         help="iterations of the co-alignment solver (reference: 2000)")

    outputs = parser.add_argument_group("outputs")
    outputs.add_argument("--outputs", default=",".join(DEFAULT_KINDS),
                         help=f"comma-separated subset of {','.join(OUTPUT_KINDS)} "
                         f"(default: {','.join(DEFAULT_KINDS)})")
    outputs.add_argument("--save-npy", action=OptionalFlag,
                         help="the authors' switch for the raw depth: npz on or off")
    outputs.add_argument("--colormap", "--cmap", "--color-maps", nargs="+", default=[DEFAULT_COLORMAP],
                         dest="colormap", metavar="MAP",
                         help="colour map(s) of the preview video; more than one writes one preview each")
    outputs.add_argument("--fps", "--output-fps", type=float, default=None, dest="fps",
                         help="frame rate of the preview (default or 0: the input's)")
    outputs.add_argument("--restore-resolution", "--restore-res", action=OptionalFlag, default=False,
                         dest="restore_resolution",
                         help="write depth at the input resolution instead of the processing one")
    existing = outputs.add_mutually_exclusive_group()
    existing.add_argument("--overwrite", action="store_true",
                          help="replace results of the same name in the output folder (the whole set)")
    existing.add_argument("--new-take", action="store_true",
                          help="keep earlier results and write NAME_take2, NAME_take3 ...")

    ignored = parser.add_argument_group("the authors' options that are not needed here (accepted, noted)")
    ignored.add_argument("--unload-snippet", action=OptionalFlag, help="snippet depths always go to the host")
    ignored.add_argument("--save-sbs", "--save-side-by-side", "--save-sbs--save-side-by-side",
                         action=OptionalFlag, dest="save_sbs", help="no side-by-side video is written")
    ignored.add_argument("--save-snippets", action=OptionalFlag, help="snippet depths are not saved")
    ignored.add_argument("--resample-method", choices=("BILINEAR", "NEAREST_EXACT", "BICUBIC"), default=None,
                         help="frames are always resized bilinearly with antialiasing")

    log = parser.add_argument_group("logging")
    log.add_argument("-q", "--quiet", action="store_true", help="no progress bars, warnings only")
    log.add_argument("-v", "--verbose", action="store_true", help="debug logging")


# --- from parsed options to checked settings ----------------------------------------------


def normalize_args(args: argparse.Namespace) -> argparse.Namespace:
    """The parsed options in one spelling: the input, dilations as "1,10,25", one snippet
    length, one output list, the preview's frame rate (None = the input's).

    Options that take several words (``-d 1 10 25``, ``--cmap A B``) may have taken the
    input after them (``-d 1 10 25 clip.mp4``): a last word that is not theirs is the input.

    Raises:
        InvalidSettings: no input or two, words that belong nowhere, several different
            snippet lengths.
    """
    args = argparse.Namespace(**vars(args))
    flag_words = list(getattr(args, "flag_words", []))
    stray = [word for _, word in flag_words]
    args.dilations = _take_trailing(args.dilations, _is_number, stray)
    args.snippet_length = _take_trailing(args.snippet_length, _is_number, stray)
    args.colormap = _take_trailing(
        args.colormap if isinstance(args.colormap, list) else [args.colormap],
        lambda word: word == "" or is_colormap(word), stray,
    )
    if hasattr(args, "input_option"):  # the single-clip command (the farm has its own inputs)
        given = [p for p in (args.input, args.input_option) if p is not None] + [Path(w) for w in stray]
        if len(given) > 1 and flag_words and not Path(flag_words[0][1]).exists():
            option, word = flag_words[0]
            raise InvalidSettings(f"{option}: expected true or false; got {word!r}.")
        if len(given) > 1:
            raise InvalidSettings(f"More than one input given ({', '.join(map(str, given))}); give one.")
        if not given:
            raise InvalidSettings("No input given: rollingdepth VIDEO_OR_FOLDER -o OUTDIR (or -i INPUT).")
        args.input = given[0]
    elif stray:
        raise InvalidSettings(f"Unexpected words: {' '.join(stray)}.")
    args.dilations = ",".join(args.dilations) if args.dilations else None
    if args.snippet_length is not None:
        lengths = sorted({int(word) for word in ",".join(args.snippet_length).split(",") if word})
        if len(lengths) != 1:
            raise InvalidSettings(
                f"--snippet-length: one length is used for every dilation here; got {lengths}. Give one."
            )
        args.snippet_length = lengths[0]
    args.colormaps = tuple(c for c in args.colormap if c)  # the authors' '' means "no preview"
    args.colormap = args.colormaps[0] if args.colormaps else DEFAULT_COLORMAP
    kinds = [k.strip() for k in str(args.outputs).split(",") if k.strip()]
    if getattr(args, "save_npy", None) is not None:
        kinds = [k for k in kinds if k != "npz"] + (["npz"] if args.save_npy else [])
    if not args.colormaps:
        kinds = [k for k in kinds if k != "video"]
    args.outputs = ",".join(kinds)
    if args.fps == 0:
        args.fps = None  # the authors' 0 = the input's frame rate
    args.normalized = True
    return args


def _normalized(args: argparse.Namespace) -> argparse.Namespace:
    return args if getattr(args, "normalized", False) else normalize_args(args)


def _take_trailing(words: list[str] | None, belongs, stray: list[str]) -> list[str] | None:
    """``words`` without a last word that does not belong to the option (moved to ``stray``)."""
    if words and len(words) > 1 and not belongs(words[-1]):
        stray.append(words[-1])
        return words[:-1]
    return words


def _is_number(text: str) -> bool:
    return all(part.strip().isdigit() for part in text.split(",") if part.strip())


def log_notes(args: argparse.Namespace) -> None:
    """One line for each of the authors' options that has no job here."""
    for name, note in IGNORED_OPTIONS.items():
        if getattr(args, name, None) is not None:
            logger.warning("%s", note)
    method = getattr(args, "resample_method", None)
    if method not in (None, "BILINEAR"):
        logger.warning("--resample-method %s: frames are resized bilinearly with antialiasing.", method)


def settings_from_args(args: argparse.Namespace) -> Preset:
    """The preset named by ``--preset`` with the command line's overrides, every field checked."""
    args = _normalized(args)
    changes = {
        "processing_resolution": args.resolution,
        "dilations": args.dilations,
        "snippet_length": args.snippet_length,
        "cap_dilation": args.cap_dilation,
        "refine_steps": args.refine_steps,
        "refine_start_dilation": args.refine_start_dilation,
        "refine_snippet_length": getattr(args, "refine_snippet_length", None),
        "dtype": args.dtype,
    }
    preset = dataclasses.replace(PRESETS[args.preset], **{k: v for k, v in changes.items() if v is not None})
    return check_preset(preset, CLI_WORDING)


def output_options(args: argparse.Namespace) -> OutputOptions:
    """What to write, from ``--outputs``, ``--colormap`` and ``--fps`` (checked)."""
    args = _normalized(args)
    values = check_settings({"outputs": args.outputs, "colormap": list(getattr(args, "colormaps", ()))
                             or [args.colormap], "fps": args.fps}, CLI_WORDING)
    return OutputOptions(kinds=values["outputs"], colormaps=values["colormap"], fps=values["fps"])


def parse_outputs(text: str) -> tuple[str, ...]:
    """``--outputs`` as a tuple of kinds (checked)."""
    return check_settings({"outputs": text}, CLI_WORDING)["outputs"]


def existing_policy(args: argparse.Namespace) -> str:
    """What to do with results of the same name: "refuse", "overwrite" or "new_take"."""
    if getattr(args, "overwrite", False):
        return "overwrite"
    return "new_take" if getattr(args, "new_take", False) else "refuse"


def coalign_settings(args: argparse.Namespace) -> CoalignSettings:
    if args.coalign_iterations is None:
        return CoalignSettings()
    return CoalignSettings(num_iterations=args.coalign_iterations)


@dataclass(frozen=True)
class CheckedCommand:
    """A command line checked before anything loads.

    Attributes:
        settings: the preset with the overrides.
        options: what to write.
        device: where the model runs.
        dtype: what it loads in.
        existing: "refuse", "overwrite" or "new_take".
    """

    settings: Preset
    options: OutputOptions
    device: torch.device
    dtype: str
    existing: str


def check_command(args: argparse.Namespace) -> CheckedCommand:
    """Every option checked, with the flags' names in the messages (nothing is loaded yet).

    Raises:
        InvalidSettings: the first bad option.
    """
    settings = settings_from_args(args)
    values = check_settings({
        "seed": args.seed, "start_frame": args.start_frame, "frame_count": args.frame_count,
        "snippets_per_batch": args.snippets_per_batch, "vae_batch_size": args.vae_batch_size,
        "storage_dir": args.storage_dir, "coalign_method": args.coalign_method,
        "device": args.device, "restore_size": args.restore_resolution,
    }, CLI_WORDING)
    if args.coalign_iterations is not None:
        check_settings({"num_iterations": args.coalign_iterations}, CLI_WORDING)
    options = output_options(args)
    if args.split_at_cuts:
        check_cut_detection()
    device = values["device"] or default_device()
    dtype = args.dtype or preset_dtype(settings.dtype, device)  # a preset's fp16 is fp32 on a CPU
    return CheckedCommand(settings, options, torch.device(device), dtype, existing_policy(args))


# --- the input and the outputs ------------------------------------------------------------


@dataclass(frozen=True)
class OpenedInput:
    """A clip opened for processing.

    Attributes:
        frames: `N 3 H W` in -1..1 already at processing size (image folders), or a lazy
            `FrameSource` (videos).
        settings: the settings to process it with (processing resolution 0 when the frames
            were read at processing size).
        input_size: `(H0, W0)` on disk.
        fps: frame rate (30 for image folders).
        first_frame: index in the file of the first frame (``--start-frame``).
    """

    frames: Tensor | FrameSource
    settings: Preset
    input_size: tuple[int, int]
    fps: float
    first_frame: int


@dataclass(frozen=True)
class ClipOutputs:
    """What one clip (or one segment between cuts) produced.

    Attributes:
        name: the NAME in its file names.
        first_frame: index in the input of its first frame.
        num_frames: frames written.
        written: output kind -> path.
        timings: seconds per stage.
    """

    name: str
    first_frame: int
    num_frames: int
    written: dict[str, Path]
    timings: dict[str, float]


def input_name(path: Path) -> str:
    """NAME of the outputs: the file's stem, or the folder's name."""
    return path.stem if path.is_file() else path.name


def probe_input(path: Path, start: int, count: int) -> tuple[int, tuple[int, int], bool]:
    """`(frames, (H0, W0), is an image folder)` of the input, without reading the clip.

    Raises:
        InvalidInput: the input does not exist, is not a video, or the frame range is empty.
    """
    if not path.exists():
        raise InvalidInput(f"Input {path} does not exist. Give a video file or a folder of images.")
    if path.is_dir():
        num_frames, size = probe_image_folder(path, start, count)
        return num_frames, size, True
    frames = FrameRange(VideoFileSource(path), start, count)
    return frames.num_frames, frames.input_size, False


def open_input(path: Path, start: int, count: int, settings: Preset, show: bool = True) -> OpenedInput:
    """Open a video (decoded lazily) or read an image folder (now, at processing size)."""
    if path.is_dir():  # images are read now, at processing size
        clip = read_image_folder(path, start, count, settings.processing_resolution,
                                 tqdm_hooks("read", disable=not show))
        logger.info("Read %d frames (%dx%d) from %s.", len(clip.frames), clip.input_size[1],
                    clip.input_size[0], path)
        return OpenedInput(clip.frames, dataclasses.replace(settings, processing_resolution=0),
                           clip.input_size, clip.fps, start)
    # a video is decoded batch by batch as the stages need it, resized as it is decoded
    frames = FrameRange(VideoFileSource(path), start, count)
    logger.info("Reading %d frames (%dx%d) from %s as they are needed.", frames.num_frames,
                frames.input_size[1], frames.input_size[0], path)
    return OpenedInput(frames, settings, frames.input_size, frames.fps, start)


def frame_slice(frames: Tensor | FrameSource, start: int, stop: int) -> Tensor | FrameSource:
    """Frames `start .. stop - 1` of an opened input, staying lazy for sources."""
    if isinstance(frames, Tensor):
        return frames[start:stop]
    return FrameRange(frames, start, stop - start)


def write_outputs(
    out_dir: Path, name: str, depth: Tensor, outputs: tuple[str, ...], colormap: str | tuple[str, ...],
    fps: float, first_frame: int = 0, frame_prefix: str | None = None, existing: str = "refuse",
) -> dict[str, Path]:
    """Write one clip's depth files, named as the command line documents, atomically.

    Args:
        out_dir: the output folder.
        name: NAME in ``NAME_depth.npz`` and the other files.
        depth: `N H W` float32 inverse depth.
        outputs: any of `OUTPUTS`.
        colormap: colour map(s) of the preview.
        fps: frame rate of the preview.
        first_frame: number of the first frame in per-frame file names (and in the NPZ's
            ``frame_numbers``).
        frame_prefix: prefix of per-frame file names (default: ``name``).
        existing: results of the same name there: "refuse" (`OutputExists`), "overwrite"
            or "new_take" (see `io.result_set`).

    Returns:
        Output kind -> the file or folder written.
    """
    maps = (colormap,) if isinstance(colormap, str) else tuple(colormap)
    options = OutputOptions(kinds=tuple(outputs), colormaps=maps, fps=fps)
    results = plan_outputs(out_dir, name, options, existing)
    return write_planned(results, depth, options, fps, first_frame, frame_prefix)


def process_input(
    model: DepthModel, args: argparse.Namespace, out_dir: Path, name: str | None = None,
    first_frame: int | None = None, frame_prefix: str | None = None, show: bool = True,
    opened: OpenedInput | None = None, results: ResultSet | None = None,
) -> list[ClipOutputs]:
    """Depth of ``args.input`` (frame range, cuts and settings from ``args``) with a loaded model,
    written to ``out_dir``: one `ClipOutputs` per segment (one without ``--split-at-cuts``).

    Every segment is staged and the whole set goes in place at the end (`io.result_set`):
    an error or Ctrl-C leaves the folder as it was.

    Args:
        model: the loaded checkpoint (kept by callers that process many clips).
        args: the parsed, normalised options (`add_clip_options`, `normalize_args`).
        out_dir: where the files go.
        name: NAME of the outputs (default: the input's).
        first_frame: number of the first frame in file names (default: 0, or the frame
            index in the input for segments between cuts).
        frame_prefix: prefix of per-frame file names (default: NAME).
        show: draw progress bars.
        opened: the input, when the caller already opened it (`open_input`).
        results: the planned result set (default: planned here, from ``--overwrite`` /
            ``--new-take``; results of the same name stop the run before any work).
    """
    args = _normalized(args)
    settings = settings_from_args(args)
    options = output_options(args)
    name = name or input_name(args.input)
    if results is None:
        results = plan_outputs(out_dir, name, options, existing_policy(args), segments=args.split_at_cuts,
                               wording=CLI_WORDING)
    if opened is None:
        opened = open_input(args.input, args.start_frame, args.frame_count, settings, show)
    stem = results.stem  # NAME, or NAME_take<k> for a new take
    total = opened.frames.num_frames if not isinstance(opened.frames, Tensor) else len(opened.frames)
    segments = [(0, total)]
    if args.split_at_cuts:
        segments = detect_cuts(opened.frames if not isinstance(opened.frames, Tensor)
                               else TensorSource(opened.frames),
                               hooks=tqdm_hooks("cuts", disable=not show))
    clips = []
    with results.write() as staging:
        for start, stop in segments:
            if len(segments) > 1:
                number = opened.first_frame + start
                clip_name, clip_first = segment_name(stem, number, opened.first_frame + stop - 1), number
            else:
                clip_name, clip_first = stem, 0 if first_frame is None else first_frame
            result = estimate_depth(
                model, frame_slice(opened.frames, start, stop), opened.settings, seed=args.seed,
                coalign_method=args.coalign_method, coalign_settings=coalign_settings(args),
                snippets_per_batch=args.snippets_per_batch, vae_batch_size=args.vae_batch_size,
                storage_dir=args.storage_dir, hooks_for=lambda stage: tqdm_hooks(stage, disable=not show),
                wording=CLI_WORDING,
            )
            depth = result.depth.inverse_depth
            if args.restore_resolution and tuple(depth.shape[-2:]) != tuple(opened.input_size):
                depth = resize_depth(depth, opened.input_size)
            written = stage_clip(staging, clip_name, depth, options, opened.fps, clip_first,
                                 frame_prefix or stem)
            clips.append(ClipOutputs(clip_name, clip_first, len(depth), written, result.timings))
    return clips


# --- the run ------------------------------------------------------------------------------


def run(args: argparse.Namespace) -> list[ClipOutputs]:
    """Do what the parsed command line asks; returns what each clip (or segment) wrote.

    Everything that can fail cheaply fails before the model loads: options, input, output
    folder, results already there, memory.
    """
    args = normalize_args(args)
    log_notes(args)
    command = check_command(args)
    show = not args.quiet
    tic = time.perf_counter()
    num_frames, input_size, is_folder = probe_input(args.input, args.start_frame, args.frame_count)
    out_dir = check_output_folder(args.output_dir)
    results = plan_outputs(out_dir, input_name(args.input), command.options, command.existing,
                           segments=args.split_at_cuts, wording=CLI_WORDING)
    check_run_memory(
        command.settings, num_frames, input_size, command.device,
        resolve_dtype(command.dtype, command.device, warn=False),
        architecture_from_folder(args.model), args.snippets_per_batch, args.vae_batch_size,
        args.storage_dir, args.restore_resolution, frames_in_memory=is_folder, wording=CLI_WORDING,
    )
    opened = open_input(args.input, args.start_frame, args.frame_count, command.settings, show)
    model = load_model(args.model, device=command.device, dtype=command.dtype, local_dir=args.model_dir,
                       allow_download=not args.offline, show_progress=show, wording=CLI_WORDING)
    clips = process_input(model, args, out_dir, show=show, opened=opened, results=results)
    for clip in clips:
        timing = ", ".join(f"{k} {v:.1f} s" for k, v in clip.timings.items())
        logger.info("%s: %d frames (%s). Wrote %s.", clip.name, clip.num_frames, timing,
                    ", ".join(str(p) for p in clip.written.values()))
    logger.info("Done in %.1f s.", time.perf_counter() - tic)
    return clips


class ProgressSafeHandler(logging.StreamHandler):
    """Log lines on stderr that never land on the end of a progress bar's line."""

    def emit(self, record: logging.LogRecord) -> None:
        try:
            from tqdm import tqdm

            tqdm.write(self.format(record), file=self.stream)
        except Exception:  # logging must never raise
            self.handleError(record)


def setup_logging(args: argparse.Namespace) -> None:
    level = logging.DEBUG if args.verbose else logging.WARNING if args.quiet else logging.INFO
    handler = ProgressSafeHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("%(levelname)s %(name)s: %(message)s"))
    root = logging.getLogger()
    root.handlers = [h for h in root.handlers if not isinstance(h, ProgressSafeHandler)] + [handler]
    root.setLevel(level)


def main(argv: list[str] | None = None) -> int:
    """Entry point of ``rollingdepth`` and ``python -m rollingdepth_core``; returns the exit code.

    0: done. 2: an error you can fix (one line on stderr). 130: cancelled with Ctrl-C (one
    line; earlier results untouched, no partial files).
    """
    try:
        try:
            args = build_parser().parse_args(argv)
        except SystemExit as done:  # --help, --version, or a one-line usage error
            return done.code if isinstance(done.code, int) else USAGE_ERROR
        setup_logging(args)
        run(args)
    except RollingDepthError as error:
        close_progress_bars()
        logger.error("%s", error)
        return USAGE_ERROR
    except OSError as error:  # a disk that is full or went away, a file that cannot be read
        close_progress_bars()
        logger.error("%s: %s", type(error).__name__, error)
        return USAGE_ERROR
    except KeyboardInterrupt:
        close_progress_bars()
        logger.error("Cancelled; earlier results are untouched and nothing partial was left.")
        return CANCELLED
    return 0
