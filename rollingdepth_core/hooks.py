"""Progress and cancel hooks: plain callables passed into long-running core functions.

The core calls ``hooks.check_cancel()`` between units of work (it raises to stop) and
``hooks.progress(done, total)`` after each. The CLI passes tqdm-backed hooks, ComfyUI a
progress bar and its interrupt check, tests a recorder.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass


def _ignore_progress(done: int, total: int) -> None:
    """Default progress hook: does nothing."""


def _never_cancel() -> None:
    """Default cancel hook: never raises."""


@dataclass(frozen=True)
class Hooks:
    """Progress and cancel callables for one long-running call.

    Attributes:
        progress: ``progress(done, total)``, called after each unit of work.
        check_cancel: called before each unit of work; raises to stop.
    """

    progress: Callable[[int, int], None] = _ignore_progress
    check_cancel: Callable[[], None] = _never_cancel


NO_HOOKS = Hooks()


def tqdm_hooks(desc: str, *, disable: bool = False) -> Hooks:
    """Hooks that draw a tqdm progress bar on stderr (for the CLI).

    The bar's total is taken from the first ``progress`` call; it closes itself when
    ``done`` reaches ``total``.
    """
    from tqdm.auto import tqdm

    state: dict[str, object] = {}

    def progress(done: int, total: int) -> None:
        bar = state.get("bar")
        if bar is None:
            bar = tqdm(total=total, desc=desc, disable=disable, leave=False, dynamic_ncols=True)
            state["bar"] = bar
        bar.total = total
        bar.n = done
        bar.refresh()
        if done >= total:
            bar.close()
            state.pop("bar")

    return Hooks(progress=progress)
