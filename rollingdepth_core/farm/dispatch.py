"""Shots to workers: Ray actors that keep the model, each given the next shot as it frees up.

Ray places the workers (one per GPU, or per CPU slot, on any node of the cluster), moves the
shots to them and reports a worker's death. What this module adds is what
`ray.util.ActorPool` leaves out: which shot a dead worker was running (it goes back to the
front of the line, for the next free worker; bounded retries), a fresh worker in the dead
one's place, and each finished attempt renamed into OUTDIR and recorded in the manifest by
this driver alone, so a result is committed once, whatever happens to the workers.
"""

from __future__ import annotations

import logging
import time
from collections import deque
from pathlib import Path

from ..errors import RollingDepthError
from .cluster import WorkerPlan, require_ray
from .manifest import Manifest, ShotRecord
from .progress import FarmProgress
from .shot_folders import commit_shot, discard_attempt, new_attempt
from .shots import Shot
from .worker import ModelSpec, ShotJob, ShotResult, ShotWorker

logger = logging.getLogger(__name__)


def _record(job: ShotJob, result: ShotResult, status: str, error: str | None = None) -> ShotRecord:
    return ShotRecord(
        shot=job.shot.name, status=status, settings_hash=job.settings_hash, error=error,
        frames=result.frames if status == "done" else 0, seconds=round(result.seconds, 3),
        worker=result.worker, attempts=job.attempt, path=str(job.shot.path),
    )


def run_shots(
    work: list[tuple[Shot, str]],
    out_dir: Path,
    plan: WorkerPlan,
    model: ModelSpec,
    manifest: Manifest,
    progress: FarmProgress,
    retries: int = 2,
    overwrite: bool = False,
    verbose: bool = False,
) -> list[ShotRecord]:
    """Process every ``(shot, settings_hash)`` on Ray workers; returns their manifest records.

    A shot that fails (its own error) is recorded as failed at once; a shot whose worker
    dies is retried on the next free worker up to ``retries`` times, then recorded as
    failed. Dead workers are replaced (at most ``plan.count * (retries + 1)`` starts in all).
    """
    ray = require_ray()
    from ray.exceptions import RayActorError, RayError

    actor_class = ray.remote(ShotWorker).options(
        num_cpus=plan.num_cpus, num_gpus=plan.num_gpus, max_restarts=0, max_task_retries=0
    )
    starts_left = plan.count * (retries + 1)
    starting: dict = {}  # readiness probe -> (index, actor)
    idle: list = []  # (index, actor), first free first
    running: dict = {}  # shot future -> (index, actor, job)
    pending = deque((shot, digest, 1) for shot, digest in work)
    records: list[ShotRecord] = []
    last_start_error = "no worker started"

    def start_worker(index: int) -> None:
        nonlocal starts_left
        if starts_left <= 0:
            return
        starts_left -= 1
        actor = actor_class.remote(index, model, int(plan.num_cpus), verbose)
        starting[actor.describe.remote()] = (index, actor)

    def finish(record: ShotRecord) -> None:
        manifest.append(record)
        records.append(record)
        progress.shot_finished(record)

    for index in range(1, min(plan.count, len(pending)) + 1):
        start_worker(index)
    try:
        while pending or running:
            while idle and pending:
                index, actor = idle.pop(0)
                shot, digest, attempt = pending.popleft()
                folder, claim = new_attempt(out_dir, shot.name)
                job = ShotJob(shot, digest, attempt, folder, claim)
                running[actor.process.remote(job)] = (index, actor, job)
            if not running and not starting:
                for shot, digest, attempt in pending:
                    finish(ShotRecord(shot.name, "failed", digest, attempts=attempt - 1, path=str(shot.path),
                                      error=f"no worker could start ({last_start_error})"))
                break
            [ready], _ = ray.wait([*running, *starting], num_returns=1)
            if ready in starting:
                index, actor = starting.pop(ready)
                try:
                    info = ray.get(ready)
                    idle.append((index, actor))
                    logger.info("Worker %s is ready.", info["label"])
                except RayError as error:
                    last_start_error = f"{type(error).__name__}: {error}".splitlines()[0]
                    logger.warning("Worker w%d could not start: %s", index, last_start_error)
                    ray.kill(actor)
                    start_worker(index)
                continue
            index, actor, job = running.pop(ready)
            try:
                result: ShotResult = ray.get(ready)
            except RayActorError as error:  # the worker died (killed, out of memory, node lost)
                discard_attempt(job.folder, job.claim)
                ray.kill(actor)
                start_worker(index)
                reason = str(error).splitlines()[0]
                label = f"w{index}"
                if job.attempt <= retries:
                    progress.line(f"worker {label} died during {job.shot.name} (attempt {job.attempt}); "
                                  "retrying it on another worker")
                    pending.appendleft((job.shot, job.settings_hash, job.attempt + 1))
                else:
                    died = ShotResult(job.shot.name, "failed", None, 0, 0.0, label)
                    finish(_record(job, died, "failed",
                                   f"the worker died during each of {job.attempt} attempts (last: {reason})"))
                continue
            except RayError as error:  # the call itself failed (e.g. a shot that cannot be sent)
                discard_attempt(job.folder, job.claim)
                idle.append((index, actor))
                failed = ShotResult(job.shot.name, "failed", None, 0, 0.0, f"w{index}")
                finish(_record(job, failed, "failed", f"{type(error).__name__}: {error}".splitlines()[0]))
                continue
            idle.append((index, actor))
            if result.status == "done":
                try:
                    commit_shot(job.folder, job.claim, out_dir, job.shot.name, overwrite)
                except (OSError, RollingDepthError) as error:
                    discard_attempt(job.folder, job.claim)
                    message = f"could not move the finished shot into place: {error}"
                    finish(_record(job, result, "failed", message))
                    continue
                finish(_record(job, result, "done"))
            else:
                discard_attempt(job.folder, job.claim)
                finish(_record(job, result, "failed", result.error))
    finally:
        for _, actor in [*idle, *starting.values(), *((i, a) for i, a, _ in running.values())]:
            ray.kill(actor)
    return records


def run_sharded(
    work: list[tuple[Shot, str]],
    out_dir: Path,
    plan: WorkerPlan,
    model: ModelSpec,
    manifest: Manifest,
    progress: FarmProgress,
    retries: int = 2,
    overwrite: bool = False,
    verbose: bool = False,
    storage_dir: Path | None = None,
) -> list[ShotRecord]:
    """Process the shots one after the other, each split over every worker (`farm.shard`).

    The driver writes each shot (`ShardedOutput`: the command line's own writer) into a temporary folder and
    renames it into place. A shot whose worker dies is retried, with fresh workers, up to
    ``retries`` times; a shot that fails by itself is recorded as failed at once.
    """
    ray = require_ray()
    from ray.exceptions import RayActorError, RayTaskError

    from .shard import estimate_depth_sharded
    from .shard_output import ShardedOutput
    from .shard_worker import ShardWorker

    actor_class = ray.remote(ShardWorker).options(
        num_cpus=plan.num_cpus, num_gpus=plan.num_gpus, max_restarts=0, max_task_retries=0
    )

    def start_workers() -> list:
        workers = [actor_class.remote(i + 1, model, int(plan.num_cpus), verbose) for i in range(plan.count)]
        ray.get([w.describe.remote() for w in workers])
        return workers

    label = f"shard over {plan.count} worker(s)"
    records: list[ShotRecord] = []
    workers = start_workers() if work else []
    try:
        for shot, digest in work:
            attempt = 1
            while True:
                folder, claim = new_attempt(out_dir, shot.name)
                tic = time.perf_counter()
                args = shot.args()
                try:
                    output = ShardedOutput(shot, args)  # opened lazily: no frame decoded here
                    result = estimate_depth_sharded(ray, workers, vars(args), storage_dir, output.spread)
                    output.write(folder, result.depth, result.spread)
                    commit_shot(folder, claim, out_dir, shot.name, overwrite)
                    kib = 1024 * max(len(result.depth), 1)
                    progress.line(f"{shot.name}: the driver gathered {result.gathered_bytes / kib:.1f} KiB "
                                  f"and sent {result.sent_bytes / kib:.1f} KiB per frame")
                    done = ShotResult(shot.name, "done", None, len(result.depth), time.perf_counter() - tic,
                                      label)
                    record = _record(ShotJob(shot, digest, attempt, folder, claim), done, "done")
                except RayActorError as error:
                    discard_attempt(folder, claim)
                    for worker in workers:
                        ray.kill(worker)
                    workers = start_workers()
                    if attempt <= retries:
                        progress.line(f"a worker died during {shot.name} (attempt {attempt}); retrying it")
                        attempt += 1
                        continue
                    reason = str(error).splitlines()[0]
                    died = ShotResult(shot.name, "failed", None, 0, time.perf_counter() - tic, label)
                    record = _record(ShotJob(shot, digest, attempt, folder, claim), died, "failed",
                                     f"a worker died during each of {attempt} attempts (last: {reason})")
                except (RayTaskError, RollingDepthError, OSError) as error:
                    discard_attempt(folder, claim)
                    cause = getattr(error, "cause", None) or error
                    failed = ShotResult(shot.name, "failed", None, 0, time.perf_counter() - tic, label)
                    record = _record(ShotJob(shot, digest, attempt, folder, claim), failed, "failed",
                                     f"{type(cause).__name__}: {cause}".splitlines()[0])
                manifest.append(record)
                records.append(record)
                progress.shot_finished(record)
                break
    finally:
        for worker in workers:
            ray.kill(worker)
    return records
