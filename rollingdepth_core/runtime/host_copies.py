"""Accelerator -> host copies that do not stall the host on every batch.

A plain ``tensor.cpu()`` after each batch makes the host wait until the accelerator has
finished that batch, so the accelerator then idles while the host copies, stores and
launches the next batch (host-device ping-pong). `HostCopier` instead copies each result
into a pinned staging buffer asynchronously and hands it to the consumer only a few
batches later, when the copy is certainly done; the host meanwhile queues more work.
Staging memory is bounded (``depth`` + 1 buffers per shape), whatever the clip length.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable

import torch
from torch import Tensor

Consumer = Callable[[Tensor], None]


def current_stream(device: torch.device):
    """The stream work is queued on for ``device`` (None: let torch pick; older torch)."""
    accelerator = getattr(torch, "accelerator", None)
    if accelerator is None or not hasattr(accelerator, "current_stream"):
        return None
    return accelerator.current_stream(device)


class HostCopier:
    """Deliver device tensors to host consumers, overlapping the copies with compute.

    ``submit(value, consume)`` eventually calls ``consume(host_tensor)`` with a host copy
    of ``value`` (same shape and dtype), in submission order. The host tensor may be a
    reused staging buffer: ``consume`` must copy what it keeps (e.g. ``out[i].copy_(x)``,
    ``index_add_``). Call `drain` (or leave the ``with`` block) before reading what the
    consumers wrote. On a CPU, or on devices without asynchronous copies, ``consume``
    runs at once.

    Args:
        device: the device the values live on.
        depth: results kept in flight before the oldest is waited for.
    """

    def __init__(self, device: torch.device | str, depth: int = 2):
        self.device = torch.device(device)
        self.depth = max(1, int(depth))
        self.asynchronous = self.device.type == "cuda" and hasattr(torch, "Event")
        self._pending: deque[tuple[torch.Event, Tensor, Consumer]] = deque()
        self._free: dict[tuple, list[Tensor]] = {}

    def _staging(self, value: Tensor) -> Tensor:
        key = (tuple(value.shape), value.dtype)
        buffers = self._free.setdefault(key, [])
        if buffers:
            return buffers.pop()
        return torch.empty(value.shape, dtype=value.dtype, pin_memory=self.device.type == "cuda")

    def _record(self, value: Tensor) -> torch.Event:
        """An event that completes when the work queued so far on ``value``'s device is done."""
        event = torch.Event(device=value.device)
        event.record(current_stream(value.device))
        return event

    def submit(self, value: Tensor, consume: Consumer) -> None:
        """Copy ``value`` to the host and pass it to ``consume`` (now or a little later)."""
        if not self.asynchronous or value.device.type != self.device.type:
            consume(value.to("cpu"))
            return
        staging = self._staging(value)
        staging.copy_(value, non_blocking=True)
        self._pending.append((self._record(value), staging, consume))
        while len(self._pending) > self.depth:
            self._complete_oldest()

    def _complete_oldest(self) -> None:
        event, staging, consume = self._pending.popleft()
        event.synchronize()
        consume(staging)
        self._free.setdefault((tuple(staging.shape), staging.dtype), []).append(staging)

    def drain(self) -> None:
        """Wait for every submitted copy and run its consumer."""
        while self._pending:
            self._complete_oldest()

    def __enter__(self) -> HostCopier:
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        if exc_type is None:
            self.drain()
        else:  # the work failed: results still in flight are dropped with it
            self._pending.clear()
