"""Disk-backed arrays: tensor-like reads by slice, nothing left mapped."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from rollingdepth_core.errors import InvalidInput
from rollingdepth_core.runtime.disk_tensor import DiskTensor, is_stored_on_disk


def test_round_trip_and_slicing_match_torch(tmp_path):
    data = torch.randn(5, 3, 10, 12).half()
    store = DiskTensor.empty(tmp_path / "a.bin", tuple(data.shape), torch.float16)
    store[...] = data
    assert store.shape == data.shape and store.dtype == torch.float16
    assert store.ndim == 4 and len(store) == 5 and is_stored_on_disk(store)
    for key in (slice(1, 3), (2, 1), (Ellipsis, slice(None, None, 5), slice(2, None, 3)), 4):
        assert torch.equal(store[key], data[key])
    assert torch.equal(store.float(), data.float())
    rows, cols = torch.tensor([0, 2, 4]), torch.tensor([1, 1, 0])
    assert torch.equal(store[rows, cols], data[rows, cols])  # advanced indexing
    store[1, 2] = torch.zeros(10, 12)
    assert float(store[1, 2].abs().max()) == 0.0 and torch.equal(store[0], data[0])
    reopened = DiskTensor(tmp_path / "a.bin", (5, 3, 10, 12), torch.float16)
    assert torch.equal(reopened[3], data[3])


def test_reads_leave_no_mapping(tmp_path):
    store = DiskTensor.empty(tmp_path / "b.bin", (64, 64), torch.float32)
    store[...] = torch.ones(64, 64)
    assert float(store[10:20].sum()) == 640.0
    maps = Path("/proc/self/maps")
    if maps.exists():
        assert str(tmp_path / "b.bin") not in maps.read_text()


def test_wrong_files_and_dtypes_raise(tmp_path):
    DiskTensor.empty(tmp_path / "c.bin", (4, 4), torch.float32)
    with pytest.raises(InvalidInput, match="does not hold"):
        DiskTensor(tmp_path / "c.bin", (4, 5), torch.float32)
    with pytest.raises(InvalidInput, match="does not hold"):
        DiskTensor(tmp_path / "missing.bin", (1,), torch.float32)
    with pytest.raises(InvalidInput, match="supports"):
        DiskTensor.empty(tmp_path / "d.bin", (2,), torch.int64)
    empty = DiskTensor.empty(tmp_path / "e.bin", (0, 3), torch.float16)
    assert empty[...].shape == (0, 3)
