"""Uploading an offline journal (:mod:`zslbench.tracking.journal`) into its run.

Replaying compares with what the store already holds — metrics by (key, step, timestamp, value),
params by key — so an operation that reached the server just before the connection died, or a sync
that is run twice, uploads nothing twice. A synced journal folder is renamed to ``tracking-synced``
(``tracking-synced-2``… for later episodes of the same run).

Importing this module does not import mlflow.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Mapping

from zslbench.core.errors import UserError
from zslbench.tracking.journal import JOURNAL_FILE, Journal, journal_lock, mark_synced, read_journal
from zslbench.tracking.store import mlflow_limits
from zslbench.tracking.tags import PARAMS_CHANGED_TAG

if TYPE_CHECKING:  # pragma: no cover - typing only
    from mlflow import MlflowClient

#: Status given on sync to a run whose process ended without a word (killed, crashed) while offline.
INTERRUPTED_STATUS = "KILLED"


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
        self.client, self.run_id, self.directory = client, run_id, directory
        run = client.get_run(run_id)
        self.params: dict[str, str] = dict(run.data.params)
        self.changed: set[str] = {k for k in run.data.tags.get(PARAMS_CHANGED_TAG, "").split(",") if k}
        self.changed_before = set(self.changed)
        self.histories: dict[str, set[tuple[int, int, float]]] = {}
        _, _, self.per_batch, self.metrics_per_batch = mlflow_limits()
        self.stats = ReplayStats()
        self._metrics: list[Any] = []
        self._params: dict[str, str] = {}
        self._tags: dict[str, str] = {}

    def _history(self, key: str) -> set[tuple[int, int, float]]:
        if key not in self.histories:
            stored = self.client.get_metric_history(self.run_id, key)
            self.histories[key] = {(m.step, m.timestamp, m.value) for m in stored}
        return self.histories[key]

    def _present(self, key: str, point: tuple[int, int, float], any_at_step: bool) -> bool:
        history = self._history(key)
        return point in history or (any_at_step and any(step == point[0] for step, _, _ in history))

    def batch(self, record: Mapping[str, Any]) -> None:
        from mlflow.entities import Metric

        if_missing = bool(record.get("if_missing"))
        for key, value, timestamp, step in record.get("metrics", ()):
            point = (int(step), int(timestamp), float(value))
            if self._present(key, point, any_at_step=if_missing):
                self.stats.metrics_present += 1
                continue
            self._history(key).add(point)
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


__all__ = ["INTERRUPTED_STATUS", "ReplayStats", "absorb_pending_journal", "replay_journal"]
