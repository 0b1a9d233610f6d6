"""Host storage for large per-clip results: in memory, or in a temporary file on disk.

Snippet depths grow with the clip (`s n H W` per dilation, fp16): about 4 MB per frame
for the fast preset at 768 x 432. For very long clips they can live in a memory-mapped
temporary file instead (``directory``): the operating system keeps in RAM only what is
being written or read, so host memory stays flat. The tensor behaves like any other
(slicing, ``copy_``, ``float()``); the file is deleted when the tensor is freed.
"""

from __future__ import annotations

import logging
import os
import tempfile
import weakref
from pathlib import Path

import numpy as np
import torch
from torch import Tensor

from ..errors import InvalidSettings

logger = logging.getLogger(__name__)

NUMPY_DTYPES = {torch.float16: np.float16, torch.float32: np.float32, torch.uint8: np.uint8}


def host_empty(
    shape: tuple[int, ...], dtype: torch.dtype, directory: str | os.PathLike | None = None
) -> Tensor:
    """An uninitialised host tensor, in memory or backed by a temporary file in ``directory``.

    Args:
        shape: tensor shape.
        dtype: float16, float32 or uint8 when file-backed (any dtype in memory).
        directory: folder for the temporary file; None keeps the tensor in memory.
    """
    if directory is None:
        return torch.empty(shape, dtype=dtype)
    if dtype not in NUMPY_DTYPES:
        raise InvalidSettings(
            f"disk-backed storage holds {', '.join(str(d) for d in NUMPY_DTYPES)}; got {dtype}."
        )
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    handle, name = tempfile.mkstemp(prefix="rollingdepth-", suffix=".bin", dir=directory)
    os.close(handle)
    if int(np.prod(shape)) == 0:
        os.unlink(name)
        return torch.empty(shape, dtype=dtype)
    array = np.memmap(name, dtype=NUMPY_DTYPES[dtype], mode="w+", shape=tuple(shape))
    try:
        os.unlink(name)  # POSIX: the mapping keeps the data; the name disappears now
    except OSError:  # Windows: a mapped file cannot be deleted; delete it when freed
        weakref.finalize(array, _remove, name)
    logger.debug("Disk-backed %s %s in %s.", tuple(shape), dtype, directory)
    return torch.from_numpy(array)


def _remove(name: str) -> None:
    try:
        os.unlink(name)
    except OSError:
        logger.warning("Could not delete the temporary file %s.", name)
