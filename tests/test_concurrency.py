"""Concurrency: separate commands sharing one store at the same time.

* two ``zslbench run`` processes on one (new) sqlite MLflow store both record complete runs;
* two different sweeps (two studies) on one Optuna journal file both complete, each trial with its
  own finished MLflow run.

(Several workers of ONE sweep are covered by tests/test_sweep_workers.py and test_sweep_postgres.py.)
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from tests.test_run_e2e import TINY


def start(args: list[str], cwd: Path) -> subprocess.Popen:
    env = {**os.environ, "ZSLBENCH_DATA": str(cwd / "data"), "NO_COLOR": "1"}
    env.pop("MLFLOW_TRACKING_URI", None)
    env.pop("ZSLBENCH_OPTUNA_STORAGE", None)
    return subprocess.Popen([sys.executable, "-m", "zslbench.cli", *args], cwd=cwd, env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True)


def wait_all(procs: list[subprocess.Popen]) -> list[str]:
    outputs = [p.communicate(timeout=600)[0] for p in procs]
    for proc, out in zip(procs, outputs):
        assert proc.returncode == 0, out
    return outputs


def prepare_data(cwd: Path) -> None:
    """Generate the tiny dataset first: concurrent first-time generation is a separate concern (atomic rename)."""
    from zslbench.data.synth import ensure_synth

    ensure_synth(cwd / "data", preset="tiny")


def test_two_runs_on_one_new_sqlite_store_both_record_complete_runs(tmp_path):
    import mlflow

    prepare_data(tmp_path)
    wait_all([start(["run", *TINY, "--seed", str(seed)], tmp_path) for seed in (0, 1)])
    client = mlflow.MlflowClient(tracking_uri=f"sqlite:///{tmp_path / 'mlflow.db'}")
    runs = client.search_runs([e.experiment_id for e in client.search_experiments()])
    assert sorted(r.info.status for r in runs) == ["FINISHED", "FINISHED"]
    assert sorted(r.data.params["train.seed"] for r in runs) == ["0", "1"]
    for run in runs:
        epochs = int(run.data.params["train.epochs"])
        assert {m.step for m in client.get_metric_history(run.info.run_id, "train_loss")} == set(range(epochs))
        assert "final_zsl_t1" in run.data.metrics
        assert (tmp_path / "runs" / run.info.run_id / "final.json").exists()


def test_two_sweeps_on_one_journal_file_both_complete(tmp_path):
    import mlflow
    import optuna
    from optuna.storages.journal import JournalFileBackend, JournalStorage
    from optuna.trial import TrialState

    prepare_data(tmp_path)
    journal = tmp_path / "shared-journal.log"
    sweeps = {"temperature": "t-study", "js_weight": "j-study"}
    wait_all([start(["sweep", space, "--trials", "2", "--study", study, "--storage", f"journal:{journal}", *TINY,
                     "--set", "train.epochs=1"], tmp_path) for space, study in sweeps.items()])
    storage = JournalStorage(JournalFileBackend(str(journal)))
    client = mlflow.MlflowClient(tracking_uri=f"sqlite:///{tmp_path / 'mlflow.db'}")
    for space, study_name in sweeps.items():
        trials = optuna.load_study(study_name=study_name, storage=storage).get_trials()
        complete = [t for t in trials if t.state == TrialState.COMPLETE]
        assert len(complete) == 2 and all(space in t.params for t in complete)
        for trial in complete:
            run = client.get_run(trial.user_attrs["mlflow_run_id"])
            assert run.info.status == "FINISHED" and run.data.tags["optuna.study"] == study_name
