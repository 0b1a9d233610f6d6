"""Run work in batches; on accelerator out-of-memory, halve the batch and retry it."""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass

import torch

from ..errors import InvalidSettings
from ..hooks import NO_HOOKS, Hooks
from .devices import empty_cache, is_out_of_memory

logger = logging.getLogger(__name__)


def run_in_batches(
    num_items: int,
    batch_size: int,
    work: Callable[[int, int], None],
    device: torch.device | str,
    hooks: Hooks = NO_HOOKS,
    what: str = "items",
    progress_offset: int = 0,
    progress_total: int | None = None,
) -> int:
    """Call ``work(start, stop)`` over `0 .. num_items` in batches of at most ``batch_size``.

    When a batch runs out of accelerator memory, the batch size is halved and the same
    batch is tried again (a log line says so); work already done is kept. At one item per
    batch an out-of-memory error is re-raised. ``work`` must not keep partial results of a
    failed call.

    Args:
        num_items: how many items.
        batch_size: items per call to start with (>= 1).
        work: processes items `start .. stop - 1`.
        device: the device that may run out of memory.
        hooks: progress after each batch, cancel before each.
        what: name of the items in log lines.
        progress_offset, progress_total: report progress within a larger job.

    Returns:
        The batch size that was last used (smaller than asked after an out-of-memory error).
    """
    if int(batch_size) != batch_size or batch_size < 1:
        raise InvalidSettings(f"batch size must be a whole number >= 1; got {batch_size!r}.")
    total = progress_total if progress_total is not None else num_items
    start = 0
    while start < num_items:
        hooks.check_cancel()
        stop = min(start + batch_size, num_items)
        try:
            work(start, stop)
        except RuntimeError as error:  # torch.OutOfMemoryError is a RuntimeError
            if not is_out_of_memory(error) or batch_size == 1:
                raise
            del error
            empty_cache(device)
            batch_size = max(1, batch_size // 2)
            logger.warning(
                "Out of memory on %s; retrying with %d %s per batch.", device, batch_size, what
            )
            continue
        start = stop
        hooks.progress(progress_offset + start, total)
    return batch_size


@dataclass
class ShrinkingBatch:
    """A batch size shared by several loops of a stage, shrunk for good once a batch ran out
    of memory (the next loop starts at the size that fitted, not at the one that failed)."""

    size: int

    def run(self, num_items: int, work: Callable[[int, int], None], device: torch.device | str,
            hooks: Hooks = NO_HOOKS, what: str = "items") -> None:
        """`run_in_batches` of ``work`` over `0 .. num_items`, at most ``size`` items per call."""
        asked = max(1, min(self.size, num_items))
        used = run_in_batches(num_items, asked, work, device, hooks, what)
        if used < asked:
            self.size = used
