"""Runs whose process died are not left RUNNING in MLflow.

Every run is tagged with the process that trains it (host, pid, process start time). Before a
new run starts, RUNNING runs of the same experiment on this host whose process is gone are marked
KILLED, with a tag saying how to continue them (``--resume`` sets a run back to RUNNING and
finishes it under the same id). Runs of another host are left alone: their owner may be alive;
a sweep closes those through Optuna's heartbeats instead (:func:`close_run`).
"""

from __future__ import annotations

import socket

from zslbench.core.liveness import is_alive, process_start, this_process  # noqa: F401  (re-exported)

HOST_TAG, PID_TAG, START_TAG = "zslbench.host", "zslbench.pid", "zslbench.process_start"
REASON_TAG = "zslbench.error"


def process_tags() -> dict[str, str]:
    host, pid, started = this_process()
    return {HOST_TAG: host, PID_TAG: str(pid), START_TAG: started}


def reap_dead_runs(tracking_uri: str, experiment: str) -> list[str]:
    """Mark KILLED the RUNNING runs of ``experiment`` whose process on this host is gone; their ids.

    A store that cannot be opened or searched is a one-line :class:`~zslbench.core.errors.UserError`."""
    from mlflow import MlflowClient

    from zslbench.tracking import store_errors, store_lock

    host = socket.gethostname().replace("'", "")
    with store_errors(tracking_uri):
        with store_lock(tracking_uri):  # the first use of a new sqlite store creates its schema: one process at a time
            client = MlflowClient(tracking_uri=tracking_uri)
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
            close_run(client, run.info.run_id, f"its process {pid} on {host} died; "
                                               f"`zslbench run --resume {run.info.run_id}` continues it")
            reaped.append(run.info.run_id)
    return reaped


def close_run(client, run_id: str, reason: str) -> bool:
    """Mark a still-RUNNING run KILLED with ``reason``; False when it had already ended."""
    if client.get_run(run_id).info.status != "RUNNING":
        return False
    client.set_tag(run_id, REASON_TAG, reason[:5000])
    client.set_terminated(run_id, status="KILLED")
    return True
