"""Where a shot's files live: written under a temporary name, renamed into place when complete.

    OUTDIR/NAME/                      a finished shot: exactly what `rollingdepth CLIP -o OUTDIR/NAME` writes
    OUTDIR/.farm-tmp/NAME.ATTEMPT/    one attempt's files while it runs (each attempt its own folder)
    OUTDIR/.farm-tmp/NAME.ATTEMPT.json  which worker (host, pid) runs that attempt
    OUTDIR/.farm.lock                 held by the one farm driver writing to OUTDIR

A shot appears under its NAME in one rename, only after all its files are written, so a crash
never leaves a half shot that looks done; a retried attempt never writes into another
attempt's files.
"""

from __future__ import annotations

import fcntl
import json
import os
import shutil
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from ..errors import InvalidSettings

TEMP_DIR = ".farm-tmp"
LOCK_NAME = ".farm.lock"


def shot_folder(out_dir: Path, name: str) -> Path:
    """The finished shot's folder."""
    return Path(out_dir) / name


def new_attempt(out_dir: Path, name: str) -> tuple[Path, Path]:
    """A fresh temporary folder for one attempt at a shot, and its claim file's path."""
    base = Path(out_dir) / TEMP_DIR / f"{name}.{uuid.uuid4().hex[:12]}"
    return base, base.with_name(base.name + ".json")


def write_claim(claim: Path, info: dict) -> None:
    """Say which worker runs an attempt (written by the worker when it starts the shot)."""
    claim.parent.mkdir(parents=True, exist_ok=True)
    partial = claim.with_name(claim.name + ".part")
    partial.write_text(json.dumps(info))
    os.replace(partial, claim)


def discard_attempt(folder: Path, claim: Path) -> None:
    """Remove an attempt's temporary files (after a failure, or a worker that died)."""
    shutil.rmtree(folder, ignore_errors=True)
    claim.unlink(missing_ok=True)


def commit_shot(folder: Path, claim: Path, out_dir: Path, name: str, overwrite: bool) -> Path:
    """Rename a complete attempt's folder to OUTDIR/NAME (replacing an old one only with
    ``overwrite``); returns the shot's folder."""
    target = shot_folder(out_dir, name)
    old = None
    if target.exists():
        if not overwrite:
            raise InvalidSettings(f"{target} already exists; pass --overwrite to replace it.")
        old = folder.with_name(folder.name + ".replaced")
        os.replace(target, old)
    os.replace(folder, target)
    claim.unlink(missing_ok=True)
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)
    return target


@contextmanager
def output_lock(out_dir: Path) -> Iterator[None]:
    """Hold OUTDIR's farm lock for the run: two drivers never write to one OUTDIR. Leftovers
    of attempts that a crash interrupted are removed once the lock is held."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    with (out_dir / LOCK_NAME).open("a+") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            handle.seek(0)
            raise InvalidSettings(
                f"Another farm run is writing to {out_dir} ({handle.read().strip() or 'unknown'}). "
                "Wait for it to finish or choose another output folder."
            ) from None
        handle.seek(0)
        handle.truncate()
        handle.write(f"pid {os.getpid()} on {os.uname().nodename}\n")
        handle.flush()
        shutil.rmtree(out_dir / TEMP_DIR, ignore_errors=True)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)
