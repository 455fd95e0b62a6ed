"""Search spaces and ``zslbench sweep`` end to end on the tiny preset (sqlite storage, one worker)."""

from __future__ import annotations

import contextlib
import io
import os
from pathlib import Path

import pytest

from zslbench.config import resolve
from zslbench.core.errors import UserError
from zslbench.sweeps import SPACES, params_for
from zslbench.sweeps.coordination import TEST_METRICS_ATTR
from zslbench.sweeps.storage import parse_storage

TINY = ["--preset", "tiny", "--set", "train.epochs=2", "--set", "train.threads=1"]
SPACE_NAMES = ["all", "js_weight", "patch_cls_weight", "patch_number", "temperature"]


def zslbench(args: list[str], cwd: Path) -> tuple[int, str, str]:
    """Run the CLI in this process inside ``cwd``; returns (exit code, stdout, stderr)."""
    from zslbench.cli import main

    out, err = io.StringIO(), io.StringIO()
    previous = os.getcwd()
    os.chdir(cwd)
    env = {"ZSLBENCH_DATA": str(cwd.parent / "data"), "NO_COLOR": "1", "COLUMNS": "250"}
    saved = {k: os.environ.get(k) for k in [*env, "MLFLOW_TRACKING_URI", "ZSLBENCH_OPTUNA_STORAGE"]}
    os.environ.update(env)
    os.environ.pop("MLFLOW_TRACKING_URI", None)
    os.environ.pop("ZSLBENCH_OPTUNA_STORAGE", None)
    try:
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            try:
                main(args)
                code = 0
            except SystemExit as exc:
                code = exc.code if isinstance(exc.code, int) else 1
    finally:
        os.chdir(previous)
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
    return code, out.getvalue(), err.getvalue()


def load(cwd: Path, name: str):
    import optuna

    return optuna.load_study(study_name=name, storage=f"sqlite:///{cwd / 'optuna.db'}")


def mlflow_client(cwd: Path):
    import mlflow

    return mlflow.MlflowClient(tracking_uri=f"sqlite:///{cwd / 'mlflow.db'}")


# --------------------------------------------------------------------------- spaces
def test_registry_lists_the_paper_spaces():
    assert SPACES.names() == SPACE_NAMES


@pytest.mark.parametrize(("preset", "dataset", "super_patches"), [("tiny", "synth", 4), (None, "synth", 16),
                                                                  (None, "CUB", 49)])
def test_patch_number_is_bounded_by_the_patch_grid(preset, dataset, super_patches):
    (param,) = params_for(["patch_number"], resolve(dataset=dataset, preset=preset))
    assert (param.key, param.low, param.high, param.integer) == ("model.keep", 1, super_patches, True)
    assert all(1 <= k <= super_patches for k in param.grid) and list(param.grid) == sorted(set(param.grid))


@pytest.mark.parametrize(("dataset", "keep", "lambda2"), [("CUB", 40, 3.0), ("AWA2", 45, 4.0), ("SUN", 45, 3.0)])
def test_paper_grids_contain_the_papers_best(dataset, keep, lambda2):
    params = {p.name: p for p in params_for(["all"], resolve(dataset=dataset))}
    assert params["patch_number"].paper_best == keep and keep in params["patch_number"].grid
    assert params["js_weight"].paper_best == 1.0 and params["temperature"].paper_best == 5.0
    assert params["patch_cls_weight"].paper_best == lambda2
    for param in params.values():
        assert param.paper_best in param.grid, param.name
        assert param.low <= min(param.grid) and max(param.grid) <= param.high, param.name


def test_weights_and_temperature_are_log_scale_and_map_to_their_keys():
    params = {p.name: p for p in params_for(["all"], resolve())}
    assert [p.name for p in params.values()] == ["patch_number", "js_weight", "patch_cls_weight", "temperature"]
    assert {n: (p.key, p.log) for n, p in params.items() if n != "patch_number"} == {
        "js_weight": ("model.js_weight", True), "patch_cls_weight": ("model.patch_cls_weight", True),
        "temperature": ("model.logit_scale", True)}
    import optuna

    from zslbench.sweeps.worker import suggest

    trial = optuna.create_study().ask()
    suggest(trial, params["temperature"]), suggest(trial, params["patch_number"])
    dist = trial.distributions["temperature"]
    assert dist.log and (dist.low, dist.high) == (0.5, 50.0)
    assert trial.distributions["patch_number"].__class__.__name__ == "IntDistribution"
    grid_trial = optuna.create_study().ask()
    suggest(grid_trial, params["temperature"], grid=True)
    assert grid_trial.distributions["temperature"].choices == (1.0, 2.0, 5.0, 10.0, 20.0)


def test_svip_spaces_refuse_a_model_without_them():
    with pytest.raises(UserError, match="sweeps an SVIP hyperparameter"):
        params_for(["js_weight"], resolve(model="vit"))


def test_storage_urls_are_validated_with_credentials_masked():
    assert parse_storage("postgresql+psycopg://u:pw@127.0.0.1:5432/db").kind == "rdb"
    assert parse_storage("journal:/tmp/x.log").location == "/tmp/x.log"
    for bad, hint in [("postgresql+psycopg//bob:hunter2@db/optuna", "not a storage URL"),
                      ("redis://bob:hunter2@db/0", "not a storage URL"),
                      ("sqlite://optuna.db", "three slashes"),
                      ("postgresql+psycopg://bob:hunter2@", "names no host")]:
        with pytest.raises(UserError, match=hint) as info:
            parse_storage(bad)
        assert "hunter2" not in str(info.value)


# --------------------------------------------------------------------------- CLI errors (no training)
def test_unknown_space_exits_2_listing_the_valid_ones(tmp_path):
    code, _, err = zslbench(["sweep", "temprature", *TINY], tmp_path)
    assert code == 2
    assert "unknown search space 'temprature'" in err and "all, js_weight, patch_cls_weight, patch_number, " \
        "temperature" in err and "Did you mean 'temperature'" in err


def test_malformed_storage_exits_2_with_one_masked_line(tmp_path):
    code, _, err = zslbench(["sweep", "temperature", "--storage", "postgresql+psycopg//bob:hunter2@db/optuna",
                             *TINY], tmp_path)
    assert code == 2
    assert err.count("\n") == 1 and err.startswith("error: --storage")
    assert "bob:***@db" in err and "hunter2" not in err


def test_unreachable_postgres_storage_exits_2(tmp_path):
    code, _, err = zslbench(["sweep", "temperature", "--storage",
                             "postgresql+psycopg://bob:hunter2@127.0.0.1:9/optuna", *TINY], tmp_path)
    assert code == 2 and "cannot open the Optuna storage" in err and "hunter2" not in err


# --------------------------------------------------------------------------- end to end (tiny preset)
@pytest.fixture(scope="module")
def sweep_dir(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("sweep")
    (root / "work").mkdir()
    return root / "work"


@pytest.fixture(scope="module")
def two_trials(sweep_dir):
    code, out, err = zslbench(["sweep", "temperature", "--trials", "2", *TINY], sweep_dir)
    assert code == 0, out + err
    return out


def test_two_trial_study_each_with_a_child_run_under_the_parent(two_trials, sweep_dir):
    from optuna.trial import TrialState

    study = load(sweep_dir, "svip-synth-temperature-tiny")
    trials = study.get_trials()
    assert [t.state for t in trials] == [TrialState.COMPLETE] * 2
    parent = study.user_attrs["mlflow_parent_run_id"]
    client = mlflow_client(sweep_dir)
    assert client.get_run(parent).data.tags["zslbench.role"] == "sweep"
    for trial in trials:
        run = client.get_run(trial.user_attrs["mlflow_run_id"])
        assert run.info.status == "FINISHED"
        assert run.data.tags["mlflow.parentRunId"] == parent
        assert run.data.tags["optuna.trial_number"] == str(trial.number)
        assert run.data.tags["optuna.study"] == study.study_name
        assert float(run.data.params["model.logit_scale"]) == pytest.approx(trial.params["temperature"])
        # the objective is the validation protocol's H (no test image); the test metrics are only reported
        assert run.data.tags["zslbench.sweep_objective"] == "val_gzsl_h"
        assert run.data.metrics["final_val_gzsl_h"] == pytest.approx(trial.value)
        assert run.data.metrics["final_gzsl_h"] == pytest.approx(trial.user_attrs[TEST_METRICS_ATTR]["gzsl_h"])
        assert trial.value != pytest.approx(run.data.metrics["final_gzsl_h"])
        assert len(trial.intermediate_values) == 2  # the pruner saw the validation epochs
    assert client.get_run(parent).data.metrics["best_val_gzsl_h"] == pytest.approx(study.best_value)
    assert "best trial by validation H" in two_trials and "test (reported, not selected on): T1" in two_trials


def test_rerun_with_more_trials_adds_exactly_the_missing_ones(two_trials, sweep_dir):
    from optuna.trial import TrialState

    before = load(sweep_dir, "svip-synth-temperature-tiny").get_trials()
    code, out, err = zslbench(["sweep", "temperature", "--trials", "3", *TINY], sweep_dir)
    assert code == 0, out + err
    study = load(sweep_dir, "svip-synth-temperature-tiny")
    trials = study.get_trials()
    assert [t.state for t in trials] == [TrialState.COMPLETE] * 3
    assert [(t.number, t.value) for t in trials[:2]] == [(t.number, t.value) for t in before]
    new_run = mlflow_client(sweep_dir).get_run(trials[2].user_attrs["mlflow_run_id"])
    assert new_run.data.tags["mlflow.parentRunId"] == study.user_attrs["mlflow_parent_run_id"]
    code, out, _ = zslbench(["sweep", "temperature", "--trials", "3", *TINY], sweep_dir)  # already done
    assert code == 0 and len(load(sweep_dir, "svip-synth-temperature-tiny").get_trials()) == 3


def test_status_prints_the_trials_and_best_value(two_trials, sweep_dir):
    code, out, _ = zslbench(["sweep", "--status", "--study", "svip-synth-temperature-tiny"], sweep_dir)
    assert code == 0
    study = load(sweep_dir, "svip-synth-temperature-tiny")
    assert out.count("COMPLETE") == len(study.get_trials())
    assert all(t.user_attrs["mlflow_run_id"] in out for t in study.get_trials())
    best = study.best_trial
    assert f"best trial by validation H: {best.number}" in out
    assert f"validation H {100 * best.value:.1f}; test (reported, not selected on): T1" in out
    assert f"H {100 * best.user_attrs[TEST_METRICS_ATTR]['gzsl_h']:.1f}" in out
    assert "temperature = " in out and "(model.logit_scale)" in out


def test_select_on_test_is_explicit_and_marked(tmp_path):
    (tmp_path / "work").mkdir()
    code, out, err = zslbench(["sweep", "temperature", "--trials", "1", "--select-on", "test", *TINY],
                              tmp_path / "work")
    assert code == 0, out + err
    (trial,) = load(tmp_path / "work", "svip-synth-temperature-tiny").get_trials()
    run = mlflow_client(tmp_path / "work").get_run(trial.user_attrs["mlflow_run_id"])
    assert run.data.metrics["final_gzsl_h"] == pytest.approx(trial.value)
    assert "final_val_gzsl_h" not in run.data.metrics  # no validation protocol was trained
    assert "best trial by test H†" in out and "† chosen on the test set" in out
    parent = mlflow_client(tmp_path / "work").get_run(load(tmp_path / "work", "svip-synth-temperature-tiny")
                                                      .user_attrs["mlflow_parent_run_id"])
    assert parent.data.tags["zslbench.test_selected"] == "true"


def test_a_dataset_without_validation_splits_fails_before_any_study_or_run(tmp_path, monkeypatch):
    import types

    import zslbench.engine.run_data as run_data

    split = types.SimpleNamespace(has_split=lambda name: name not in ("train", "val"))
    monkeypatch.setattr(run_data, "load_run_data", lambda cfg, console=None: types.SimpleNamespace(split=split))
    (tmp_path / "work").mkdir()
    code, _, err = zslbench(["sweep", "temperature", "--trials", "1", *TINY], tmp_path / "work")
    assert code == 2 and "needs train_loc and val_loc" in err and "--select-on test" in err
    assert not (tmp_path / "work" / "optuna.db").exists() and not (tmp_path / "work" / "mlflow.db").exists()


def test_a_different_sweep_cannot_continue_the_study(two_trials, sweep_dir):
    code, _, err = zslbench(["sweep", "temperature", "--trials", "3", *TINY, "--set", "train.lr=0.01"], sweep_dir)
    assert code == 2 and "was started by a different sweep (config_hash differ)" in err


def test_grid_never_repeats_a_point_across_reruns(sweep_dir):
    from optuna.trial import TrialState

    for total in (2, 3):
        code, out, err = zslbench(["sweep", "patch_number", "--grid", "--trials", str(total), *TINY], sweep_dir)
        assert code == 0, out + err
    trials = load(sweep_dir, "svip-synth-patch_number-grid-tiny").get_trials()
    assert [t.state for t in trials] == [TrialState.COMPLETE] * 3
    keeps = [t.params["patch_number"] for t in trials]
    assert len(set(keeps)) == 3 and set(keeps) <= {1, 2, 3, 4}
    client = mlflow_client(sweep_dir)
    assert [int(client.get_run(t.user_attrs["mlflow_run_id"]).data.params["model.keep"]) for t in trials] == keeps


def test_a_pruned_trial_is_pruned_in_optuna_and_killed_in_mlflow(tmp_path, monkeypatch):
    import optuna
    from optuna.trial import TrialState

    import zslbench.sweeps.worker as worker_module

    # Every reported value of a metric in [0, 1] is below 2: the first epoch report prunes.
    monkeypatch.setattr(worker_module, "_pruner", lambda name, epochs: optuna.pruners.ThresholdPruner(lower=2.0))
    (tmp_path / "work").mkdir()
    # An absolute URI: MLflow caches one store per URI string, and other tests of this process used the relative one.
    tracking = f"sqlite:///{tmp_path / 'work' / 'mlflow.db'}"
    code, out, err = zslbench(["sweep", "temperature", "--trials", "1", *TINY, "--tracking-uri", tracking],
                              tmp_path / "work")
    assert code == 0, out + err
    (trial,) = load(tmp_path / "work", "svip-synth-temperature-tiny").get_trials()
    assert trial.state == TrialState.PRUNED and list(trial.intermediate_values) == [0]
    run = mlflow_client(tmp_path / "work").get_run(trial.user_attrs["mlflow_run_id"])
    assert run.info.status == "KILLED" and "pruned by optuna" in run.data.tags["stopped"]
    assert "trial 0: PRUNED" in out
