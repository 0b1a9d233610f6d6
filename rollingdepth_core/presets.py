"""The reference presets (SPEC §3). Every default is written here once.

>>> settings = dataclasses.replace(PRESETS["fast"], refine_steps=4)
"""

from __future__ import annotations

import operator
from collections.abc import Mapping
from dataclasses import dataclass
from types import MappingProxyType

from .errors import InvalidSettings


@dataclass(frozen=True)
class Preset:
    """Settings of one end-to-end run.

    Attributes:
        processing_resolution: longest side the frames are resized to; 0 keeps the input size.
        dilations: frame spacings of the snippet groups; must include 1.
        dtype: "fp16", "bf16" or "fp32".
        refine_steps: coarse-to-fine refinement steps; 0 turns refinement off.
        cap_dilation: shrink dilations that do not fit the clip (reference rule).
        snippet_length: frames per snippet `n`.
        refine_start_dilation: dilation of the first refinement step.
        refine_snippet_length: frames per snippet during refinement.
    """

    processing_resolution: int
    dilations: tuple[int, ...]
    dtype: str
    refine_steps: int
    cap_dilation: bool = True
    snippet_length: int = 3
    refine_start_dilation: int = 6
    refine_snippet_length: int = 3


# Read-only: a preset changed in place would change every later run of the process (and
# every node default read from it); change a copy with `dataclasses.replace` instead.
PRESETS: Mapping[str, Preset] = MappingProxyType({
    "fast": Preset(768, (1, 25), "fp16", 0),
    "fast1024": Preset(1024, (1, 25), "fp16", 0),
    "full": Preset(1024, (1, 10, 25), "fp16", 10),
    "paper": Preset(768, (1, 10, 25), "fp32", 10, cap_dilation=False),
})


def get_preset(name: str) -> Preset:
    """The preset called ``name`` (one of ``PRESETS``)."""
    try:
        return PRESETS[name]
    except KeyError:
        raise InvalidSettings(
            f"Unknown preset {name!r}. Choose one of {', '.join(PRESETS)}."
        ) from None


def parse_dilations(text: str | tuple[int, ...] | list[int]) -> tuple[int, ...]:
    """Dilations from a widget/CLI string like ``"1,10,25"`` (or a sequence of ints), checked.

    Raises:
        InvalidSettings: not a string or a sequence of whole numbers (``1.5`` is refused, not
            rounded), empty, values below 1, repeats, or 1 missing.
    """
    if isinstance(text, str):
        parts = [p for p in text.replace(" ", ",").split(",") if p]
        try:
            values = tuple(int(p) for p in parts)
        except ValueError:
            raise InvalidSettings(
                f"dilations must be whole numbers separated by commas, e.g. '1,10,25'; got {text!r}."
            ) from None
    else:
        try:
            items = tuple(text)
            if any(isinstance(v, bool) for v in items):
                raise TypeError
            values = tuple(operator.index(v) for v in items)
        except TypeError:
            raise InvalidSettings(
                f"dilations must be whole numbers, e.g. (1, 10, 25) or '1,10,25'; got {text!r}."
            ) from None
    check_dilations(values)
    return values


def check_dilations(dilations: tuple[int, ...]) -> None:
    """Raise ``InvalidSettings`` unless ``dilations`` is a non-empty set of ints >= 1 with 1."""
    if len(dilations) == 0:
        raise InvalidSettings("dilations is empty; give at least 1, e.g. (1, 10, 25).")
    bad = [d for d in dilations if d < 1]
    if bad:
        raise InvalidSettings(
            f"dilations must be >= 1; got {tuple(dilations)}. Remove {bad}, e.g. (1, 10, 25)."
        )
    if 1 not in dilations:
        raise InvalidSettings(
            f"dilations must include 1; got {tuple(dilations)}. "
            f"Add it, e.g. {tuple(sorted({1, *dilations}))}."
        )
    if len(set(dilations)) != len(dilations):
        raise InvalidSettings(f"dilations has repeated values: {tuple(dilations)}. Remove them.")
