"""Peak bytes of live tensors during a block of code, on any device (CPU and meta included).

A `TorchDispatchMode` sees every tensor an operator returns; each new storage is counted
until its base tensor is freed. This measures what the caching allocator of an accelerator
would have to hold (without its rounding and fragmentation), and works where no allocator
statistics exist, e.g. to size batches on a CPU-only machine.
"""

from __future__ import annotations

import weakref

import torch
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils._pytree import tree_flatten


class LiveBytes(TorchDispatchMode):
    """Track bytes of tensors created inside the block; ``peak`` is the high-water mark.

    Tensors that existed before the block (weights, inputs) are not counted.

    >>> with LiveBytes() as tracker:
    ...     model(x)
    >>> tracker.peak
    """

    def __init__(self):
        super().__init__()
        self.current = 0
        self.peak = 0
        self._seen: set[int] = set()

    def _release(self, key: int, nbytes: int) -> None:
        self._seen.discard(key)
        self.current -= nbytes

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        out = func(*args, **(kwargs or {}))
        inputs = {_key(t) for t in tree_flatten((args, kwargs))[0] if isinstance(t, torch.Tensor)}
        for tensor in tree_flatten(out)[0]:
            # views and in-place results allocate nothing: their storage is counted already
            # (made in the block) or is not ours to count (weights, inputs)
            if not isinstance(tensor, torch.Tensor) or tensor._base is not None:
                continue
            key = _key(tensor)
            if key in self._seen or key in inputs:
                continue
            nbytes = tensor.untyped_storage().nbytes()
            self._seen.add(key)
            self.current += nbytes
            self.peak = max(self.peak, self.current)
            weakref.finalize(tensor, self._release, key, nbytes)
        return out


def _key(tensor: torch.Tensor) -> int:
    """Identity of a tensor's storage (meta tensors have no addresses: use the object)."""
    if tensor.device.type == "meta":
        return id(tensor._base if tensor._base is not None else tensor)
    return tensor.untyped_storage().data_ptr()
