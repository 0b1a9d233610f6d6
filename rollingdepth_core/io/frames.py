"""Frame checks, resizing to the processing resolution, and padding to the VAE's multiple of 8."""

from __future__ import annotations

import hashlib
import logging

import torch
import torch.nn.functional as F
from torch import Tensor

from ..errors import InvalidInput, InvalidSettings

logger = logging.getLogger(__name__)

LATENT_FACTOR = 8  # the VAE downsamples by 8: image sides must be multiples of it


def check_frames(frames: Tensor, name: str = "frames") -> None:
    """Raise ``InvalidInput`` unless ``frames`` is a finite `N 3 H W` float batch with N >= 1.

    Args:
        frames: `N 3 H W`, RGB in -1..1.
        name: argument name used in the message.
    """
    if not isinstance(frames, Tensor):
        raise InvalidInput(f"{name} must be a torch.Tensor `N 3 H W`; got {type(frames).__name__}.")
    if frames.ndim != 4:
        raise InvalidInput(
            f"{name} must be `N 3 H W` (4 dimensions); got shape {tuple(frames.shape)}. "
            "Pass one video at a time, frames first."
        )
    if frames.shape[0] == 0:
        raise InvalidInput(f"{name} is empty (0 frames); pass at least one frame.")
    if frames.shape[1] != 3:
        hint = {4: " Remove the alpha channel first.", 1: " Convert greyscale to RGB first."}.get(
            int(frames.shape[1]), ""
        )
        raise InvalidInput(
            f"{name} must have 3 colour channels (`N 3 H W`); got shape {tuple(frames.shape)}.{hint}"
        )
    if frames.shape[2] < 1 or frames.shape[3] < 1:
        raise InvalidInput(f"{name} has an empty image size: {tuple(frames.shape)}.")
    if not frames.is_floating_point():
        raise InvalidInput(
            f"{name} must be floating point in -1..1; got {frames.dtype}. "
            "Convert uint8 with `x / 127.5 - 1`."
        )
    check_finite(frames, name)
    check_value_range(frames, "-1..1", name)


def check_finite(values: Tensor, name: str) -> None:
    """Raise ``InvalidInput`` naming the frames that hold NaN or infinite values."""
    bad = ~torch.isfinite(values)
    if bool(bad.any()):
        frames_bad = bad.flatten(1).any(1).nonzero().flatten().tolist()
        shown = frames_bad[:10]
        more = f" and {len(frames_bad) - 10} more" if len(frames_bad) > 10 else ""
        raise InvalidInput(
            f"{name} contains NaN or infinite values at frames {shown}{more}. "
            "Fix or drop those frames."
        )


def check_value_range(values: Tensor, expected: str, name: str = "frames") -> None:
    """Refuse float frames clearly outside their documented range; say so when they look like 0..1.

    Values a little outside (resampling overshoot) are fine. Values that can only be 0..255
    pixels, or -1..1 frames where 0..1 images are expected, are refused with the conversion
    to use; -1..1 frames that never go below 0 get a warning (they look like 0..1 images).

    Args:
        values: float frames (any layout).
        expected: "-1..1" (core frames) or "0..1" (images, e.g. a ComfyUI IMAGE).
        name: what the caller calls them.

    Raises:
        InvalidInput: values clearly outside ``expected``, with the conversion to use.
    """
    low, high = (float(v) for v in torch.aminmax(values.detach().flatten()))
    seen = f"{name} hold values {low:.3g}..{high:.3g}"
    if expected == "-1..1":
        if high > 2.0 and low >= -1.0 and high <= 260.0:
            raise InvalidInput(f"{seen}; they look like 0..255 pixels, but -1..1 is expected. "
                               "Convert with x / 127.5 - 1.")
        if high > 2.0 or low < -2.0:
            raise InvalidInput(f"{seen}, far outside the expected -1..1. Scale them to -1..1 first.")
        if low >= 0.0 and high > 0.0:
            logger.warning("%s, all above 0: are they 0..1 images? -1..1 is expected; convert with "
                           "x * 2 - 1.", seen)
    elif expected == "0..1":
        if high > 2.0 and low >= -0.5 and high <= 260.0:
            raise InvalidInput(f"{seen}; they look like 0..255 pixels, but 0..1 is expected. "
                               "Divide by 255 (or pass uint8).")
        if low < -0.5 and low >= -1.05 and high <= 1.05:
            raise InvalidInput(f"{seen}; they look like -1..1 frames, but 0..1 is expected. "
                               "Convert with (x + 1) / 2.")
        if high > 2.0 or low < -0.5:
            raise InvalidInput(f"{seen}, far outside the expected 0..1. Scale them to 0..1 first.")
    else:
        raise ValueError(f"expected must be '-1..1' or '0..1'; got {expected!r}.")


def processing_size(height: int, width: int, resolution: int) -> tuple[int, int]:
    """`(H, W)` with the longest side at ``resolution``, aspect kept (reference: truncated).

    ``resolution`` 0 keeps the input size.
    """
    if resolution < 0:
        raise InvalidSettings(
            f"processing_resolution must be >= 0 (0 keeps the input size); got {resolution}."
        )
    if resolution == 0:
        return height, width
    factor = min(resolution / width, resolution / height)
    return max(1, int(height * factor)), max(1, int(width * factor))


def resize_frames(frames: Tensor, size: tuple[int, int]) -> Tensor:
    """Bilinear resize with antialias (as torchvision's `resize`), or the input when same size.

    Args:
        frames: `N c H W` float.
        size: `(H', W')`.

    Returns:
        `N c H' W'`.
    """
    if tuple(frames.shape[-2:]) == tuple(size):
        return frames
    dtype = frames.dtype
    out = F.interpolate(
        frames.float(), size=size, mode="bilinear", align_corners=False, antialias=True
    )
    return out.to(dtype)


def resize_depth(depth: Tensor, size: tuple[int, int]) -> Tensor:
    """Bilinear resize of a depth video `N H W` to `N H' W'`."""
    return resize_frames(depth[:, None], size)[:, 0]


def padding_for(size: tuple[int, int], multiple: int = LATENT_FACTOR) -> tuple[int, int]:
    """Rows and columns to add at the bottom and right so both sides divide ``multiple``."""
    height, width = size
    return (-height) % multiple, (-width) % multiple


def padded_size(input_size: tuple[int, int], processing_resolution: int) -> tuple[int, int]:
    """`(H, W)` the VAE sees for frames of ``input_size``: the processing size padded to
    multiples of 8."""
    size = processing_size(*input_size, processing_resolution)
    pad = padding_for(size)
    return (size[0] + pad[0], size[1] + pad[1])


def pad_to_multiple(images: Tensor, multiple: int = LATENT_FACTOR) -> Tensor:
    """Pad at the bottom and right by repeating the edge, to sides divisible by ``multiple``.

    Args:
        images: `N c H W`.

    Returns:
        `N c H' W'` with `H' = ceil(H / multiple) * multiple` (likewise `W'`); the input
        itself when nothing is needed.
    """
    pad_h, pad_w = padding_for(tuple(images.shape[-2:]), multiple)
    if pad_h == 0 and pad_w == 0:
        return images
    return F.pad(images, (0, pad_w, 0, pad_h), mode="replicate")


def crop_to(images: Tensor, size: tuple[int, int]) -> Tensor:
    """Top-left `H W` crop of `... H' W'` (undoes `pad_to_multiple`)."""
    height, width = size
    return images[..., :height, :width]


def frames_fingerprint(frames: Tensor) -> tuple:
    """A cheap summary of a clip (shape and a coarse sample of its pixels).

    Two clips with the same fingerprint are treated as the same frames when a later stage
    offers to reuse their latents.
    """
    n, _, h, w = frames.shape
    sample = frames[:, :, :: max(1, h // 7), :: max(1, w // 7)].float().cpu().contiguous()
    return (n, h, w, hashlib.sha1(sample.numpy().tobytes()).hexdigest())
