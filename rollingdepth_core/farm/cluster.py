"""Ray for the farm: connect to a cluster or start a local one, and size the workers.

The only module of the package that imports Ray at the top (tests/test_boundaries.py checks
that nothing outside ``farm/`` imports it), and only the farm's driver imports this module.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

from ..errors import InvalidSettings, MissingDependency

try:
    import ray
except ImportError:  # the farm extra is not installed: say so when the farm is used
    ray = None

logger = logging.getLogger(__name__)


def require_ray():
    """The ``ray`` module, or `MissingDependency` naming the extra to install."""
    if ray is None:
        raise MissingDependency(
            "The farm runs on Ray, which is not installed. "
            'Install it with: pip install "rollingdepth[farm]"'
        )
    return ray


@contextmanager
def ray_runtime(address: str | None = None, num_cpus: int | None = None) -> Iterator[object]:
    """Ray for one run: the running instance if this process already has one (tests, notebooks),
    the cluster at ``address`` (``"auto"``: the one `ray start` made on this machine), or a
    local Ray started now and stopped afterwards."""
    ray_module = require_ray()
    if ray_module.is_initialized():
        yield ray_module
        return
    options = {"include_dashboard": False, "logging_level": logging.WARNING}
    if address:
        ray_module.init(address=address, **options)
        logger.info("Connected to the Ray cluster at %s.", address)
    else:
        ray_module.init(num_cpus=num_cpus, **options)
        logger.info("Started a local Ray for this run.")
    try:
        yield ray_module
    finally:
        ray_module.shutdown()


@dataclass(frozen=True)
class WorkerPlan:
    """How many workers, and what each asks Ray for.

    Attributes:
        count: workers (Ray actors), each holding one model.
        num_gpus: GPUs per worker (0: CPU workers).
        num_cpus: CPUs per worker (also its torch threads).
    """

    count: int
    num_gpus: float
    num_cpus: float


def plan_workers(
    resources: dict[str, float], workers: int | None, gpus_per_worker: float, cpus_per_worker: float | None
) -> WorkerPlan:
    """Workers for a cluster with ``resources`` (`ray.cluster_resources()`).

    Default: one worker per ``gpus_per_worker`` GPUs; with no GPU in the cluster, one CPU
    worker using every CPU. Workers that do not fit now wait for resources (a cluster that
    scales up), with a warning.
    """
    if workers is not None and workers < 1:
        raise InvalidSettings(f"--workers must be >= 1; got {workers}.")
    if gpus_per_worker < 0 or (cpus_per_worker is not None and cpus_per_worker <= 0):
        raise InvalidSettings(
            "--gpus-per-worker must be >= 0 and --cpus-per-worker > 0; "
            f"got {gpus_per_worker}, {cpus_per_worker}."
        )
    gpus, cpus = float(resources.get("GPU", 0)), float(resources.get("CPU", 1))
    if gpus_per_worker > 0 and gpus == 0:
        logger.warning("No GPU in the Ray cluster: the workers run on CPUs.")
        gpus_per_worker = 0.0
    if gpus_per_worker > 0:
        count = workers or max(1, math.floor(gpus / gpus_per_worker))
        num_cpus = cpus_per_worker or 1.0
    else:
        count = workers or 1
        num_cpus = cpus_per_worker or max(1.0, math.floor(cpus / count))
    fit = min(
        math.floor(gpus / gpus_per_worker) if gpus_per_worker else count,
        math.floor(cpus / num_cpus) if num_cpus else count,
    )
    if fit < count:
        logger.warning("Only %d of the %d workers fit in the Ray cluster now; the others start when "
                       "resources appear.", fit, count)
    return WorkerPlan(int(count), float(gpus_per_worker), float(num_cpus))
