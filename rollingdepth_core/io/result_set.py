"""A result set: the output files of one run, written atomically, never silently replaced.

A run writes several entries into one output folder: files (``clip_depth.npz``), folders of
frames (``clip_depth_png16/``), or one file per frame. This module makes that safe:

- `check_output_folder`, before any work: the folder is created, nothing in its way is a
  file, and a probe file can be written there and removed.
- `ResultSet.plan`, before any work: the entries the run will write are named. A folder that
  already holds a set of the same name stops the run (`OutputExists`) unless it asks for
  ``existing="overwrite"`` (the whole old set is replaced, entries the new run does not
  write included, so no stale frame survives) or ``existing="new_take"`` (the names get the
  next take number: ``clip_take2_depth.npz``).
- `ResultSet.write`, when the results exist: every entry is written into a hidden staging
  folder beside its final place and renamed into place only when the whole set is complete.
  An error or Ctrl-C before that removes the staging folder: earlier results stay as they
  were and no partial file is left. An old set being replaced is moved aside first and
  deleted only after every new entry is in place (put back if the commit fails).

Names are templates with ``{stem}``: the set of stem ``clip`` with the entries
``("{stem}_depth.npz", "{stem}_depth_png16")`` is ``clip_depth.npz`` and
``clip_depth_png16/``. ``patterns`` (glob syntax, also with ``{stem}``) list everything a
set of that stem may hold, also what this run does not write (other formats, per-colour-map
previews): they decide what counts as "already there" and what overwriting removes.

Example::

    results = ResultSet.plan(out, "clip", ("{stem}_depth.npz",), existing="refuse")  # early
    ...  # the expensive work
    with results.write() as staging:
        save_npz(staging.path("clip_depth.npz"), depth)   # renamed into place on exit
"""

from __future__ import annotations

import contextlib
import fnmatch
import glob
import logging
import os
import re
import shutil
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from ..errors import InvalidSettings, OutputExists
from ..wording import API, Wording

logger = logging.getLogger(__name__)

EXISTING_POLICIES = ("refuse", "overwrite", "new_take")
TAKE_PREFIX = "{stem}_take"  # the CLI's takes: clip, clip_take2, clip_take3 (take 1 is plain)
STAGING_PREFIX = ".rollingdepth-partial-"  # hidden folders of sets being written
TRASH_PREFIX = ".rollingdepth-replaced-"  # hidden folders of sets being replaced
PROBE_PREFIX = ".rollingdepth-probe-"  # the file that proves a folder is writable


def check_output_folder(folder: str | os.PathLike) -> Path:
    """Create ``folder`` (and its parents) and prove that files can be written there.

    Call it before any heavy work, so a bad output folder fails in a second, not after
    the run.

    Returns:
        The folder as an absolute path.

    Raises:
        InvalidSettings: the folder (or a parent) is a file, cannot be created, or cannot
            be written to.
    """
    return check_writable_folder(folder, "Output folder")


def check_writable_folder(folder: str | os.PathLike, name: str) -> Path:
    """`check_output_folder` for any folder a run writes to; ``name`` starts the messages
    (e.g. "Output folder", "--storage-dir")."""
    folder = Path(os.path.abspath(os.path.expanduser(folder)))
    blocker = next((p for p in (folder, *folder.parents) if p.exists() and not p.is_dir()), None)
    if blocker is not None:
        what = "is a file" if blocker == folder else f"cannot be created: {blocker} is a file"
        raise InvalidSettings(f"{name} {folder} {what}. Choose a folder.")
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise InvalidSettings(
            f"{name} {folder} cannot be created ({error.strerror or error}). "
            "Choose a folder you can write to."
        ) from None
    probe = folder / f"{PROBE_PREFIX}{uuid.uuid4().hex}"
    try:
        probe.write_bytes(b"probe")
    except OSError as error:
        raise InvalidSettings(
            f"{name} {folder} is not writable ({error.strerror or error}). "
            "Choose a folder you can write to."
        ) from None
    finally:
        with contextlib.suppress(OSError):
            probe.unlink()
    return folder


def next_take(folder: str | os.PathLike, prefix: str) -> int:
    """1 + the highest take number ``k`` of the entries named ``<prefix><k>...`` in ``folder``.

    Takes are never renumbered or reused: with takes 1 and 3 on disk the next is 4.
    Entries whose name continues with more digits than the take (``<prefix>00012``) count
    with all their digits.
    """
    folder = Path(folder)
    if not folder.is_dir():
        return 1
    taken = [0]
    for entry in folder.iterdir():
        if entry.name.startswith(prefix):
            digits = re.match(r"\d+", entry.name[len(prefix):])
            if digits:
                taken.append(int(digits.group()))
    return max(taken) + 1


def _format(template: str, stem: str) -> str:
    return template.replace("{stem}", stem)


def _matches(folder: Path, patterns: tuple[str, ...], stem: str) -> list[Path]:
    """Entries of ``folder`` matching any of ``patterns`` for ``stem`` (hidden ones excluded)."""
    escaped = glob.escape(stem)
    found: set[Path] = set()
    for pattern in patterns:
        found.update(folder.glob(_format(pattern, escaped)))
    return sorted(found)


def _check_names(names: tuple[str, ...]) -> None:
    for name in names:
        hidden = name.startswith((STAGING_PREFIX, TRASH_PREFIX, PROBE_PREFIX))
        if not name or "/" in name or "\\" in name or name in (".", "..") or hidden:
            raise InvalidSettings(f"An output entry must be a plain file or folder name; got {name!r}.")
    if len(set(names)) != len(names):
        raise InvalidSettings(f"Output entries repeat a name: {names}.")


@dataclass(frozen=True)
class ResultSet:
    """The entries one run writes into one folder, and what they replace there.

    Attributes:
        folder: the output folder.
        stem: the set's stem after take numbering (``clip`` or ``clip_take2``).
        names: the entries this run writes (plain names inside ``folder``).
        patterns: glob templates (with ``{stem}``) of every entry a set of this stem holds.
        existing: what to do with a set already there: one of `EXISTING_POLICIES`.
        wording: how the refusal names the way out (``--overwrite`` or ``existing="overwrite"``).
    """

    folder: Path
    stem: str
    names: tuple[str, ...]
    patterns: tuple[str, ...]
    existing: str = "refuse"
    wording: Wording = API

    @classmethod
    def plan(
        cls,
        folder: str | os.PathLike,
        stem: str,
        names: tuple[str, ...],
        existing: str = "refuse",
        patterns: tuple[str, ...] | None = None,
        take_prefix: str = TAKE_PREFIX,
        take_digits: int = 0,
        first_take_plain: bool = True,
        wording: Wording = API,
    ) -> ResultSet:
        """Name the entries of a run and decide, before any work, whether it may write them.

        Args:
            folder: the output folder (see `check_output_folder`).
            stem: the set's name, e.g. the input's file name.
            names: templates of the entries this run writes, e.g. ``"{stem}_depth.npz"``.
            existing: "refuse" (default): stop when a set of this stem is there;
                "overwrite": replace that whole set when this one is complete;
                "new_take": write under the next free take's stem (see below).
            patterns: glob templates of every entry a set may hold (default: ``names``).
            take_prefix, take_digits: the stem of take `k` is ``take_prefix`` followed by
                `k` padded to ``take_digits`` digits (``clip_take2``; the nodes use
                ``"{stem}_"`` and 5 digits: ``depth_00001``).
            first_take_plain: take 1 is the plain stem (CLI), so numbering starts at 2.
            wording: how the refusal names the options (the command line passes its own).

        Raises:
            OutputExists: ``existing="refuse"`` and a set of this stem is there.
            InvalidSettings: an unknown policy or a bad entry name.
        """
        if existing not in EXISTING_POLICIES:
            raise InvalidSettings(
                f"existing must be one of {', '.join(EXISTING_POLICIES)}; got {existing!r}."
            )
        folder = Path(folder)
        patterns = tuple(patterns) if patterns is not None else tuple(names)
        if existing == "new_take":
            stem = _take_stem(folder, stem, patterns, take_prefix, take_digits, first_take_plain)
        result = cls(folder, stem, tuple(_format(n, stem) for n in names), patterns, existing, wording)
        _check_names(result.names)
        if existing == "refuse":
            result._refuse_if_present()
        return result

    def present(self) -> list[Path]:
        """Entries of a set of this stem already in the folder (what a write would replace)."""
        found = _matches(self.folder, self.patterns, self.stem)
        found += [self.folder / n for n in self.names if os.path.lexists(self.folder / n)]
        return sorted(set(found))

    def _refuse_if_present(self) -> None:
        present = self.present()
        if present:
            shown = ", ".join(p.name for p in present[:4]) + (" ..." if len(present) > 4 else "")
            if self.wording.style == "cli":
                fix = "Use --overwrite (the whole set is replaced) or --new-take (NAME_take2 ...)."
            else:
                fix = ("Pass existing='overwrite' (the whole set is replaced) or existing='new_take' "
                       "(NAME_take2 ...).")
            raise OutputExists(
                f"{self.folder} already holds results named {self.stem} ({shown}). Nothing was "
                f"computed. {fix}"
            )

    @contextlib.contextmanager
    def write(self) -> Iterator[Staging]:
        """Stage every entry, then put the complete set in place (see the module doc).

        Yields:
            A `Staging`: ``staging.path(name)`` is where entry ``name`` is written.

        Raises:
            OutputExists: a set of this stem appeared while the run computed (``refuse``
                and ``new_take``); the new results are discarded, the others kept.
        """
        self.folder.mkdir(parents=True, exist_ok=True)
        staging = Staging(self, self.folder / f"{STAGING_PREFIX}{self.stem}-{uuid.uuid4().hex[:12]}")
        staging.root.mkdir()
        try:
            yield staging
            self._commit(staging)
        finally:
            shutil.rmtree(staging.root, ignore_errors=True)

    def _commit(self, staging: Staging) -> None:
        missing = [n for n in self.names if not os.path.lexists(staging.root / n)]
        if missing:
            raise RuntimeError(f"Output entries were never written: {missing}.")
        if self.existing != "overwrite":
            self._refuse_if_present()  # extra entries match the patterns, so they count too
        names = (*self.names, *(n for n in staging.extra if os.path.lexists(staging.root / n)))
        old = self.present()
        trash = self.folder / f"{TRASH_PREFIX}{self.stem}-{uuid.uuid4().hex[:12]}"
        moved: list[Path] = []  # old entries moved aside (to put back on failure)
        placed: list[str] = []  # new entries renamed into place
        try:
            if old:
                trash.mkdir()
                for path in old:
                    os.rename(path, trash / path.name)
                    moved.append(path)
            for name in names:
                os.rename(staging.root / name, self.folder / name)
                placed.append(name)
        except BaseException:
            for name in placed:  # undo: new entries back to staging, old ones back in place
                with contextlib.suppress(OSError):
                    os.rename(self.folder / name, staging.root / name)
            for path in moved:
                with contextlib.suppress(OSError):
                    os.rename(trash / path.name, path)
            shutil.rmtree(trash, ignore_errors=True)
            raise
        shutil.rmtree(trash, ignore_errors=True)
        if old:
            logger.info("Replaced %d earlier result(s) named %s in %s.", len(old), self.stem, self.folder)


class Staging:
    """Where the entries of a `ResultSet` are written before they go in place.

    Attributes:
        root: the hidden staging folder.
        extra: entries written beyond the planned names (see `path`).
    """

    def __init__(self, result_set: ResultSet, root: Path):
        self.result_set = result_set
        self.root = root
        self.extra: list[str] = []

    def path(self, name: str) -> Path:
        """The path to write entry ``name`` to, for now.

        ``name`` is one of the set's names, or any name matching its patterns (entries
        only known while the run goes, such as one set per segment of a clip); those are
        put in place with the rest.
        """
        results = self.result_set
        if name not in results.names:
            escaped = glob.escape(results.stem)
            if not any(fnmatch.fnmatchcase(name, _format(p, escaped)) for p in results.patterns):
                raise ValueError(f"{name!r} is not an entry of this result set {results.names}.")
            _check_names((name,))
            if name not in self.extra:
                self.extra.append(name)
        return self.root / name


def _take_stem(
    folder: Path, stem: str, patterns: tuple[str, ...], prefix: str, digits: int, plain_first: bool
) -> str:
    """The stem of the next take of ``stem`` in ``folder`` (1 + the highest there)."""
    prefix = _format(prefix, stem)
    take = next_take(folder, prefix)
    if plain_first:
        if take == 1 and not _matches(folder, patterns, stem):
            return stem
        take = max(take, 2)
    return f"{prefix}{take:0{max(digits, 1)}d}"
