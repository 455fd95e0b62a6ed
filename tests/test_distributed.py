"""``zslbench run --nproc 2``: DistributedDataParallel over 2 CPU processes (gloo) at the tiny preset.

With the same global batch, the 2-process run must reproduce the single-process run (metrics and
per-epoch losses within float tolerance), log one MLflow run from rank 0 only, and resume after
being killed to the same final metrics.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from tests.test_run_e2e import TINY, zslbench

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
    for name, extra in (("single", []), ("ddp", ["--nproc", "2"])):
        workdir = tmp_path_factory.mktemp(name)
        zslbench(["run", *TINY, *extra, "--json", "out.json"], workdir)
        out[name] = workdir / "runs" / json.loads((workdir / "out.json").read_text())["run_id"]
    return out


def test_two_processes_reproduce_the_single_process_run(runs):
    one, two = final(runs["single"]), final(runs["ddp"])
    for key in METRICS:
        assert two[key] == pytest.approx(one[key], abs=1e-6), key
    for row_one, row_two in zip(history(runs["single"]), history(runs["ddp"]), strict=True):
        assert row_two["train/loss"] == pytest.approx(row_one["train/loss"], rel=1e-4)


def test_only_rank_zero_tracks_and_writes(runs):
    import mlflow

    workdir = runs["ddp"].parents[1]
    assert [p.name for p in (workdir / "runs").iterdir()] == [runs["ddp"].name]  # one run folder
    client = mlflow.MlflowClient(tracking_uri=f"sqlite:///{workdir / 'mlflow.db'}")
    found = client.search_runs([e.experiment_id for e in client.search_experiments()])
    assert [r.info.run_id for r in found] == [runs["ddp"].name]
    assert found[0].info.status == "FINISHED"


def test_killed_distributed_run_resumes_to_the_same_metrics(runs, tmp_path):
    killed = zslbench(["run", *TINY, "--nproc", "2"], tmp_path, env_extra={"ZSLBENCH_FAULT": "train_step:4"},
                      check=False)
    assert killed.returncode != 0
    (run_dir,) = (tmp_path / "runs").iterdir()
    assert not (run_dir / "final.json").exists()
    zslbench(["run", "--nproc", "2", "--resume", "last"], tmp_path)
    resumed, reference = final(run_dir), final(runs["ddp"])
    for key in METRICS:
        assert resumed[key] == pytest.approx(reference[key], abs=1e-6), key


def test_nproc_must_be_positive(tmp_path):
    proc = zslbench(["run", *TINY, "--nproc", "-1"], tmp_path, check=False)
    assert proc.returncode == 2 and "--nproc -1" in proc.stderr and "Traceback" not in proc.stderr
