"""Host storage: in memory, or a `DiskTensor` read and written by slices with nothing left mapped."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest
import torch

from rollingdepth_core.errors import InvalidInput, InvalidSettings
from rollingdepth_core.runtime.storage import DiskTensor, host_empty, is_stored_on_disk


def mapped_files() -> str:
    """/proc/self/maps (Linux): every file this process has mapped now."""
    return Path("/proc/self/maps").read_text()


def open_files() -> list[str]:
    """Targets of this process's open file descriptors (Linux)."""
    folder = Path("/proc/self/fd")
    targets = []
    for entry in folder.iterdir():
        try:
            targets.append(os.readlink(entry))
        except OSError:
            continue
    return targets


def test_in_memory():
    tensor = host_empty((2, 3, 4), torch.float16)
    assert isinstance(tensor, torch.Tensor)
    assert tensor.shape == (2, 3, 4) and tensor.dtype == torch.float16


def test_disk_backed_round_trip(tmp_path):
    store = host_empty((5, 3, 8, 8), torch.float16, tmp_path / "store")
    assert is_stored_on_disk(store)
    values = torch.randn(5, 3, 8, 8).half()
    store[1:4] = values[1:4]
    store[0] = values[0]
    store[4] = values[4]
    torch.testing.assert_close(store.float(), values.float(), rtol=0, atol=0)
    assert store[2:4].float().sum() == values[2:4].float().sum()


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc/self")
def test_disk_backed_lives_in_a_deleted_file_never_left_mapped(tmp_path):
    folder = tmp_path / "store"
    store = host_empty((64, 1024), torch.float32, folder)
    store[...] = torch.ones(64, 1024)
    assert float(store[10:20].sum()) == 10 * 1024
    assert list(folder.iterdir()) == []  # nothing is left behind, even if the process dies
    assert any(str(folder) in t and "(deleted)" in t for t in open_files())
    assert str(folder) not in mapped_files()  # resident memory: no file pages stay mapped
    del store
    assert not any(str(folder) in t for t in open_files())  # closed when freed


def test_disk_backed_edge_cases(tmp_path):
    assert host_empty((0, 3), torch.float16, tmp_path).shape == (0, 3)
    assert host_empty((0, 3), torch.float16, tmp_path)[...].shape == (0, 3)
    with pytest.raises(InvalidSettings, match="disk-backed"):
        host_empty((2,), torch.bfloat16, tmp_path)


def test_round_trip_and_slicing_match_torch(tmp_path):
    data = torch.randn(5, 3, 10, 12).half()
    store = DiskTensor.empty(tmp_path / "a.bin", tuple(data.shape), torch.float16)
    store[...] = data
    assert store.shape == data.shape and store.dtype == torch.float16
    assert store.ndim == 4 and len(store) == 5 and is_stored_on_disk(store)
    assert not is_stored_on_disk(data)
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
    with pytest.raises(InvalidInput, match="supports"):
        DiskTensor.temporary(tmp_path, (2,), torch.int64)
    empty = DiskTensor.empty(tmp_path / "e.bin", (0, 3), torch.float16)
    assert empty[...].shape == (0, 3)
