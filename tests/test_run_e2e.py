"""``zslbench run`` end to end on the tiny synthetic preset: results, tracking, determinism, resume."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

TINY = ["--preset", "tiny", "--set", "train.threads=1"]


def zslbench(args: list[str], cwd: Path, env_extra: dict | None = None, check: bool = True,
             timeout: float = 600) -> subprocess.CompletedProcess:
    env = {**os.environ, "ZSLBENCH_DATA": str(cwd / "data"), "NO_COLOR": "1", **(env_extra or {})}
    env.pop("MLFLOW_TRACKING_URI", None)
    proc = subprocess.run([sys.executable, "-m", "zslbench.cli", *args], cwd=cwd, env=env, capture_output=True,
                          text=True, timeout=timeout)
    if check and proc.returncode != 0:
        raise AssertionError(f"exit {proc.returncode}\nstdout:\n{proc.stdout}\nstderr:\n{proc.stderr}")
    return proc


@pytest.fixture(scope="module")
def workdir(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("run")


@pytest.fixture(scope="module")
def tiny_run(workdir) -> dict:
    zslbench(["run", *TINY, "--json", "first.json"], workdir)
    return json.loads((workdir / "first.json").read_text())


def test_json_has_design_keys_and_fractions(tiny_run):
    for key in ("zsl_t1", "gzsl_u", "gzsl_s", "gzsl_h", "gamma", "gamma_policy", "selection", "ausuc", "epochs",
                "seed", "run_id", "model", "dataset", "ablations"):
        assert key in tiny_run, key
    for key in ("zsl_t1", "gzsl_u", "gzsl_s", "gzsl_h", "ausuc"):
        assert 0.0 <= tiny_run[key] <= 1.0
    assert tiny_run["model"] == "svip" and tiny_run["dataset"] == "synth" and tiny_run["ablations"] == []


def test_run_is_tracked_in_sqlite_mlflow(tiny_run, workdir):
    import mlflow

    client = mlflow.MlflowClient(tracking_uri=f"sqlite:///{workdir / 'mlflow.db'}")
    run = client.get_run(tiny_run["run_id"])
    assert run.info.status == "FINISHED"
    assert run.data.params["model.name"] == "svip"
    assert run.data.tags["model"] == "svip" and "data.fingerprint" in run.data.tags
    assert abs(run.data.metrics["final_zsl_t1"] - tiny_run["zsl_t1"]) < 1e-9
    artifacts = {a.path for a in client.list_artifacts(run.info.run_id)}
    assert "resolved.yaml" in artifacts and "final.json" in artifacts


def test_same_seed_same_metrics(tiny_run, workdir):
    zslbench(["run", *TINY, "--json", "second.json", "--set", "track.enabled=false"], workdir)
    second = json.loads((workdir / "second.json").read_text())
    for key in ("zsl_t1", "gzsl_u", "gzsl_s", "gzsl_h", "ausuc"):
        assert second[key] == tiny_run[key], key


def test_ablation_and_vit_with_two_seeds(workdir):
    proc = zslbench(["run", *TINY, "--ablate", "no_replacement", "--json", "-", "--set", "track.enabled=false"],
                    workdir)
    result = json.loads(proc.stdout[proc.stdout.index("{"):])
    assert result["ablations"] == ["no_replacement"]
    proc = zslbench(["run", "--model", "vit", "--seed", "0", "--seed", "1", *TINY, "--json", "vit.json"], workdir)
    vit = json.loads((workdir / "vit.json").read_text())
    assert vit["model"] == "vit" and vit["seed"] == [0, 1] and len(vit["runs"]) == 2
    assert "mean" in proc.stdout


def test_kill_then_resume_gives_the_same_final_metrics(tiny_run, workdir):
    """SIGKILL mid-run, then `--resume last`: same final metrics as the uninterrupted run."""
    out = workdir / "killed"
    out.mkdir()
    args = [*TINY, "--epochs", "3", "--set", "track.enabled=false"]
    zslbench(["run", *args, "--set", f"track.output_dir={out / 'reference'}", "--json", str(out / "ref.json")],
             workdir)
    env = {**os.environ, "ZSLBENCH_DATA": str(workdir / "data")}
    env.pop("MLFLOW_TRACKING_URI", None)
    proc = subprocess.Popen([sys.executable, "-m", "zslbench.cli", "run", *args,
                             "--set", f"track.output_dir={out / 'runs'}"], cwd=workdir, env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 300
    while time.time() < deadline and not list((out / "runs").glob("*/checkpoint.pt")):
        time.sleep(0.05)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert list((out / "runs").glob("*/checkpoint.pt")), "the run never wrote a checkpoint"
    assert not list((out / "runs").glob("*/final.json")), "the run finished before it was killed"
    zslbench(["run", "--resume", "last", "--set", f"track.output_dir={out / 'runs'}", "--json",
              str(out / "resumed.json")], workdir)
    reference = json.loads((out / "ref.json").read_text())
    resumed = json.loads((out / "resumed.json").read_text())
    for key in ("zsl_t1", "gzsl_u", "gzsl_s", "gzsl_h", "ausuc", "selected_epoch"):
        assert resumed[key] == reference[key], key


def test_resume_with_nothing_to_resume_is_a_user_error(workdir):
    proc = zslbench(["run", "--resume", "last", "--set", f"track.output_dir={workdir / 'empty'}"], workdir,
                    check=False)
    assert proc.returncode == 2
    assert "no unfinished run" in proc.stderr and "Traceback" not in proc.stderr


def test_unreachable_tracking_server_fails_before_training(workdir):
    proc = zslbench(["run", *TINY, "--tracking-uri", "http://user:s3cret@127.0.0.1:9"], workdir, check=False)
    assert proc.returncode == 2
    assert "unreachable" in proc.stderr and "s3cret" not in proc.stderr
    assert "Traceback" not in proc.stderr
