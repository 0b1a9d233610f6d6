"""Benchmark result files: written atomically (a temporary name in the same folder, then a
rename), and never over an earlier result unless the command was given ``--overwrite``."""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path


class ResultExists(Exception):
    """A result file a benchmark would write is already there; the message is one line."""


def refuse_existing(paths: Iterable[str | os.PathLike | None], overwrite: bool, command: str) -> None:
    """Stop ``command`` (e.g. ``"bench align"``) before any work if one of ``paths`` exists
    (``None``, an output option not given, is skipped).

    Raises:
        ResultExists: naming the first existing path and the flag, unless ``overwrite``.
    """
    if overwrite:
        return
    for path in paths:
        if path is not None and os.path.lexists(path):
            raise ResultExists(f"{command}: {path} exists; pass --overwrite to replace it")


@contextmanager
def replaced_atomically(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary path beside ``path`` (same suffix) to write; on leaving the block
    it replaces ``path`` in one rename, or is removed if the block failed or was stopped."""
    path = Path(path)
    handle, temporary = tempfile.mkstemp(prefix=f".{path.stem}.", suffix=f".partial{path.suffix}",
                                         dir=path.parent)
    os.close(handle)
    try:
        yield Path(temporary)
        os.chmod(temporary, 0o666 & ~current_umask())  # mkstemp made it 0600: others could not read it
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise


def current_umask() -> int:
    """The process's file-creation mask (reading it means setting it: set it straight back)."""
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def write_text_atomic(path: str | os.PathLike, text: str) -> Path:
    """Write ``text`` to ``path``: readers see the old file or the whole new one, never a part.

    Returns:
        The path written.
    """
    with replaced_atomically(path) as temporary:
        temporary.write_text(text)
    return Path(path)


def save_figure_atomic(figure, path: str | os.PathLike, **savefig_options) -> Path:
    """``figure.savefig(path, **savefig_options)`` with the same guarantee as
    `write_text_atomic`; the temporary name keeps the suffix, so matplotlib picks the format.

    Returns:
        The path written.
    """
    with replaced_atomically(path) as temporary:
        figure.savefig(temporary, **savefig_options)
    return Path(path)
