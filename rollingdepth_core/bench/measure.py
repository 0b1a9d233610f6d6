"""Measuring a run: host memory (resident set, its peak, sampled heap and file pages), device
memory and the wall clock of the timed part."""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path

import torch

from ..runtime import devices


def host_rss() -> int:
    """Resident host memory of this process now, in bytes."""
    try:
        import psutil

        return int(psutil.Process().memory_info().rss)
    except ImportError:
        with open("/proc/self/statm") as handle:
            return int(handle.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def peak_host_rss() -> int:
    """High-water mark of resident host memory of this process, in bytes."""
    import resource

    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return int(peak) * (1 if sys.platform == "darwin" else 1024)


class MemorySampler:
    """Peak anonymous (heap) and file-backed resident memory, sampled in a thread (Linux).

    The kernel's high-water mark counts pages of memory-mapped files too, which it can
    drop at any time; anonymous memory is what a process really needs.
    """

    def __init__(self, interval: float = 0.02):
        import threading

        self.interval = interval
        self.peak_anon = 0
        self.peak_file = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self.available = Path("/proc/self/status").is_file()

    def _sample(self) -> None:
        fields = {}
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith(("RssAnon:", "RssFile:", "RssShmem:")):
                name, value = line.split(":")
                fields[name] = int(value.split()[0]) * 1024
        self.peak_anon = max(self.peak_anon, fields.get("RssAnon", 0))
        self.peak_file = max(self.peak_file, fields.get("RssFile", 0) + fields.get("RssShmem", 0))

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            self._sample()

    def __enter__(self) -> MemorySampler:
        if self.available:
            self._sample()
            self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        if self.available:
            self._stop.set()
            self._thread.join()
            self._sample()


class Measurement:
    """Wall clock and memory of the timed part of a run (a context manager).

    Host: resident set when it starts, its peak (the kernel's high-water mark) and the
    sampled peaks of heap and file-backed memory; device: allocated memory when it starts
    and the peak during it.
    """

    def __init__(self, device: torch.device):
        self.device = device
        self.sampler = MemorySampler()
        self.seconds = 0.0

    def __enter__(self) -> Measurement:
        self.rss_ready = host_rss()
        devices.reset_peak_memory(self.device)
        self.allocated_ready = devices.allocated_memory(self.device)
        self.sampler.__enter__()
        self.anon_ready = self.sampler.peak_anon
        self._tic = time.perf_counter()
        return self

    def __exit__(self, *exc) -> None:
        devices.synchronize(self.device)
        self.seconds = time.perf_counter() - self._tic
        self.sampler.__exit__(*exc)

    def figures(self) -> dict:
        sampled = self.sampler.available
        end = host_rss()
        # the kernel updates its high-water mark lazily: it can lag the resident set measured now
        peak = max(peak_host_rss(), self.rss_ready, end)
        return {
            "peak_vram": devices.peak_memory(self.device), "vram_at_start": self.allocated_ready,
            "peak_rss": peak, "rss_ready": self.rss_ready, "rss_end": end,
            "peak_anon": self.sampler.peak_anon if sampled else None,
            "anon_ready": self.anon_ready if sampled else None,
            "peak_file": self.sampler.peak_file if sampled else None,
        }
