"""Disk-backed arrays for clips that do not fit in memory (snippet depths, ground truth).

1000 frames x 9 predictions x 768x432 in fp16 is 6 GB. A `DiskTensor` keeps such an array
in a raw file and behaves, for reading, like the tensor it replaces: ``shape``, ``dtype``,
``ndim``, ``len`` and slicing (``store[a:b]``, ``store[k, j]``, ``store[..., ::10, ::10]``),
which returns an ordinary tensor copy. Each access maps the file only for its duration, so
the process keeps no file pages mapped: resident memory stays what the caller holds (the
operating system may still cache the file; that cache is reclaimable).

`SnippetDepths.depths` may hold `DiskTensor`s; co-alignment reads them in chunks and the
merge streams frame by frame.
"""

from __future__ import annotations

import math
import mmap
from pathlib import Path

import numpy as np
import torch
from torch import Tensor

from ..errors import InvalidInput

_NUMPY_DTYPES = {
    torch.float16: np.float16,
    torch.float32: np.float32,
    torch.float64: np.float64,
}


class DiskTensor:
    """A fixed-shape array in a raw file, read and written by slices.

    Attributes:
        path: the file.
        shape: `torch.Size`.
        dtype: torch dtype (float16, float32 or float64).
    """

    def __init__(self, path: str | Path, shape: tuple[int, ...], dtype: torch.dtype,
                 create: bool = False) -> None:
        if dtype not in _NUMPY_DTYPES:
            raise InvalidInput(f"DiskTensor supports {sorted(map(str, _NUMPY_DTYPES))}; got {dtype}.")
        self.path = Path(path)
        self.shape = torch.Size(int(s) for s in shape)
        self.dtype = dtype
        nbytes = self.nbytes
        if create:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            with open(self.path, "wb") as handle:
                handle.truncate(nbytes)
        elif not self.path.is_file() or self.path.stat().st_size != nbytes:
            raise InvalidInput(f"{self.path} does not hold a {tuple(self.shape)} {dtype} array.")

    @classmethod
    def empty(cls, path: str | Path, shape: tuple[int, ...], dtype: torch.dtype) -> DiskTensor:
        """A new zero-filled file of the given shape (sparse on most file systems)."""
        return cls(path, shape, dtype, create=True)

    @property
    def ndim(self) -> int:
        return len(self.shape)

    def __len__(self) -> int:
        return int(self.shape[0])

    def __repr__(self) -> str:
        return f"DiskTensor({str(self.path)!r}, shape={tuple(self.shape)}, dtype={self.dtype})"

    @property
    def nbytes(self) -> int:
        return math.prod(self.shape) * torch.empty((), dtype=self.dtype).element_size()

    def __getitem__(self, key) -> Tensor:
        key = _numpy_key(key)
        if self.nbytes == 0:
            return torch.empty(self.shape, dtype=self.dtype)[key]
        with open(self.path, "rb") as handle, \
                mmap.mmap(handle.fileno(), 0, access=mmap.ACCESS_READ) as mapped:
            array = np.frombuffer(mapped, dtype=_NUMPY_DTYPES[self.dtype]).reshape(self.shape)
            out = np.array(array[key], copy=True)
            del array  # release the buffer before the map closes
        return torch.from_numpy(out)

    def __setitem__(self, key, value: Tensor) -> None:
        key = _numpy_key(key)
        if self.nbytes == 0:
            return
        data = torch.as_tensor(value).detach().to("cpu", self.dtype).numpy()
        with open(self.path, "r+b") as handle, mmap.mmap(handle.fileno(), 0) as mapped:
            array = np.frombuffer(mapped, dtype=_NUMPY_DTYPES[self.dtype]).reshape(self.shape)
            array[key] = data
            del array
            mapped.flush()

    def float(self) -> Tensor:
        """The whole array in memory as float32 (only for arrays that fit)."""
        return self[...].float()


def _numpy_key(key):
    """Index tensors (advanced indexing) as numpy arrays; everything else unchanged."""
    if isinstance(key, Tensor):
        return key.numpy()
    if isinstance(key, tuple):
        return tuple(k.numpy() if isinstance(k, Tensor) else k for k in key)
    return key


def is_stored_on_disk(array) -> bool:
    """Whether ``array`` is a `DiskTensor` (read it by slices, not as a whole)."""
    return isinstance(array, DiskTensor)
