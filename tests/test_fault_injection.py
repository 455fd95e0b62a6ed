"""Crash anywhere, lose nothing: ``zslbench run`` SIGKILLed at 10 points, then recovered.

Each case kills a tiny run at a named fault point (``ZSLBENCH_FAULT=<point>:<n>``, see
:mod:`zslbench.core.faults`) — during data generation, training, evaluation, an atomic write,
MLflow logging or finishing — and recovers it the way a user would: ``--resume last`` when the run
folder exists, else the same command again. Every recovered run must end with exactly the
metrics of an uninterrupted run, no torn or temporary file, and one FINISHED MLflow run under the
folder's id, nothing left RUNNING.
"""

from __future__ import annotations

import json
import random
import shutil
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pytest

from tests.test_run_e2e import TINY, zslbench
from zslbench.core.faults import POINTS

METRICS = ("zsl_t1", "gzsl_u", "gzsl_s", "gzsl_h", "gamma", "ausuc", "patch_iou", "selected_epoch")
# How often a tiny run reaches each point (4 generation chunks, 2 epochs of 9 steps, 3 evaluation batches per
# evaluation, 6 atomic writes); a case's n is drawn within these so every case really kills the run.
HITS = {"synth_image": 4, "tracker_open": 1, "train_step": 18, "eval_batch": 6, "atomic_write": 6,
        "metrics_log": 2, "finalize": 1, "finish": 1}


def fault_cases(count: int = 10, seed: int = 2025) -> list[str]:
    """Every point once, the rest drawn at random; each with a random hit number (all distinct)."""
    rng = random.Random(seed)
    cases = [f"{p}:{rng.randint(1, HITS[p])}" for p in sorted(HITS)]
    while len(cases) < count:
        point = rng.choice(["train_step", "eval_batch", "atomic_write", "synth_image"])
        case = f"{point}:{rng.randint(1, HITS[point])}"
        if case not in cases:
            cases.append(case)
    return cases


def test_every_fault_point_is_exercised():
    assert set(HITS) == set(POINTS)
    cases = fault_cases()
    assert {c.split(":")[0] for c in cases} == set(POINTS) and len(set(cases)) == 10


@pytest.fixture(scope="module")
def reference(tmp_path_factory) -> dict:
    import mlflow

    workdir = tmp_path_factory.mktemp("reference")
    zslbench(["run", *TINY, "--json", "out.json"], workdir)
    empty_store = tmp_path_factory.mktemp("store") / "mlflow.db"  # schema created once, copied into each case
    mlflow.MlflowClient(tracking_uri=f"sqlite:///{empty_store}").search_experiments()
    return {"final": final_of(workdir), "data": workdir / "data", "store": empty_store}


def final_of(workdir: Path) -> dict:
    """The run's own final.json (all metrics; the --json summary holds the headline keys only)."""
    run_id = json.loads((workdir / "out.json").read_text())["run_id"]
    return json.loads((workdir / "runs" / run_id / "final.json").read_text())


def crash_and_recover(fault: str, workdir: Path, data: Path | None, store: Path) -> dict:
    if data is not None:  # a prepared dataset; generation faults start from an empty data root instead
        shutil.copytree(data, workdir / "data")
    shutil.copy(store, workdir / "mlflow.db")
    killed = zslbench(["run", *TINY], workdir, env_extra={"ZSLBENCH_FAULT": fault}, check=False)
    folders = [p for p in (workdir / "runs").glob("*/") if (p / "resolved.yaml").exists()]
    recovery = ["run", "--resume", "last"] if folders else ["run", *TINY]
    zslbench([*recovery, "--json", "out.json"], workdir)
    return {"returncode": killed.returncode, "folders_before": [p.name for p in folders],
            "final": final_of(workdir)}


@pytest.fixture(scope="module")
def outcomes(reference, tmp_path_factory) -> dict[str, dict]:
    cases = fault_cases()

    def one(fault: str) -> tuple[str, dict]:
        workdir = tmp_path_factory.mktemp(fault.replace(":", "-"))
        data = None if fault.startswith("synth_image") else reference["data"]
        return fault, {**crash_and_recover(fault, workdir, data, reference["store"]), "workdir": workdir}

    with ThreadPoolExecutor(2) as pool:  # each case is two short processes of one thread
        return dict(pool.map(one, cases))


@pytest.mark.parametrize("fault", fault_cases())
def test_a_killed_run_recovers_everything(fault, outcomes, reference):
    outcome = outcomes[fault]
    workdir, final = outcome["workdir"], outcome["final"]
    assert outcome["returncode"] == -9, f"{fault} did not kill the run"
    for key in METRICS:
        assert final[key] == reference["final"][key], key
    if outcome["folders_before"]:  # resumed: the same run id as the killed run
        assert final["run_id"] == outcome["folders_before"][0]
    assert_no_torn_files(workdir)
    assert_one_finished_mlflow_run(workdir, final)


def assert_no_torn_files(workdir: Path) -> None:
    from zslbench.engine.checkpoint import load_checkpoint

    leftovers = [p for p in workdir.rglob("*") if p.name.endswith(".tmp") or ".tmp-" in p.name]
    assert leftovers == []
    (run_dir,) = [p for p in (workdir / "runs").iterdir() if (p / "final.json").exists()]
    load_checkpoint(run_dir / "checkpoint.pt")
    json.loads((run_dir / "final.json").read_text())
    for scores in (run_dir / "scores").glob("*.npz"):
        with np.load(scores) as arrays:
            assert all(arrays[k].size for k in arrays.files)


def assert_one_finished_mlflow_run(workdir: Path, final: dict) -> None:
    import mlflow

    client = mlflow.MlflowClient(tracking_uri=f"sqlite:///{workdir / 'mlflow.db'}")
    runs = client.search_runs([e.experiment_id for e in client.search_experiments()])
    statuses = sorted(r.info.status for r in runs)
    assert [r.info.run_id for r in runs if r.info.status == "FINISHED"] == [final["run_id"]]
    assert "RUNNING" not in statuses, statuses  # an abandoned run is closed as KILLED by the next start
    run = client.get_run(final["run_id"])
    assert run.data.metrics["final_zsl_t1"] == pytest.approx(final["zsl_t1"], abs=1e-12)
    epochs = {m.step for m in client.get_metric_history(final["run_id"], "train_loss")}
    assert epochs == set(range(final["epochs"]))  # no epoch's metrics lost
    assert {"resolved.yaml", "final.json"} <= {a.path for a in client.list_artifacts(final["run_id"])}
