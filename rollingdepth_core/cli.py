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
from pathlib import Path

from . import __version__
from .coalign.methods import DEFAULT_METHOD, available_methods
from .coalign.problem import CoalignSettings
from .errors import InvalidSettings, RollingDepthError
from .hooks import tqdm_hooks
from .io.colormaps import COLORMAPS, colorize_depth
from .io.export import save_exr, save_npz, save_png16, save_video
from .io.frames import resize_depth
from .io.sources import FrameRange, VideoFileSource
from .io.video_files import read_image_folder
from .model.checkpoint import DEFAULT_REPO_ID, load_model
from .pipeline import estimate_depth
from .presets import PRESETS, parse_dilations
from .runtime.batch_sizes import AUTO
from .runtime.devices import default_device
from .types import DEFAULT_SNIPPETS_PER_BATCH, DEFAULT_VAE_BATCH_SIZE

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
    parser.add_argument("--snippets-per-batch", type=batch_size, default=AUTO,
                        help="snippets per UNet call, or 'auto': what fits in free GPU memory "
                        f"({DEFAULT_SNIPPETS_PER_BATCH} on a CPU)")
    parser.add_argument("--vae-batch-size", type=batch_size, default=AUTO,
                        help=f"frames per VAE call, or 'auto' ({DEFAULT_VAE_BATCH_SIZE} on a CPU)")
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
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    return parser


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


def run(args: argparse.Namespace) -> dict[str, Path]:
    """Do what the parsed command line asks; returns the written paths by kind."""
    settings = settings_from_args(args)
    outputs = parse_outputs(args.outputs)
    device = args.device or default_device()
    show = not args.quiet
    tic = time.perf_counter()
    if args.input.is_dir():  # images are read now, at processing size
        clip = read_image_folder(args.input, args.start_frame, args.frame_count,
                                 settings.processing_resolution, tqdm_hooks("read", disable=not show))
        frames, input_size, fps = clip.frames, clip.input_size, clip.fps
        settings = dataclasses.replace(settings, processing_resolution=0)
        logger.info("Read %d frames (%dx%d) from %s.", len(frames), input_size[1], input_size[0], args.input)
    else:  # a video is decoded batch by batch as the stages need it, resized as it is decoded
        frames = FrameRange(VideoFileSource(args.input), args.start_frame, args.frame_count)
        input_size, fps = frames.input_size, frames.fps
        logger.info("Reading %d frames (%dx%d) from %s as they are needed.", frames.num_frames,
                    input_size[1], input_size[0], args.input)
    model = load_model(args.model, device=device, dtype=settings.dtype, local_dir=args.model_dir,
                       allow_download=not args.offline)
    coalign_kwargs = {"coalign_method": args.coalign_method}
    if args.coalign_iterations is not None:
        coalign_kwargs["coalign_settings"] = CoalignSettings(num_iterations=args.coalign_iterations)
    result = estimate_depth(
        model, frames, settings, seed=args.seed,
        snippets_per_batch=args.snippets_per_batch, vae_batch_size=args.vae_batch_size,
        storage_dir=args.storage_dir,
        hooks_for=lambda stage: tqdm_hooks(stage, disable=not show), **coalign_kwargs,
    )
    depth = result.depth.inverse_depth
    if args.restore_resolution and tuple(depth.shape[-2:]) != tuple(input_size):
        depth = resize_depth(depth, input_size)
    name = args.input.stem if args.input.is_file() else args.input.name
    out = args.output_dir
    written: dict[str, Path] = {}
    if "npz" in outputs:
        written["npz"] = save_npz(out / f"{name}_depth.npz", depth)
    if "png16" in outputs:
        written["png16"] = save_png16(out / f"{name}_depth_png16", depth, prefix=name)[0].parent
    if "exr" in outputs:
        written["exr"] = save_exr(out / f"{name}_depth_exr", depth, prefix=name)[0].parent
    if "video" in outputs:
        preview = colorize_depth(depth, args.colormap, low_percentile=2, high_percentile=98)
        written["video"] = save_video(out / f"{name}_depth_preview.mp4", preview, args.fps or fps)
    timing = ", ".join(f"{k} {v:.1f} s" for k, v in result.timings.items())
    logger.info("Done in %.1f s (%s). Wrote %s.", time.perf_counter() - tic, timing,
                ", ".join(str(p) for p in written.values()))
    return written


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
