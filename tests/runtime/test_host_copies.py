"""HostCopier: device -> host results delivered in order, later, into reused buffers."""

from __future__ import annotations

import pytest
import torch

from rollingdepth_core.runtime.host_copies import HostCopier


class FakeEvent:
    def __init__(self, log):
        self.log = log

    def synchronize(self):
        self.log.append("wait")


class SimulatedAsync(HostCopier):
    """HostCopier taking its asynchronous path on the CPU (events are faked)."""

    def __init__(self, depth):
        super().__init__("cpu", depth)
        self.asynchronous = True
        self.log = []
        self.staging_made = 0

    def _record(self, value):
        return FakeEvent(self.log)

    def _staging(self, value):
        before = sum(len(v) for v in self._free.values())
        buffer = super()._staging(value)
        if sum(len(v) for v in self._free.values()) == before:
            self.staging_made += 1
        return buffer


def test_cpu_consumes_at_once():
    out = torch.zeros(3, 2)
    with HostCopier("cpu") as copier:
        copier.submit(torch.ones(2), lambda host: out[1].copy_(host))
        assert out[1].tolist() == [1.0, 1.0]  # no waiting on a CPU


def test_async_delivers_in_order_after_depth_batches():
    copier = SimulatedAsync(depth=2)
    got = []
    for i in range(5):
        copier.submit(torch.full((4,), float(i)), lambda host: got.append(host.clone()))
        # at most `depth` results are in flight; older ones have been handed over
        assert len(got) == max(0, i + 1 - 2)
    copier.drain()
    assert [int(g[0]) for g in got] == [0, 1, 2, 3, 4]
    assert all(bool((g == g[0]).all()) for g in got)
    assert copier.log == ["wait"] * 5  # every copy was waited for before use
    assert copier.staging_made == 3  # depth + 1 buffers, reused


def test_async_consumers_may_index_add():
    copier = SimulatedAsync(depth=1)
    total = torch.zeros(4)
    with copier:
        for frames in ([0, 1], [1, 2], [2, 3]):
            index = torch.tensor(frames)
            copier.submit(torch.ones(2), lambda host, index=index: total.index_add_(0, index, host))
    assert total.tolist() == [1.0, 2.0, 2.0, 1.0]


def test_failed_work_drops_results_in_flight():
    copier = SimulatedAsync(depth=4)
    got = []
    with pytest.raises(ValueError), copier:
        copier.submit(torch.ones(1), got.append)
        raise ValueError("work failed")
    assert got == []
