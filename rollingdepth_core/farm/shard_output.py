"""The files of a sharded shot, written by the single-clip command line's own code.

The driver gathers a shot's depth from the workers (`farm.shard`); what it writes must not
differ from what ``rollingdepth`` writes for the same clip: depth conversion (``--depth``,
``--near/--far``, fit references), plate frame numbers, plate size and pixel aspect, EXR
channel and run metadata, the spread channel. So the shot's input is opened here the way
`cli.process_input` opens it (lazily: headers only, no frame decoded), and the depth goes
through `cli.write_depth_clip`, the function `process_input` writes with.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from torch import Tensor

from ..cli import (
    CLI_WORDING,
    conversion_job,
    depth_conversion,
    open_input,
    output_options,
    restore_resolution,
    run_metadata,
    settings_from_args,
    write_depth_clip,
)
from ..io.outputs import plan_outputs
from ..io.sources import clip_info
from ..types import DepthVideo
from .shots import Shot


class ShardedOutput:
    """One shot's outputs as the command line writes them, for depth computed elsewhere.

    Opening checks the input and the depth conversion's references (`conversion_job`) before
    any work, as the command line does.

    Args:
        shot: the shot (its name, first frame number and per-frame prefix).
        args: its parsed, normalised options (`Shot.args`).

    Attributes:
        spread: the outputs need the spread of the co-aligned predictions (``--spread``).
    """

    def __init__(self, shot: Shot, args: argparse.Namespace):
        self.shot, self.args = shot, args
        settings = settings_from_args(args)
        self.opened = open_input(args.input, args.start_frame, args.frame_count, settings, False, args)
        self.job = conversion_job(args, depth_conversion(args), self.opened)
        self.options = output_options(args)
        self.spread = self.options.exr.spread_channel is not None

    def write(self, folder: Path, depth: Tensor, spread: Tensor | None = None) -> dict[str, Path]:
        """Write the shot's files into ``folder`` (a fresh attempt folder), atomically.

        Args:
            folder: where the files go.
            depth: `N h w` float32 inverse depth at processing size.
            spread: `N h w` float32 spread in ``depth``'s units, or None.

        Returns:
            Output kind -> the path written.
        """
        video = DepthVideo(inverse_depth=depth, spread=spread, clip=clip_info(self.opened.frames))
        results = plan_outputs(folder, self.shot.name, self.options, "refuse", wording=CLI_WORDING)
        first = 0 if self.shot.first_frame is None else self.shot.first_frame
        with results.write() as staging:
            return write_depth_clip(
                staging, results.stem, video, self.job, self.options,
                restore_resolution(self.args, self.opened), self.opened.fps, first,
                self.shot.frame_prefix or results.stem, run_metadata(self.args, self.opened.settings),
            )
