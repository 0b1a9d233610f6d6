"""Command line: video file or image folder in, depth files out.

    rollingdepth INPUT -o OUTDIR [--preset fast|fast1024|full|paper] [options]

Writes ``<name>_depth.npz`` (float32 inverse depth), ``<name>_depth_png16/`` (16-bit PNG
sequence, one range for the clip), ``<name>_depth_preview.mp4`` (colour-mapped) and, on
request, ``<name>_depth_exr/`` (float32 EXR).
"""

from __future__ import annotations

import argparse
import dataclasses
import logging
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from torch import Tensor

from . import __version__
from .coalign.methods import DEFAULT_METHOD, available_methods
from .coalign.problem import CoalignSettings
from .errors import InvalidSettings, RollingDepthError
from .hooks import tqdm_hooks
from .io.colormaps import COLORMAPS, colorize_depth
from .io.cuts import check_cut_detection, detect_cuts
from .io.export import save_exr, save_npz, save_png16, save_video
from .io.frames import resize_depth
from .io.sources import FrameRange, FrameSource, TensorSource, VideoFileSource
from .io.video_files import read_image_folder
from .model.checkpoint import DEFAULT_REPO_ID, load_model
from .pipeline import estimate_depth
from .presets import PRESETS, Preset, parse_dilations
from .runtime.batch_sizes import AUTO
from .runtime.devices import default_device
from .types import DepthModel

logger = logging.getLogger("rollingdepth")

OUTPUTS = ("npz", "png16", "video", "exr")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="rollingdepth",
        description="Temporally consistent video depth with RollingDepth "
        "(inverse depth, larger = nearer).",
    )
    parser.add_argument("input", type=Path, help="video file or folder of images (sorted by name)")
    parser.add_argument("-o", "--output-dir", type=Path, default=Path("outputs"),
                        help="folder for the results (default: ./outputs)")
    add_clip_options(parser)
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    return parser


def add_clip_options(parser: argparse.ArgumentParser) -> None:
    """The options of one clip's run (settings, model, outputs, logging); the farm uses them too."""
    parser.add_argument("-p", "--preset", choices=sorted(PRESETS), default="fast",
                        help="settings preset (default: fast); the options below override it")
    parser.add_argument("-m", "--model", default=DEFAULT_REPO_ID,
                        help=f"checkpoint folder or Hugging Face repo id (default: {DEFAULT_REPO_ID})")
    parser.add_argument("--model-dir", type=Path, default=None,
                        help="download the checkpoint into this folder instead of the Hugging Face cache")
    parser.add_argument("--offline", action="store_true", help="never download; use local files only")
    parser.add_argument("-r", "--resolution", "--processing-resolution", type=int, default=None,
                        dest="resolution", help="longest side to process at; 0 keeps the input size")
    parser.add_argument("-d", "--dilations", default=None,
                        help="snippet dilations, e.g. '1,10,25' (must include 1)")
    parser.add_argument("--snippet-length", type=int, default=None, help="frames per snippet (3)")
    parser.add_argument("--cap-dilation", action=argparse.BooleanOptionalAction, default=None,
                        help="shrink dilations that do not fit short clips")
    parser.add_argument("--refine-steps", type=int, default=None, help="refinement steps (0: off)")
    parser.add_argument("--refine-start-dilation", type=int, default=None,
                        help="dilation of the first refinement step (6)")
    parser.add_argument("--dtype", choices=("auto", "fp32", "fp16", "bf16"), default=None,
                        help="compute precision (default: the preset's)")
    parser.add_argument("--device", default=None, help="cuda, cuda:1, mps or cpu (default: best available)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the shared noise (default 0)")
    parser.add_argument("--start-frame", type=int, default=0, help="first frame to read")
    parser.add_argument("--frame-count", type=int, default=0, help="frames to read (0: all)")
    parser.add_argument("--split-at-cuts", action="store_true",
                        help="find the cuts (PySceneDetect, rollingdepth[farm]) and process each "
                        "segment as its own shot: NAME_<first>-<last>_depth..., original frame numbers")
    parser.add_argument("--snippets-per-batch", type=batch_size, default=AUTO,
                        help="snippets per UNet call, or 'auto': what fits in free GPU memory (8 on a CPU)")
    parser.add_argument("--vae-batch-size", type=batch_size, default=AUTO,
                        help="frames per VAE call, or 'auto' (4 on a CPU)")
    parser.add_argument("--storage-dir", type=Path, default=None,
                        help="keep snippet depths in temporary files here (flat RAM on very long clips)")
    parser.add_argument("--coalign-method", choices=available_methods(), default=DEFAULT_METHOD,
                        help=f"co-alignment solver (default: {DEFAULT_METHOD}; 'reference' is the authors' "
                        "Adam loop, 'robust' a drift-resistant objective)")
    parser.add_argument("--coalign-iterations", type=int, default=None,
                        help="iterations of the co-alignment solver (reference: 2000)")
    parser.add_argument("--restore-resolution", action="store_true",
                        help="write depth at the input resolution instead of the processing one")
    parser.add_argument("--outputs", default="npz,png16,video",
                        help=f"comma-separated subset of {','.join(OUTPUTS)} (default: npz,png16,video)")
    parser.add_argument("--colormap", choices=COLORMAPS, default="Spectral_r",
                        help="colour map of the preview video")
    parser.add_argument("--fps", type=float, default=None,
                        help="frame rate of the preview (default: the input's)")
    parser.add_argument("-q", "--quiet", action="store_true", help="no progress bars, warnings only")
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")


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


def settings_from_args(args: argparse.Namespace):
    """The preset named by ``--preset`` with the command line's overrides applied."""
    changes = {
        "processing_resolution": args.resolution,
        "dilations": parse_dilations(args.dilations) if args.dilations is not None else None,
        "snippet_length": args.snippet_length,
        "cap_dilation": args.cap_dilation,
        "refine_steps": args.refine_steps,
        "refine_start_dilation": args.refine_start_dilation,
        "dtype": args.dtype,
    }
    return dataclasses.replace(PRESETS[args.preset], **{k: v for k, v in changes.items() if v is not None})


def parse_outputs(text: str) -> tuple[str, ...]:
    chosen = tuple(p.strip() for p in text.split(",") if p.strip())
    unknown = [p for p in chosen if p not in OUTPUTS]
    if unknown or not chosen:
        raise InvalidSettings(
            f"--outputs must be a comma-separated subset of {','.join(OUTPUTS)}; got {text!r}."
        )
    return chosen


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


def segment_name(name: str, first: int, last: int) -> str:
    """NAME of a segment between cuts: ``NAME_<first>-<last>`` (frame numbers of the input)."""
    return f"{name}_{first:05d}-{last:05d}"


def write_outputs(
    out_dir: Path, name: str, depth: Tensor, outputs: tuple[str, ...], colormap: str, fps: float,
    first_frame: int = 0, frame_prefix: str | None = None,
) -> dict[str, Path]:
    """Write one clip's depth files, named as the command line documents.

    Args:
        out_dir: the output folder.
        name: NAME in ``NAME_depth.npz`` and the other files.
        depth: `N H W` float32 inverse depth.
        outputs: any of `OUTPUTS`.
        colormap: colour map of the preview.
        fps: frame rate of the preview.
        first_frame: number of the first frame in per-frame file names (and in the NPZ's
            ``frame_numbers``).
        frame_prefix: prefix of per-frame file names (default: ``name``; segments between
            cuts use the input's name, so frames read ``NAME_<frame number>``).

    Returns:
        Output kind -> the file or folder written.
    """
    written: dict[str, Path] = {}
    frame_prefix = frame_prefix or name
    numbers = np.arange(first_frame, first_frame + len(depth), dtype=np.int64)
    if "npz" in outputs:
        written["npz"] = save_npz(out_dir / f"{name}_depth.npz", depth, frame_numbers=numbers)
    if "png16" in outputs:
        written["png16"] = save_png16(out_dir / f"{name}_depth_png16", depth, prefix=frame_prefix,
                                      first_frame=first_frame)[0].parent
    if "exr" in outputs:
        written["exr"] = save_exr(out_dir / f"{name}_depth_exr", depth, prefix=frame_prefix,
                                  first_frame=first_frame)[0].parent
    if "video" in outputs:
        preview = colorize_depth(depth, colormap, low_percentile=2, high_percentile=98)
        written["video"] = save_video(out_dir / f"{name}_depth_preview.mp4", preview, fps)
    return written


def process_input(
    model: DepthModel, args: argparse.Namespace, out_dir: Path, name: str | None = None,
    first_frame: int | None = None, frame_prefix: str | None = None, show: bool = True,
    opened: OpenedInput | None = None,
) -> list[ClipOutputs]:
    """Depth of ``args.input`` (frame range, cuts and settings from ``args``) with a loaded model,
    written to ``out_dir``: one `ClipOutputs` per segment (one without ``--split-at-cuts``).

    Args:
        model: the loaded checkpoint (kept by callers that process many clips).
        args: the parsed options (`add_clip_options`).
        out_dir: where the files go.
        name: NAME of the outputs (default: the input's).
        first_frame: number of the first frame in file names (default: 0, or the frame
            index in the input for segments between cuts).
        frame_prefix: prefix of per-frame file names (default: the input's name).
        show: draw progress bars.
        opened: the input, when the caller already opened it (`open_input`).
    """
    settings = settings_from_args(args)
    outputs = parse_outputs(args.outputs)
    if opened is None:
        opened = open_input(args.input, args.start_frame, args.frame_count, settings, show)
    name = name or input_name(args.input)
    total = opened.frames.num_frames if not isinstance(opened.frames, Tensor) else len(opened.frames)
    segments = [(0, total)]
    if args.split_at_cuts:
        segments = detect_cuts(opened.frames if not isinstance(opened.frames, Tensor)
                               else TensorSource(opened.frames),
                               hooks=tqdm_hooks("cuts", disable=not show))
    coalign_kwargs = {"coalign_method": args.coalign_method}
    if args.coalign_iterations is not None:
        coalign_kwargs["coalign_settings"] = CoalignSettings(num_iterations=args.coalign_iterations)
    results = []
    for start, stop in segments:
        if len(segments) > 1:
            number = opened.first_frame + start
            clip_name, clip_first = segment_name(name, number, opened.first_frame + stop - 1), number
        else:
            clip_name, clip_first = name, 0 if first_frame is None else first_frame
        result = estimate_depth(
            model, frame_slice(opened.frames, start, stop), opened.settings, seed=args.seed,
            snippets_per_batch=args.snippets_per_batch, vae_batch_size=args.vae_batch_size,
            storage_dir=args.storage_dir,
            hooks_for=lambda stage: tqdm_hooks(stage, disable=not show), **coalign_kwargs,
        )
        depth = result.depth.inverse_depth
        if args.restore_resolution and tuple(depth.shape[-2:]) != tuple(opened.input_size):
            depth = resize_depth(depth, opened.input_size)
        written = write_outputs(out_dir, clip_name, depth, outputs, args.colormap, args.fps or opened.fps,
                                clip_first, frame_prefix=frame_prefix or name)
        results.append(ClipOutputs(clip_name, clip_first, len(depth), written, result.timings))
    return results


def run(args: argparse.Namespace) -> list[ClipOutputs]:
    """Do what the parsed command line asks; returns what each clip (or segment) wrote."""
    settings = settings_from_args(args)  # every setting is checked before the model loads
    parse_outputs(args.outputs)
    if args.split_at_cuts:
        check_cut_detection()
    device = args.device or default_device()
    tic = time.perf_counter()
    opened = open_input(args.input, args.start_frame, args.frame_count, settings, not args.quiet)
    model = load_model(args.model, device=device, dtype=settings.dtype, local_dir=args.model_dir,
                       allow_download=not args.offline)
    results = process_input(model, args, args.output_dir, show=not args.quiet, opened=opened)
    for clip in results:
        timing = ", ".join(f"{k} {v:.1f} s" for k, v in clip.timings.items())
        logger.info("%s: %d frames (%s). Wrote %s.", clip.name, clip.num_frames, timing,
                    ", ".join(str(p) for p in clip.written.values()))
    logger.info("Done in %.1f s.", time.perf_counter() - tic)
    return results


def main(argv: list[str] | None = None) -> int:
    """Entry point of ``rollingdepth`` and ``python -m rollingdepth_core``; returns the exit code."""
    args = build_parser().parse_args(argv)
    level = logging.DEBUG if args.verbose else logging.WARNING if args.quiet else logging.INFO
    logging.basicConfig(level=level, format="%(levelname)s %(name)s: %(message)s", stream=sys.stderr)
    try:
        run(args)
    except RollingDepthError as error:
        logger.error("%s", error)
        return 2
    except KeyboardInterrupt:
        logger.error("Cancelled.")
        return 130
    return 0
