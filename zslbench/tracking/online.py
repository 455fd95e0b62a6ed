"""The MLflow-backed :class:`~zslbench.tracking.base.Tracker`: one run, written through its own client.

An :class:`OnlineTracker` owns one MLflow run through a private ``MlflowClient`` (no fluent global
state), so a parent run and its children can be open in one process at once. Metrics are buffered
and written with one ``log_batch`` call per flush. Every param, tag, logged text and message passes
through :func:`~zslbench.core.secrets.mask_credentials`, so a storage URL's password never reaches
the store or the terminal.

If the server of an ``http(s)://`` store goes away mid-run, the tracker does not fail the run: it
switches to offline mode and keeps every later write in a journal in the run's output folder
(:mod:`zslbench.tracking.journal`); ``zslbench track sync`` uploads it once the server is back.
MLflow's HTTP retries are shortened for zslbench's own calls
(:data:`~zslbench.tracking.store.HTTP_POLICY`), so a dead server is noticed in seconds.

Create one with :func:`zslbench.tracking.open_tracker`. Importing this module does not import mlflow.
"""

from __future__ import annotations

import atexit
import logging
import math
import os
import posixpath
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Mapping, Sequence

from zslbench.core.secrets import mask_credentials, mask_object, param_value, tag_value
from zslbench.tracking.base import Tracker, check_final_status
from zslbench.tracking.journal import OfflineJournal, sync_folder
from zslbench.tracking.reachability import failure_reason, is_connection_error
from zslbench.tracking.store import http_policy, mlflow_limits, run_link
from zslbench.tracking.tags import NONFINITE_TAG, PARAMS_CHANGED_TAG

if TYPE_CHECKING:  # pragma: no cover - typing only
    from mlflow import MlflowClient
    from mlflow.entities import Metric, Run

log = logging.getLogger(__name__)

#: Buffered metrics are flushed as soon as the buffer holds more than this many values.
FLUSH_THRESHOLD = 500


class OnlineTracker(Tracker):
    """One MLflow run, written through a private ``MlflowClient``.

    With an ``offline_dir`` (always so from :func:`~zslbench.tracking.open_tracker`), a write that fails
    because the store cannot be reached switches the tracker to offline mode: one warning line, then
    that write and all later ones go to the journal in ``offline_dir`` (``zslbench track sync`` uploads
    it). Without one, such failures raise.
    """

    def __init__(self, client: "MlflowClient", run: "Run", tracking_uri: str,
                 offline_dir: str | os.PathLike[str] | None = None) -> None:
        self._client = client
        self._run_id: str = run.info.run_id
        self._experiment_id: str = run.info.experiment_id
        self._artifact_uri: str = run.info.artifact_uri
        self._tracking_uri = tracking_uri
        self._params: dict[str, str] = dict(run.data.params)
        self._buffer: list[Metric] = []
        self._lock = threading.Lock()
        # A resumed run keeps the non-finite keys noted by its earlier sessions.
        noted = run.data.tags.get(NONFINITE_TAG, "")
        self._nonfinite: set[str] = {key for key in noted.split(",") if key}
        self._nonfinite_noted = len(self._nonfinite)
        self._changed_params: set[str] = set()
        self._status: str | None = None
        self._offline_dir = Path(offline_dir).absolute() if offline_dir is not None else None
        self._journal: OfflineJournal | None = None
        self._write_lock = threading.RLock()  # one write at a time: the journal keeps their order

    # ----------------------------------------------------------------- properties
    @property
    def run_id(self) -> str:
        return self._run_id

    @property
    def experiment_id(self) -> str:
        return self._experiment_id

    @property
    def artifact_uri(self) -> str:
        return self._artifact_uri

    @property
    def tracking_uri(self) -> str:
        return self._tracking_uri

    @property
    def client(self) -> "MlflowClient":
        """The private client (for reading the run back in tests; write through the tracker)."""
        return self._client

    @property
    def status(self) -> str:
        return self._status or "RUNNING"

    @property
    def offline(self) -> bool:
        """Whether the store was lost mid-run and writes now go to the local journal."""
        return self._journal is not None

    @property
    def offline_dir(self) -> Path | None:
        """Where writes are journaled once the store is lost (``None``: failures raise)."""
        return self._offline_dir

    def __repr__(self) -> str:
        mode = ", offline" if self.offline else ""
        return (f"OnlineTracker(run_id={self._run_id!r}, experiment_id={self._experiment_id!r}, "
                f"uri={mask_credentials(self._tracking_uri)!r}, status={self.status!r}{mode})")

    # ----------------------------------------------------------------- talking to the store
    def _write(self, online: Callable[[], Any], offline: Callable[[OfflineJournal], None]) -> None:
        """Do one call: ``online`` through the client, or ``offline`` into the journal once the store
        is lost. The call that finds it lost goes to the journal too, so nothing is dropped."""
        with self._write_lock:
            if self._journal is None:
                try:
                    with http_policy():
                        online()
                    return
                except Exception as exc:
                    if self._offline_dir is None or not is_connection_error(exc, self._tracking_uri):
                        raise
                    self._go_offline(exc)
            assert self._journal is not None
            offline(self._journal)

    def _go_offline(self, exc: BaseException) -> None:
        assert self._offline_dir is not None
        self._journal = OfflineJournal.open(self._offline_dir, {
            "run_id": self._run_id, "experiment_id": self._experiment_id, "artifact_uri": self._artifact_uri,
            "tracking_uri": mask_credentials(self._tracking_uri), "reason": mask_credentials(failure_reason(exc)),
        })
        sys.stderr.write(
            f"warning: MLflow tracking server {mask_credentials(self._tracking_uri)} went away "
            f"({mask_credentials(failure_reason(exc))}); the run goes on and its tracking is kept in "
            f"{self._offline_dir} — upload it with "
            f"`zslbench track sync --output-dir {sync_folder(self._offline_dir)}` once the server is back\n")
        sys.stderr.flush()

    def _log_batch(self, metrics: Sequence["Metric"] = (), params: Sequence[Any] = (),
                   tags: Sequence[Any] = (), if_missing: bool = False) -> None:
        self._write(lambda: self._client.log_batch(self._run_id, metrics=metrics, params=params, tags=tags,
                                                   synchronous=True),
                    lambda journal: journal.log_batch(metrics, params, tags, if_missing=if_missing))

    def _log_file(self, path: Path, artifact_path: str | None) -> None:
        def online() -> None:
            if path.is_dir():
                self._client.log_artifacts(self._run_id, str(path), artifact_path)
            else:
                self._client.log_artifact(self._run_id, str(path), artifact_path)

        self._write(online, lambda journal: journal.log_file(path, artifact_path))

    def _log_generated(self, name: str, write: Callable[[Path], None]) -> None:
        """Write an artifact with ``write(path)`` into a temporary file named like ``name``'s last part,
        then log it under ``name``'s folder (what MLflow's ``log_dict``/``log_text`` do)."""
        normalized = posixpath.normpath(name)
        folder, filename = posixpath.dirname(normalized), posixpath.basename(normalized)
        with tempfile.TemporaryDirectory(prefix="zslbench-artifact-") as tmp:
            path = Path(tmp) / filename
            write(path)
            self._log_file(path, folder or None)

    def _stored_steps(self, key: str) -> set[int] | None:
        """The steps at which the store holds metric ``key``; ``None`` when it cannot be asked (offline)."""
        found: list[set[int]] = []
        self._write(lambda: found.append({m.step for m in self._client.get_metric_history(self._run_id, key)}),
                    lambda journal: None)
        return found[0] if found else None

    # ----------------------------------------------------------------- metrics
    def log_metrics(self, metrics: Mapping[str, float], step: int) -> None:
        """Buffer ``metrics`` at ``step``; written in batches (one ``log_batch`` per flush).

        Non-finite values are skipped and their keys listed in tag ``zslbench.nonfinite_metrics``.
        """
        from mlflow.entities import Metric

        timestamp = int(time.time() * 1000)
        with self._lock:
            for key, value in metrics.items():
                number = float(value)
                if not math.isfinite(number):
                    self._nonfinite.add(key)
                    continue
                self._buffer.append(Metric(key, number, timestamp, int(step)))
            full = len(self._buffer) > FLUSH_THRESHOLD
        if full:
            self.flush()

    def flush(self) -> None:
        """Write buffered metrics (and a pending non-finite note) with one ``log_batch`` call
        (more only past MLflow's per-batch limit)."""
        self._flush()

    def _flush(self, if_missing: bool = False) -> None:
        from mlflow.entities import RunTag

        _, tag_limit, _, metrics_per_batch = mlflow_limits()
        with self._write_lock:
            with self._lock:
                metrics, self._buffer = self._buffer, []
                tags = []
                if len(self._nonfinite) != self._nonfinite_noted:
                    note = ",".join(sorted(self._nonfinite))
                    tags.append(RunTag(NONFINITE_TAG, tag_value(note, tag_limit)))
                    self._nonfinite_noted = len(self._nonfinite)
            if not metrics and not tags:
                return
            for start in range(0, max(len(metrics), 1), metrics_per_batch):
                chunk = metrics[start:start + metrics_per_batch]
                self._log_batch(metrics=chunk, tags=tags if start == 0 else [], if_missing=if_missing)

    def resend_missing(self, metrics_by_step: Mapping[int, Mapping[str, float]], probe: str) -> list[int]:
        self.flush()  # earlier metrics go as they are: only the re-sent steps are conditional
        stored = self._stored_steps(probe)
        missing = sorted(step for step in metrics_by_step if stored is None or step not in stored)
        for step in missing:
            self.log_metrics(metrics_by_step[step], step=step)
        self._flush(if_missing=stored is None)
        return missing

    # ----------------------------------------------------------------- params and tags
    def log_params(self, params: Mapping[str, Any]) -> None:
        """Log params (values masked and truncated to MLflow's limit).

        A key already logged is skipped; one whose value changed (e.g. on resume) keeps its
        first value (MLflow refuses changes) and is listed in tag ``zslbench.params_changed``.
        """
        from mlflow.entities import Param, RunTag

        param_limit, tag_limit, per_batch, _ = mlflow_limits()
        with self._write_lock:
            new: list[Param] = []
            for key, value in params.items():
                shown = param_value(str(key), value, param_limit)
                logged = self._params.get(str(key))
                if logged is None:
                    new.append(Param(str(key), shown))
                    self._params[str(key)] = shown
                elif logged != shown:
                    self._changed_params.add(str(key))
            tags = []
            if self._changed_params:
                log.warning("params already logged with other values keep their first values: %s",
                            ", ".join(sorted(self._changed_params)))
                tags.append(RunTag(PARAMS_CHANGED_TAG, tag_value(",".join(sorted(self._changed_params)), tag_limit)))
            entities: list[Any] = [*new, *tags]
            for start in range(0, len(entities), per_batch):
                chunk = entities[start:start + per_batch]
                self._log_batch(params=[e for e in chunk if isinstance(e, Param)],
                                tags=[e for e in chunk if isinstance(e, RunTag)])

    def set_tags(self, tags: Mapping[str, Any]) -> None:
        """Set tags (values masked and truncated), in as few calls as MLflow allows."""
        from mlflow.entities import RunTag

        _, tag_limit, per_batch, _ = mlflow_limits()
        entities = [RunTag(str(k), tag_value(v, tag_limit)) for k, v in tags.items()]
        with self._write_lock:
            for start in range(0, len(entities), per_batch):
                self._log_batch(tags=entities[start:start + per_batch])

    # ----------------------------------------------------------------- artifacts
    def log_artifact(self, path: str | os.PathLike[str], artifact_path: str | None = None) -> None:
        """Upload a file (or a directory's contents) into the run's artifacts (offline: copy it
        into the journal)."""
        path = Path(path)
        if not path.exists():
            raise FileNotFoundError(f"artifact {str(path)!r} does not exist")
        self._log_file(path, artifact_path)

    def log_dict(self, obj: Mapping[str, Any], name: str) -> None:
        import json

        masked = mask_object(obj)

        def write(path: Path) -> None:
            if path.suffix in (".yml", ".yaml"):
                import yaml

                path.write_text(yaml.dump(masked, indent=2, default_flow_style=False), encoding="utf-8")
            else:
                path.write_text(json.dumps(masked, indent=2, default=str), encoding="utf-8")

        self._log_generated(name, write)

    def log_text(self, text: str, name: str) -> None:
        masked = mask_credentials(text)
        self._log_generated(name, lambda path: path.write_text(masked, encoding="utf-8"))

    def log_scores(self, name: str, **arrays: Any) -> None:
        import numpy as np

        filename = name if name.endswith(".npz") else f"{name}.npz"
        self._log_generated(f"scores/{filename}",
                            lambda path: np.savez_compressed(path, **{k: np.asarray(v) for k, v in arrays.items()}))

    def log_figure(self, fig: Any, name: str) -> None:
        self._log_generated(name, lambda path: fig.savefig(path))

    # ----------------------------------------------------------------- finishing
    def finish(self, status: str = "FINISHED") -> None:
        """Flush buffered metrics and terminate the run with ``status`` (idempotent).

        Offline, the status is journaled too, the journal is closed and a reminder printed."""
        check_final_status(status)
        if self._status is not None:
            return
        try:
            self.flush()
        finally:
            self._status = status
            forget_open_tracker(self)
            end_time = int(time.time() * 1000)
            try:
                self._write(lambda: self._client.set_terminated(self._run_id, status=status, end_time=end_time),
                            lambda journal: journal.terminate(status, end_time))
            finally:
                self._close_journal()
            self._show_link(status)

    def _show_link(self, status: str) -> None:
        """Where a finished run is on an http(s) server, without credentials: MLflow's own line (which it
        prints with the tracking URI as given, password included) is off (see ``HTTP_POLICY``)."""
        link = run_link(self._tracking_uri, self._experiment_id, self._run_id)
        if link is not None and status == "FINISHED" and not self.offline:
            sys.stderr.write(f"MLflow run {self._run_id}: {link}\n")
            sys.stderr.flush()

    def _close_journal(self) -> None:
        if self._journal is None:
            return
        self._journal.close()
        assert self._offline_dir is not None
        sys.stderr.write(f"MLflow run {self._run_id} ended {self._status} offline; its tracking is kept in "
                         f"{self._offline_dir} — run `zslbench track sync --output-dir "
                         f"{sync_folder(self._offline_dir)}` once {mask_credentials(self._tracking_uri)} is back\n")
        sys.stderr.flush()


# --------------------------------------------------------------------------- open trackers of this process
_OPEN: list[OnlineTracker] = []  # innermost last (the parent of ``nested=True`` children)
_OPEN_LOCK = threading.Lock()


def remember_open_tracker(tracker: OnlineTracker) -> None:
    """Count ``tracker`` among this process's open runs: the innermost is the parent of a nested run,
    and any still open at exit are finished KILLED."""
    with _OPEN_LOCK:
        _OPEN.append(tracker)


def forget_open_tracker(tracker: OnlineTracker) -> None:
    with _OPEN_LOCK:
        if tracker in _OPEN:
            _OPEN.remove(tracker)


def innermost_run_id() -> str | None:
    """The run id of the most recently opened tracker of this process still open, if any."""
    with _OPEN_LOCK:
        return _OPEN[-1].run_id if _OPEN else None


@atexit.register
def _finish_forgotten_trackers() -> None:
    """Runs never finished by their owner keep their buffered metrics and end KILLED."""
    for tracker in list(reversed(_OPEN)):
        try:
            tracker.finish("KILLED")
        except Exception:  # the interpreter is exiting; nothing better to do
            pass


__all__ = ["FLUSH_THRESHOLD", "OnlineTracker", "forget_open_tracker", "innermost_run_id", "remember_open_tracker"]
