"""Shared by the benchmark tests: a stop at the last moment of an atomic write."""

from __future__ import annotations

import contextlib
import os
from pathlib import Path

import pytest


@pytest.fixture
def interrupt_rename(monkeypatch):
    """``with interrupt_rename(name=None):`` inside the block, a rename onto a file called
    ``name`` (any rename when None) raises KeyboardInterrupt, as Ctrl-C between writing a
    result's temporary file and renaming it; other renames go through."""
    replace = os.replace

    @contextlib.contextmanager
    def interrupted_renames(name: str | None = None):
        def interrupted(source, target):
            if name is not None and Path(target).name != name:
                return replace(source, target)
            raise KeyboardInterrupt

        with monkeypatch.context() as patch:
            patch.setattr(os, "replace", interrupted)
            yield

    return interrupted_renames
