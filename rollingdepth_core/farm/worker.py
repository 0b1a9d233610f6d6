"""A farm worker: loads the model once, keeps it, and processes whole shots with the
single-clip command line's own code (`cli.process_input`), into a temporary folder.

Plain Python (no Ray here): the driver wraps `ShotWorker` as a Ray actor, one per GPU (or
per CPU slot). A shot that fails (corrupt file, bad frame range, NaN...) is reported with
its message and does not stop the worker.
"""

from __future__ import annotations

import logging
import os
import socket
import time
import traceback
from dataclasses import dataclass
from pathlib import Path

import torch

from ..cli import process_input
from ..model.checkpoint import load_model
from ..presets import Preset
from ..runtime.devices import default_device
from ..types import DepthModel
from .shot_folders import write_claim
from .shots import Shot

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class ShotJob:
    """One attempt at a shot.

    Attributes:
        shot: the shot.
        settings_hash: its settings hash (for the manifest).
        attempt: 1 for the first try, 2 after a worker died, ...
        folder: the attempt's temporary output folder.
        claim: the attempt's claim file (who runs it).
    """

    shot: Shot
    settings_hash: str
    attempt: int
    folder: Path
    claim: Path


@dataclass(frozen=True)
class ShotResult:
    """What a worker reports for one attempt.

    Attributes:
        name: the shot's NAME.
        status: "done" or "failed".
        error: the message, when failed.
        frames: frames written.
        seconds: wall time of the attempt on the worker.
        worker: the worker's label (``w<index> <host>:<pid> <device>``).
    """

    name: str
    status: str
    error: str | None
    frames: int
    seconds: float
    worker: str


@dataclass(frozen=True)
class ModelSpec:
    """Where the model comes from (the run's options, the same for every shot)."""

    source: str
    local_dir: Path | None = None
    allow_download: bool = True
    device: str | None = None


class ShotWorker:
    """Processes shots one at a time with a model it loads once and keeps.

    Args:
        index: the worker's number in the run (for its label).
        model: where the model comes from.
        num_threads: torch CPU threads (the CPUs Ray gave this worker).
        verbose: log every stage (otherwise warnings only).
    """

    def __init__(self, index: int, model: ModelSpec, num_threads: int | None = None, verbose: bool = False):
        self.index = index
        self.spec = model
        self.device = torch.device(model.device) if model.device else default_device()
        if num_threads:
            torch.set_num_threads(int(num_threads))
        logging.getLogger("rollingdepth_core").setLevel(logging.DEBUG if verbose else logging.WARNING)
        if not verbose:  # the driver shows progress; loading bars from every worker are noise
            import diffusers.utils.logging
            import transformers.utils.logging

            diffusers.utils.logging.disable_progress_bar()
            transformers.utils.logging.disable_progress_bar()
        self.models: dict[str, DepthModel] = {}  # by dtype setting: most runs load one

    @property
    def label(self) -> str:
        return f"w{self.index} {socket.gethostname()}:{os.getpid()} {self.device}"

    def describe(self) -> dict:
        """Who this worker is: label, host, pid, device (also a readiness probe)."""
        return {"label": self.label, "host": socket.gethostname(), "pid": os.getpid(),
                "device": str(self.device)}

    def model_for(self, settings: Preset) -> DepthModel:
        """The model in the shot's dtype, loaded on first use and kept."""
        if settings.dtype not in self.models:
            self.models[settings.dtype] = load_model(
                self.spec.source, device=self.device, dtype=settings.dtype, local_dir=self.spec.local_dir,
                allow_download=self.spec.allow_download,
            )
        return self.models[settings.dtype]

    def process(self, job: ShotJob) -> ShotResult:
        """Run one attempt at a shot into ``job.folder``; never raises for a bad shot."""
        from ..cli import settings_from_args

        tic = time.perf_counter()
        write_claim(job.claim, {**self.describe(), "shot": job.shot.name, "attempt": job.attempt})
        args = job.shot.args()
        try:
            model = self.model_for(settings_from_args(args))
            clips = process_input(model, args, job.folder, name=job.shot.name,
                                  first_frame=job.shot.first_frame, frame_prefix=job.shot.frame_prefix,
                                  show=False)
        except Exception as error:  # a bad shot fails alone: the farm reports it and goes on
            logger.debug("Shot %s failed:\n%s", job.shot.name, traceback.format_exc())
            message = f"{type(error).__name__}: {error}"
            return ShotResult(job.shot.name, "failed", message, 0, time.perf_counter() - tic, self.label)
        frames = sum(clip.num_frames for clip in clips)
        return ShotResult(job.shot.name, "done", None, frames, time.perf_counter() - tic, self.label)
