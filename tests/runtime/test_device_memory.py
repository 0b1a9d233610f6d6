"""runtime.devices: the one place that asks a device about its memory."""

import pytest
import torch

from rollingdepth_core.errors import InvalidSettings
from rollingdepth_core.runtime import devices


def test_cpu_has_no_memory_figures():
    assert devices.cuda_device("cpu") is None
    assert devices.free_memory("cpu") is None
    assert devices.peak_memory(torch.device("cpu")) is None
    assert devices.allocated_memory("cpu") is None
    assert devices.device_name("cpu") == "cpu"
    devices.reset_peak_memory("cpu")  # no-op, no error
    devices.synchronize("cpu")
    devices.empty_cache("cpu")


@pytest.fixture
def fake_cuda(monkeypatch):
    """A CUDA that answers with fixed figures (the machine running the tests has none)."""
    calls = []
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "mem_get_info", lambda device: (1000, 5000))
    monkeypatch.setattr(torch.cuda, "memory_reserved", lambda device: 300)
    monkeypatch.setattr(torch.cuda, "memory_allocated", lambda device: 200)
    monkeypatch.setattr(torch.cuda, "max_memory_allocated", lambda device: 250)
    monkeypatch.setattr(torch.cuda, "get_device_name", lambda device: f"GPU {device}")
    monkeypatch.setattr(torch.cuda, "reset_peak_memory_stats", lambda device: calls.append(("reset", device)))
    monkeypatch.setattr(torch.cuda, "synchronize", lambda device: calls.append(("sync", device)))
    monkeypatch.setattr(torch.cuda, "empty_cache", lambda: calls.append(("empty", None)))
    return calls


def test_cuda_figures_come_from_that_device(fake_cuda):
    cuda1 = torch.device("cuda:1")
    assert devices.cuda_device("cuda:1") == cuda1
    assert devices.free_memory("cuda:1") == 1000 + 300 - 200  # free + reserved but unused
    assert devices.peak_memory("cuda:1") == 250
    assert devices.allocated_memory("cuda:1") == 200
    assert devices.device_name("cuda:1") == "GPU cuda:1"
    devices.reset_peak_memory("cuda:1")
    devices.synchronize("cuda:1")
    devices.empty_cache("cuda:1")
    assert fake_cuda == [("reset", cuda1), ("sync", cuda1), ("empty", None)]
    # a CPU device asks CUDA nothing even where CUDA exists
    assert devices.free_memory("cpu") is None and devices.device_name("cpu") == "cpu"
    assert devices.default_device() == torch.device("cuda")


def test_default_and_checked_devices_without_accelerators(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    monkeypatch.setattr(devices, "mps_available", lambda: False)
    assert devices.default_device() == torch.device("cpu")
    assert devices.cuda_device("cuda") is None
    assert devices.check_device("cpu") == torch.device("cpu")
    with pytest.raises(InvalidSettings, match="no usable CUDA GPU"):
        devices.check_device("cuda")
    with pytest.raises(InvalidSettings, match="Apple MPS"):
        devices.check_device("mps")
    with pytest.raises(InvalidSettings, match="Unknown device"):
        devices.check_device("gpu0")
