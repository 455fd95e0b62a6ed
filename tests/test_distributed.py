"""``zslbench run --nproc 2``: DistributedDataParallel over 2 CPU processes at the tiny preset.

With the same global batch, the 2-process run must reproduce the single-process run (metrics and
per-epoch losses within float tolerance), log one MLflow run from rank 0 only, and resume after
being killed to the same final metrics.

Each distributed case runs twice: with gloo as ``--nproc`` starts it, and with a process group bound
the way nccl binds — a backend that serves CUDA tensors only (``cuda:gloo``, started by
``tests/nccl_like_child.py``). On a machine without a GPU every host tensor handed to a collective of
that group fails as it would under nccl (``No backend type associated with device type cpu``), so a
CUDA run's first-step crash shows up here without a GPU.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from tests.test_run_e2e import TINY, zslbench

CHILD = Path(__file__).with_name("nccl_like_child.py")
BACKENDS = ("gloo", "cuda-only")  # how --nproc starts it; bound as nccl binds


def ddp(args: list[str], cwd: Path, backend: str, env_extra: dict | None = None,
        check: bool = True) -> subprocess.CompletedProcess:
    """``zslbench <args>`` over 2 processes: ``--nproc 2`` (gloo), or torchrun with a CUDA-only group."""
    if backend == "gloo":
        return zslbench([*args, "--nproc", "2"], cwd, env_extra=env_extra, check=check)
    env = {**os.environ, "ZSLBENCH_DATA": str(cwd / "data"), "NO_COLOR": "1", "ZSLBENCH_TEST_BACKEND": "cuda:gloo",
           **(env_extra or {})}
    env.pop("MLFLOW_TRACKING_URI", None)
    proc = subprocess.run([sys.executable, "-m", "zslbench.engine.torchrun", "--standalone", "--nproc-per-node", "2",
                           str(CHILD), *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=600)
    if check and proc.returncode != 0:
        raise AssertionError(f"exit {proc.returncode}\nstdout:\n{proc.stdout}\nstderr:\n{proc.stderr}")
    return proc

pytestmark = pytest.mark.skipif(not torch.distributed.is_available(), reason="torch.distributed is not built in")

METRICS = ("zsl_t1", "gzsl_u", "gzsl_s", "gzsl_h", "ausuc", "patch_iou")


def history(run_dir: Path) -> list[dict]:
    from zslbench.engine.checkpoint import load_checkpoint

    return load_checkpoint(run_dir / "checkpoint.pt")["history"]


def final(run_dir: Path) -> dict:
    return json.loads((run_dir / "final.json").read_text())


@pytest.fixture(scope="module")
def runs(tmp_path_factory) -> dict[str, Path]:
    """A single-process and a 2-process run of the same config, each in its own folder."""
    out = {}
    workdir = tmp_path_factory.mktemp("single")
    zslbench(["run", *TINY, "--json", "out.json"], workdir)
    out["single"] = workdir / "runs" / json.loads((workdir / "out.json").read_text())["run_id"]
    for backend in BACKENDS:
        workdir = tmp_path_factory.mktemp(backend)
        ddp(["run", *TINY, "--json", "out.json"], workdir, backend)
        out[backend] = workdir / "runs" / json.loads((workdir / "out.json").read_text())["run_id"]
    return out


def test_a_cuda_only_group_rejects_host_tensors(tmp_path):
    """The premise of the cuda-only cases: such a group fails on a host tensor exactly as nccl does."""
    script = tmp_path / "probe.py"
    script.write_text("import torch, torch.distributed as dist\n"
                      "dist.init_process_group('cuda:gloo')\n"
                      "dist.all_reduce(torch.ones(1))\n")
    proc = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", "2",
                           str(script)], capture_output=True, text=True, timeout=300)
    assert proc.returncode != 0 and "No backend type associated with device type cpu" in proc.stderr


@pytest.mark.parametrize("backend", BACKENDS)
def test_two_processes_reproduce_the_single_process_run(runs, backend):
    one, two = final(runs["single"]), final(runs[backend])
    for key in METRICS:
        assert two[key] == pytest.approx(one[key], abs=1e-6), key
    for row_one, row_two in zip(history(runs["single"]), history(runs[backend]), strict=True):
        assert row_two["train/loss"] == pytest.approx(row_one["train/loss"], rel=1e-4)


@pytest.mark.parametrize("backend", BACKENDS)
def test_only_rank_zero_tracks_and_writes(runs, backend):
    import mlflow

    workdir = runs[backend].parents[1]
    assert [p.name for p in (workdir / "runs").iterdir()] == [runs[backend].name]  # one run folder
    client = mlflow.MlflowClient(tracking_uri=f"sqlite:///{workdir / 'mlflow.db'}")
    found = client.search_runs([e.experiment_id for e in client.search_experiments()])
    assert [r.info.run_id for r in found] == [runs[backend].name]
    assert found[0].info.status == "FINISHED"


@pytest.mark.parametrize("backend", BACKENDS)
def test_killed_distributed_run_resumes_to_the_same_metrics(runs, tmp_path, backend):
    killed = ddp(["run", *TINY], tmp_path, backend, env_extra={"ZSLBENCH_FAULT": "train_step:4"}, check=False)
    assert killed.returncode != 0
    (run_dir,) = (tmp_path / "runs").iterdir()
    assert not (run_dir / "final.json").exists()
    ddp(["run", "--resume", "last"], tmp_path, backend)
    resumed, reference = final(run_dir), final(runs[backend])
    for key in METRICS:
        assert resumed[key] == pytest.approx(reference[key], abs=1e-6), key


@pytest.mark.parametrize("backend", BACKENDS)
def test_a_diverging_distributed_run_stops_every_rank_with_one_line(tmp_path, backend):
    """A non-finite loss stops both ranks at the same check (a host-group collective), each with one line and
    no traceback, the job exits 2, and the MLflow run is FAILED with the last good checkpoint (epoch 1, before
    full training's lr) kept."""
    import mlflow

    proc = ddp(["run", *TINY, "--set", "train.lr=1e30"], tmp_path, backend, check=False)
    assert proc.returncode == 2, proc.stderr[-3000:]
    lines = [line for line in proc.stderr.splitlines() if "loss became non-finite at epoch 2" in line]
    assert len(lines) == 2 and "Traceback" not in proc.stderr  # one line per rank
    (run_dir,) = (tmp_path / "runs").iterdir()
    assert [row["epoch"] for row in history(run_dir)] == [0]
    client = mlflow.MlflowClient(tracking_uri=f"sqlite:///{tmp_path / 'mlflow.db'}")
    (run,) = client.search_runs([e.experiment_id for e in client.search_experiments()])
    assert run.info.status == "FAILED"


def test_nproc_must_be_positive(tmp_path):
    proc = zslbench(["run", *TINY, "--nproc", "-1"], tmp_path, check=False)
    assert proc.returncode == 2 and "--nproc -1" in proc.stderr and "Traceback" not in proc.stderr
