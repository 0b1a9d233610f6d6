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
from .conversion.convert import MODES as CONVERSION_MODES
from .conversion.convert import DepthConversion, convert_clip
from .conversion.normalized import DEFAULT_PERCENTILES
from .conversion.references import ORIGINS, parse_points
from .errors import InvalidInput, InvalidSettings, RollingDepthError
from .hooks import close_progress_bars, tqdm_hooks
from .io.colormaps import is_colormap
from .io.colour import resolve_colour
from .io.cuts import check_cut_detection, detect_cuts
from .io.depth_sources import DepthMapFiles
from .io.exr import COMPRESSIONS, DEFAULT_CHANNEL, PIXEL_TYPES, ExrOptions
from .io.frame_rates import exact_frame_rate
from .io.image_files import WINDOWS
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
from .io.plates import ColourConvertedSource, ImageSequenceSource
from .io.result_set import ResultSet, Staging, check_output_folder
from .io.sequences import parse_frame_range
from .io.sources import FrameRange, FrameSource, TensorSource, VideoFileSource, clip_info, is_sequence_path
from .model.checkpoint import DEFAULT_REPO_ID, load_model, preset_dtype, resolve_dtype
from .pipeline import estimate_depth
from .presets import PRESETS, Preset
from .runtime.batch_sizes import AUTO
from .runtime.devices import default_device
from .runtime.memory_estimate import architecture_from_folder
from .types import DEFAULT_SNIPPETS_PER_BATCH, DEFAULT_VAE_BATCH_SIZE, DepthModel, DepthVideo
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
    "frame_range": "--frame-range", "colour_space": "--colour-space", "window": "--window",
    "depth_conversion": "--depth", "near": "--near", "far": "--far", "units": "--units",
    "low_percentile": "--percentiles (low)", "high_percentile": "--percentiles (high)",
    "max_depth": "--max-depth", "exr_channel": "--exr-channel", "exr_pixel_type": "--exr-pixel-type",
    "exr_compression": "--exr-compression", "spread": "--spread",
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


PLANES_DEFAULTS = (1.0, 100.0)  # --near, --far


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


def frame_rate_option(text: str):
    """``--fps``: 0 (the input's rate) or a rate, kept exact (23.976 = 24000/1001)."""
    try:
        return exact_frame_rate(text)
    except InvalidSettings:
        try:
            return float(text)  # 0 (the input's rate), or a value `check_command` words as an error
        except ValueError:
            raise argparse.ArgumentTypeError(
                f"expected a frame rate like 24, 23.976 or 24000/1001; got {text!r}"
            ) from None


def positive_int(text: str) -> int:
    """A whole number >= 1 (argparse type)."""
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be a whole number >= 1; got {text!r}")
    return value


def batch_size(text: str) -> int | str:
    """A batch size argument: a whole number >= 1 or "auto"."""
    if text == AUTO:
        return AUTO
    try:
        return positive_int(text)
    except argparse.ArgumentTypeError:
        raise argparse.ArgumentTypeError(f"must be a whole number >= 1 or 'auto'; got {text!r}") from None


def build_parser() -> argparse.ArgumentParser:
    parser = CommandLineParser(
        prog="rollingdepth",
        description="Temporally consistent video depth with RollingDepth "
        "(inverse depth, larger = nearer).",
    )
    parser.add_argument("input", type=Path, nargs="?", default=None,
                        help="video file, image sequence (plate.####.exr, plate.%%04d.dpx, plate.@@@@.tif) "
                        "or folder of images")
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
    frames.add_argument("--frame-range", default=None, dest="frame_range", metavar="FIRST-LAST",
                        help="frames to read, inclusive: frame numbers of an image sequence (1001-1100), "
                        "frame indices of a video (0-99)")
    frames.add_argument("--split-at-cuts", action="store_true",
                        help="find the cuts (PySceneDetect, rollingdepth[farm]) and process each "
                        "segment as its own shot: NAME_<first>-<last>_depth..., original frame numbers")

    plates = parser.add_argument_group("image sequences (plates) and colour")
    plates.add_argument("--colour-space", "--colorspace", "--color-space", default="auto",
                        dest="colour_space", metavar="NAME",
                        help="colour space of the frames (default auto: half/float EXR = scene-linear "
                        "Rec.709 through the standard view, 8/16-bit files = sRGB as stored; "
                        "raw = no conversion; e.g. ACEScg, ACES2065-1, ACEScct, 'ARRI LogC3 (EI800)')")
    plates.add_argument("--ocio-config", default=None, metavar="CONFIG",
                        help="OpenColorIO config file or ocio:// URI (default: $OCIO, else the built-in "
                        "ACES studio config)")
    plates.add_argument("--view", default=None, help="view transform for scene-referred frames "
                        "(default: the config's; studio config: 'ACES 2.0 - SDR 100 nits (Rec.709)')")
    plates.add_argument("--layer", default=None, help="EXR layer to read (default: the RGB channels)")
    plates.add_argument("--window", choices=WINDOWS, default="display",
                        help="display: the frame (default); data: the stored pixels (keeps overscan)")

    depth = parser.add_argument_group("depth conversion (what the written values are)")
    depth.add_argument("--depth", choices=CONVERSION_MODES, default="inverse_depth", dest="depth_conversion",
                       help="inverse_depth (default: the model's affine-invariant inverse depth), "
                       "normalized (0..1, near = 1), planes (linear Z between --near and --far), fit (linear "
                       "Z fitted to --fit-points / --fit-reference)")
    depth.add_argument("--near", type=float, default=PLANES_DEFAULTS[0],
                       help="planes: distance of the near percentile (1)")
    depth.add_argument("--far", type=float, default=PLANES_DEFAULTS[1],
                       help="planes: distance of the far percentile (100)")
    depth.add_argument("--units", default="m", help="units of Z, a label (default m)")
    depth.add_argument("--percentiles", default=",".join(f"{p:g}" for p in DEFAULT_PERCENTILES),
                       metavar="LOW,HIGH", help="clip-wide percentiles of normalized/planes (default 1,99)")
    depth.add_argument("--fit-points", default=None, metavar="FILE_OR_TEXT",
                       help="fit: known distances, 'frame x y Z' per line (a file, or the text itself; "
                       "frame = frame number, x/y = pixel of the input)")
    depth.add_argument("--points-origin", choices=ORIGINS, default="top-left",
                       help="where row 0 of --fit-points is: top-left (default) or bottom-left (Nuke)")
    depth.add_argument("--fit-reference", type=Path, default=None, metavar="DEPTH",
                       help="fit: metric depth maps (Z): an EXR sequence or folder (channel depth.Z, Z, Y "
                       "or R), or a .npy/.npz array N H W; sequences are matched by frame number")
    depth.add_argument("--max-depth", type=float, default=None,
                       help="fit: clamp farther pixels (and any the fit puts beyond infinity) to this")

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
    outputs.add_argument("--fps", "--output-fps", type=frame_rate_option, default=None, dest="fps",
                         help="frame rate of the outputs (default or 0: the input's; image sequences "
                         "without one in their headers: 24); 23.976 or 24000/1001 is kept exactly")
    outputs.add_argument("--restore-resolution", "--restore-res", action=OptionalFlag, default=None,
                         dest="restore_resolution",
                         help="write depth at the input resolution (default for image sequences, at "
                         "their pixel aspect) instead of the processing one (default for videos)")
    outputs.add_argument("--exr-channel", default=DEFAULT_CHANNEL,
                         help="EXR channel of the depth: depth.Z (default; Nuke, Houdini) or Z")
    outputs.add_argument("--exr-pixel-type", choices=PIXEL_TYPES, default="float",
                         help="EXR pixel type (default float; half clamps beyond 65504)")
    outputs.add_argument("--exr-compression", choices=COMPRESSIONS, default="zip",
                         help="EXR compression, lossless only (default zip)")
    outputs.add_argument("--spread", action="store_true",
                         help="also write the spread of the predictions (EXR channel <layer>.spread, NPZ "
                         "key spread): per pixel, how much the snippets disagree (same units as the depth)")
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
    fps = getattr(args, "fps", None)
    values = check_settings({
        "outputs": args.outputs, "colormap": list(getattr(args, "colormaps", ())) or [args.colormap],
        "fps": float(fps) if fps is not None else None,
        "exr_channel": getattr(args, "exr_channel", DEFAULT_CHANNEL),
        "exr_pixel_type": getattr(args, "exr_pixel_type", "float"),
        "exr_compression": getattr(args, "exr_compression", "zip"), "spread": getattr(args, "spread", False),
    }, CLI_WORDING)
    exr = ExrOptions(values["exr_channel"], values["exr_pixel_type"], values["exr_compression"])
    exr = exr.with_spread(values["spread"])
    exr.check()
    return OutputOptions(kinds=values["outputs"], colormaps=values["colormap"], fps=fps, exr=exr)


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
    conversion: DepthConversion = DepthConversion()


def depth_conversion(args: argparse.Namespace) -> DepthConversion:
    """The depth conversion of ``--depth``, ``--near``, ``--far``, ``--units``, ``--percentiles``,
    ``--max-depth`` (checked; the fit's references are checked with the input, `conversion_job`)."""
    text = str(getattr(args, "percentiles", "1,99"))
    try:
        low, high = (float(v) for v in text.split(","))
    except ValueError:
        raise InvalidSettings(f"--percentiles must be LOW,HIGH such as 1,99; got {text!r}.") from None
    values = check_settings({
        "depth_conversion": getattr(args, "depth_conversion", "inverse_depth"), "near": args.near,
        "far": args.far, "units": args.units, "low_percentile": low, "high_percentile": high,
        "max_depth": args.max_depth,
    }, CLI_WORDING)
    conversion = DepthConversion(values["depth_conversion"], values["near"], values["far"], low, high,
                                 values["units"], values["max_depth"])
    conversion.check()
    if conversion.mode != "planes" and (conversion.near, conversion.far) != PLANES_DEFAULTS:
        raise InvalidSettings("--near and --far are only used with --depth planes.")
    fit = conversion.mode == "fit"
    given = args.fit_points is not None or args.fit_reference is not None
    if fit and not given:
        raise InvalidSettings("--depth fit needs known depth: --fit-points and/or --fit-reference.")
    if given and not fit:
        raise InvalidSettings("--fit-points and --fit-reference are only used with --depth fit.")
    if fit and getattr(args, "split_at_cuts", False):
        raise InvalidSettings(
            "--depth fit with --split-at-cuts: each shot needs its own reference; fit the shots one by one."
        )
    return conversion


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
        "device": args.device, "restore_size": bool(args.restore_resolution),
        "frame_range": getattr(args, "frame_range", None), "window": getattr(args, "window", "display"),
    }, CLI_WORDING)
    if getattr(args, "frame_range", None) and (args.start_frame or args.frame_count):
        raise InvalidSettings("Give either --frame-range or --start-frame / --frame-count, not both.")
    conversion = depth_conversion(args)
    if args.coalign_iterations is not None:
        check_settings({"num_iterations": args.coalign_iterations}, CLI_WORDING)
    options = output_options(args)
    if args.split_at_cuts:
        check_cut_detection()
    device = values["device"] or default_device()
    dtype = args.dtype or preset_dtype(settings.dtype, device)  # a preset's fp16 is fp32 on a CPU
    return CheckedCommand(settings, options, torch.device(device), dtype, existing_policy(args), conversion)


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
    """NAME of the outputs: an image sequence's name (``plate`` for ``plate.####.exr``), the
    file's stem, or the folder's name."""
    if is_sequence_path(path) and not path.is_dir():
        from .io.sequences import pattern_from_text

        pattern = pattern_from_text(path)
        if pattern is not None:
            return pattern.name
    return path.stem if path.is_file() else path.name


def probe_input(path: Path, start: int, count: int) -> tuple[int, tuple[int, int], bool]:
    """`(frames, (H0, W0), frames held in memory)` of the input, without reading the clip.

    Raises:
        InvalidInput: the input does not exist, is not a video, or the frame range is empty.
    """
    opened = open_input(path, start, count, PRESETS["fast"], show=False)
    return opened.frames.num_frames, opened.input_size, False


def _colour_options(args: argparse.Namespace | None) -> dict:
    if args is None:
        return {}
    return {"colour_space": getattr(args, "colour_space", "auto"),
            "config": getattr(args, "ocio_config", None), "view": getattr(args, "view", None)}


def open_input(
    path: Path, start: int, count: int, settings: Preset, show: bool = True,
    args: argparse.Namespace | None = None,
) -> OpenedInput:
    """Open the input, lazily: frames are read batch by batch as the stages need them.

    Image sequences (a pattern, a folder, an image) are checked up front (every frame there,
    readable, one size; headers only) and colour-converted as they are read (``--colour-space``,
    OpenColorIO); videos are decoded and resized batch by batch. ``--frame-range`` picks frames
    by number (sequences) or index (videos); ``start``/``count`` then count from its first frame.
    """
    frame_range = getattr(args, "frame_range", None) if args is not None else None
    colour = _colour_options(args)
    if is_sequence_path(path):
        plate = ImageSequenceSource(
            path, frame_range, layer=getattr(args, "layer", None), window=getattr(args, "window", "display"),
            frame_rate=getattr(args, "fps", None), hooks=tqdm_hooks("scan", disable=not show), **colour,
        )
        frames = FrameRange(plate, start, count)
        clip = clip_info(frames)
        logger.info("Reading %d frames (%s, %dx%d) as they are needed.", frames.num_frames,
                    f"frames {clip.frame_numbers[0]}-{clip.frame_numbers[-1]} of {plate.sequence.name}",
                    plate.stored_size[1], plate.stored_size[0])
        return OpenedInput(frames, settings, frames.input_size, plate.frame_rate, start)
    if not path.exists():
        raise InvalidInput(
            f"Input {path} does not exist. Give a video file, an image sequence (plate.####.exr) or a folder."
        )
    if frame_range is not None:
        first, last = parse_frame_range(frame_range)
        start, count = first, last - first + 1
    # a video is decoded batch by batch as the stages need it, resized as it is decoded
    video = VideoFileSource(path)
    source = video
    if colour and colour["colour_space"].lower() not in ("auto", "raw"):
        source = ColourConvertedSource(video, resolve_colour(colour["colour_space"], False, colour["config"],
                                                             None, colour["view"]))
    frames = FrameRange(source, start, count)
    logger.info("Reading %d frames (%dx%d) from %s as they are needed.", frames.num_frames,
                frames.input_size[1], frames.input_size[0], path)
    return OpenedInput(frames, settings, frames.input_size, video.frame_rate, start)


@dataclass(frozen=True)
class ConversionJob:
    """The depth conversion of a run, with its references read and checked against the input.

    Attributes:
        conversion: the settings.
        points_text: known distances (``frame x y Z`` lines; "" for none).
        origin: where row 0 of the points is.
        reference: metric depth maps (read one at a time) or None.
        reference_frames: the clip frame index of each map.
    """

    conversion: DepthConversion
    points_text: str = ""
    origin: str = "top-left"
    reference: object | None = None
    reference_frames: list[int] | None = None


def conversion_job(
    args: argparse.Namespace, conversion: DepthConversion, opened: OpenedInput
) -> ConversionJob:
    """The references of ``--depth fit`` read and checked (frames, pixels) before the model loads.

    Raises:
        InvalidSettings: points that name frames outside the clip, pixels outside the picture,
            fewer than two, malformed lines.
        InvalidInput: reference depth that cannot be read or covers no frame of the clip.
    """
    if conversion.mode != "fit":
        return ConversionJob(conversion)
    clip = clip_info(opened.frames)
    numbers = clip.numbers_for(opened.frames.num_frames) if clip is not None else None
    grid = clip.stored_size if clip is not None and clip.stored_size else opened.input_size
    points_text = ""
    origin = getattr(args, "points_origin", "top-left")
    if args.fit_points is not None:
        given = str(args.fit_points)
        if Path(given).is_file():
            points_text = Path(given).read_text()
        elif not any(character.isspace() for character in given.strip()):  # one word: meant as a file
            raise InvalidSettings(f"--fit-points {given}: no such file (give a file, or the points "
                                  "themselves as 'frame x y Z' lines).")
        else:
            points_text = given
        parse_points(points_text, numbers, grid, origin)  # fails now, not after the run
    reference = frames = None
    if args.fit_reference is not None:
        maps = DepthMapFiles(args.fit_reference)
        indices, frames = maps.clip_frames(numbers)
        reference = maps.subset(indices)
    return ConversionJob(conversion, points_text, origin, reference, frames)


def run_metadata(args: argparse.Namespace, settings: Preset) -> dict:
    """What the EXR headers say about the run (besides what the values are)."""
    return {
        "preset": args.preset, "model": str(args.model), "seed": int(args.seed),
        "coalign_method": args.coalign_method, "processing_resolution": int(settings.processing_resolution),
        "refine_steps": int(settings.refine_steps), "software": f"rollingdepth {__version__}",
    }


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
    opened: OpenedInput | None = None, results: ResultSet | None = None, job: ConversionJob | None = None,
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
        job: the depth conversion with its references (default: from ``args``).
    """
    args = _normalized(args)
    settings = settings_from_args(args)
    options = output_options(args)
    name = name or input_name(args.input)
    if results is None:
        results = plan_outputs(out_dir, name, options, existing_policy(args), segments=args.split_at_cuts,
                               wording=CLI_WORDING)
    if opened is None:
        opened = open_input(args.input, args.start_frame, args.frame_count, settings, show, args)
    if job is None:
        job = conversion_job(args, depth_conversion(args), opened)
    restore = restore_resolution(args, opened)
    metadata = run_metadata(args, opened.settings)
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
                spread=options.exr.spread_channel is not None, wording=CLI_WORDING,
            )
            written = write_depth_clip(staging, clip_name, result.depth, job, options, restore, opened.fps,
                                       clip_first, frame_prefix or stem, metadata)
            clips.append(ClipOutputs(clip_name, clip_first, result.depth.num_frames, written, result.timings))
    return clips


def write_depth_clip(
    staging: Staging, clip_name: str, video: DepthVideo, job: ConversionJob, options: OutputOptions,
    restore: bool, fps: float, first_frame: int, frame_prefix: str, metadata: dict,
) -> dict[str, Path]:
    """Convert one clip's depth (``--depth``, references) and stage its files: what the command
    line writes for a clip, whoever computed the depth (`process_input`, the farm's ``--shard``).

    Args:
        staging: from ``results.write()`` (`io.result_set`).
        clip_name: NAME of its files.
        video: `N h w` inverse depth at processing size, its spread (or None) and its `clip`
            (frame numbers, plate size and pixel aspect; None for a bare tensor).
        job: the depth conversion with its references (`conversion_job`).
        options: what to write (`output_options`).
        restore: at the plate's / input's stored size (`restore_resolution`), else as it is.
        fps: the input's frame rate (``options.fps`` wins).
        first_frame: number of the first frame in file names when ``video.clip`` has none.
        frame_prefix: prefix of per-frame file names.
        metadata: more EXR header attributes (`run_metadata`).

    Returns:
        Output kind -> the path it will have once the set is in place.
    """
    depth, report = convert_clip(
        video, job.conversion, "plate" if restore else "depth", job.points_text, job.origin,
        job.reference, job.reference_frames,
    )
    logger.info("%s: %s", clip_name, report.replace("\n", "; "))
    return stage_clip(staging, clip_name, depth, options, fps, first_frame, frame_prefix, metadata)


def restore_resolution(args: argparse.Namespace, opened: OpenedInput) -> bool:
    """``--restore-resolution``, or by default: on for image sequences (outputs at the plate's
    size and pixel aspect), off for videos (the processing size)."""
    chosen = getattr(args, "restore_resolution", None)
    if chosen is not None:
        return bool(chosen)
    clip = clip_info(opened.frames) if not isinstance(opened.frames, Tensor) else None
    return clip is not None and clip.display_window is not None


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
    opened = open_input(args.input, args.start_frame, args.frame_count, command.settings, show, args)
    job = conversion_job(args, command.conversion, opened)
    num_frames, input_size = opened.frames.num_frames, opened.input_size
    out_dir = check_output_folder(args.output_dir)
    results = plan_outputs(out_dir, input_name(args.input), command.options, command.existing,
                           segments=args.split_at_cuts, wording=CLI_WORDING)
    check_run_memory(
        command.settings, num_frames, input_size, command.device,
        resolve_dtype(command.dtype, command.device, warn=False),
        architecture_from_folder(args.model), args.snippets_per_batch, args.vae_batch_size,
        args.storage_dir, restore_resolution(args, opened), frames_in_memory=False, wording=CLI_WORDING,
        spread=command.options.exr.spread_channel is not None,
    )
    model = load_model(args.model, device=command.device, dtype=command.dtype, local_dir=args.model_dir,
                       allow_download=not args.offline, show_progress=show, wording=CLI_WORDING)
    clips = process_input(model, args, out_dir, show=show, opened=opened, results=results, job=job)
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
