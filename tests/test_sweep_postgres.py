"""Workers on many machines: ``zslbench sweep`` processes sharing one study in PostgreSQL.

Needs ``ZSLBENCH_TEST_POSTGRES`` (a ``postgresql+psycopg://`` URL of a database the tests may
write to); CI starts a throwaway server with ``source .ci/postgres.sh && pg_test_start``.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest

POSTGRES = os.environ.get("ZSLBENCH_TEST_POSTGRES", "")
pytestmark = pytest.mark.skipif(
    not POSTGRES, reason="ZSLBENCH_TEST_POSTGRES is not set: start a throwaway PostgreSQL with "
    "`source .ci/postgres.sh && pg_test_start` to run the shared-storage sweep tests")

TINY = ["--preset", "tiny", "--set", "train.epochs=2", "--set", "train.threads=1"]


def start_worker(cwd: Path, study: str, trials: int, *extra: str) -> subprocess.Popen:
    env = {**os.environ, "ZSLBENCH_DATA": str(cwd / "data"), "NO_COLOR": "1"}
    env.pop("MLFLOW_TRACKING_URI", None)
    args = ["sweep", "patch_number", "--grid", "--trials", str(trials), "--study", study, "--storage", POSTGRES,
            *TINY, *extra]
    return subprocess.Popen([sys.executable, "-m", "zslbench.cli", *args], cwd=cwd, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


def finish(proc: subprocess.Popen, timeout: float = 400) -> str:
    out, _ = proc.communicate(timeout=timeout)
    assert proc.returncode == 0, out
    return out


def load(study: str):
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    return optuna.load_study(study_name=study, storage=POSTGRES)


def assert_nothing_left_running(cwd: Path) -> None:
    """A killed worker's MLflow run is closed (KILLED), not left RUNNING forever."""
    import mlflow

    client = mlflow.MlflowClient(tracking_uri=f"sqlite:///{cwd / 'mlflow.db'}")
    experiments = [e.experiment_id for e in client.search_experiments()]
    running = client.search_runs(experiments, "attributes.status = 'RUNNING'")
    assert running == [], [(r.info.run_name, r.data.tags.get("optuna.trial_number")) for r in running]


def assert_children_of_the_parent(cwd: Path, study, trials) -> None:
    import mlflow

    client = mlflow.MlflowClient(tracking_uri=f"sqlite:///{cwd / 'mlflow.db'}")
    parent = study.user_attrs["mlflow_parent_run_id"]
    for trial in trials:
        run = client.get_run(trial.user_attrs["mlflow_run_id"])
        assert run.info.status == "FINISHED" and run.data.tags["mlflow.parentRunId"] == parent
        assert run.data.tags["optuna.trial_number"] == str(trial.number)
        assert int(run.data.params["model.keep"]) == trial.params["patch_number"]


def test_two_worker_processes_share_one_study(tmp_path):
    from optuna.trial import TrialState

    name = f"pg-share-{uuid.uuid4().hex[:8]}"
    workers = [start_worker(tmp_path, name, 3) for _ in range(2)]
    outputs = [finish(w) for w in workers]
    assert all("hunter" not in o and POSTGRES.split("@")[0] not in o for o in outputs)  # password masked
    study = load(name)
    trials = study.get_trials()
    complete = [t for t in trials if t.state == TrialState.COMPLETE]
    assert len(complete) == 3
    assert all(t.user_attrs.get("zslbench.skipped") for t in trials if t.state != TrialState.COMPLETE)
    assert len({t.params["patch_number"] for t in complete}) == 3
    assert_children_of_the_parent(tmp_path, study, complete)


def test_a_killed_workers_trial_fails_and_is_retried(tmp_path):
    from optuna.trial import TrialState

    name = f"pg-kill-{uuid.uuid4().hex[:8]}"
    slower = ("--heartbeat", "1", "--set", "train.epochs=3")  # every worker of a study runs the same command
    victim = start_worker(tmp_path, name, 3, *slower)
    deadline = time.monotonic() + 180
    victim_trial = None
    while victim_trial is None and time.monotonic() < deadline:  # wait until it trains a trial (params set)
        time.sleep(0.2)
        try:
            running = load(name).get_trials(states=(TrialState.RUNNING,))
        except KeyError:  # the study does not exist yet
            continue
        victim_trial = next((t for t in running if t.params and t.user_attrs.get("zslbench.worker", "").endswith(
            f":{victim.pid}")), None)
    assert victim_trial is not None, "the first worker never started a trial"
    survivor = start_worker(tmp_path, name, 3, *slower)
    time.sleep(1.0)
    victim.send_signal(signal.SIGKILL)
    victim.communicate(timeout=30)
    out = finish(survivor)
    study = load(name)
    trials = {t.number: t for t in study.get_trials()}
    assert trials[victim_trial.number].state == TrialState.FAIL
    complete = [t for t in trials.values() if t.state == TrialState.COMPLETE]
    assert len(complete) == 3, out
    assert len({t.params["patch_number"] for t in complete}) == 3
    retried = [t for t in complete if t.system_attrs.get("failed_trial") == victim_trial.number]
    dead = trials[victim_trial.number]
    assert len(retried) == 1 and retried[0].params == dead.params
    assert retried[0].system_attrs["zslbench.grid_point"] == dead.system_attrs["zslbench.grid_point"]
    assert_children_of_the_parent(tmp_path, study, complete)
    assert_nothing_left_running(tmp_path)
