"""Input colour: plates in any colour space -> the sRGB display encoding the model was trained on.

The depth model saw photographs: display-referred sRGB values in 0..1. A scene-linear EXR or a
log DPX must be turned into that before it is encoded, or the model sees a dark, flat or
washed-out picture. OpenColorIO does it, with

- the ACES studio config built into OpenColorIO (``ocio://studio-config-latest``: ACEScg,
  ACES2065-1, linear Rec.709, sRGB, ACEScct, camera log encodings, ...), or
- the config in ``$OCIO`` (a facility's own), or a config file or ``ocio://`` URI passed in.

Rules:

- scene-referred spaces (scene-linear, log) go through a display/view transform to the sRGB
  display, by default the config's standard view for it (in the studio config
  "ACES 2.0 - SDR 100 nits (Rec.709)"), which rolls values above display white off smoothly;
- display-referred encodings (sRGB, gamma 2.2 Rec.709, Rec.709 camera) are re-encoded
  colorimetrically to sRGB (sRGB itself is left as it is);
- ``"raw"`` leaves the values alone; ``"auto"`` picks by file type: half/float EXR =
  scene-linear Rec.709 through the view transform, 8/16-bit (and 10-bit) integer files = sRGB
  as stored (no OpenColorIO involved).

Results are clipped to 0..1; non-finite input pixels become 0 (counted, so callers can warn).
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass, field
from functools import lru_cache

import numpy as np

from ..errors import InvalidSettings

logger = logging.getLogger(__name__)

AUTO = "auto"
RAW = "raw"
SRGB_AS_STORED = "sRGB (as stored)"
BUILTIN_CONFIG = "ocio://studio-config-latest"
DEFAULT_DISPLAY = "sRGB - Display"
SCENE_LINEAR_DEFAULT = "Linear Rec.709 (sRGB)"
# Names tried, in order, for the sRGB texture encoding of a config (studio config name first).
SRGB_ENCODINGS = (
    "sRGB Encoded Rec.709 (sRGB)", "srgb_tx", "sRGB - Texture", "Utility - sRGB - Texture", "sRGB",
)
DISPLAY_ENCODINGS = ("sdr-video",)


def config_location(config: str | os.PathLike | None = None) -> str:
    """The config used: ``config`` if given, else ``$OCIO`` if set, else the built-in studio config."""
    if config:
        return os.fspath(config)
    return os.environ.get("OCIO", "") or BUILTIN_CONFIG


@lru_cache(maxsize=8)
def _load_config(location: str):
    import PyOpenColorIO as ocio

    try:
        if location.startswith("ocio://"):
            return ocio.Config.CreateFromFile(location)
        if not os.path.isfile(location):
            raise InvalidSettings(
                f"OpenColorIO config {location} does not exist (from the config argument or $OCIO)."
            )
        return ocio.Config.CreateFromFile(location)
    except ocio.Exception as error:
        raise InvalidSettings(f"Could not load the OpenColorIO config {location}: {error}.") from error


def load_config(config: str | os.PathLike | None = None):
    """The OpenColorIO config (cached by location)."""
    return _load_config(config_location(config))


def colour_space_names(config: str | os.PathLike | None = None) -> list[str]:
    """Every colour space of the config (for menus), scene spaces first as the config lists them."""
    return [cs.getName() for cs in load_config(config).getColorSpaces()]


@dataclass(frozen=True)
class ColourTransform:
    """A resolved input colour conversion, applied to `H W 3` float32 RGB.

    Attributes:
        source: the input colour space (the config's own name), `SRGB_AS_STORED` or "raw".
        description: one line for logs and file metadata.
        config: the config location ("" when OpenColorIO is not used).
        display, view: the display/view of a scene-referred conversion (else "").
        target: the colour space of a display-referred re-encoding (else "").
    """

    source: str
    description: str
    config: str = ""
    display: str = ""
    view: str = ""
    target: str = ""
    _cpu: object = field(default=None, repr=False, compare=False)

    @property
    def uses_ocio(self) -> bool:
        return self._cpu is not None

    def apply(self, rgb: np.ndarray) -> tuple[np.ndarray, int]:
        """Convert `H W 3` float32 (not changed) to the sRGB display encoding in 0..1.

        Returns:
            `H W 3` float32 in 0..1 and the number of non-finite input values set to 0.
        """
        out = np.array(rgb, dtype=np.float32, copy=True, order="C")
        bad = ~np.isfinite(out)
        count = int(bad.sum())
        if count:
            out[bad] = 0.0
        if self._cpu is not None:
            self._cpu.applyRGB(out)
            np.nan_to_num(out, copy=False, nan=0.0, posinf=1.0, neginf=0.0)
        np.clip(out, 0.0, 1.0, out=out)
        return out, count


def _as_stored(name: str) -> ColourTransform:
    what = "raw values" if name == RAW else "8/16-bit integer file read as sRGB"
    return ColourTransform(source=name, description=f"none ({what}, clipped to 0..1)")


def _find_space(config, name: str, location: str):
    space = config.getColorSpace(name)
    if space is None:
        names = [cs.getName() for cs in config.getColorSpaces()]
        close = [n for n in names if name.lower() in n.lower() or n.lower() in name.lower()][:5]
        hint = f" Close matches: {', '.join(close)}." if close else ""
        raise InvalidSettings(
            f"Colour space {name!r} is not in the OpenColorIO config {location}.{hint} "
            f"It has: {', '.join(names[:12])}{', ...' if len(names) > 12 else ''}."
        )
    return space


def resolve_colour(
    colour_space: str = AUTO,
    is_float: bool = False,
    config: str | os.PathLike | None = None,
    display: str | None = None,
    view: str | None = None,
) -> ColourTransform:
    """The conversion from ``colour_space`` to the sRGB display encoding.

    Args:
        colour_space: a colour space (or alias) of the config, "auto" (by file type) or
            "raw" (no conversion).
        is_float: the file stores half/float pixels (decides "auto").
        config: config file or ``ocio://`` URI; None = ``$OCIO`` or the built-in studio config.
        display: display of the view transform (default "sRGB - Display", else the config's
            default display).
        view: view transform (default: the display's default view).

    Raises:
        InvalidSettings: unknown colour space, display or view, or an unreadable config.
    """
    if not colour_space:
        colour_space = AUTO
    if colour_space.lower() == RAW:
        return _as_stored(RAW)
    if colour_space.lower() == AUTO:
        if not is_float:
            return _as_stored(SRGB_AS_STORED)
        colour_space = SCENE_LINEAR_DEFAULT
    import PyOpenColorIO as ocio

    location = config_location(config)
    cfg = load_config(config)
    if colour_space == SCENE_LINEAR_DEFAULT and cfg.getColorSpace(colour_space) is None:
        colour_space = cfg.getColorSpace("scene_linear").getName()  # a facility config's own linear
    space = _find_space(cfg, colour_space, location)
    name = space.getName()
    config_name = cfg.getName() or location
    if space.getEncoding() == "data":
        return _as_stored(RAW)
    displays = list(cfg.getDisplays())
    display = display or (DEFAULT_DISPLAY if DEFAULT_DISPLAY in displays else cfg.getDefaultDisplay())
    if display not in displays:
        raise InvalidSettings(
            f"Display {display!r} is not in the OpenColorIO config {location}; it has: {', '.join(displays)}."
        )
    views = list(cfg.getViews(display))
    view = view or cfg.getDefaultView(display)
    if view not in views:
        raise InvalidSettings(
            f"View {view!r} is not a view of display {display!r}; its views: {', '.join(views)}."
        )
    target = None
    if space.getReferenceSpaceType() == ocio.REFERENCE_SPACE_DISPLAY:  # already display-referred
        target = cfg.getDisplayViewColorSpaceName(display, view) or None
        if target == "<USE_DISPLAY_NAME>":  # OpenColorIO's token for "the space named like the display"
            target = display
    elif space.getEncoding() in DISPLAY_ENCODINGS:  # an sRGB-like texture encoding
        target = next(
            (cfg.getColorSpace(n).getName() for n in SRGB_ENCODINGS if cfg.getColorSpace(n)), None
        )
    if target is not None and cfg.getColorSpace(target) is not None:
        processor = cfg.getProcessor(name, target)
        identity = processor.isNoOp() or name == target
        return ColourTransform(
            source=name,
            description=f"OpenColorIO {config_name}: {name!r} -> {target!r}"
            + (" (identity)" if identity else ""),
            config=location, target=target,
            _cpu=None if identity else processor.getDefaultCPUProcessor(),
        )
    transform = ocio.DisplayViewTransform(src=name, display=display, view=view)
    try:
        processor = cfg.getProcessor(transform)
    except ocio.Exception as error:
        raise InvalidSettings(
            f"OpenColorIO cannot convert {name!r} to {display!r} / {view!r}: {error}."
        ) from error
    return ColourTransform(
        source=name,
        description=f"OpenColorIO {config_name}: {name!r} -> display {display!r}, view {view!r}",
        config=location, display=display, view=view,
        _cpu=processor.getDefaultCPUProcessor(),
    )


def check_colour_space(colour_space: str, config: str | os.PathLike | None = None) -> None:
    """Raise ``InvalidSettings`` unless ``colour_space`` is "auto", "raw" or in the config."""
    if not colour_space or colour_space.lower() in (AUTO, RAW):
        return
    _find_space(load_config(config), colour_space, config_location(config))


def warn_non_finite(count: int, where: str) -> None:
    """Log once per call site that ``count`` non-finite values were replaced by 0."""
    if count:
        logger.warning("%s: %d NaN or infinite values were replaced by 0 before conversion.", where, count)

