"""The one place that asks a device about its memory (everything else is device-agnostic)."""

from __future__ import annotations

import gc

import torch

from ..wording import API, Wording


def is_out_of_memory(error: BaseException) -> bool:
    """True for an accelerator out-of-memory error (CUDA, MPS, XPU...)."""
    if isinstance(error, torch.OutOfMemoryError):
        return True
    return isinstance(error, RuntimeError) and "out of memory" in str(error).lower()


def cuda_device(device: torch.device | str) -> torch.device | None:
    """``device`` as a torch.device when it is a CUDA device this PyTorch can use, else None."""
    device = torch.device(device)
    return device if device.type == "cuda" and torch.cuda.is_available() else None


def mps_available() -> bool:
    """True where Apple's MPS backend is built and usable."""
    return getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available()


def empty_cache(device: torch.device | str) -> None:
    """Give cached, unused accelerator memory back after an out-of-memory error."""
    gc.collect()
    if cuda_device(device) is not None:
        torch.cuda.empty_cache()
    elif torch.device(device).type == "mps" and hasattr(torch, "mps"):
        torch.mps.empty_cache()


def free_memory(device: torch.device | str) -> int | None:
    """Bytes the process can still allocate on ``device`` (None when unknown, e.g. CPU)."""
    cuda = cuda_device(device)
    if cuda is None:
        return None
    free, _total = torch.cuda.mem_get_info(cuda)
    return int(free + torch.cuda.memory_reserved(cuda) - torch.cuda.memory_allocated(cuda))


def peak_memory(device: torch.device | str) -> int | None:
    """Peak bytes allocated on ``device`` since the last `reset_peak_memory` (None on CPU)."""
    cuda = cuda_device(device)
    return None if cuda is None else int(torch.cuda.max_memory_allocated(cuda))


def reset_peak_memory(device: torch.device | str) -> None:
    """Start a new peak-memory measurement on ``device`` (no-op on CPU)."""
    cuda = cuda_device(device)
    if cuda is not None:
        torch.cuda.reset_peak_memory_stats(cuda)


def synchronize(device: torch.device | str) -> None:
    """Wait for queued work on ``device`` (for timings)."""
    cuda = cuda_device(device)
    if cuda is not None:
        torch.cuda.synchronize(cuda)


def default_device() -> torch.device:
    """The best available device: CUDA, then Apple MPS, then the CPU."""
    if torch.cuda.is_available():
        return torch.device("cuda")
    return torch.device("mps") if mps_available() else torch.device("cpu")


def check_device(device: torch.device | str, wording: Wording = API) -> torch.device:
    """``device`` as a torch.device, checked to exist on this machine.

    Args:
        device: "cuda", "cuda:1", "mps", "cpu" or a torch.device.
        wording: how the caller's interface names the setting (the fix in the message).

    Raises:
        InvalidSettings: unknown device string, or an accelerator this machine lacks.
    """
    from ..errors import InvalidSettings

    name = wording.name("device")
    try:
        device = torch.device(device)
    except (RuntimeError, TypeError) as error:
        raise InvalidSettings(
            f"Unknown {name} {device!r} ({error}). Use cuda, cuda:1, mps or cpu."
        ) from None
    if device.type == "cuda":
        if not torch.cuda.is_available():
            raise InvalidSettings(
                f"Device {device} was asked for but this PyTorch has no usable CUDA GPU. "
                f"Use {wording.assign('device', 'cpu')}, or install a CUDA build of PyTorch."
            )
        if device.index is not None and device.index >= torch.cuda.device_count():
            raise InvalidSettings(
                f"Device {device} does not exist; this machine has {torch.cuda.device_count()} GPU(s)."
            )
    if device.type == "mps" and not mps_available():
        raise InvalidSettings(
            f"Device {device} (Apple MPS) is not available here. Use {wording.assign('device', 'cpu')}."
        )
    return device


def allocated_memory(device: torch.device | str) -> int | None:
    """Bytes currently allocated by tensors on ``device`` (None on CPU)."""
    cuda = cuda_device(device)
    return None if cuda is None else int(torch.cuda.memory_allocated(cuda))


def device_name(device: torch.device | str) -> str:
    """Marketing name of an accelerator (e.g. "NVIDIA H100 80GB HBM3"), else the device type."""
    cuda = cuda_device(device)
    return torch.cuda.get_device_name(cuda) if cuda is not None else torch.device(device).type
