"""Exact frame rates: 23.976 is 24000/1001, and stays so in every output."""

from __future__ import annotations

import re
from fractions import Fraction

from ..errors import InvalidSettings

NTSC = 1001  # NTSC-family rates are n * 1000 / 1001
_TOLERANCE = 0.002


def exact_frame_rate(rate: float | int | str | Fraction) -> Fraction:
    """The exact rate meant by ``rate``.

    ``Fraction`` values are kept; ``"24000/1001"`` is parsed; decimals within 0.002 of an
    NTSC rate (``23.976``, ``29.97``, ``59.94``, ...) become ``n * 1000 / 1001``; other values
    become the nearest fraction with a denominator up to 1001.

    Raises:
        InvalidSettings: not a number > 0.
    """
    if isinstance(rate, Fraction):
        value = rate
    elif isinstance(rate, str):
        match = re.fullmatch(r"\s*(\d+(?:\.\d*)?)\s*(?:/\s*(\d+)\s*)?", rate)
        if match is None or (match.group(2) is not None and int(match.group(2)) == 0):
            raise InvalidSettings(f"frame rate must be a number like 24, 23.976 or 24000/1001; got {rate!r}.")
        value = Fraction(match.group(1)) / (int(match.group(2)) if match.group(2) else 1)
        if match.group(2) is not None:
            return _positive(value, rate)
    else:
        value = Fraction(float(rate)) if not isinstance(rate, int) else Fraction(rate)
    value = _positive(value, rate)
    if isinstance(rate, Fraction) or value.denominator == 1:
        return value
    whole = round(float(value) * NTSC / 1000)
    ntsc = Fraction(whole * 1000, NTSC)
    if whole > 0 and abs(float(value - ntsc)) < _TOLERANCE:
        return ntsc
    return value.limit_denominator(NTSC)


def _positive(value: Fraction, given) -> Fraction:
    if value <= 0:
        raise InvalidSettings(f"frame rate must be > 0; got {given!r}.")
    return value
