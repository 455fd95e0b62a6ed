"""``zslbench run --dataset CUB --data-root DIR`` on a CUB subset with stand-in images.

The split files are built from the real class-level CUB files (all 200 classes, 312 attributes,
real word vectors and attribute groups) restricted to a few images per class; each image is a small
JPEG written at its real relative path (``CUB_200_2011/images/<class>/<file>.jpg``). Skipped when
../shared/data is absent.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from tests.cub_layout import build_cub_root
from tests.test_run_e2e import zslbench


@pytest.fixture(scope="module")
def cub_root(shared_data, tmp_path_factory) -> Path:
    return build_cub_root(shared_data, tmp_path_factory.mktemp("zsl"))


def test_data_check_finds_every_image_but_tells_a_subset_from_the_published_split(cub_root, tmp_path):
    proc = zslbench(["data", "check", "--dataset", "CUB", "--data-root", str(cub_root)], tmp_path, check=False)
    assert proc.returncode == 1
    assert "images: found 430, expected 11788" in proc.stdout and "missing" not in proc.stdout


def test_run_trains_and_evaluates_on_a_cub_directory(cub_root, tmp_path):
    import mlflow

    zslbench(["run", "--dataset", "CUB", "--data-root", str(cub_root), "--preset", "tiny", "--set", "train.threads=1",
              "--json", "out.json"], tmp_path)
    result = json.loads((tmp_path / "out.json").read_text())
    assert result["dataset"] == "CUB" and result["model"] == "svip"
    for key in ("zsl_t1", "gzsl_u", "gzsl_s", "gzsl_h", "ausuc"):
        assert 0.0 <= result[key] <= 1.0
    run_dir = tmp_path / "runs" / result["run_id"]
    with np.load(run_dir / "scores" / f"epoch{result['selected_epoch']:03d}.npz") as scores:
        assert scores["test_unseen_scores"].shape == (100, 200)  # 50 unseen classes × 2 images, all 200 classes
        assert set(np.unique(scores["test_unseen_labels"])) <= set(range(200))
    client = mlflow.MlflowClient(tracking_uri=f"sqlite:///{tmp_path / 'mlflow.db'}")
    run = client.get_run(result["run_id"])
    assert run.info.status == "FINISHED" and run.data.params["data.dataset"] == "CUB"
