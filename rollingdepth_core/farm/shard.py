"""One long shot over many workers (``--shard``): the same result as one process, faster.

    encode        frames split in K ranges, one per worker      -> RGB latents gathered (N 4 h w)
    denoise       snippets split in K ranges (all dilations)    -> fp16 snippet depths gathered
    co-align      on the driver, once, for the whole shot (the fast solver, memory linear in N)
    refine        per step: that step's snippets split in K    -> per-frame sums and counts gathered
                  ranges, run from the previous step's latents    and averaged on the driver
    decode        frames split in K ranges                      -> depth gathered

Data moves through Ray's object store (what a worker returns, what the driver puts once for
all workers); with ``storage_dir`` (shared by every node) the snippet depths, the largest part,
are written by the workers straight into files there instead. Each part uses the stage's own
function, so the result equals `estimate_depth` with the same settings and seed (float
rounding: batches differ).
"""

from __future__ import annotations

import logging
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path

import torch
from torch import Tensor

from ..cli import coalign_settings, settings_from_args
from ..coalign.merge import normalize_depth, spread_in_units_of
from ..coalign.methods import coalign_depth
from ..model.noise import make_noise
from ..runtime.storage import DiskTensor
from ..stages.snippets import plan_snippets
from ..types import Alignment, EncodedFrames, SnippetDepths, SnippetPlan
from .shard_worker import Piece, StoreSpec

logger = logging.getLogger(__name__)


@dataclass
class ShardedDepth:
    """What a sharded run produced.

    Attributes:
        depth: `N H W` float32 inverse depth at processing size (refined when asked).
        spread: `N H W` float32 spread of the co-aligned predictions in ``depth``'s units
            (`coalign_depth`'s, carried through refinement as `estimate_depth` does), or None.
        alignment: the co-alignment's scales and shifts.
        input_size: `(H0, W0)` of the clip.
        fps: its frame rate.
        timings: seconds per stage (``coalign`` is the driver's share).
        gathered_bytes: bytes the workers sent back to the driver (or wrote to ``storage_dir``).
        sent_bytes: bytes the workers take from the driver (what the driver puts once for all
            workers counts once per worker: on a cluster each pulls its own copy).
    """

    depth: Tensor
    alignment: Alignment
    input_size: tuple[int, int]
    fps: float
    timings: dict[str, float] = field(default_factory=dict)
    gathered_bytes: int = 0
    sent_bytes: int = 0
    spread: Tensor | None = None


def split_range(total: int, parts: int) -> list[tuple[int, int]]:
    """`0 .. total` in at most ``parts`` contiguous, nearly equal, non-empty ranges."""
    parts = max(1, min(parts, total))
    bounds = [round(i * total / parts) for i in range(parts + 1)]
    return [(a, b) for a, b in zip(bounds[:-1], bounds[1:], strict=True) if b > a]


def split_snippets(plan: SnippetPlan, parts: int) -> list[list[Piece]]:
    """The plan's snippets (all dilations, in order) in at most ``parts`` nearly equal parts;
    each part is a list of `(group, first, stop)` pieces."""
    offsets = [0]
    for group in plan.groups:
        offsets.append(offsets[-1] + group.num_snippets)
    result = []
    for a, b in split_range(plan.num_snippets, parts):
        pieces = []
        for g in range(len(plan.groups)):
            lo, hi = max(a, offsets[g]), min(b, offsets[g + 1])
            if hi > lo:
                pieces.append((g, lo - offsets[g], hi - offsets[g]))
        result.append(pieces)
    return result


def _nbytes(*tensors: Tensor) -> int:
    return sum(t.numel() * t.element_size() for t in tensors)


def estimate_depth_sharded(
    ray, workers: list, options: dict, storage_dir: str | Path | None = None, spread: bool = False,
) -> ShardedDepth:
    """Depth of one shot with its stages split over ``workers`` (`ShardWorker` actors).

    Args:
        ray: the ``ray`` module (connected).
        workers: actor handles, each keeping the model.
        options: the shot's parsed, normalised options (`Shot.args`): input, frame range,
            settings, seed, co-alignment.
        storage_dir: a folder every worker and the driver can reach: the snippet depths go
            there instead of through the object store.
        spread: also the spread of the co-aligned predictions (on the driver, at the merge).

    Returns:
        `ShardedDepth`.
    """
    import argparse

    args = argparse.Namespace(**options)
    settings = settings_from_args(args)
    timings: dict[str, float] = {}
    gathered = sent = 0
    tic = time.perf_counter()
    infos = ray.get([worker.open_shot.remote(options) for worker in workers])
    num_frames = infos[0]["num_frames"]
    plan = plan_snippets(num_frames, settings.dilations, settings.snippet_length, settings.cap_dilation)

    frame_parts = split_range(num_frames, len(workers))
    parts = ray.get([w.encode.remote(a, b) for w, (a, b) in zip(workers, frame_parts, strict=False)])
    latents = torch.cat([p.latents for p in parts])  # N 4 h w
    gathered += _nbytes(latents)
    encoded = EncodedFrames(latents, parts[0].size, parts[0].input_size)
    noise = make_noise(tuple(latents.shape[-2:]), args.seed)
    timings["encode"] = time.perf_counter() - tic

    tic = time.perf_counter()
    encoded_ref = ray.put(encoded)
    sent += len(workers) * _nbytes(latents)  # each worker on another node pulls its own copy
    snippet_parts = split_snippets(plan, len(workers))
    stores = None
    if storage_dir is not None:
        folder = Path(storage_dir) / f"rollingdepth-shard-{uuid.uuid4().hex[:12]}"
        dtype = infos[0]["store_dtype"]
        stores = [StoreSpec(str(folder / f"dilation{g.dilation}.{dtype}"),
                            (g.num_snippets, g.snippet_length, *encoded.size), dtype) for g in plan.groups]
        for spec in stores:
            DiskTensor.empty(spec.path, spec.shape, getattr(torch, dtype))
    results = ray.get([w.denoise.remote(encoded_ref, noise, plan, pieces, stores)
                       for w, pieces in zip(workers, snippet_parts, strict=False)])
    if stores is None:
        by_group: list[list[Tensor]] = [[] for _ in plan.groups]
        for pieces, depths in zip(snippet_parts, results, strict=True):
            for (g, _, _), depth in zip(pieces, depths, strict=True):
                by_group[g].append(depth)
        groups = tuple(torch.cat(parts) for parts in by_group)
        gathered += _nbytes(*groups)
    else:
        groups = tuple(DiskTensor(spec.path, spec.shape, getattr(torch, spec.dtype)) for spec in stores)
        gathered += sum(g.nbytes for g in groups)
    snippets = SnippetDepths(plan=plan, depths=groups, encoded=encoded, noise=noise)
    timings["denoise"] = time.perf_counter() - tic

    tic = time.perf_counter()
    coaligned, alignment = coalign_depth(snippets, args.coalign_method, coalign_settings(args), spread=spread)
    timings["coalign"] = time.perf_counter() - tic
    depth = coaligned.inverse_depth
    if stores is not None:
        for spec in stores:
            Path(spec.path).unlink(missing_ok=True)
        Path(stores[0].path).parent.rmdir()

    if settings.refine_steps > 0:
        tic = time.perf_counter()
        normalized = normalize_depth(depth)  # N H W in -1..1, as refine_depth does
        timesteps, step_plans = ray.get(workers[0].refine_schedule.remote(num_frames))
        chunks = [normalized[a:b] for a, b in frame_parts]
        sent += _nbytes(*chunks)
        current = torch.cat(ray.get([w.refine_start.remote(chunk, noise, timesteps[0])
                                     for w, chunk in zip(workers, chunks, strict=False)]))
        gathered += _nbytes(current)
        for timestep, indices in zip(timesteps, step_plans, strict=True):
            current_ref = ray.put(current)
            sent += len(workers) * _nbytes(current)
            ranges = split_range(int(indices.shape[0]), len(workers))
            partial = ray.get([
                w.refine_step.remote(encoded_ref, current_ref, indices[a:b], timestep,
                                     settings.refine_steps)
                for w, (a, b) in zip(workers, ranges, strict=False)
            ])
            summed, count = torch.zeros_like(current), torch.zeros(num_frames)
            for lo, sums, counts in partial:
                summed[lo:lo + len(sums)] += sums
                count[lo:lo + len(counts)] += counts
                gathered += _nbytes(sums, counts)
            current = summed / count[:, None, None, None]
        depth = torch.cat(ray.get([w.decode.remote(current[a:b], encoded.size)
                                   for w, (a, b) in zip(workers, frame_parts, strict=False)]))
        sent += _nbytes(current)
        gathered += _nbytes(depth)
        timings["refine"] = time.perf_counter() - tic
    carried = coaligned.spread
    if carried is not None and settings.refine_steps > 0:
        carried = spread_in_units_of(carried, coaligned.inverse_depth, depth)
    return ShardedDepth(depth, alignment, tuple(infos[0]["input_size"]), infos[0]["fps"], timings,
                        gathered, sent, carried)
