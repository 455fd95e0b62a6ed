"""``zslbench run --dataset CUB --data-root DIR`` on a CUB subset with stand-in images.

The split files are built from the real class-level CUB files (all 200 classes, 312 attributes,
real word vectors and attribute groups) restricted to a few images per class; each image is a small
JPEG written at its real relative path (``CUB_200_2011/images/<class>/<file>.jpg``). Skipped when
../shared/data is absent.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from tests.test_run_e2e import zslbench


def subset(indices: np.ndarray, labels: np.ndarray, per_class: int) -> np.ndarray:
    picked = [indices[labels[indices] == c][:per_class] for c in np.unique(labels[indices])]
    return np.concatenate(picked)


@pytest.fixture(scope="module")
def cub_root(shared_data, tmp_path_factory) -> Path:
    from PIL import Image

    from zslbench.data.xlsa17 import load_split, write_split_files

    real = load_split("CUB", shared_data)
    labels = np.asarray(real.labels)
    chosen = {"trainval": subset(real.split("trainval"), labels, 2),
              "test_seen": subset(real.split("test_seen"), labels, 1)[:30],
              "test_unseen": subset(real.split("test_unseen"), labels, 2)}
    order = np.concatenate(list(chosen.values()))
    position = {int(old): new for new, old in enumerate(order)}
    root = tmp_path_factory.mktemp("zsl")
    directory = root / "CUB"
    write_split_files(directory, real.original_att, real.class_names, labels[order],
                      [real.image_files[i] for i in order],
                      {name: np.array([position[int(i)] for i in idx]) for name, idx in chosen.items()},
                      attribute_names=real.attribute_names, attribute_groups=real.attribute_groups)
    for name in ("attribute_w2v.npy", "attribute_groups.json"):
        shutil.copy(shared_data / "CUB" / name, directory / name)
    rng = np.random.default_rng(0)
    for i in order:
        path = directory / real.image_files[i]
        path.parent.mkdir(parents=True, exist_ok=True)
        shade = rng.integers(0, 256, size=3)  # one colour per image plus noise: decodable, CUB-like JPEG
        pixels = np.clip(shade + rng.normal(0, 25, (48, 64, 3)), 0, 255).astype(np.uint8)
        Image.fromarray(pixels).save(path, format="JPEG", quality=80)
    return root


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
