"""One image file read with OpenImageIO: its header, its RGB layer, its windows.

OpenImageIO reads every format a plate comes in (EXR half/float with layers and parts,
10-bit DPX, 8/16-bit TIFF and PNG, JPEG, ...). Pixels come back as float32 exactly: half and
float values unchanged, integers divided by their maximum (10-bit DPX by 1023, 16-bit by
65535), so no precision is lost on the way to the model.

Windows (EXR, DPX with offsets): the *display window* is the frame the plate represents; the
*data window* holds the pixels that are stored (it may be smaller, e.g. an auto-cropped
render, or larger: overscan). ``window="display"`` reads the display window (pixels outside
the data window are 0, overscan is cropped); ``window="data"`` reads the stored pixels.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import numpy as np

from ..errors import InvalidInput, InvalidSettings

WINDOWS = ("display", "data")
FLOAT_TYPES = ("half", "float", "double")
_MAX_SPAN = 8  # read a layer's channels in one call when they lie this close together


@dataclass(frozen=True)
class ImageHeader:
    """What a file holds, read without decoding its pixels.

    Attributes:
        path: the file.
        format_name: OpenImageIO's name of the format ("openexr", "dpx", "tiff", ...).
        subimage: the part (subimage) the chosen layer lives in.
        channels: the three channel indices read as R, G, B (one index thrice for grey).
        channel_names: every channel name of that part.
        pixel_type: "half", "float", "uint8", "uint16", ... (stored type of the chosen channels).
        bits: bits per sample as stored (10 for 10-bit DPX).
        data_window: `(x, y, width, height)` of the stored pixels.
        display_window: `(x, y, width, height)` of the frame.
        pixel_aspect: width of a pixel over its height (2.0 for 2x anamorphic).
        frame_rate: the file's frame rate (EXR ``FramesPerSecond``), or None.
        colour_space: the colour space the file declares (``oiio:ColorSpace``), or "".
    """

    path: Path
    format_name: str
    subimage: int
    channels: tuple[int, int, int]
    channel_names: tuple[str, ...]
    pixel_type: str
    bits: int
    data_window: tuple[int, int, int, int]
    display_window: tuple[int, int, int, int]
    pixel_aspect: float
    frame_rate: Fraction | None
    colour_space: str

    @property
    def is_float(self) -> bool:
        """True for half/float files (scene-linear by convention), False for integer ones."""
        return self.pixel_type in FLOAT_TYPES

    def window(self, which: str) -> tuple[int, int, int, int]:
        return self.display_window if which == "display" else self.data_window

    def size(self, which: str = "display") -> tuple[int, int]:
        """`(H, W)` of the window read, in stored pixels."""
        _, _, width, height = self.window(which)
        return height, width

    def layers(self) -> list[str]:
        """Layer names of the part (the text before the last dot of each channel name)."""
        names = {n.rsplit(".", 1)[0] for n in self.channel_names if "." in n}
        return sorted(names)


def _open(path: Path):
    import OpenImageIO as oiio

    handle = oiio.ImageInput.open(str(path))
    if handle is None:
        message = oiio.geterror() or "unknown error"
        raise InvalidInput(f"Could not read {path} as an image: {message}.")
    return handle


def channel_names(path: str | os.PathLike) -> tuple[str, ...]:
    """The channel names of the first part of ``path`` (header only)."""
    handle = _open(Path(path))
    try:
        return tuple(handle.spec().channelnames)
    finally:
        handle.close()


def _rgb_of(names: tuple[str, ...], layer: str) -> tuple[int, int, int] | None:
    """Indices of ``layer``'s R, G, B (or its single grey channel) in ``names``, or None."""
    prefix = f"{layer}." if layer else ""
    lowered = [n.lower() for n in names]
    picked = []
    for channel in ("r", "g", "b"):
        key = f"{prefix.lower()}{channel}"
        if key not in lowered:
            break
        picked.append(lowered.index(key))
    if len(picked) == 3:
        return picked[0], picked[1], picked[2]
    for grey in ("y", "l", "luminance", "gray", "grey"):
        key = f"{prefix.lower()}{grey}"
        if key in lowered:
            index = lowered.index(key)
            return index, index, index
    if not layer:
        unnamed = [i for i, n in enumerate(names) if "." not in n and n.lower() not in ("a", "alpha", "z")]
        if len(names) in (1, 2) and unnamed:  # grey (+ alpha) with unusual names
            return unnamed[0], unnamed[0], unnamed[0]
        if len(unnamed) >= 3 and not any(n.lower() in ("r", "g", "b") for n in names):
            return unnamed[0], unnamed[1], unnamed[2]  # unnamed colour channels, in order
    return None


def read_header(path: str | os.PathLike, layer: str | None = None) -> ImageHeader:
    """The header of ``path`` and where its RGB layer is (no pixels are decoded).

    Args:
        path: an image file.
        layer: the layer to read: None or "" = the plain RGB channels (alpha and other
            layers ignored); a name such as "diffuse" reads ``diffuse.R/G/B`` or the part
            (subimage) called so.

    Raises:
        InvalidInput: the file cannot be read as an image, or has no such layer (the
            message lists the layers it has).
    """
    path = Path(path)
    handle = _open(path)
    try:
        found = None
        seen_layers: list[str] = []
        subimage = 0
        while True:
            spec = handle.spec()
            names = tuple(spec.channelnames)
            part = spec.get_string_attribute("name", "")
            seen_layers += [n.rsplit(".", 1)[0] for n in names if "." in n] + ([part] if part else [])
            wanted = layer or ""
            channels = _rgb_of(names, wanted)
            if channels is None and wanted and part == wanted:
                channels = _rgb_of(names, "")
            if channels is not None:
                found = (subimage, spec, names, channels)
                break
            subimage += 1
            if not handle.seek_subimage(subimage, 0):
                break
        if found is None:
            what = f"layer {layer!r}" if layer else "RGB (or grey) channels"
            layers = ", ".join(sorted(set(seen_layers))) or "none"
            raise InvalidInput(
                f"{path} has no {what}. Its channels: {', '.join(spec.channelnames)}; its layers: "
                f"{layers}. Pick one of the layers."
            )
        subimage, spec, names, channels = found
        formats = list(spec.channelformats) or [spec.format] * spec.nchannels
        pixel_type = str(formats[channels[0]])
        bits = spec.get_int_attribute("oiio:BitsPerSample", 0) or formats[channels[0]].size() * 8
        rate = spec.getattribute("FramesPerSecond")
        frame_rate = Fraction(int(rate[0]), int(rate[1])) if isinstance(rate, tuple) and rate[1] else None
        return ImageHeader(
            path=path,
            format_name=handle.format_name(),
            subimage=subimage,
            channels=channels,
            channel_names=names,
            pixel_type=pixel_type,
            bits=int(bits),
            data_window=(spec.x, spec.y, spec.width, spec.height),
            display_window=(spec.full_x, spec.full_y, spec.full_width, spec.full_height),
            pixel_aspect=float(spec.get_float_attribute("PixelAspectRatio", 1.0) or 1.0),
            frame_rate=frame_rate,
            colour_space=spec.get_string_attribute("oiio:ColorSpace", ""),
        )
    finally:
        handle.close()


def _read_channels(handle, header: ImageHeader) -> np.ndarray:
    """`h w 3` float32: the chosen channels of the data window."""
    wanted = list(header.channels)
    low, high = min(wanted), max(wanted)
    if high - low < _MAX_SPAN:
        pixels = handle.read_image(header.subimage, 0, low, high + 1, "float")
        if pixels is None:
            raise InvalidInput(f"Could not decode {header.path}: {handle.geterror()}.")
        pixels = pixels.reshape(pixels.shape[0], pixels.shape[1], -1)
        return np.ascontiguousarray(pixels[:, :, [c - low for c in wanted]], dtype=np.float32)
    planes = {}
    for channel in dict.fromkeys(wanted):
        plane = handle.read_image(header.subimage, 0, channel, channel + 1, "float")
        if plane is None:
            raise InvalidInput(f"Could not decode {header.path}: {handle.geterror()}.")
        planes[channel] = plane.reshape(plane.shape[0], plane.shape[1])
    return np.ascontiguousarray(np.stack([planes[c] for c in wanted], axis=-1), dtype=np.float32)


def read_rgb(header: ImageHeader, window: str = "display") -> np.ndarray:
    """The RGB layer of the file as `H W 3` float32, exactly as stored (no colour change).

    Args:
        header: from `read_header` (says which part and channels).
        window: "display" (the frame: missing pixels 0, overscan cropped) or "data" (the
            stored pixels).

    Returns:
        `H W 3` float32 (integers scaled to 0..1, float values unchanged).
    """
    if window not in WINDOWS:
        raise InvalidSettings(f"window must be one of {', '.join(WINDOWS)}; got {window!r}.")
    handle = _open(header.path)
    try:
        if header.subimage and not handle.seek_subimage(header.subimage, 0):
            raise InvalidInput(f"{header.path} lost its part {header.subimage} since it was scanned.")
        spec = handle.spec()
        now = (spec.x, spec.y, spec.width, spec.height)
        if now != header.data_window:
            raise InvalidInput(f"{header.path} changed on disk since it was scanned (data window {now}).")
        pixels = _read_channels(handle, header)  # h w 3, data window
    finally:
        handle.close()
    if window == "data" or header.data_window == header.display_window:
        return pixels
    return place_in_window(pixels, header.data_window, header.display_window)


def place_in_window(
    pixels: np.ndarray, data_window: tuple[int, int, int, int], display_window: tuple[int, int, int, int]
) -> np.ndarray:
    """Data-window pixels `h w c` placed in the display window `H W c` (0 outside, cropped)."""
    dx, dy, dw, dh = data_window
    fx, fy, fw, fh = display_window
    out = np.zeros((fh, fw, pixels.shape[-1]), dtype=pixels.dtype)
    x0, y0 = max(dx, fx), max(dy, fy)
    x1, y1 = min(dx + dw, fx + fw), min(dy + dh, fy + fh)
    if x1 > x0 and y1 > y0:
        out[y0 - fy: y1 - fy, x0 - fx: x1 - fx] = pixels[y0 - dy: y1 - dy, x0 - dx: x1 - dx]
    return out
