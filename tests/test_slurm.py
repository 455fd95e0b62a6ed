"""``--launcher slurm`` against a real single-node SLURM cluster: job arrays for ``run``, ``ablate`` and
``sweep``, a preempted job that requeues itself and resumes to identical metrics, a job cancelled from
outside, a job that fails, and a request SLURM refuses.

Needs ``ZSLBENCH_TEST_SLURM`` (the cluster's slurm.conf); CI starts a throwaway cluster with
``source .ci/slurm.sh && slurm_test_start``.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time
from pathlib import Path

import pytest

SLURM_CONF = os.environ.get("ZSLBENCH_TEST_SLURM", "")
pytestmark = pytest.mark.skipif(
    not SLURM_CONF, reason="ZSLBENCH_TEST_SLURM is not set: start a throwaway SLURM cluster with "
    "`source .ci/slurm.sh && slurm_test_start` to run the cluster tests")

TINY = ["--preset", "tiny", "--set", "train.epochs=2", "--set", "train.threads=1"]
JOB = ["--launcher", "slurm", "--cpus-per-job", "1", "--mem", "1G", "--time", "10"]


def environment(cwd: Path, extra: dict | None = None) -> dict:
    env = {**os.environ, "SLURM_CONF": SLURM_CONF, "ZSLBENCH_DATA": str(cwd / "data"), "NO_COLOR": "1",
           "ZSLBENCH_SLURM_POLL_SECONDS": "1", "COLUMNS": "250", "XDG_CONFIG_HOME": str(cwd / "config"), **(extra or {})}
    for name in ("MLFLOW_TRACKING_URI", "ZSLBENCH_SLURM_CONFIG", "ZSLBENCH_SLURM_PARTITION", "ZSLBENCH_FAULT"):
        env.pop(name, None)
    return {**env, **(extra or {})}


def zslbench(args: list[str], cwd: Path, check: bool = True, timeout: float = 600,
             extra: dict | None = None) -> subprocess.CompletedProcess:
    proc = subprocess.run([sys.executable, "-m", "zslbench.cli", *args], cwd=cwd, env=environment(cwd, extra),
                          capture_output=True, text=True, timeout=timeout)
    if check and proc.returncode != 0:
        raise AssertionError(f"exit {proc.returncode}\nstdout:\n{proc.stdout}\nstderr:\n{proc.stderr}")
    return proc


def slurm(*args: str) -> str:
    return subprocess.run(list(args), env={**os.environ, "SLURM_CONF": SLURM_CONF}, capture_output=True, text=True,
                          check=True, timeout=60).stdout


def client(cwd: Path):
    import mlflow

    return mlflow.MlflowClient(tracking_uri=f"sqlite:///{cwd / 'mlflow.db'}")


def runs(cwd: Path, experiment: str, where: str = "") -> list:
    found = client(cwd).get_experiment_by_name(experiment)
    return [] if found is None else client(cwd).search_runs([found.experiment_id], where, max_results=1000)


def launches(cwd: Path) -> list[dict]:
    records = [json.loads(p.read_text()) for p in (cwd / "slurm").glob("*/launch.json")]
    return sorted(records, key=lambda r: r["created"])


def wait_for(condition, timeout: float, what: str):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(0.5)
    raise AssertionError(f"timed out waiting for {what}")


@pytest.fixture(scope="module")
def workdir(tmp_path_factory) -> Path:
    """One folder (data, MLflow store, launches) for the module: the synthetic data is generated once."""
    return tmp_path_factory.mktemp("slurm")


def test_run_with_two_seeds_is_one_job_array_aggregated_as_a_local_run(workdir):
    zslbench(["run", *TINY, "--seed", "0", "--seed", "1", *JOB, "--experiment", "seeds", "--json", "seeds.json"],
             workdir)
    summary = json.loads((workdir / "seeds.json").read_text())
    assert summary["seed"] == [0, 1] and len(summary["runs"]) == 2
    launch = launches(workdir)[-1]
    assert launch["kind"] == "run" and launch["labels"] == ["seed 0", "seed 1"]
    array = {job_id.split("_")[0] for job_id in launch["job_ids"]}
    assert len(array) == 1 and len(launch["job_ids"]) == 2  # one array, one task per seed
    finished = runs(workdir, "seeds", "attributes.status = 'FINISHED'")
    assert sorted(r.info.run_id for r in finished) == sorted(summary["run_id"])
    assert sorted(r.data.tags["slurm.job_id"] for r in finished) == sorted(launch["job_ids"])
    script = Path(launch["folder"], f"{next(iter(array))}_submission.sh").read_text()
    assert "#SBATCH --signal=USR2@120" in script and "#SBATCH --requeue" in script  # warned before the end
    assert "#SBATCH --cpus-per-task=1" in script and "#SBATCH --mem=1G" in script and "#SBATCH --time=10" in script
    array_id = array.pop()  # the accounting database hears of a job's end a moment after its result is written
    wait_for(lambda: slurm("sacct", "-n", "-P", "-X", "-j", array_id, "-o", "JobID,State").count("COMPLETED") == 2,
             60, "sacct to record both tasks COMPLETED")
    listing = zslbench(["jobs"], workdir).stdout
    assert launch["id"] in listing and "2 done" in listing


def test_ablate_runs_the_grid_cells_as_one_job_array_under_one_parent(workdir):
    submitted = zslbench(["ablate", *TINY, "--only", "no_js", "--seed", "0", *JOB, "--experiment", "grid",
                          "--no-wait"], workdir).stdout
    launch = launches(workdir)[-1]
    assert launch["kind"] == "ablate" and len(launch["job_ids"]) == 2 and launch["id"] in submitted
    assert client(workdir).get_run(launch["parent_run_id"]).info.status == "RUNNING"  # until collected
    out = zslbench(["jobs", launch["id"], "--collect"], workdir).stdout  # detached: the table comes from here
    assert "no_js" in out and "full model" in out
    parent = client(workdir).get_run(launch["parent_run_id"])
    assert parent.info.status == "FINISHED"
    children = runs(workdir, "grid", f"tags.`mlflow.parentRunId` = '{parent.info.run_id}'")
    assert sorted(c.data.tags["zslbench.ablation_row"] for c in children) == ["full", "no_js"]
    assert all(c.info.status == "FINISHED" for c in children)
    assert sorted(parent.data.tags["zslbench.cell_runs"].split(",")) == sorted(c.info.run_id for c in children)
    before = len(launches(workdir))
    again = zslbench(["ablate", *TINY, "--only", "no_js", "--seed", "0", *JOB, "--experiment", "grid"], workdir)
    assert "2 of 2 cells reused" in again.stdout and len(launches(workdir)) == before  # nothing left to submit


def test_sweep_workers_are_array_tasks_of_one_shared_study_and_survive_preemption(workdir):
    """Two workers share the journal study; worker 0 is preempted mid-trial: that trial fails (its MLflow run
    KILLED), the requeued worker rejoins, and the study still ends with exactly --trials complete trials."""
    import optuna
    from optuna.storages.journal import JournalFileBackend, JournalStorage
    from optuna.trial import TrialState

    args = ["sweep", "patch_number", "--grid", "--trials", "3", "--workers", "2", "--study", "slurm-sweep",
            "--preset", "tiny", "--set", "train.epochs=12", "--set", "train.threads=1", *JOB, "--experiment", "sweep"]
    proc = subprocess.Popen([sys.executable, "-m", "zslbench.cli", *args], cwd=workdir, env=environment(workdir),
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        launch = wait_for(lambda: next((r for r in launches(workdir) if r["kind"] == "sweep"), None), 120, "the launch")
        assert launch["labels"] == ["worker 0", "worker 1"]
        out_log = Path(launch["folder"], f"{launch['job_ids'][0]}_0_log.out")
        started = wait_for(lambda: out_log.exists() and re.search(r"\] trial (\d+): ", out_log.read_text()), 240,
                           "worker 0's first trial")
        wait_for(lambda: runs(workdir, "sweep", f"tags.`optuna.trial_number` = '{started[1]}' and "
                                                "attributes.status = 'RUNNING'"), 120, "the trial's MLflow run")
        slurm("scancel", "--signal=USR2", launch["job_ids"][0])  # inside the trial (12 epochs)
        out, err = proc.communicate(timeout=600)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 0, (out, err)
    assert "rejoins the study" in Path(launch["folder"], f"{launch['job_ids'][0]}_0_log.err").read_text()
    study = optuna.load_study(study_name="slurm-sweep",
                              storage=JournalStorage(JournalFileBackend(str(workdir / "optuna-journal.log"))))
    complete = [t for t in study.get_trials() if t.state == TrialState.COMPLETE]
    assert len(complete) == 3
    assert len({t.params["patch_number"] for t in complete}) == 3  # no grid point twice
    parent = client(workdir).get_run(study.user_attrs["mlflow_parent_run_id"])
    assert parent.info.status == "FINISHED" and launch["parent_run_id"] == parent.info.run_id
    for trial in complete:
        child = client(workdir).get_run(trial.user_attrs["mlflow_run_id"])
        assert child.info.status == "FINISHED" and child.data.tags["mlflow.parentRunId"] == parent.info.run_id
    preempted = [t for t in study.get_trials() if t.state != TrialState.COMPLETE]
    assert [t.state for t in preempted] == [TrialState.FAIL]  # the trial worker 0 was in
    assert client(workdir).get_run(preempted[0].user_attrs["mlflow_run_id"]).info.status == "KILLED"
    assert runs(workdir, "sweep", "attributes.status = 'RUNNING'") == []
    assert "Restarts=1" in slurm("scontrol", "show", "job", launch["job_ids"][0])


def own_run(workdir: Path, experiment: str, launch: dict):
    task = f"{launch['id']}/0"
    found = runs(workdir, experiment, f"tags.`zslbench.slurm_task` = '{task}'")
    return found[0] if found else None


def test_a_preempted_job_requeues_itself_and_resumes_to_identical_metrics(workdir):
    args = ["run", "--preset", "tiny", "--set", "train.epochs=8", "--set", "train.threads=1", "--seed", "5"]
    zslbench([*args, *JOB, "--experiment", "preempt", "--no-wait"], workdir)
    launch = launches(workdir)[-1]
    job_id = launch["job_ids"][0]
    run = wait_for(lambda: own_run(workdir, "preempt", launch), 240, "the job's MLflow run")
    checkpoint = workdir / "runs" / run.info.run_id / "checkpoint.pt"
    wait_for(checkpoint.exists, 240, "the first epoch's checkpoint")
    slurm("scancel", "--signal=USR2", job_id)  # SLURM's warning: the job stops, keeps its checkpoint, requeues
    zslbench(["jobs", launch["id"], "--collect", "--json", "preempted.json"], workdir)
    log = Path(launch["folder"], f"{job_id}_0_log.err").read_text()
    assert "requeued job" in log and f"resuming MLflow run {run.info.run_id}" in log, log
    resumed = json.loads((workdir / "preempted.json").read_text())
    assert resumed["run_id"] == run.info.run_id  # the same MLflow run, finished by the requeued job

    zslbench([*args, "--experiment", "preempt-reference", "--json", "reference.json"], workdir)
    reference = json.loads((workdir / "reference.json").read_text())
    for key in ("zsl_t1", "gzsl_u", "gzsl_s", "gzsl_h", "ausuc", "gamma", "selected_epoch"):
        assert resumed[key] == reference[key], key  # bit for bit
    mine = runs(workdir, "preempt")
    assert [r.info.status for r in mine] == ["FINISHED"]  # exactly one run, FINISHED
    assert mine[0].data.tags["zslbench.resumed"] == "1"
    assert int(slurm("scontrol", "show", "job", job_id).split("Restarts=")[1].split()[0]) == 1


def test_a_job_cancelled_from_outside_fails_the_command_in_one_line(workdir):
    args = ["run", "--preset", "tiny", "--set", "train.epochs=30", "--set", "train.threads=1", "--seed", "6"]
    proc = subprocess.Popen([sys.executable, "-m", "zslbench.cli", *args, *JOB, "--experiment", "cancel"],
                            cwd=workdir, env=environment(workdir), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True)
    try:
        launch = wait_for(lambda: next((r for r in launches(workdir) if r["labels"] == ["seed 6"]), None), 120,
                          "the launch")
        run = wait_for(lambda: own_run(workdir, "cancel", launch), 240, "the job's MLflow run")
        slurm("scancel", launch["job_ids"][0])
        out, err = proc.communicate(timeout=300)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 1, (out, err)
    lines = err.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in err, err
    assert "CANCELLED" in lines[0] and launch["job_ids"][0] in lines[0] and "_log.err" in lines[0]
    assert client(workdir).get_run(run.info.run_id).info.status == "KILLED"
    assert runs(workdir, "cancel", "attributes.status = 'RUNNING'") == []
    log = Path(launch["folder"], f"{launch['job_ids'][0]}_0_log.err").read_text()
    assert "stopped by SLURM (SIGTERM)" in log  # the job closed its own run, detached or not


def test_jobs_cancel_stops_a_detached_launch_and_closes_its_runs(workdir):
    args = ["run", "--preset", "tiny", "--set", "train.epochs=30", "--set", "train.threads=1", "--seed", "8"]
    zslbench([*args, *JOB, "--experiment", "detached", "--no-wait"], workdir)
    launch = launches(workdir)[-1]
    run = wait_for(lambda: own_run(workdir, "detached", launch), 240, "the job's MLflow run")
    shown = zslbench(["jobs", "last"], workdir).stdout
    assert launch["job_ids"][0] in shown and "RUNNING" in shown
    proc = zslbench(["jobs", launch["id"], "--cancel"], workdir, check=False)
    assert proc.returncode == 1 and "CANCELLED" in proc.stderr and proc.stderr.count("\n") == 1, proc.stderr
    assert client(workdir).get_run(run.info.run_id).info.status == "KILLED"
    assert json.loads(Path(launch["folder"], "launch.json").read_text())["collected"] is True


def test_a_job_that_fails_is_reported_with_its_log_and_not_requeued(workdir):
    # the job kills itself at its first training step (a crash, not a preemption)
    proc = zslbench(["run", *TINY, "--seed", "7", *JOB, "--experiment", "crash"], workdir, check=False,
                    extra={"ZSLBENCH_FAULT": "train_step:1"})
    assert proc.returncode == 1, proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in proc.stderr, proc.stderr
    launch = launches(workdir)[-1]
    job_id = launch["job_ids"][0]
    assert "FAILED" in lines[0] and f"{job_id}_0_log.err" in lines[0]
    assert "marked KILLED" in lines[0]  # the run the dead process left RUNNING
    assert runs(workdir, "crash", "attributes.status = 'RUNNING'") == []
    assert "Restarts=0" in slurm("scontrol", "show", "job", job_id)


def test_a_request_slurm_refuses_fails_before_anything_is_tracked(tmp_path):
    proc = zslbench(["run", *TINY, *JOB, "--partition", "no-such-partition"], tmp_path, check=False)
    assert proc.returncode == 2
    assert proc.stderr.count("\n") == 1 and "Traceback" not in proc.stderr
    assert "invalid partition" in proc.stderr.lower() and "no-such-partition" in proc.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == []  # no MLflow store, run folder, data or launch


def test_a_run_whose_data_fails_its_checks_submits_and_creates_nothing(tmp_path):
    (tmp_path / "empty").mkdir()
    proc = zslbench(["run", "--dataset", "CUB", "--data-root", str(tmp_path / "empty"), *JOB, "--gpus-per-job", "0"],
                    tmp_path, check=False)
    assert proc.returncode == 2 and proc.stderr.count("\n") == 1 and "Traceback" not in proc.stderr, proc.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == ["empty"]  # no store, no launch folder, no job
