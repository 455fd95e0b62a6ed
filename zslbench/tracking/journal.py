"""The offline journal: a run's MLflow writes kept in its output folder while the tracking server is away.

When a write of an :class:`~zslbench.tracking.online.OnlineTracker` fails because the store cannot
be reached (:func:`~zslbench.tracking.reachability.is_connection_error`), the tracker switches to
offline mode: that write and every later one (metric batches, params, tags, artifacts, the final
status) are appended to a journal in the run's output folder::

    <output_dir>/<run_id>/tracking-offline/
        journal.jsonl             one JSON object per line: session | batch | artifact | terminate
        artifacts/000007/final.json   copies of the artifacts logged while offline

The journal is append-only; every record is flushed and fsync'ed before the tracker returns, so a
crash loses at most the line being written, and a torn last line is ignored when the journal is
read (and cut off before a later session appends). The writing process holds an exclusive
``flock`` on ``journal.jsonl``: ``track sync`` leaves a journal alone while its run still writes.
Uploading it is :mod:`zslbench.tracking.replay`'s job (and ``zslbench track sync``'s,
:mod:`zslbench.tracking.sync`).

    >>> find_journals(Path("no-such-folder"))
    []

This module imports neither mlflow nor torch.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import shutil
import socket
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator, Mapping, Sequence

from zslbench.core.errors import UserError

JOURNAL_DIR = "tracking-offline"
SYNCED_DIR = "tracking-synced"
JOURNAL_FILE = "journal.jsonl"
ARTIFACTS_DIR = "artifacts"
JOURNAL_FORMAT = 1


# --------------------------------------------------------------------------- writing
def fsync_directory(directory: Path) -> None:
    with contextlib.suppress(OSError):  # not every file system lets a directory be opened
        fd = os.open(directory, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def _cut_torn_tail(path: Path) -> int:
    """Drop an unterminated last line (a crash mid-write); returns the number of whole records."""
    if not path.exists():
        return 0
    data = path.read_bytes()
    keep = data.rfind(b"\n") + 1
    if keep != len(data):
        with open(path, "r+b") as handle:
            handle.truncate(keep)
            handle.flush()
            os.fsync(handle.fileno())
    return data[:keep].count(b"\n")


class OfflineJournal:
    """The writing side of one run's journal: append-only, one fsync'ed JSON line per operation.

    Open it with :meth:`open`; it holds an exclusive lock on the journal file until :meth:`close`.
    """

    def __init__(self, directory: Path, handle: Any, records: int) -> None:
        self.directory = directory
        self._handle = handle
        self._records = records

    @classmethod
    def open(cls, directory: str | os.PathLike[str], session: Mapping[str, Any]) -> "OfflineJournal":
        """Open (or continue) the journal in ``directory`` and append a ``session`` record."""
        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        path = directory / JOURNAL_FILE
        handle = open(path, "ab")
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            handle.close()
            raise UserError(f"tracking journal {path} is in use by another process; "
                            "let that run finish before starting it again") from None
        journal = cls(directory, handle, _cut_torn_tail(path))
        fsync_directory(directory)
        journal.append({"op": "session", "format": JOURNAL_FORMAT, "pid": os.getpid(), "host": socket.gethostname(),
                        "time": time.time(), **session})
        return journal

    @property
    def path(self) -> Path:
        return self.directory / JOURNAL_FILE

    def append(self, record: Mapping[str, Any]) -> None:
        """Write one record durably (flush + fsync) before returning."""
        line = json.dumps(dict(record), separators=(",", ":"), allow_nan=False) + "\n"
        self._handle.write(line.encode())
        self._handle.flush()
        os.fsync(self._handle.fileno())
        self._records += 1

    def log_batch(self, metrics: Sequence[Any] = (), params: Sequence[Any] = (), tags: Sequence[Any] = (),
                  if_missing: bool = False) -> None:
        """Record what ``MlflowClient.log_batch`` would have sent (MLflow entities).

        ``if_missing``: the metrics are re-sent epochs whose presence in the store could not be
        checked; a replay sends each only if the store has no value of its key at its step."""
        record: dict[str, Any] = {
            "op": "batch",
            "metrics": [[m.key, m.value, m.timestamp, m.step] for m in metrics],
            "params": {p.key: p.value for p in params},
            "tags": {t.key: t.value for t in tags},
        }
        if if_missing:  # absent otherwise: journals stay as they were
            record["if_missing"] = True
        self.append(record)

    def log_file(self, path: str | os.PathLike[str], artifact_path: str | None) -> None:
        """Copy a file (or a directory's contents) into the journal, then record it."""
        source = Path(path)
        slot = Path(ARTIFACTS_DIR) / f"{self._records:06d}"
        target = self.directory / slot / source.name
        target.parent.mkdir(parents=True, exist_ok=True)
        partial = target.with_name(target.name + ".partial")
        if source.is_dir():
            shutil.copytree(source, partial)
        else:
            shutil.copyfile(source, partial)
            with open(partial, "rb") as handle:
                os.fsync(handle.fileno())
        os.replace(partial, target)  # a crash mid-copy leaves only a .partial no record points to
        fsync_directory(target.parent)
        self.append({"op": "artifact", "file": (slot / source.name).as_posix(), "artifact_path": artifact_path,
                     "is_dir": source.is_dir()})

    def terminate(self, status: str, end_time: int | None = None) -> None:
        self.append({"op": "terminate", "status": status, "end_time": end_time or int(time.time() * 1000)})

    def close(self) -> None:
        if not self._handle.closed:
            fcntl.flock(self._handle, fcntl.LOCK_UN)
            self._handle.close()


# --------------------------------------------------------------------------- reading
@dataclass
class Journal:
    """The records of one journal folder, as read back."""

    directory: Path
    records: list[dict[str, Any]]

    @property
    def sessions(self) -> list[dict[str, Any]]:
        return [r for r in self.records if r.get("op") == "session"]

    @property
    def run_id(self) -> str:
        return str(self.sessions[0]["run_id"]) if self.sessions else ""

    @property
    def tracking_uri(self) -> str:
        """The (masked) URI the run was tracked at, as recorded by its last session."""
        return str(self.sessions[-1].get("tracking_uri", "")) if self.sessions else ""

    @property
    def final_status(self) -> str | None:
        """Status of the last ``terminate`` record; ``None`` when the run never got one."""
        ends = [r for r in self.records if r.get("op") == "terminate"]
        return str(ends[-1]["status"]) if ends else None

    def count(self, kind: str) -> int:
        """Number of metric values, params, tags or artifacts in the journal."""
        if kind == "artifacts":
            return sum(r.get("op") == "artifact" for r in self.records)
        return sum(len(r.get(kind, ())) for r in self.records if r.get("op") == "batch")


def read_journal(directory: str | os.PathLike[str]) -> Journal:
    """Read a journal folder. A record counts once its newline is written: an unterminated last
    piece (a crash mid-write) is ignored, and so is an unparsable last line; a damaged line
    anywhere else is a :class:`UserError` naming the file and line.
    """
    directory = Path(directory)
    path = directory / JOURNAL_FILE
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        raise UserError(f"{directory} holds no {JOURNAL_FILE}; it is not a tracking journal") from None
    complete = data[:data.rfind(b"\n") + 1]  # what follows the last newline is a torn write
    lines = complete.splitlines()
    records: list[dict[str, Any]] = []
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
            if not isinstance(record, dict) or "op" not in record:
                raise ValueError("not a journal record")
        except ValueError:
            if number == len(lines):
                continue
            raise UserError(f"tracking journal {path} line {number} is damaged; remove that line "
                            "(its operation is lost) and run `zslbench track sync` again") from None
        records.append(record)
    journal = Journal(directory, records)
    if not journal.run_id:
        raise UserError(f"tracking journal {path} names no run (no session record); remove {directory}")
    return journal


@contextlib.contextmanager
def journal_lock(directory: Path) -> Iterator[bool]:
    """Try to take the journal's lock; yields whether it was free (False: its run still writes)."""
    with open(directory / JOURNAL_FILE, "rb") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            yield False
            return
        try:
            yield True
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def find_journals(output_dir: Path) -> list[Path]:
    """Pending journal folders: ``<output_dir>/<run>/tracking-offline`` (the engine's layout), or
    ``output_dir`` given as one run folder or as a journal folder itself."""
    candidates = [output_dir, output_dir / JOURNAL_DIR, *sorted(output_dir.glob(f"*/{JOURNAL_DIR}"))]
    return [path for path in candidates if (path / JOURNAL_FILE).is_file()]


def sync_folder(journal_dir: Path) -> Path:
    """The ``--output-dir`` that makes ``track sync`` find the journal in ``journal_dir``."""
    return journal_dir.parent.parent if journal_dir.name == JOURNAL_DIR else journal_dir


def mark_synced(directory: Path) -> Path:
    """Rename a replayed journal folder to ``tracking-synced`` (``-2``, ``-3``… if taken)."""
    target = directory.with_name(SYNCED_DIR)
    number = 1
    while target.exists():
        number += 1
        target = directory.with_name(f"{SYNCED_DIR}-{number}")
    os.replace(directory, target)
    fsync_directory(directory.parent)
    return target




__all__ = [
    "ARTIFACTS_DIR", "JOURNAL_DIR", "JOURNAL_FILE", "JOURNAL_FORMAT", "SYNCED_DIR", "Journal", "OfflineJournal",
    "find_journals", "fsync_directory", "journal_lock", "mark_synced", "read_journal", "sync_folder",
]
