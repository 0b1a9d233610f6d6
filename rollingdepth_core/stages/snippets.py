"""Dilated snippet plans (SPEC §3.4) and the refinement dilation schedule (SPEC §5.4)."""

from __future__ import annotations

import logging
import operator

import torch
from torch import Tensor

from ..errors import InvalidSettings
from ..presets import parse_dilations
from ..types import SnippetGroup, SnippetPlan

logger = logging.getLogger(__name__)


def max_dilation(num_frames: int, snippet_length: int) -> int:
    """Largest dilation the reference allows: `int(N / n) - 1`, but never below 1.

    The reference rule gives 0 (or less) for clips shorter than `2 n`; a dilation of 1
    always fits, so that is the floor here.
    """
    return max(1, int(num_frames / snippet_length) - 1)


def cap_dilation(num_frames: int, snippet_length: int, dilation: int) -> int:
    """``dilation`` shrunk to `max_dilation(N, n)` when it is larger (reference rule)."""
    return min(dilation, max_dilation(num_frames, snippet_length))


def snippet_indices(num_frames: int, snippet_length: int, dilation: int) -> Tensor:
    """Frame indices of every snippet at one dilation, stride 1.

    Snippet `s` holds frames `s, s + g, ..., s + (n - 1) g` for `s = 0 .. N - 1 - (n - 1) g`.

    Returns:
        `s n` int64; zero rows when the snippet span exceeds the clip.
    """
    _check_positive(num_frames=num_frames, snippet_length=snippet_length, dilation=dilation)
    num_snippets = max(0, num_frames - (snippet_length - 1) * dilation)
    starts = torch.arange(num_snippets, dtype=torch.int64)
    offsets = torch.arange(snippet_length, dtype=torch.int64) * dilation
    return starts[:, None] + offsets[None, :]


def effective_snippet_length(num_frames: int, snippet_length: int) -> int:
    """Snippet length used on a clip of ``num_frames``: shorter clips use all their frames."""
    _check_positive(num_frames=num_frames, snippet_length=snippet_length)
    return min(snippet_length, num_frames)


def plan_snippets(
    num_frames: int,
    dilations: tuple[int, ...] = (1, 25),
    snippet_length: int = 3,
    cap: bool = True,
    log: bool = True,
) -> SnippetPlan:
    """The snippet plan of a clip: one group of stride-1 snippets per dilation.

    Short clips are valid: with `N < n` every snippet holds the whole clip (`N = 1` gives
    single-frame inference). With ``cap`` a dilation above `int(N / n) - 1` is reduced to it
    (the reference rule, floored at 1). A dilation whose snippets do not fit the clip (``cap``
    off) is left out with a warning, and a dilation that capping makes equal to an earlier one
    is run once (the reference would run it twice).

    Args:
        num_frames: `N` >= 1.
        dilations: frame spacings; must include 1.
        snippet_length: `n` >= 1.
        cap: apply dilation capping.
        log: log what was capped, shortened or skipped (off for plans made only to check).

    Returns:
        A `SnippetPlan` whose groups keep the order of ``dilations``.
    """
    _check_positive(num_frames=num_frames, snippet_length=snippet_length)
    dilations = parse_dilations(dilations)  # a sequence of ints or "1,10,25"; 1.5 is refused
    length = effective_snippet_length(num_frames, snippet_length)
    say = logger.info if log else logger.debug
    if length < snippet_length:
        say(
            "The clip has %d frame(s), fewer than the snippet length %d: "
            "snippets of %d frame(s) are used.", num_frames, snippet_length, length,
        )
    groups: list[SnippetGroup] = []
    seen: set[int] = set()
    for requested in dilations:
        dilation = cap_dilation(num_frames, length, requested) if cap else requested
        if dilation != requested:
            say(
                "Dilation %d is too large for %d frames; capped to %d.",
                requested, num_frames, dilation,
            )
        if dilation in seen:
            say("Dilation %d equals an earlier group after capping; run once.", requested)
            continue
        indices = snippet_indices(num_frames, length, dilation)
        if indices.shape[0] == 0:
            (logger.warning if log else logger.debug)(
                "Dilation %d needs at least %d frames, the clip has %d; this group is skipped "
                "(turn capping on to shrink it instead).",
                dilation, (length - 1) * dilation + 1, num_frames,
            )
            continue
        seen.add(dilation)
        groups.append(SnippetGroup(dilation=dilation, requested_dilation=requested, indices=indices))
    return SnippetPlan(num_frames=num_frames, snippet_length=length, groups=tuple(groups))


def refine_dilations(
    num_steps: int, start_dilation: int, num_frames: int, snippet_length: int = 3, cap: bool = True
) -> tuple[int, ...]:
    """Dilation of each refinement step, coarse to fine (SPEC §5.4).

    Step `i` of `K` uses gap `int((1 - i / K) * (start - 1))` and dilation gap + 1. With
    ``cap`` the start dilation is capped like the snippet dilations; a dilation whose
    snippets would not fit the clip is lowered until they do.
    """
    _check_positive(start_dilation=start_dilation, num_frames=num_frames)
    if num_steps < 0:
        raise InvalidSettings(f"refine steps must be >= 0; got {num_steps}. Use 0 to skip.")
    length = effective_snippet_length(num_frames, snippet_length)
    start = cap_dilation(num_frames, length, start_dilation) if cap else start_dilation
    start_gap = start - 1  # gap = frames skipped between snippet frames
    fits = max(1, (num_frames - 1) // max(1, length - 1)) if length > 1 else 1
    return tuple(
        min(int((1 - i / num_steps) * start_gap) + 1, fits) for i in range(num_steps)
    )


def _check_positive(**values: int) -> None:
    for name, value in values.items():
        try:
            whole = not isinstance(value, bool) and operator.index(value) >= 1
        except TypeError:
            whole = False
        if not whole:
            raise InvalidSettings(f"{name} must be a whole number >= 1; got {value!r}.")
