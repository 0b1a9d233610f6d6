"""The farm's manifest: one JSON line per shot outcome, appended in OUTDIR/manifest.jsonl.

Each record: ``shot``, ``status`` (done / failed / skipped), ``error``, ``frames``, ``seconds``,
``worker``, ``settings_hash``, ``attempts``, ``path``, ``time``. The file is only ever appended
to (by the driver, the single writer), each line flushed and synced, so a crash loses at most
the line being written and a torn last line is ignored on reading.

A shot is done when its last done-or-failed record is done with the settings hash it would
run with now and its folder exists: a rerun skips it. Failed shots, and shots whose settings
changed, run again.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import time
from dataclasses import dataclass
from pathlib import Path

from ..errors import InvalidInput
from ..io.sequences import pattern_from_text
from .shots import SHOT_OPTIONS, Shot

logger = logging.getLogger(__name__)

MANIFEST_NAME = "manifest.jsonl"
STATUSES = ("done", "failed", "skipped")


def _files_of(path: Path) -> list[Path] | None:
    """The files of a folder or of a plate pattern (``plate.####.exr``); None for one file."""
    pattern = pattern_from_text(path) if not path.exists() else None
    if pattern is not None:
        frames = (p for p in sorted(pattern.folder.iterdir()) if pattern.number_of(p.name) is not None)
        return [p for p in frames if p.is_file()]
    if path.is_dir():
        return [p for p in sorted(path.iterdir()) if p.is_file()]
    return None


def source_identity(path: Path) -> list:
    """What identifies a clip's content cheaply: resolved path, size and modification time
    (of every image, for a folder or a plate pattern)."""
    path = Path(path).resolve()
    files = _files_of(path)
    if files is not None:
        stats = [(p.name, p.stat().st_size, p.stat().st_mtime_ns) for p in files]
        return [str(path), hashlib.sha256(json.dumps(stats).encode()).hexdigest()[:16]]
    stat = path.stat()
    return [str(path), stat.st_size, stat.st_mtime_ns]


def settings_hash(shot: Shot) -> str:
    """16 hex digits that change when anything that changes the shot's outputs changes: the
    settings a shot may set, the model, the frame range and numbering, and the clip itself."""
    options = {key: shot.options.get(key) for key in (*SHOT_OPTIONS, "model")}
    what = {
        "options": {k: (str(v) if isinstance(v, Path) else v) for k, v in sorted(options.items())},
        "clip": source_identity(shot.path),
        "range": [shot.start, shot.count, shot.first_frame, shot.frame_prefix],
        "name": shot.name,
    }
    return hashlib.sha256(json.dumps(what, sort_keys=True, default=str).encode()).hexdigest()[:16]


@dataclass(frozen=True)
class ShotRecord:
    """One line of the manifest."""

    shot: str
    status: str
    settings_hash: str
    error: str | None = None
    frames: int = 0
    seconds: float = 0.0
    worker: str | None = None
    attempts: int = 0
    path: str = ""
    time: str = ""

    def to_json(self) -> str:
        data = dict(self.__dict__)
        data["time"] = data["time"] or time.strftime("%Y-%m-%dT%H:%M:%S%z")
        return json.dumps(data, sort_keys=False)


class Manifest:
    """OUTDIR/manifest.jsonl: read the outcomes so far, append new ones."""

    def __init__(self, out_dir: str | Path):
        self.path = Path(out_dir) / MANIFEST_NAME

    def records(self) -> list[ShotRecord]:
        """Every record, oldest first (a torn last line, from a crash, is skipped)."""
        if not self.path.is_file():
            return []
        records = []
        lines = self.path.read_text(encoding="utf-8").splitlines()
        for number, line in enumerate(lines, start=1):
            if not line.strip():
                continue
            try:
                data = json.loads(line)
                records.append(ShotRecord(**{k: data.get(k) for k in ShotRecord.__dataclass_fields__
                                             if k in data}))
            except (json.JSONDecodeError, TypeError) as error:
                if number == len(lines):
                    logger.warning("Ignoring the torn last line of %s.", self.path)
                    continue
                raise InvalidInput(f"{self.path} line {number} is not a manifest record ({error}). "
                                   "Fix or move the file.") from None
        return records

    def outcomes(self) -> dict[str, ShotRecord]:
        """Each shot's last done-or-failed record (skips do not change an outcome)."""
        last: dict[str, ShotRecord] = {}
        for record in self.records():
            if record.status in ("done", "failed"):
                last[record.shot] = record
        return last

    def append(self, record: ShotRecord) -> None:
        """Add one line, flushed and synced to disk before returning."""
        if record.status not in STATUSES:
            raise ValueError(f"status must be one of {STATUSES}; got {record.status!r}")
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with self.path.open("a", encoding="utf-8") as handle:
            handle.write(record.to_json() + "\n")
            handle.flush()
            os.fsync(handle.fileno())
