"""Timers for benchmarks: wall clock per stage and accelerator time inside modules."""

from __future__ import annotations

import time
from contextlib import contextmanager

import torch

from ..runtime import devices
from ..runtime.host_copies import current_stream


class ModuleTimer:
    """Time spent inside ``forward`` of chosen modules, summed per label.

    On CUDA, events recorded around each call measure GPU time without synchronising
    (the queue keeps running); on a CPU, the wall clock is exact. Only for uncompiled
    modules (hooks would break a compiled graph).
    """

    def __init__(self, device: torch.device | str):
        self.device = torch.device(device)
        self.use_events = self.device.type == "cuda"
        self.label = "other"
        self._spans: dict[str, list] = {}
        self._handles = []

    def attach(self, module: torch.nn.Module, name: str) -> None:
        """Time ``module`` under ``"{stage label} {name}"``."""
        open_calls: list = []

        def before(_module, _args):
            if self.use_events:
                start = torch.Event(device=self.device, enable_timing=True)
                start.record(current_stream(self.device))
                open_calls.append(start)
            else:
                open_calls.append(time.perf_counter())

        def after(_module, _args, _output):
            start = open_calls.pop()
            key = f"{self.label} {name}"
            if self.use_events:
                end = torch.Event(device=self.device, enable_timing=True)
                end.record(current_stream(self.device))
                self._spans.setdefault(key, []).append((start, end))
            else:
                self._spans.setdefault(key, []).append(time.perf_counter() - start)

        self._handles.append(module.register_forward_pre_hook(before))
        self._handles.append(module.register_forward_hook(after))

    def calls(self) -> dict[str, int]:
        """Number of calls per label."""
        return {key: len(spans) for key, spans in self._spans.items()}

    def totals(self) -> dict[str, float]:
        """Seconds per label (waits for the device)."""
        devices.synchronize(self.device)
        out = {}
        for key, spans in self._spans.items():
            if self.use_events:
                out[key] = sum(start.elapsed_time(end) for start, end in spans) / 1000.0
            else:
                out[key] = float(sum(spans))
        return out

    def detach(self) -> None:
        for handle in self._handles:
            handle.remove()
        self._handles = []


class StageClock:
    """Wall-clock seconds per stage, synchronising the device at both ends of a stage."""

    def __init__(self, device: torch.device | str, modules: ModuleTimer | None = None):
        self.device = device
        self.modules = modules
        self.seconds: dict[str, float] = {}

    @contextmanager
    def stage(self, name: str):
        devices.synchronize(self.device)
        if self.modules is not None:
            self.modules.label = name
        tic = time.perf_counter()
        try:
            yield
        finally:
            devices.synchronize(self.device)
            self.seconds[name] = self.seconds.get(name, 0.0) + time.perf_counter() - tic
