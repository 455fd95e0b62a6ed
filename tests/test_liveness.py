"""RUNNING runs whose process died are marked KILLED before the next run starts."""

from __future__ import annotations

import os
import socket
import subprocess
import sys

import pytest

from zslbench.core.liveness import is_alive, process_start
from zslbench.tracking import HOST_TAG, PID_TAG, START_TAG, process_tags, reap_dead_runs


@pytest.fixture
def store(tmp_path):
    import mlflow

    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    client = mlflow.MlflowClient(tracking_uri=uri)
    experiment = client.create_experiment("e", artifact_location=str(tmp_path / "artifacts"))
    return uri, client, experiment


def dead_pid() -> int:
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()
    return child.pid


def test_dead_processes_runs_are_killed_live_and_foreign_ones_kept(store):
    uri, client, experiment = store
    host = socket.gethostname()
    dead = client.create_run(experiment, tags={HOST_TAG: host, PID_TAG: str(dead_pid())}).info.run_id
    mine = client.create_run(experiment, tags=process_tags()).info.run_id
    foreign = client.create_run(experiment, tags={HOST_TAG: "elsewhere", PID_TAG: str(dead_pid())}).info.run_id
    assert reap_dead_runs(uri, "e") == [dead]
    run = client.get_run(dead)
    assert run.info.status == "KILLED" and f"--resume {dead}" in run.data.tags["zslbench.error"]
    assert client.get_run(mine).info.status == "RUNNING"
    assert client.get_run(foreign).info.status == "RUNNING"
    assert reap_dead_runs(uri, "e") == []  # idempotent
    assert reap_dead_runs(uri, "no-such-experiment") == []


@pytest.mark.skipif(not os.path.exists("/proc/self/stat"), reason="needs /proc")
def test_a_reused_pid_is_not_taken_for_the_original_process():
    pid = os.getpid()
    assert is_alive(pid, process_start(pid))
    assert not is_alive(pid, str(int(process_start(pid)) + 1))  # same pid, different start: another process
    tags = process_tags()
    assert tags[PID_TAG] == str(pid) and tags[START_TAG] == process_start(pid)
