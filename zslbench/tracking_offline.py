"""Offline tracking: a run's MLflow writes kept in a local journal while the tracking server is
away, and their upload by ``zslbench track sync`` once it is back.

When a write of a :class:`~zslbench.tracking.Tracker` fails because the store cannot be reached
(:func:`is_connection_error`), the tracker switches to offline mode: that write and every later
one (metric batches, params, tags, artifacts, the final status) are appended to a journal in the
run's output folder::

    <output_dir>/<run_id>/tracking-offline/
        journal.jsonl             one JSON object per line: session | batch | artifact | terminate
        artifacts/000007/final.json   copies of the artifacts logged while offline

The journal is append-only; every record is flushed and fsync'ed before the tracker returns, so a
crash loses at most the line being written, and a torn last line is ignored when the journal is
read (and cut off before a later session appends). The writing process holds an exclusive
``flock`` on ``journal.jsonl``: ``track sync`` leaves a journal alone while its run still writes.

Replaying (:func:`replay_journal`) compares with what the store already holds — metrics by
(key, step, timestamp, value), params by key — so an operation that reached the server just before
the connection died, or a sync that is run twice, uploads nothing twice. A synced journal folder
is renamed to ``tracking-synced`` (``tracking-synced-2``… for later episodes of the same run).

Example (what ``zslbench track sync --dry-run`` does)::

    >>> from pathlib import Path
    >>> find_journals(Path("no-such-folder"))
    []

This module imports neither mlflow nor torch at import time.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import shutil
import socket
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Iterable, Iterator, Mapping, Sequence

from zslbench.core.errors import UserError

if TYPE_CHECKING:  # pragma: no cover - typing only
    from mlflow import MlflowClient

JOURNAL_DIR = "tracking-offline"
SYNCED_DIR = "tracking-synced"
JOURNAL_FILE = "journal.jsonl"
ARTIFACTS_DIR = "artifacts"
JOURNAL_FORMAT = 1
#: Status given on sync to a run whose process ended without a word (killed, crashed) while offline.
INTERRUPTED_STATUS = "KILLED"
PARAMS_CHANGED_TAG = "zslbench.params_changed"
#: What ``track sync`` says when the server is (again) unreachable.
SYNC_HINT = "the journals are kept (a repeated sync uploads nothing twice); start it (or fix --tracking-uri) " \
    "and run `zslbench track sync` again"

# Exceptions (by module and name, so nothing is imported to classify) meaning "the store could not be
# reached", not "the store refused the request".
_CONNECTION_ERRORS = {
    ("requests.exceptions", "ConnectionError"), ("requests.exceptions", "ConnectTimeout"),
    ("requests.exceptions", "ReadTimeout"), ("requests.exceptions", "Timeout"),
    ("requests.exceptions", "RetryError"),  # retries of 429/5xx answers (a proxy whose backend is gone) exhausted
    ("urllib3.exceptions", "MaxRetryError"), ("urllib3.exceptions", "NewConnectionError"),
    ("urllib3.exceptions", "ProtocolError"), ("urllib3.exceptions", "ReadTimeoutError"),
    ("urllib3.exceptions", "ConnectTimeoutError"),
    ("http.client", "RemoteDisconnected"), ("http.client", "IncompleteRead"),
}
# A database store (postgresql://…) whose server went away; sqlite's errors are local problems instead.
_DATABASE_CONNECTION_ERRORS = {("sqlalchemy.exc", "OperationalError"), ("sqlalchemy.exc", "InterfaceError"),
                               ("sqlalchemy.exc", "DisconnectionError")}


# --------------------------------------------------------------------------- classifying failures
def _causes(exc: BaseException) -> Iterator[BaseException]:
    """``exc`` and its causes/contexts (MLflow re-raises request failures without ``from``)."""
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        yield current
        current = current.__cause__ or current.__context__


def _is_named(exc: BaseException, names: set[tuple[str, str]]) -> bool:
    return any((cls.__module__, cls.__name__) in names for cls in type(exc).__mro__)


def is_connection_error(exc: BaseException, tracking_uri: str = "") -> bool:
    """Whether ``exc`` (or what it wraps) says the tracking store could not be reached: a refused or
    dropped connection, a timeout, retries of "unavailable" answers exhausted. Refusals (bad value,
    unknown run, no permission) are not.

    >>> is_connection_error(ConnectionRefusedError(111, "Connection refused"))
    True
    >>> is_connection_error(ValueError("param 'x' already logged with another value"))
    False
    """
    database = not tracking_uri.startswith(("sqlite", "file", "http")) and "://" in tracking_uri
    for cause in _causes(exc):
        if isinstance(cause, (ConnectionError, socket.timeout, TimeoutError)):
            return True
        if _is_named(cause, _CONNECTION_ERRORS):
            return True
        if database and _is_named(cause, _DATABASE_CONNECTION_ERRORS):
            return True
    return False


def failure_reason(exc: BaseException) -> str:
    """A few words on why the store could not be reached (for the one warning line).

    >>> failure_reason(ConnectionRefusedError(111, "Connection refused"))
    'connection refused'
    """
    for cause in reversed(list(_causes(exc))):  # the root cause says most
        if isinstance(cause, ConnectionRefusedError):
            return "connection refused"
        if isinstance(cause, (socket.timeout, TimeoutError)) or "Timeout" in type(cause).__name__:
            return "no answer in time"
        if isinstance(cause, ConnectionError) or type(cause).__name__ == "RemoteDisconnected":
            return "connection lost"
        if type(cause).__name__ == "RetryError":
            text = str(cause)
            marker = text.find("too many ")
            return text[marker:].split(")")[0] if marker >= 0 else "server unavailable"
    return "connection failed" if is_connection_error(exc) else type(exc).__name__


# --------------------------------------------------------------------------- writing
def _fsync_directory(directory: Path) -> None:
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
        _fsync_directory(directory)
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

    def log_batch(self, metrics: Sequence[Any] = (), params: Sequence[Any] = (), tags: Sequence[Any] = ()) -> None:
        """Record what ``MlflowClient.log_batch`` would have sent (MLflow entities)."""
        self.append({
            "op": "batch",
            "metrics": [[m.key, m.value, m.timestamp, m.step] for m in metrics],
            "params": {p.key: p.value for p in params},
            "tags": {t.key: t.value for t in tags},
        })

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
        _fsync_directory(target.parent)
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
    _fsync_directory(directory.parent)
    return target


# --------------------------------------------------------------------------- replaying
@dataclass
class ReplayStats:
    """What a replay sent, and what the store already had."""

    metrics: int = 0
    metrics_present: int = 0
    params: int = 0
    tags: int = 0
    artifacts: int = 0
    params_changed: list[str] = field(default_factory=list)
    status: str | None = None


class _Replayer:
    """Sends a journal's records to a run, skipping what the store already holds."""

    def __init__(self, client: "MlflowClient", run_id: str, directory: Path) -> None:
        from zslbench.tracking import _mlflow_limits

        self.client, self.run_id, self.directory = client, run_id, directory
        run = client.get_run(run_id)
        self.params: dict[str, str] = dict(run.data.params)
        self.changed: set[str] = {k for k in run.data.tags.get(PARAMS_CHANGED_TAG, "").split(",") if k}
        self.changed_before = set(self.changed)
        self.histories: dict[str, set[tuple[int, int, float]]] = {}
        _, _, self.per_batch, self.metrics_per_batch = _mlflow_limits()
        self.stats = ReplayStats()
        self._metrics: list[Any] = []
        self._params: dict[str, str] = {}
        self._tags: dict[str, str] = {}

    def _history(self, key: str) -> set[tuple[int, int, float]]:
        if key not in self.histories:
            stored = self.client.get_metric_history(self.run_id, key)
            self.histories[key] = {(m.step, m.timestamp, m.value) for m in stored}
        return self.histories[key]

    def batch(self, record: Mapping[str, Any]) -> None:
        from mlflow.entities import Metric

        for key, value, timestamp, step in record.get("metrics", ()):
            point = (int(step), int(timestamp), float(value))
            history = self._history(key)
            if point in history:
                self.stats.metrics_present += 1
                continue
            history.add(point)
            self._metrics.append(Metric(key, float(value), int(timestamp), int(step)))
        for key, value in record.get("params", {}).items():
            logged = self.params.get(key, self._params.get(key))
            if logged is None:
                self._params[key] = value
            elif logged != value:  # MLflow refuses to change a param: keep the first, note the key
                self.changed.add(key)
        self._tags.update(record.get("tags", {}))

    def send_pending(self) -> None:
        """Write the batched records (MLflow's per-request limits respected)."""
        from mlflow.entities import Param, RunTag

        if self.changed != self.changed_before:
            self._tags[PARAMS_CHANGED_TAG] = ",".join(sorted(self.changed))
            self.changed_before = set(self.changed)
        for start in range(0, len(self._metrics), self.metrics_per_batch):
            self.client.log_batch(self.run_id, metrics=self._metrics[start:start + self.metrics_per_batch],
                                  synchronous=True)
        entities: list[Any] = [*(Param(k, v) for k, v in self._params.items()),
                               *(RunTag(k, v) for k, v in self._tags.items())]
        for start in range(0, len(entities), self.per_batch):
            chunk = entities[start:start + self.per_batch]
            self.client.log_batch(self.run_id, params=[e for e in chunk if isinstance(e, Param)],
                                  tags=[e for e in chunk if isinstance(e, RunTag)], synchronous=True)
        self.stats.metrics += len(self._metrics)
        self.stats.params += len(self._params)
        self.stats.tags += len(self._tags)
        self.params.update(self._params)
        self._metrics, self._params, self._tags = [], {}, {}

    def artifact(self, record: Mapping[str, Any]) -> None:
        path = self.directory / str(record["file"])
        if not path.exists():
            raise UserError(f"tracking journal {self.directory} lacks its artifact copy {record['file']}; "
                            "restore it or remove that line from the journal")
        self.send_pending()  # keep the journal's order
        if record.get("is_dir"):
            self.client.log_artifacts(self.run_id, str(path), record.get("artifact_path"))
        else:
            self.client.log_artifact(self.run_id, str(path), record.get("artifact_path"))
        self.stats.artifacts += 1


def replay_journal(client: "MlflowClient", journal: Journal, *, apply_status: bool = True,
                   interrupted_status: str = INTERRUPTED_STATUS) -> ReplayStats:
    """Write ``journal``'s operations into its run through ``client``; nothing already stored is sent again.

    ``apply_status``: end the run with the journal's final status (a journal without one — its process
    died — ends ``interrupted_status``); ``False`` when the run is being resumed instead.
    """
    replayer = _Replayer(client, journal.run_id, journal.directory)
    for record in journal.records:
        op = record.get("op")
        if op == "batch":
            replayer.batch(record)
        elif op == "artifact":
            replayer.artifact(record)
    replayer.send_pending()
    if apply_status:
        ends = [r for r in journal.records if r.get("op") == "terminate"]
        status = str(ends[-1]["status"]) if ends else interrupted_status
        end_time = int(ends[-1]["end_time"]) if ends else None
        client.set_terminated(journal.run_id, status=status, end_time=end_time)
        replayer.stats.status = status
    return replayer.stats


# --------------------------------------------------------------------------- syncing
@dataclass
class SyncOutcome:
    """One journal's row in the ``track sync`` table."""

    run_id: str
    directory: Path
    result: str  # synced | would sync | in use | error
    detail: str = ""
    journal: Journal | None = None
    stats: ReplayStats | None = None


def _target_uri(journal: Journal, tracking_uri: str) -> str:
    """``--tracking-uri``, else the URI the run was tracked at; when that held credentials (the
    journal keeps them masked), ``$MLFLOW_TRACKING_URI``."""
    from zslbench.tracking import MASK, resolve_tracking_uri

    if tracking_uri:
        return resolve_tracking_uri(tracking_uri)
    if journal.tracking_uri and MASK not in journal.tracking_uri:
        return journal.tracking_uri
    if os.environ.get("MLFLOW_TRACKING_URI", "").strip():
        return resolve_tracking_uri("")
    raise UserError(f"run {journal.run_id} was tracked at {journal.tracking_uri or 'an unrecorded URI'}, whose "
                    "credentials are not stored; pass it with --tracking-uri (or set $MLFLOW_TRACKING_URI)")


def sync_journals(output_dir: str | os.PathLike[str], tracking_uri: str = "", dry_run: bool = False,
                  ) -> list[SyncOutcome]:
    """Replay every pending journal under ``output_dir`` into its run and mark it synced.

    Every target store is checked first: one that cannot be reached is a :class:`UserError` and no
    journal is touched. A journal whose run is still writing it is left pending ("in use").
    """
    output_dir = Path(output_dir)
    if not output_dir.is_dir():
        raise UserError(f"output folder {output_dir} does not exist; pass the folder holding the run folders "
                        "with --output-dir (track.output_dir, default ./runs)")
    journals = [read_journal(path) for path in find_journals(output_dir)]
    targets = {journal.directory: _target_uri(journal, tracking_uri) for journal in journals}
    from zslbench.tracking import check_reachable, mask_credentials

    if dry_run:
        return [_dry_run_outcome(j, mask_credentials(targets[j.directory])) for j in journals]

    for uri in dict.fromkeys(targets.values()):
        check_reachable(uri, hint=SYNC_HINT)
    clients: dict[str, MlflowClient] = {}
    return [_sync_one(journal, targets[journal.directory], clients) for journal in journals]


def _dry_run_outcome(journal: Journal, shown_uri: str) -> SyncOutcome:
    with journal_lock(journal.directory) as free:
        if not free:
            return SyncOutcome(journal.run_id, journal.directory, "in use", "its run is still writing it",
                               journal=journal)
    return SyncOutcome(journal.run_id, journal.directory, "would sync", f"to {shown_uri}", journal=journal)


def _sync_one(journal: Journal, uri: str, clients: dict[str, "MlflowClient"]) -> SyncOutcome:
    from mlflow import MlflowClient
    from mlflow.exceptions import MlflowException

    from zslbench.tracking import _unreachable, http_policy, mask_credentials

    with journal_lock(journal.directory) as free:
        if not free:
            return SyncOutcome(journal.run_id, journal.directory, "in use", "its run is still writing it",
                               journal=journal)
        journal = read_journal(journal.directory)  # re-read under the lock: the writer may have appended
        try:
            with http_policy():
                client = clients.setdefault(uri, MlflowClient(tracking_uri=uri))
                try:
                    client.get_run(journal.run_id)
                except MlflowException as exc:
                    if is_connection_error(exc, uri):
                        raise
                    return SyncOutcome(journal.run_id, journal.directory, "error",
                                       f"no run {journal.run_id} at {mask_credentials(uri)}; pass the server "
                                       "the run was started on with --tracking-uri", journal=journal)
                stats = replay_journal(client, journal)
        except Exception as exc:
            if is_connection_error(exc, uri):  # the server went away again: nothing lost, run sync again
                raise _unreachable(uri, failure_reason(exc), SYNC_HINT) from exc
            # This journal stays pending; the others are still synced.
            text = str(exc) if isinstance(exc, UserError) else f"{type(exc).__name__}: {exc}"
            message = mask_credentials(text.splitlines()[0] if text else type(exc).__name__)[:300]
            return SyncOutcome(journal.run_id, journal.directory, "error", message, journal=journal)
        synced = mark_synced(journal.directory)
    return SyncOutcome(journal.run_id, synced, "synced", "", journal=journal, stats=stats)


def print_sync_table(outcomes: Iterable[SyncOutcome], output_dir: Path, console: Any) -> None:
    """A rich table: one row per journal, with what was (or would be) uploaded."""
    from rich.markup import escape
    from rich.table import Table

    outcomes = list(outcomes)
    if not outcomes:
        console.print(f"nothing to sync: no pending tracking journals under {escape(str(output_dir))}")
        return
    table = Table(title=f"tracking journals under {escape(str(output_dir))}")
    table.add_column("run", no_wrap=True)
    for column in ("metrics", "params", "artifacts"):
        table.add_column(column, justify="right")
    table.add_column("status")
    table.add_column("result")
    styles = {"synced": "green", "would sync": "cyan", "in use": "yellow", "error": "red"}
    for outcome in outcomes:
        journal, stats = outcome.journal, outcome.stats
        if stats is not None:
            metrics = f"{stats.metrics} new" + (f" + {stats.metrics_present} present" if stats.metrics_present else "")
            params, artifacts, status = str(stats.params), str(stats.artifacts), stats.status or ""
        elif journal is not None:
            metrics, params, artifacts = (str(journal.count(k)) for k in ("metrics", "params", "artifacts"))
            status = journal.final_status or f"{INTERRUPTED_STATUS} (interrupted)"
        else:
            metrics = params = artifacts = status = ""
        result = outcome.result + (f": {outcome.detail}" if outcome.detail else "")
        table.add_row(outcome.run_id, metrics, params, artifacts, status,
                      f"[{styles.get(outcome.result, '')}]{escape(result)}[/]")
    console.print(table)
    counts = {kind: sum(o.result == kind for o in outcomes) for kind in ("synced", "in use", "error")}
    if any(o.result == "would sync" for o in outcomes):
        console.print(f"{len(outcomes)} journal(s) pending; run without --dry-run to upload them")
    else:
        console.print(f"synced {counts['synced']} run(s) (journals renamed to <run>/{SYNCED_DIR}); "
                      f"{counts['in use']} still in use; {counts['error']} failed")


def sync_command(output_dir: Path, tracking_uri: str, dry_run: bool, console: Any) -> None:
    """``zslbench track sync``: sync, print the table; journals that failed make it a :class:`UserError`."""
    outcomes = sync_journals(output_dir, tracking_uri, dry_run)
    print_sync_table(outcomes, Path(output_dir), console)
    failed = [o for o in outcomes if o.result == "error"]
    if failed:
        raise UserError(f"{len(failed)} tracking journal(s) could not be synced ({failed[0].detail}); "
                        "fix that and run `zslbench track sync` again (synced journals are not uploaded twice)")


def absorb_pending_journal(client: "MlflowClient", directory: Path | None, run_id: str) -> ReplayStats | None:
    """Before a run is resumed online: upload what an earlier offline session of it journaled (its
    final status is not applied, the run goes on) and mark the journal synced. ``None`` if there was none."""
    if directory is None or not (directory / JOURNAL_FILE).is_file():
        return None
    with journal_lock(directory) as free:
        if not free:
            raise UserError(f"run {run_id} is still being written offline by another process ({directory}); "
                            "let it finish before resuming the run")
        journal = read_journal(directory)
        if journal.run_id != run_id:
            return None
        stats = replay_journal(client, journal, apply_status=False)
        mark_synced(directory)
    print(f"uploaded the offline tracking of run {run_id} kept in {directory}", file=sys.stderr)
    return stats


__all__ = [
    "JOURNAL_DIR", "SYNCED_DIR", "Journal", "OfflineJournal", "ReplayStats", "SyncOutcome", "absorb_pending_journal",
    "failure_reason", "find_journals", "is_connection_error", "mark_synced", "print_sync_table", "read_journal",
    "replay_journal", "sync_command", "sync_folder", "sync_journals",
]
