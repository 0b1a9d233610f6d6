"""Host storage for large per-clip arrays: in memory, or in a file read and written by slices.

Snippet depths grow with the clip (`s n H W` per dilation, fp16): 1000 frames x 9
predictions x 768x432 is 6 GB. A `DiskTensor` keeps such an array in a raw file and
behaves, for the code that fills and reads it, like the tensor it replaces: ``shape``,
``dtype``, ``ndim``, ``len``, slicing (``store[a:b]``, ``store[k, j]``,
``store[..., ::10, ::10]``, index tensors), which returns an ordinary tensor copy, and
slice assignment. Each access maps the file only for its duration, so the process keeps no
file pages mapped: its resident memory stays what the caller holds, however long the clip
(the operating system may still cache the file; that cache is reclaimable and not counted).

`host_empty` is what a stage allocates: a tensor in memory, or with a ``directory`` a
`DiskTensor` in a temporary file there that disappears with the array. Co-alignment reads
`SnippetDepths.depths` in chunks and the merge streams frame by frame, so both accept either.
"""

from __future__ import annotations

import contextlib
import logging
import math
import mmap
import os
import sys
import tempfile
import weakref
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch
from torch import Tensor

from ..errors import InvalidInput, InvalidSettings

logger = logging.getLogger(__name__)

NUMPY_DTYPES = {
    torch.float16: np.float16,
    torch.float32: np.float32,
    torch.float64: np.float64,
    torch.uint8: np.uint8,
}


class DiskTensor:
    """A fixed-shape array in a raw file, read and written by slices.

    Attributes:
        path: the file (for a temporary array: its name when it was made; POSIX removes
            the name at once and keeps the open file).
        shape: `torch.Size`.
        dtype: torch dtype (one of ``NUMPY_DTYPES``).
    """

    def __init__(self, path: str | Path, shape: tuple[int, ...], dtype: torch.dtype,
                 create: bool = False) -> None:
        check_disk_dtype(dtype, InvalidInput)
        self.path = Path(path)
        self.shape = torch.Size(int(s) for s in shape)
        self.dtype = dtype
        self._handle = None  # an open file a temporary array keeps (its name may be gone)
        if create:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            with open(self.path, "wb") as handle:
                handle.truncate(self.nbytes)
        elif not self.path.is_file() or self.path.stat().st_size != self.nbytes:
            raise InvalidInput(f"{self.path} does not hold a {tuple(self.shape)} {dtype} array.")

    @classmethod
    def empty(cls, path: str | Path, shape: tuple[int, ...], dtype: torch.dtype) -> DiskTensor:
        """A new zero-filled file of the given shape (sparse on most file systems)."""
        return cls(path, shape, dtype, create=True)

    @classmethod
    def temporary(
        cls, directory: str | os.PathLike, shape: tuple[int, ...], dtype: torch.dtype
    ) -> DiskTensor:
        """A new zero-filled array in a temporary file in ``directory``, gone with the array.

        On POSIX the file's name is removed at once (the open file keeps the data), so
        nothing is left behind even if the process is killed; elsewhere the file is deleted
        when the array is freed.
        """
        check_disk_dtype(dtype, InvalidInput)
        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        descriptor, name = tempfile.mkstemp(prefix="rollingdepth-", suffix=".bin", dir=directory)
        handle = os.fdopen(descriptor, "r+b")
        store = cls.__new__(cls)
        store.path, store.dtype = Path(name), dtype
        store.shape = torch.Size(int(s) for s in shape)
        handle.truncate(store.nbytes)
        store._handle = handle
        removed = sys.platform != "win32" and _remove(name)
        weakref.finalize(store, _close, handle, None if removed else name)
        logger.debug("Disk-backed %s %s in %s.", tuple(store.shape), dtype, directory)
        return store

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

    def _with_array(self, use: Callable[[np.ndarray], object], writable: bool = False):
        """``use(array)`` on the file mapped as a numpy array of ``shape``, unmapped after.

        ``use`` must not keep the array (or a view of it): the map closes when it returns.
        """
        if self._handle is not None:
            opened = contextlib.nullcontext(self._handle)
        else:
            opened = open(self.path, "r+b" if writable else "rb")
        access = mmap.ACCESS_WRITE if writable else mmap.ACCESS_READ
        with opened as handle, mmap.mmap(handle.fileno(), 0, access=access) as mapped:
            array = np.frombuffer(mapped, dtype=NUMPY_DTYPES[self.dtype]).reshape(self.shape)
            result = use(array)
            del array  # release the buffer before the map closes
            if writable:
                mapped.flush()
        return result

    def __getitem__(self, key) -> Tensor:
        key = _numpy_key(key)
        if self.nbytes == 0:
            return torch.empty(self.shape, dtype=self.dtype)[key]
        return torch.from_numpy(self._with_array(lambda array: np.array(array[key], copy=True)))

    def __setitem__(self, key, value: Tensor) -> None:
        key = _numpy_key(key)
        if self.nbytes == 0:
            return
        data = torch.as_tensor(value).detach().to("cpu", self.dtype).numpy()

        def write(array: np.ndarray) -> None:
            array[key] = data

        self._with_array(write, writable=True)

    def float(self) -> Tensor:
        """The whole array in memory as float32 (only for arrays that fit)."""
        return self[...].float()


def host_empty(
    shape: tuple[int, ...], dtype: torch.dtype, directory: str | os.PathLike | None = None
) -> Tensor | DiskTensor:
    """An array to fill: a host tensor in memory, or a temporary `DiskTensor` in ``directory``.

    Args:
        shape: array shape.
        dtype: any dtype in memory; one of ``NUMPY_DTYPES`` on disk.
        directory: folder for the temporary file; None keeps the array in memory.
    """
    if directory is None:
        return torch.empty(shape, dtype=dtype)
    check_disk_dtype(dtype, InvalidSettings)
    return DiskTensor.temporary(directory, shape, dtype)


def check_disk_dtype(dtype: torch.dtype, error: type[Exception]) -> None:
    """Raise ``error`` unless a `DiskTensor` can hold ``dtype``."""
    if dtype not in NUMPY_DTYPES:
        raise error(
            f"disk-backed storage supports {', '.join(str(d) for d in NUMPY_DTYPES)}; got {dtype}."
        )


def is_stored_on_disk(array) -> bool:
    """Whether ``array`` is a `DiskTensor` (read it by slices, not as a whole)."""
    return isinstance(array, DiskTensor)


def _numpy_key(key):
    """Index tensors (advanced indexing) as numpy arrays; everything else unchanged."""
    if isinstance(key, Tensor):
        return key.numpy()
    if isinstance(key, tuple):
        return tuple(k.numpy() if isinstance(k, Tensor) else k for k in key)
    return key


def _remove(name: str) -> bool:
    """Delete the file ``name``; False (with a log line) where it cannot be deleted now."""
    try:
        os.unlink(name)
    except OSError:
        return False
    return True


def _close(handle, name: str | None) -> None:
    handle.close()
    if name is not None and not _remove(name):
        logger.warning("Could not delete the temporary file %s.", name)
