"""One farm run, start to end: shots checked, cuts split, done shots skipped, the rest processed
on Ray workers, every outcome in the manifest."""

from __future__ import annotations

import argparse
import logging
import time
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path

from ..errors import InvalidSettings
from ..io.cuts import check_cut_detection
from ..model.checkpoint import resolve_checkpoint
from .manifest import Manifest, ShotRecord, settings_hash
from .progress import FarmProgress, summary_line
from .segments import split_shot
from .shot_folders import output_lock, shot_folder
from .shots import Shot, ShotListError, collect_shots

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class FarmOutcome:
    """What a farm run did: one record per shot, the wall time and the summary line."""

    records: list[ShotRecord]
    seconds: float
    summary: str

    @property
    def num_failed(self) -> int:
        return sum(r.status == "failed" for r in self.records)


def plan_work(
    shots: list[Shot], manifest: Manifest, out_dir: Path, overwrite: bool
) -> tuple[list[tuple[Shot, str]], list[ShotRecord]]:
    """Split shots into those to run (with their settings hash) and those done before with
    the same settings (their "skipped" records).

    Raises:
        InvalidSettings: a shot to run would replace a folder in OUTDIR (made with other
            settings, or not by this farm) and ``overwrite`` is off.
    """
    outcomes = manifest.outcomes()
    work, skipped, conflicts = [], [], []
    for shot in shots:
        digest = settings_hash(shot)
        before = outcomes.get(shot.name)
        folder = shot_folder(out_dir, shot.name)
        if before and before.status == "done" and before.settings_hash == digest and folder.is_dir():
            skipped.append(ShotRecord(shot.name, "skipped", digest, frames=before.frames,
                                      worker=before.worker, path=str(shot.path)))
            continue
        if folder.exists() and not overwrite:
            done_before = before is not None and before.status == "done"
            why = "made with other settings" if done_before else "not made by this farm"
            conflicts.append(f"{shot.name} ({why})")
        work.append((shot, digest))
    if conflicts:
        raise InvalidSettings(
            f"{len(conflicts)} shot folder(s) in {out_dir} would be replaced: {', '.join(conflicts[:10])}. "
            "Pass --overwrite to replace them, or choose another output folder. Nothing was run."
        )
    return work, skipped


def split_at_cuts(ray, shots: list[Shot]) -> tuple[list[Shot], list[ShotRecord]]:
    """Shots with ``split_at_cuts`` replaced by their segments (cut detection runs as Ray tasks,
    in parallel); a shot whose clip cannot be read gets a failed record instead."""
    task = ray.remote(num_cpus=1)(_split_or_error)
    futures = [task.remote(shot) if shot.options.get("split_at_cuts") else None for shot in shots]
    result, failed = [], []
    for shot, future in zip(shots, futures, strict=True):
        if future is None:
            result.append(shot)
            continue
        segments, error = ray.get(future)
        if error:
            failed.append(ShotRecord(shot.name, "failed", settings_hash(shot), error=error,
                                     path=str(shot.path)))
        else:
            result += segments
    names = [s.name for s in result]
    twice = sorted({n for n in names if names.count(n) > 1})
    if twice:
        raise ShotListError("after splitting at cuts", [f"two shots are named {n!r}" for n in twice])
    return result, failed


def _split_or_error(shot: Shot) -> tuple[list[Shot], str | None]:
    try:
        return split_shot(shot), None
    except Exception as error:  # one unreadable clip fails alone
        return [], f"{type(error).__name__}: {error}"


def run_farm(args: argparse.Namespace) -> FarmOutcome:
    """Do what the parsed farm command line asks (`farm.cli.build_parser`)."""
    from .cluster import require_ray
    from .dispatch import run_sharded, run_shots
    from .worker import ModelSpec

    tic = time.perf_counter()
    require_ray()
    shots = collect_shots(args.shots, args)
    if any(shot.options.get("split_at_cuts") for shot in shots):
        check_cut_detection()
    if args.retries < 0:
        raise InvalidSettings(f"--retries must be >= 0; got {args.retries}.")
    if args.new_take:
        raise InvalidSettings("--new-take is not for the farm: a shot's folder is OUTDIR/NAME; use another "
                              "output folder (or --overwrite to replace shots made with other settings).")
    resolve_checkpoint(args.model, local_dir=args.model_dir, allow_download=not args.offline)
    out_dir = Path(args.output_dir).absolute()  # workers write there, from their own folders
    model = ModelSpec(str(args.model), args.model_dir, not args.offline, args.device)
    with output_lock(out_dir), ExitStack() as stack:
        manifest = Manifest(out_dir)
        manifest.records()  # a damaged manifest stops the run here, before any work
        ray = None
        failed: list[ShotRecord] = []
        if any(shot.options.get("split_at_cuts") for shot in shots):
            ray = stack.enter_context(_ray_for(args))
            shots, failed = split_at_cuts(ray, shots)
        work, skipped = plan_work(shots, manifest, out_dir, args.overwrite)
        progress = stack.enter_context(FarmProgress(len(work) + len(skipped) + len(failed), not args.quiet))
        records = []
        for record in skipped + failed:
            manifest.append(record)
            progress.shot_finished(record)
            records.append(record)
        if work:
            from .cluster import plan_workers

            ray = ray or stack.enter_context(_ray_for(args))
            plan = plan_workers(ray.cluster_resources(), args.workers, args.gpus_per_worker,
                                args.cpus_per_worker)
            progress.line(f"{len(work)} shot(s) to run on {plan.count} worker(s) "
                          f"({plan.num_gpus:g} GPU, {plan.num_cpus:g} CPU each); {len(skipped)} skipped")
            if args.shard:
                records += run_sharded(work, out_dir, plan, model, manifest, progress, args.retries,
                                       args.overwrite, args.verbose, args.storage_dir)
            else:
                records += run_shots(work, out_dir, plan, model, manifest, progress, args.retries,
                                     args.overwrite, args.verbose)
    seconds = time.perf_counter() - tic
    return FarmOutcome(records, seconds, summary_line(records, seconds, manifest.path))


def _ray_for(args: argparse.Namespace):
    from .cluster import ray_runtime

    return ray_runtime(args.address)
