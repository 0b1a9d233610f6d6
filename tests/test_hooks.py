"""Progress/cancel hooks."""

from rollingdepth_core.hooks import NO_HOOKS, Hooks, tqdm_hooks


def test_defaults_do_nothing():
    NO_HOOKS.progress(1, 2)
    NO_HOOKS.check_cancel()
    assert Hooks() == NO_HOOKS


def test_tqdm_hooks_track_total(capsys):
    hooks = tqdm_hooks("stage")
    hooks.progress(1, 4)
    hooks.progress(4, 4)
    hooks.progress(2, 3)  # a new bar after the first closed
    hooks.progress(3, 3)
    err = capsys.readouterr().err
    assert "stage" in err and "4/4" in err and "3/3" in err
