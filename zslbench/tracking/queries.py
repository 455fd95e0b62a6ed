"""Reading and tidying runs already in the store: searches, experiment names, artifact downloads,
a file added to an existing run, and runs whose process died closed as KILLED.

Every run is tagged with the process that trains it (host, pid, process start time,
:func:`~zslbench.tracking.tags.process_tags`). Before a new run starts, RUNNING runs of the same
experiment on this host whose process is gone are marked KILLED (:func:`reap_dead_runs`), with a tag
saying how to continue them (``--resume`` sets a run back to RUNNING and finishes it under the same
id). Runs of another host are left alone: their owner may be alive; a sweep closes those through
Optuna's heartbeats instead (:func:`close_run`).

Importing this module does not import mlflow.
"""

from __future__ import annotations

import os
import socket
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING, Any, Iterable, Mapping

from zslbench.core.liveness import is_alive
from zslbench.core.secrets import tag_value
from zslbench.tracking.online import OnlineTracker
from zslbench.tracking.reachability import check_reachable
from zslbench.tracking.store import http_policy, mlflow_limits, resolve_tracking_uri, store_errors, store_lock
from zslbench.tracking.tags import ERROR_TAG, HOST_TAG, PID_TAG, START_TAG

if TYPE_CHECKING:  # pragma: no cover - typing only
    from mlflow import MlflowClient
    from mlflow.entities import Run


class ArtifactUnavailable(LookupError):
    """A run's artifact could not be downloaded (it does not exist, or the store refused);
    ``reason`` is the name of the store's error."""

    def __init__(self, run_id: str, artifact: str, reason: str) -> None:
        super().__init__(f"run {run_id} has no artifact {artifact} ({reason})")
        self.reason = reason


def _client(tracking_uri: str) -> "MlflowClient":
    from mlflow import MlflowClient

    return MlflowClient(tracking_uri=tracking_uri)


# --------------------------------------------------------------------------- searching
def find_runs(
    experiment: str,
    filter_string: str = "",
    *,
    tracking_uri: str = "",
    order_by: Iterable[str] | None = None,
    max_results: int | None = None,
) -> list["Run"]:
    """Runs of ``experiment`` matching an MLflow ``filter_string`` (all pages; newest first
    unless ``order_by`` says otherwise). An experiment that does not exist has no runs."""
    uri = resolve_tracking_uri(tracking_uri)
    check_reachable(uri)
    client = _client(uri)
    found = client.get_experiment_by_name(experiment)
    if found is None:
        return []
    runs: list[Run] = []
    token = None
    order = list(order_by) if order_by is not None else ["attributes.start_time DESC"]
    while max_results is None or len(runs) < max_results:
        page_size = 1000 if max_results is None else min(1000, max_results - len(runs))
        page = client.search_runs([found.experiment_id], filter_string, max_results=page_size, order_by=order,
                                  page_token=token)
        runs.extend(page)
        token = page.token
        if not token:
            break
    return runs


def find_finished_run(experiment: str, tags: Mapping[str, Any], *, tracking_uri: str = "") -> str | None:
    """The id of the newest FINISHED run of ``experiment`` whose tags equal all of ``tags``
    (compared as stored: masked strings), else ``None``. Used by ``--skip-existing``."""
    _, tag_limit, _, _ = mlflow_limits()
    wanted = {str(k): tag_value(v, tag_limit) for k, v in tags.items()}
    clauses = ["attributes.status = 'FINISHED'"]
    for key, value in wanted.items():
        if "`" not in key and "'" not in value and "\\" not in value:
            clauses.append(f"tags.`{key}` = '{value}'")
    for run in find_runs(experiment, " and ".join(clauses), tracking_uri=tracking_uri):
        # The filter narrows the search; the exact comparison here decides (quotes, status).
        if run.info.status == "FINISHED" and all(run.data.tags.get(k) == v for k, v in wanted.items()):
            return run.info.run_id
    return None


def experiment_names(tracking_uri: str = "") -> list[str]:
    """Names of the active experiments of the store (sorted); a store that cannot be opened or read
    is a one-line :class:`~zslbench.core.errors.UserError`."""
    uri = resolve_tracking_uri(tracking_uri)
    check_reachable(uri)
    names: list[str] = []
    token = None
    with store_errors(uri):
        client = _client(uri)
        while True:
            page = client.search_experiments(max_results=1000, page_token=token)
            names.extend(e.name for e in page)
            token = page.token
            if not token:
                return sorted(names)


# --------------------------------------------------------------------------- artifacts
def download_run_artifact(run_id: str, artifact: str, directory: Path, tracking_uri: str = "") -> Path:
    """Download a run's ``artifact`` to ``directory / artifact`` (atomically: a half-downloaded file never
    appears there) and return that path; :class:`ArtifactUnavailable` if it cannot be had."""
    from mlflow.exceptions import MlflowException

    os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")  # no bars on the terminal
    target = directory / artifact
    client = _client(resolve_tracking_uri(tracking_uri))
    try:
        with tempfile.TemporaryDirectory(dir=directory, prefix=".download-") as tmp:
            downloaded = Path(client.download_artifacts(run_id, artifact, tmp))
            target.parent.mkdir(parents=True, exist_ok=True)
            os.replace(downloaded, target)
    except (MlflowException, OSError) as exc:
        raise ArtifactUnavailable(run_id, artifact, type(exc).__name__) from None
    return target


def attach_artifact(run_id: str, path: str | os.PathLike[str], artifact_path: str | None = None,
                    tracking_uri: str = "") -> bool:
    """Add a file to an existing (possibly finished) run, its status untouched; False when the run is
    not in the store (e.g. deleted)."""
    from mlflow.exceptions import MlflowException

    uri = resolve_tracking_uri(tracking_uri)
    client = _client(uri)
    try:
        run = client.get_run(run_id)
    except MlflowException:
        return False
    OnlineTracker(client, run, uri).log_artifact(str(path), artifact_path)
    return True


# --------------------------------------------------------------------------- closing runs
def close_run(run_id: str, reason: str, tracking_uri: str = "") -> bool:
    """Mark a still-RUNNING run KILLED with ``reason`` (tag ``zslbench.error``); False when it had
    already ended."""
    return _close(_client(resolve_tracking_uri(tracking_uri)), run_id, reason)


def _close(client: "MlflowClient", run_id: str, reason: str) -> bool:
    with http_policy():  # also keeps MLflow from printing the run's link with the URI's password
        if client.get_run(run_id).info.status != "RUNNING":
            return False
        client.set_tag(run_id, ERROR_TAG, reason[:5000])
        client.set_terminated(run_id, status="KILLED")
    return True


def reap_dead_runs(tracking_uri: str, experiment: str) -> list[str]:
    """Mark KILLED the RUNNING runs of ``experiment`` whose process on this host is gone; their ids.

    A store that cannot be opened or searched is a one-line :class:`~zslbench.core.errors.UserError`."""
    host = socket.gethostname().replace("'", "")
    with store_errors(tracking_uri):
        with store_lock(tracking_uri):  # the first use of a new sqlite store creates its schema: one process at a time
            client = _client(tracking_uri)
            found = client.get_experiment_by_name(experiment)
        if found is None:
            return []
        runs = client.search_runs([found.experiment_id],
                                  f"attributes.status = 'RUNNING' and tags.`{HOST_TAG}` = '{host}'", max_results=1000)
    reaped = []
    for run in runs:
        tags = run.data.tags
        pid = tags.get(PID_TAG, "")
        if pid.isdigit() and not is_alive(int(pid), tags.get(START_TAG, "")):
            _close(client, run.info.run_id, f"its process {pid} on {host} died; "
                                            f"`zslbench run --resume {run.info.run_id}` continues it")
            reaped.append(run.info.run_id)
    return reaped


__all__ = ["ArtifactUnavailable", "attach_artifact", "close_run", "download_run_artifact", "experiment_names",
           "find_finished_run", "find_runs", "reap_dead_runs"]
