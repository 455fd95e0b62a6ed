"""A rehearsal of the whole real-data path, as a user with CUB's images and a GPU would walk it.

CUB's real split files (../shared/data) and a stand-in JPEG at the real relative path of each of its
11,788 images form the data root; the published word2vec attribute vectors and stand-in weights (a tiny ViT
in place of ViT-B/16) are served over loopback HTTP. Then: ``data fetch w2v`` and ``data fetch weights`` (both
verified) → ``data check`` → ``run --dataset CUB`` in the paper configuration (paper weights from the hub
cache, fp32, word2vec) at a CI-sized geometry → ``table main`` under the default protocol and under each
paper's reporting mode. Downloads at run time are off ($ZSLBENCH_OFFLINE): what the run needs must already be
where the fetches put it.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.cub_layout import build_full_cub_root
from tests.loopback import serve_folder

#: CI-sized: the tiny ViT (32 px, patch 8, 4 super-patches) instead of ViT-B/16, 2 steps an epoch
GEOMETRY = {"model.backbone": "vit_tiny_patch16_224", "model.img_size": 32, "model.patch_size": 8,
            "model.embed_dim": 32, "model.depth": 2, "model.num_heads": 2, "model.keep": 3}
SHORT = {"train.epochs": 2, "train.warmup_epochs": 1, "train.max_steps_per_epoch": 2, "train.threads": 1,
         "eval.batch_size": 512}

pytestmark = [pytest.mark.slow, pytest.mark.shared]


def zslbench(args: list[str], cwd: Path, env: dict[str, str], code: int = 0) -> subprocess.CompletedProcess:
    done = subprocess.run([sys.executable, "-m", "zslbench", *args], cwd=cwd, env=env, capture_output=True,
                          text=True, timeout=900)
    assert done.returncode == code, f"exit {done.returncode}: {' '.join(args)}\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}"
    return done


def standin_weights(path: Path) -> str:
    """A tiny ViT's state dict where ViT-B/16's would be; its sha256."""
    import timm
    import torch

    torch.manual_seed(7)
    model = timm.create_model("vit_tiny_patch16_224", pretrained=False, num_classes=1000, img_size=32, patch_size=8,
                              embed_dim=32, depth=2, num_heads=2)
    torch.save(model.state_dict(), path)
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_fetch_check_run_and_report_cub_in_the_paper_configuration(shared_data, tmp_path):
    root = build_full_cub_root(shared_data, tmp_path / "zsl")
    served, work = tmp_path / "served", tmp_path / "work"
    served.mkdir()
    work.mkdir()
    shutil.copy(shared_data / "CUB" / "CUB_attribute.pkl", served / "CUB_attribute.pkl")
    digest = standin_weights(served / "vit.pth")
    env = {**os.environ, "TORCH_HOME": str(tmp_path / "torch"), "HF_HOME": str(tmp_path / "hf"),
           "ZSLBENCH_OFFLINE": "1", "MLFLOW_TRACKING_URI": ""}

    with serve_folder(served) as base:
        zslbench(["data", "fetch", "w2v", "--dataset", "CUB", "--data-root", str(root), "--url", base], work, env)
        zslbench(["data", "fetch", "weights", "--model", "svip", "--url", f"{base}/vit.pth", "--sha256", digest],
                 work, env)
    assert (root / "CUB" / "CUB_attribute.pkl").is_file()
    assert (tmp_path / "torch" / "hub" / "checkpoints" / "jx_vit_base_p16_224-80ecf9dd.pth").is_file()
    check = zslbench(["data", "check", "--dataset", "CUB", "--data-root", str(root), "--no-decode"], work, env)
    assert "11,788 images" in check.stdout

    overrides = [arg for key, value in {**GEOMETRY, **SHORT}.items() for arg in ("--set", f"{key}={value}")]
    dry = zslbench(["run", "--dataset", "CUB", "--data-root", str(root), *overrides, "--dry-run"], work, env)
    assert "paper: timm vit_base_patch16_224.orig_in21k_ft_in1k" in dry.stdout and "fp32" in dry.stdout
    zslbench(["run", "--dataset", "CUB", "--data-root", str(root), *overrides, "--json", "run.json"], work, env)
    final = json.loads((work / "run.json").read_text())
    assert final["dataset"] == "CUB" and final["epochs"] == 2

    import mlflow

    run = mlflow.MlflowClient(f"sqlite:///{work / 'mlflow.db'}").get_run(final["run_id"])
    tags, params = run.data.tags, run.data.params
    assert tags["zslbench.weights"].startswith("paper: timm vit_base_patch16_224.orig_in21k_ft_in1k")
    assert tags["zslbench.random_init"] == "false" and tags["zslbench.precision"] == "fp32"
    assert tags["zslbench.word_vectors"] == "word2vec file CUB_attribute.pkl"
    assert params["model.pretrained"] == "paper" and params["train.amp"] == "off"

    default = zslbench(["table", "main", "--format", "markdown"], work, env).stdout
    assert "SVIP" in default and "†" not in default  # the default protocol selects nothing on the test set
    for mode in ("svip", "transzero", "apn"):
        table = zslbench(["table", "main", "--format", "markdown", "--mode", mode], work, env).stdout
        assert "SVIP" in table and "†" in table, (mode, table)
