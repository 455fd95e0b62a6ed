"""Plots: each kind writes a non-empty PNG and PDF, changes no run unless asked (--log-to-run), plots only
swept parameters and keeps benchmarks and containers apart."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from results_store import RunSpec, make_store
from zslbench.core.errors import UserError
from zslbench.results.plots import patch_size_of, plot_ausuc, plot_patches, plot_sensitivity


def artifacts(uri: str, run_id: str, path: str = "plots") -> list[str]:
    from mlflow import MlflowClient

    return [Path(f.path).name for f in MlflowClient(tracking_uri=uri).list_artifacts(run_id, path)]


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory):
    tmp = tmp_path_factory.mktemp("plots")
    from mlflow import MlflowClient

    runs = [RunSpec(seed=s, params={"model.logit_scale": scale}, metrics={"gzsl_h": 0.3 + scale / 100 + s / 50})
            for scale in (2.0, 5.0, 10.0) for s in range(2)]
    runs.append(RunSpec(model="vit", ablations="baseline", seed=0, metrics={"gamma": 0.5}))
    uri, ids = make_store(tmp, {"runs": runs})
    client = MlflowClient(tracking_uri=uri)
    parent = client.create_run(client.get_experiment_by_name("runs").experiment_id, run_name="sweep",
                               tags={"zslbench.role": "sweep", "optuna.study": "s"}).info.run_id
    client.log_param(parent, "sweep.params", "temperature")
    client.set_terminated(parent)
    for run_id in ids["runs"][:6]:  # the sweep's trials are children of one parent run
        client.set_tag(run_id, "mlflow.parentRunId", parent)
    return uri, ids["runs"], tmp, parent


def synth_run(uri: str, tmp: Path) -> str:
    """A finished SVIP run on the tiny synthetic benchmark, with kept super-patches and its resolved config."""
    from mlflow import MlflowClient

    from zslbench.config import resolve
    from zslbench.data.synth import generate_synth
    from zslbench.data.xlsa17 import load_split

    data_root = tmp / "data"
    generate_synth(data_root, "tiny", 0, workers=1)
    cfg = resolve("svip", "synth", preset="tiny", overrides=[f"data.root={data_root}"])
    split = load_split("synth-tiny", data_root)
    half = cfg.model.img_size // patch_size_of(cfg.model) // 2
    rng = np.random.default_rng(0)
    arrays = {}
    for tag in ("test_seen", "test_unseen"):
        labels = split.split_labels(tag)
        arrays[f"{tag}_labels"] = labels
        arrays[f"{tag}_scores"] = rng.normal(size=(len(labels), len(split.class_names))).astype(np.float32)
        arrays[f"{tag}_kept"] = rng.random((len(labels), half * half)) < 0.6
    client = MlflowClient(tracking_uri=uri)
    experiment = client.get_experiment_by_name("runs").experiment_id
    run_id = client.create_run(experiment, tags={"model": "svip", "dataset": "synth"}).info.run_id
    folder = tmp / "synth-run"
    folder.mkdir()
    np.savez_compressed(folder / "test_scores.npz", **arrays)
    (folder / "resolved.yaml").write_text(cfg.to_yaml())
    client.log_artifact(run_id, str(folder / "test_scores.npz"), "scores")
    client.log_artifact(run_id, str(folder / "resolved.yaml"))
    client.set_terminated(run_id)
    return run_id


def test_sensitivity_plot_png_and_pdf(store, tmp_path: Path) -> None:
    from zslbench.results.frames import load_runs

    uri = store[0]
    frame = load_runs("runs", uri)
    for suffix, magic in ((".png", b"\x89PNG"), (".pdf", b"%PDF")):
        out = plot_sensitivity("runs", "temperature", tmp_path / f"sens{suffix}", tracking_uri=uri, frame=frame)
        assert out.stat().st_size > 5000 and out.read_bytes()[:4] == magic
    assert artifacts(uri, store[3]) == []  # nothing written into the sweep's parent run unasked
    plot_sensitivity("runs", "temperature", tmp_path / "logged.png", tracking_uri=uri, frame=frame, log_to_run=True)
    assert "logged.png" in artifacts(uri, store[3])


def test_ausuc_plot_png_and_pdf_logged_only_when_asked(store, tmp_path: Path) -> None:
    from zslbench.results.frames import load_runs

    uri, ids, tmp, _ = store
    frame = load_runs("runs", uri)
    for suffix in (".png", ".pdf"):
        out = plot_ausuc("runs", ids[:2] + ids[-1:], tmp_path / f"curves{suffix}", tracking_uri=uri, frame=frame,
                         cache_dir=tmp / "cache")
        assert out.stat().st_size > 5000
        assert f"curves{suffix}" not in artifacts(uri, ids[0])
    plot_ausuc("runs", ids[-1:], tmp_path / "mine.png", tracking_uri=uri, frame=frame, cache_dir=tmp / "cache",
               log_to_run=True)
    assert "mine.png" in artifacts(uri, ids[-1])


def test_ausuc_default_curves_one_per_method_named_like_the_tables(store, tmp_path: Path) -> None:
    from zslbench.results.frames import load_runs
    from zslbench.results.plots import curve_runs
    from zslbench.results.selection import Selection, select_runs

    uri, ids, tmp, _ = store
    frame = load_runs("runs", uri)
    runs = select_runs(frame, Selection(), "curves")
    assert runs["run_id"].to_list() == [ids[-1]]  # the sweep's trials are not methods; its parent is no run
    assert [label for label, _ in curve_runs(runs)] == ["ViT (baseline)"]
    out = plot_ausuc("runs", [], tmp_path / "default.png", tracking_uri=uri, frame=frame, cache_dir=tmp / "cache")
    assert out.stat().st_size > 5000


def test_patches_plot_overlays_kept_superpatches(store, tmp_path: Path) -> None:
    uri, _, tmp, _ = store
    run_id = synth_run(uri, tmp)
    for suffix in (".png", ".pdf"):
        out = plot_patches(run_id, tmp_path / f"patches{suffix}", count=4, tracking_uri=uri, cache_dir=tmp / "cache")
        assert out.stat().st_size > 5000
    assert artifacts(uri, run_id) == []


def test_plot_errors_are_one_line(store, tmp_path: Path) -> None:
    uri, ids, tmp, _ = store
    with pytest.raises(UserError, match="use a .png or .pdf"):
        plot_ausuc("runs", [], tmp_path / "x.jpg", tracking_uri=uri)
    with pytest.raises(UserError, match="--run 0{32}: no finished run with that id"):
        plot_ausuc("runs", ["0" * 32], tmp_path / "x.png", tracking_uri=uri)
    with pytest.raises(UserError, match="no sweep of patch_number .* swept parameters only"):
        plot_sensitivity("runs", "patch_number", tmp_path / "x.png", tracking_uri=uri)
    with pytest.raises(UserError, match="stored no kept super-patches"):
        plot_patches(ids[0], tmp_path / "x.png", tracking_uri=uri, cache_dir=tmp / "cache")
