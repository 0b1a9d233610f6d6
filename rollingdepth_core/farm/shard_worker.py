"""The worker's side of one long shot over many workers (``--shard``): each call computes one
part of a stage (a range of frames or of snippets) with the model the worker keeps, using the
stages' own functions; the driver (`farm.shard`) splits, gathers and co-aligns.

Plain Python (no Ray here), like `ShotWorker`, which it extends.
"""

from __future__ import annotations

import argparse
from dataclasses import dataclass, replace

import torch
from torch import Tensor

from ..cli import open_input, settings_from_args
from ..io.sources import FrameRange, as_source
from ..model.vae_batches import decode_depth_to_host
from ..runtime.batch_loop import ShrinkingBatch
from ..runtime.batch_sizes import resolve_run_batches
from ..runtime.storage import DiskTensor
from ..stages.denoise import check_finite_depth, denoise_snippets, storage_dtype_for
from ..stages.encode import encode_frames
from ..stages.refine import (
    add_refine_noise,
    encode_depth_latents,
    refine_schedule,
    refine_step_sums,
    refine_timesteps,
)
from ..types import EncodedFrames, SnippetPlan
from .worker import ShotWorker

# A part of the snippets: (group index, first snippet, stop) in the plan's groups.
Piece = tuple[int, int, int]


@dataclass(frozen=True)
class StoreSpec:
    """A snippet-depth file on shared storage (``--storage-dir``): `s n H W`, in the dtype the
    snippet depths are kept in (fp16 unless the model runs in fp32)."""

    path: str
    shape: tuple[int, ...]
    dtype: str = "float16"


class ShardWorker(ShotWorker):
    """A `ShotWorker` that can also compute parts of one shot's stages."""

    def open_shot(self, options: dict) -> dict:
        """Open a shot for the calls that follow (kept until the next `open_shot`).

        Returns:
            ``num_frames``, ``input_size``, ``fps`` of the clip, and ``store_dtype``, the
            dtype snippet depths are kept in.
        """
        args = argparse.Namespace(**options)
        settings = settings_from_args(args)
        self.model = self.model_for(settings)
        opened = open_input(args.input, args.start_frame, args.frame_count, settings, show=False, args=args)
        self.source = as_source(opened.frames)
        self.settings = opened.settings
        n = min(settings.snippet_length, self.source.num_frames)
        self.batches = resolve_run_batches(
            self.model, self.source.input_size, self.settings.processing_resolution, n,
            args.snippets_per_batch, args.vae_batch_size,
        )
        return {"num_frames": self.source.num_frames, "input_size": tuple(opened.input_size),
                "fps": opened.fps, "store_dtype": str(storage_dtype_for(self.model.dtype)).split(".")[-1]}

    def encode(self, start: int, stop: int) -> EncodedFrames:
        """RGB latents of frames `start .. stop - 1` (`encode_frames` on that range)."""
        return encode_frames(self.model, FrameRange(self.source, start, stop - start),
                             self.settings.processing_resolution, self.batches)

    def denoise(
        self, encoded: EncodedFrames, noise: Tensor, plan: SnippetPlan, pieces: list[Piece],
        stores: list[StoreSpec] | None = None,
    ) -> list[Tensor] | None:
        """Depths of the snippets in ``pieces`` (`denoise_snippets` on those snippets only).

        Returns:
            One `s n H W` tensor per piece, or None when they were written into ``stores``.
        """
        groups = tuple(replace(plan.groups[g], indices=plan.groups[g].indices[a:b]) for g, a, b in pieces)
        part = SnippetPlan(plan.num_frames, plan.snippet_length, groups)
        depths = denoise_snippets(self.model, encoded, part, noise, self.batches).depths
        if stores is None:
            return list(depths)
        for (g, a, b), depth in zip(pieces, depths, strict=True):
            spec = stores[g]
            DiskTensor(spec.path, spec.shape, getattr(torch, spec.dtype))[a:b] = depth
        return None

    def refine_schedule(self, num_frames: int) -> tuple[list[int], list[Tensor]]:
        """Each refinement step's timestep and snippets (`stages.refine.refine_schedule`)."""
        s = self.settings
        return refine_schedule(self.model.make_scheduler(), num_frames, s.refine_steps,
                               s.refine_start_dilation, s.refine_snippet_length, s.cap_dilation)

    def refine_start(self, normalized: Tensor, noise: Tensor, timestep: int) -> Tensor:
        """Noisy depth latents of some frames of the co-aligned video (`N H W` in -1..1)."""
        latents = encode_depth_latents(self.model, normalized, ShrinkingBatch(self.batches.vae))
        return add_refine_noise(self.model, self.model.make_scheduler(), latents, noise, timestep,
                                self.batches.snippets * 3)

    def refine_step(
        self, encoded: EncodedFrames, latents: Tensor, indices: Tensor, timestep: int, num_steps: int
    ) -> tuple[int, Tensor, Tensor]:
        """Per-frame sums and counts of one step over the snippets ``indices`` (`s n`), for
        the frames they touch only: `(first frame, sums b 4 h w, counts b)`."""
        scheduler = self.model.make_scheduler()
        refine_timesteps(scheduler, num_steps)  # DDIM's step reads the schedule's spacing
        summed, count = refine_step_sums(self.model, scheduler, encoded.latents, latents, indices, timestep,
                                         self.batches.snippets)
        lo, hi = int(indices.min()), int(indices.max()) + 1
        return lo, summed[lo:hi].clone(), count[lo:hi].clone()

    def decode(self, latents: Tensor, size: tuple[int, int]) -> Tensor:
        """Depth `b H W` float32 of refined latents `b 4 h w`."""
        depth = decode_depth_to_host(self.model, latents, size, ShrinkingBatch(self.batches.vae),
                                     torch.float32)
        check_finite_depth(depth, None, "refined depth", self.model.dtype)
        return depth

