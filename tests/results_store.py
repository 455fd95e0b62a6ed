"""Test helper: MLflow runs written directly into a temporary sqlite store, shaped like real
zslbench runs (tags, flattened config params, ``final_*`` metrics, a scores artifact) — no training."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from zslbench.core.version import PROTOCOL_VERSION

N_SEEN, N_UNSEEN = 6, 4
N_CLASSES = N_SEEN + N_UNSEEN
SEEN_CLASSES = np.array([0, 2, 4, 6, 8, 9])
UNSEEN_CLASSES = np.array([1, 3, 5, 7])


@dataclass
class RunSpec:
    model: str = "svip"
    dataset: str = "synth"
    ablations: str = "none"
    seed: int = 0
    selection: str = "final"
    gamma_policy: str = "none"
    gamma_space: str = "logit"
    protocol: str = PROTOCOL_VERSION
    params: dict[str, Any] = field(default_factory=dict)
    metrics: dict[str, float] = field(default_factory=dict)
    status: str = "FINISHED"
    scores: bool = True
    kept: bool = False
    val_gamma: float | None = None
    parent: str | None = None
    fingerprint: str = "f" * 64
    decisions: bytes | None = None  # the bytes of a scores/epochs.npz (per-epoch decisions)
    mode: str = "standard"
    role: str = ""  # "ablation-grid" / "sweep": a parent run (container) with no results of its own
    tags: dict[str, str] = field(default_factory=dict)
    start_time: int | None = None  # ms since the epoch (runs are otherwise started in list order)


def score_arrays(seed: int, kept: bool = False, superpatches: int = 4) -> dict[str, np.ndarray]:
    """Random but informative scores: the true class gets a bonus; seen classes are favoured (bias)."""
    rng = np.random.default_rng(seed)
    arrays: dict[str, np.ndarray] = {}
    for tag, classes, n in (("test_seen", SEEN_CLASSES, 30), ("test_unseen", UNSEEN_CLASSES, 20)):
        labels = rng.choice(classes, size=n)
        labels[: len(classes)] = classes  # every class present
        scores = rng.normal(size=(n, N_CLASSES))
        scores[np.arange(n), labels] += 1.5
        scores[:, SEEN_CLASSES] += 1.0  # the usual seen-class bias that calibration removes
        arrays[f"{tag}_scores"] = scores.astype(np.float32)
        arrays[f"{tag}_labels"] = labels.astype(np.int64)
        if kept:
            arrays[f"{tag}_kept"] = rng.random((n, superpatches)) < 0.5
    return arrays


def make_run(client: Any, experiment_id: str, spec: RunSpec, tmp: Path, earlier: list[str] | None = None) -> str:
    """Create one run as the runner (or, with ``role``, ablate/sweep for a parent) would leave it; returns its id.

    ``parent="@i"`` names the ``i``-th run created before it in the same experiment (``earlier``)."""
    from mlflow.entities import Metric, Param

    parent = spec.parent
    if parent and parent.startswith("@"):
        parent = (earlier or [])[int(parent[1:])]
    if spec.role in ("ablation-grid", "sweep"):
        tags = {"zslbench.role": spec.role, "model": spec.model, "dataset": spec.dataset, **spec.tags}
        run = client.create_run(experiment_id, tags=tags, run_name=f"{spec.role}-{spec.model}",
                                start_time=spec.start_time)
        client.log_batch(run.info.run_id, params=[Param(k, str(v)) for k, v in spec.params.items()])
        client.set_terminated(run.info.run_id, status=spec.status)
        return run.info.run_id

    tags = {"model": spec.model, "dataset": spec.dataset, "ablations": spec.ablations, "seed": str(spec.seed),
            "selection": spec.selection, "gamma_policy": spec.gamma_policy, "gamma_space": spec.gamma_space,
            "zslbench.protocol": spec.protocol, "data.fingerprint": spec.fingerprint, "git.commit": "abc1234def",
            "git.dirty": "false", "eval_mode": spec.mode, **({"zslbench.role": spec.role} if spec.role else {}),
            **spec.tags}
    if parent:
        tags["mlflow.parentRunId"] = parent
    run = client.create_run(experiment_id, tags=tags, run_name=f"{spec.model}-{spec.dataset}-s{spec.seed}",
                            start_time=spec.start_time)
    run_id = run.info.run_id
    params = {"model.name": spec.model, "model.keep": 12, "model.logit_scale": 5.0, "model.js_weight": 1.0,
              "model.patch_size": 8, "model.img_size": 32, "train.seed": spec.seed, "train.epochs": 2,
              "eval.gamma_policy": spec.gamma_policy, "eval.selection": spec.selection, "track.uri": "x",
              **spec.params}
    final = {"zsl_t1": 0.5, "gzsl_u": 0.3, "gzsl_s": 0.6, "gzsl_h": 0.4, "ausuc": 0.25, "gamma": 0.0,
             "selected_epoch": 1.0, **spec.metrics}
    if spec.val_gamma is not None:
        final["val_gamma"] = spec.val_gamma
    client.log_batch(run_id, params=[Param(k, str(v)) for k, v in params.items()],
                     metrics=[Metric(f"final_{k}", float(v), 0, 2) for k, v in final.items()])
    if spec.scores:
        path = tmp / f"{run_id}.npz"
        np.savez_compressed(path, **score_arrays(spec.seed, spec.kept))
        named = tmp / run_id / "test_scores.npz"
        named.parent.mkdir(parents=True, exist_ok=True)
        path.rename(named)
        client.log_artifact(run_id, str(named), "scores")
    if spec.decisions is not None:
        named = tmp / run_id / "epochs.npz"
        named.parent.mkdir(parents=True, exist_ok=True)
        named.write_bytes(spec.decisions)
        client.log_artifact(run_id, str(named), "scores")
    client.log_text(run_id, json.dumps({**final, "model": spec.model, "seed": spec.seed}), "final.json")
    client.set_terminated(run_id, status=spec.status)
    return run_id


def _template_database() -> Path:
    """An empty, migrated MLflow sqlite database, built once per MLflow version and machine.

    Creating the schema takes seconds (dozens of migrations); copying a file does not.
    """
    import importlib.metadata
    import os
    import shutil
    import tempfile

    version = importlib.metadata.version("mlflow")
    template = Path(tempfile.gettempdir()) / f"zslbench-test-mlflow-{version}-{os.getuid()}.db"
    if not template.is_file():
        from mlflow import MlflowClient

        with tempfile.TemporaryDirectory() as tmp:
            MlflowClient(tracking_uri=f"sqlite:///{tmp}/template.db").search_experiments()
            partial = template.with_suffix(f".{os.getpid()}.tmp")
            shutil.copyfile(Path(tmp) / "template.db", partial)
            os.replace(partial, template)  # atomic: parallel test processes never see half a file
    return template


def make_store(tmp: Path, experiments: dict[str, list[RunSpec]]) -> tuple[str, dict[str, list[str]]]:
    """A sqlite store with the given experiments; returns (tracking uri, run ids per experiment)."""
    import shutil

    from mlflow import MlflowClient

    shutil.copyfile(_template_database(), tmp / "mlflow.db")
    uri = f"sqlite:///{tmp}/mlflow.db"
    client = MlflowClient(tracking_uri=uri)
    ids: dict[str, list[str]] = {}
    for name, specs in experiments.items():
        experiment_id = client.create_experiment(name, artifact_location=(tmp / "artifacts" / name).as_uri())
        ids[name] = []
        for spec in specs:
            ids[name].append(make_run(client, experiment_id, spec, tmp, ids[name]))
    return uri, ids
