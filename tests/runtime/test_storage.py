"""Host storage in memory or in a memory-mapped temporary file."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
import torch

from rollingdepth_core.errors import InvalidSettings
from rollingdepth_core.runtime.storage import host_empty


def mapping_of(tensor: torch.Tensor) -> str | None:
    """The /proc/self/maps line of the memory that holds ``tensor`` (Linux)."""
    address = tensor.data_ptr()
    for line in Path("/proc/self/maps").read_text().splitlines():
        start, stop = (int(v, 16) for v in line.split()[0].split("-"))
        if start <= address < stop:
            return line
    return None


def test_in_memory():
    tensor = host_empty((2, 3, 4), torch.float16)
    assert tensor.shape == (2, 3, 4) and tensor.dtype == torch.float16


def test_disk_backed_round_trip(tmp_path):
    tensor = host_empty((5, 3, 8, 8), torch.float16, tmp_path / "store")
    values = torch.randn(5, 3, 8, 8).half()
    tensor[1:4] = values[1:4]
    tensor[0] = values[0]
    tensor[4].copy_(values[4])
    torch.testing.assert_close(tensor.float(), values.float(), rtol=0, atol=0)
    assert tensor[2:4].float().sum() == values[2:4].float().sum()


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc/self/maps")
def test_disk_backed_lives_in_a_deleted_file(tmp_path):
    folder = tmp_path / "store"
    tensor = host_empty((64, 1024), torch.float32, folder)
    line = mapping_of(tensor)
    assert line is not None and str(folder) in line and "(deleted)" in line
    assert list(folder.iterdir()) == []  # nothing is left behind


def test_disk_backed_edge_cases(tmp_path):
    assert host_empty((0, 3), torch.float16, tmp_path).shape == (0, 3)
    with pytest.raises(InvalidSettings, match="disk-backed"):
        host_empty((2,), torch.bfloat16, tmp_path)
