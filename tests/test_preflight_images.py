"""A run whose images are missing fails before anything is created: one line, exit 2, no MLflow store or run,
no run folder — for `run`, `ablate` (no parent run) and `sweep` (no study)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from cub_layout import build_cub_root


@pytest.fixture(scope="module")
def cub_missing(shared_data, tmp_path_factory) -> Path:
    root = build_cub_root(shared_data, tmp_path_factory.mktemp("missing") / "data")
    images = sorted((root / "CUB").rglob("*.jpg"))
    for path in images[:3]:
        path.unlink()
    return root


@pytest.mark.parametrize("command", [["run"], ["ablate", "--only", "no_js"], ["sweep", "temperature", "--trials", "1"]])
def test_missing_images_fail_before_any_run_is_created(cub_missing, tmp_path, command) -> None:
    env = {**os.environ, "NO_COLOR": "1"}
    env.pop("MLFLOW_TRACKING_URI", None)
    done = subprocess.run([sys.executable, "-m", "zslbench.cli", *command, "--dataset", "CUB", "--data-root",
                           str(cub_missing), "--preset", "tiny", "--set", "model.pretrained=none"],
                          cwd=tmp_path, env=env, capture_output=True, text=True, timeout=600)
    assert done.returncode == 2, done.stdout + done.stderr
    assert done.stderr.count("\n") == 1 and "Traceback" not in done.stderr
    assert "3 of 430 images of CUB are missing" in done.stderr and "zslbench data fetch CUB" in done.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == []  # no mlflow.db, mlruns, runs/ or optuna.db
