"""Progress and cancel hooks: plain callables passed into long-running core functions.

The core calls ``hooks.check_cancel()`` between units of work (it raises to stop) and
``hooks.progress(done, total)`` after each. The CLI passes tqdm-backed hooks, ComfyUI a
progress bar and its interrupt check, tests a recorder.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
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


def weighted_stage_hooks(
    hooks: Hooks, costs: Mapping[str, float], steps: int = 1000
) -> Callable[[str], Hooks]:
    """One progress for a run of several stages, each weighted by its cost.

    Stage `s` at `done / total` reports `(cost of the stages before s + cost_s * done / total)
    / total cost` to ``hooks.progress`` as `(k, steps)`; the value never goes back. Stages
    not in ``costs`` only get the cancel check.

    Args:
        hooks: the one progress (e.g. a ComfyUI bar) and the cancel check.
        costs: stage -> relative cost, in the order the stages run.
        steps: resolution of the reported progress.

    Returns:
        ``hooks_for(stage)``, as `pipeline.estimate_depth` takes it.
    """
    total = sum(costs.values()) or 1.0
    starts, before = {}, 0.0
    for stage, cost in costs.items():
        starts[stage], before = before, before + cost
    reported = [0]

    def for_stage(stage: str) -> Hooks:
        if stage not in costs:
            return Hooks(check_cancel=hooks.check_cancel)

        def progress(done: int, stage_total: int) -> None:
            share = min(done, stage_total) / stage_total if stage_total > 0 else 1.0
            step = round((starts[stage] + costs[stage] * share) / total * steps)
            reported[0] = max(reported[0], min(step, steps))
            hooks.progress(reported[0], steps)

        return Hooks(progress=progress, check_cancel=hooks.check_cancel)

    return for_stage


_OPEN_BARS: set = set()  # bars `tqdm_hooks` has drawn and not closed yet


def tqdm_hooks(desc: str, *, disable: bool = False) -> Hooks:
    """Hooks that draw a tqdm progress bar on stderr (for the CLI).

    The bar's total is taken from the first ``progress`` call; it closes itself when
    ``done`` reaches ``total``. A bar left open by an error is closed by
    `close_progress_bars`.
    """
    from tqdm.auto import tqdm

    state: dict[str, object] = {}

    def progress(done: int, total: int) -> None:
        bar = state.get("bar")
        if bar is None:
            bar = tqdm(total=total, desc=desc, disable=disable, leave=False, dynamic_ncols=True)
            state["bar"] = bar
            _OPEN_BARS.add(bar)
        bar.total = total
        bar.n = done
        bar.refresh()
        if done >= total:
            bar.close()
            _OPEN_BARS.discard(bar)
            state.pop("bar")

    return Hooks(progress=progress)


def close_progress_bars() -> None:
    """Close (and clear) every bar `tqdm_hooks` left open, so the next line starts clean."""
    for bar in list(_OPEN_BARS):
        bar.close()
        _OPEN_BARS.discard(bar)
