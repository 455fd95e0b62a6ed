"""Adding a model is adding a folder: a toy model written as one new package under ``zslbench/baselines/``
(in a copy of the source tree) runs through ``run``, ``ablate`` and ``table`` with no edit anywhere else."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "zslbench"

TOY_INIT = '''"""A toy model: pooled colours → one linear layer → attributes."""

from dataclasses import dataclass

from zslbench.catalogue import Ablation, ModelEntry, register_ablation, register_model
from zslbench.config import ModelConfig


@dataclass
class ToyConfig(ModelConfig):
    name: str = "toy"
    img_size: int = 32
    bias: bool = True


def load_model():
    from zslbench.baselines.toy.model import Toy

    return Toy


register_model(ModelEntry(
    name="toy", config=ToyConfig, load=load_model, display_name="ToyNet", help="a toy model for the plugin test",
    presets={"synth": {"train.warmup_epochs": 0, "train.lr": 0.05, "train.batch_size": 32}},
    preset_patches={"tiny": {"train.warmup_epochs": 0, "train.threads": 1}}, table_rank=5))
register_ablation(Ablation("toy_no_bias", {"model.bias": False}, "the toy model without its bias",
                           models=("toy",), label="w/o bias", paper_row=0))
'''

TOY_MODEL = '''import torch
import torch.nn.functional as F
from torch import nn


class Toy(nn.Module):
    def __init__(self, cfg, info):
        super().__init__()
        self.head = nn.Linear(3 * 16, info.num_attributes, bias=cfg.bias)
        seen = torch.as_tensor(info.class_attributes[info.seen_classes], dtype=torch.float32)
        self.register_buffer("seen_attributes", seen, persistent=False)

    def forward(self, batch):
        return {"attributes": self.head(F.adaptive_avg_pool2d(batch["image"], 4).flatten(1))}

    def losses(self, output, batch):
        return {"ce": F.cross_entropy(5 * output["attributes"] @ self.seen_attributes.t(), batch["seen_label"])}

    def class_scores(self, output, class_attributes):
        return 5 * output["attributes"].float() @ class_attributes.float().t()

    def param_groups(self, phase):
        return [{"params": list(self.parameters()), "name": "all"}]
'''


@pytest.fixture(scope="module")
def tree(tmp_path_factory) -> Path:
    """A copy of the source tree with one new folder: zslbench/baselines/toy/."""
    root = tmp_path_factory.mktemp("plugin")
    shutil.copytree(PACKAGE, root / "zslbench", ignore=shutil.ignore_patterns("__pycache__"))
    toy = root / "zslbench" / "baselines" / "toy"
    toy.mkdir()
    (toy / "__init__.py").write_text(TOY_INIT)
    (toy / "model.py").write_text(TOY_MODEL)
    (root / "work").mkdir()
    return root


def zslbench(tree: Path, *args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(tree), "ZSLBENCH_DATA": str(tree / "data"), "MLFLOW_TRACKING_URI": ""}
    done = subprocess.run([sys.executable, "-m", "zslbench", *args], capture_output=True, text=True, env=env,
                          cwd=tree / "work", timeout=600)
    assert done.returncode == 0, done.stderr[-2000:]
    return done


@pytest.mark.slow
def test_a_new_model_package_runs_through_run_ablate_and_table(tree):
    listed = zslbench(tree, "models").stdout
    assert "toy" in listed and "a toy model for the plugin test" in listed

    zslbench(tree, "run", "--model", "toy", "--preset", "tiny", "--json", "toy.json")
    final = json.loads((tree / "work" / "toy.json").read_text())
    assert final["model"] == "toy" and 0.0 <= final["gzsl_h"] <= 1.0

    ablate = zslbench(tree, "ablate", "--model", "toy", "--preset", "tiny").stdout
    assert "toy_no_bias" in ablate and "full model" in ablate

    main = zslbench(tree, "table", "main", "--format", "markdown").stdout
    assert "ToyNet" in main  # the display name its catalogue entry declares
    ablation = zslbench(tree, "table", "ablation", "--format", "markdown").stdout
    assert "w/o bias" in ablation and "Full ToyNet" in ablation
    assert ablation.index("w/o bias") < ablation.index("Full ToyNet")  # the paper's order, full model last
