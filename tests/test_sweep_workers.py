"""Several workers on one machine: the journal storage, grid claims, dead-worker retry, ``--workers 2``."""

from __future__ import annotations

import os
import random
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

TINY = ["--preset", "tiny", "--set", "train.epochs=2", "--set", "train.threads=1"]


def journal_study(path: Path, name: str = "s"):
    import optuna
    from optuna.storages.journal import JournalFileBackend, JournalStorage

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    storage = JournalStorage(JournalFileBackend(str(path)))
    return optuna.create_study(study_name=name, storage=storage, load_if_exists=True, direction="maximize")


def test_racing_claims_never_hold_one_grid_point_twice(tmp_path):
    """Threads with their own journal replay (as separate processes would) claim points at once."""
    from optuna.trial import TrialState

    from zslbench.sweeps.coordination import GRID_ATTR, claim_grid_point

    journal_study(tmp_path / "j.log")
    n_points, claimed, errors = 6, [], []
    barrier = threading.Barrier(4)

    def worker(index: int) -> None:
        try:
            study = journal_study(tmp_path / "j.log")
            rng = random.Random(index)
            barrier.wait()
            while True:
                trial = study.ask()
                point = claim_grid_point(study, trial, n_points, rng)
                if point is None:
                    study.tell(trial, state=TrialState.FAIL)
                    return
                claimed.append(point)
                study.tell(trial, 1.0)
        except Exception as exc:  # surfaced below
            errors.append(exc)

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert not errors
    study = journal_study(tmp_path / "j.log")
    held = [t.system_attrs[GRID_ATTR] for t in study.get_trials() if t.state == TrialState.COMPLETE]
    assert sorted(held) == sorted(claimed) == list(range(n_points))


def test_journal_trials_of_dead_workers_are_failed_and_retried_with_their_params(tmp_path):
    from optuna.distributions import FloatDistribution
    from optuna.trial import TrialState

    from zslbench.sweeps.coordination import GRID_ATTR, HEARTBEAT_ATTR, fail_stale_trials
    from zslbench.sweeps.storage import StorageSpec

    study = journal_study(tmp_path / "j.log")
    dead = study.ask()
    dead.suggest_float("temperature", 0.5, 50.0, log=True)
    study._storage.set_trial_system_attr(dead._trial_id, GRID_ATTR, 2)
    study._storage.set_trial_system_attr(dead._trial_id, HEARTBEAT_ATTR, time.time() - 10)
    alive = study.ask()
    study._storage.set_trial_system_attr(alive._trial_id, HEARTBEAT_ATTR, time.time())
    failed = fail_stale_trials(study, StorageSpec("journal", str(tmp_path / "j.log")), heartbeat=2, max_retry=1)
    assert failed == [dead.number]
    trials = study.get_trials()
    assert [t.state for t in trials] == [TrialState.FAIL, TrialState.RUNNING, TrialState.WAITING]
    retry = trials[2]
    assert retry.params == trials[0].params and retry.system_attrs[GRID_ATTR] == 2
    assert retry.system_attrs["failed_trial"] == dead.number
    assert isinstance(retry.distributions["temperature"], FloatDistribution)


def test_two_workers_share_one_journal_study(tmp_path):
    import mlflow
    import optuna
    from optuna.storages.journal import JournalFileBackend, JournalStorage
    from optuna.trial import TrialState

    env = {**os.environ, "ZSLBENCH_DATA": str(tmp_path / "data"), "NO_COLOR": "1"}
    env.pop("MLFLOW_TRACKING_URI", None)
    env.pop("ZSLBENCH_OPTUNA_STORAGE", None)
    proc = subprocess.run([sys.executable, "-m", "zslbench.cli", "sweep", "patch_number", "--grid", "--trials", "3",
                           "--workers", "2", *TINY], cwd=tmp_path, env=env, capture_output=True, text=True,
                          timeout=600)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "[worker 0]" in proc.stdout and "[worker 1]" in proc.stdout
    assert not (tmp_path / "optuna.db").exists()
    study = optuna.load_study(study_name="svip-synth-patch_number-grid-tiny",
                              storage=JournalStorage(JournalFileBackend(str(tmp_path / "optuna-journal.log"))))
    trials = study.get_trials()
    complete = [t for t in trials if t.state == TrialState.COMPLETE]
    assert len(complete) == 3
    assert all(t.user_attrs.get("zslbench.skipped") for t in trials if t.state != TrialState.COMPLETE)
    points = [t.params["patch_number"] for t in complete]
    assert len(set(points)) == 3
    workers = {t.user_attrs["zslbench.worker"] for t in complete}
    assert len(workers) == 2  # both processes trained
    parent = study.user_attrs["mlflow_parent_run_id"]
    client = mlflow.MlflowClient(tracking_uri=f"sqlite:///{tmp_path / 'mlflow.db'}")
    assert client.get_run(parent).info.status == "FINISHED"
    for trial in complete:
        run = client.get_run(trial.user_attrs["mlflow_run_id"])
        assert run.info.status == "FINISHED" and run.data.tags["mlflow.parentRunId"] == parent
        assert run.data.tags["optuna.trial_number"] == str(trial.number)
        assert int(run.data.params["model.keep"]) == trial.params["patch_number"]


@pytest.mark.parametrize("storage", ["sqlite:///optuna.db"])
def test_workers_refuse_a_sqlite_storage(tmp_path, storage):
    from zslbench.core.errors import UserError
    from zslbench.sweeps.options import SweepOptions
    from zslbench.sweeps.study import run_sweep

    with pytest.raises(UserError, match="needs a storage that several processes can share"):
        run_sweep(SweepOptions(spaces=["temperature"], workers=2, storage=storage, preset="tiny"), console=None)
