"""``zslbench ablate``: the paper's ablation rows under one parent run, finished cells reused."""

from __future__ import annotations

import contextlib
import io
import os
from pathlib import Path

import pytest

from zslbench.ablations import paper_rows
from zslbench.ablations.grid import FULL, grid_rows
from zslbench.config import config_hash
from zslbench.config import resolve
from zslbench.core.errors import UserError

TINY = ["--preset", "tiny", "--seed", "0", "--set", "train.epochs=2", "--set", "train.threads=1"]


def zslbench(args: list[str], cwd: Path) -> tuple[int, str, str]:
    """Run the CLI in this process inside ``cwd``; returns (exit code, stdout, stderr)."""
    from zslbench.cli import main

    out, err = io.StringIO(), io.StringIO()
    previous = os.getcwd()
    env = {"ZSLBENCH_DATA": str(cwd.parent / "data"), "NO_COLOR": "1", "COLUMNS": "250"}
    saved = {k: os.environ.get(k) for k in [*env, "MLFLOW_TRACKING_URI"]}
    os.environ.update(env)
    os.environ.pop("MLFLOW_TRACKING_URI", None)
    os.chdir(cwd)
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


def runs(cwd: Path) -> list:
    import mlflow

    client = mlflow.MlflowClient(tracking_uri=f"sqlite:///{cwd / 'mlflow.db'}")
    experiment = client.get_experiment_by_name("zslbench")
    return client.search_runs([experiment.experiment_id]) if experiment else []


def table_rows(out: str) -> list[str]:
    return [line.split("│")[1].strip() for line in out.splitlines() if line.startswith("│")]


def test_rows_are_the_papers_set_then_the_full_model():
    assert grid_rows([], "svip") == [*paper_rows("svip"), FULL]
    assert grid_rows(["full", "no_js", "no_js"], "svip") == ["no_js", FULL]
    with pytest.raises(UserError, match="unknown ablation 'no_jss'.*Did you mean 'no_js'"):
        grid_rows(["no_jss"], "svip")


def test_config_hash_ignores_seed_tracking_and_data_location_only():
    base = resolve(preset="tiny")
    assert config_hash(base) == config_hash(resolve(preset="tiny", overrides=[
        "train.seed=3", "track.experiment=other", "track.uri=sqlite:///x.db", "data.root=/elsewhere"]))
    assert config_hash(base) != config_hash(resolve(preset="tiny", overrides=["model.consistency=none"]))


def test_unknown_only_row_exits_2(tmp_path):
    code, _, err = zslbench(["ablate", *TINY, "--only", "no_js,bogus"], tmp_path)
    assert code == 2 and "unknown ablation 'bogus'" in err and "no_replacement" in err


@pytest.fixture(scope="module")
def workdir(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("ablate")
    (root / "work").mkdir()
    return root / "work"


@pytest.fixture(scope="module")
def only_no_js(workdir) -> str:
    code, out, err = zslbench(["ablate", *TINY, "--only", "no_js"], workdir)
    assert code == 0, out + err
    return out


def test_one_parent_run_with_a_child_per_cell_and_the_table(only_no_js, workdir):
    all_runs = runs(workdir)
    parents = [r for r in all_runs if r.data.tags.get("zslbench.role") == "ablation-grid"]
    assert len(parents) == 1 and parents[0].info.status == "FINISHED"
    children = [r for r in all_runs if r.data.tags.get("mlflow.parentRunId") == parents[0].info.run_id]
    assert sorted(r.data.tags["zslbench.ablation_row"] for r in children) == ["full", "no_js"]
    assert {r.data.tags["ablations"] for r in children} == {"none", "no_js"}
    assert all(r.info.status == "FINISHED" and len(r.data.tags["zslbench.config_hash"]) == 64 for r in children)
    assert table_rows(only_no_js) == ["no_js", "full model"]
    full = next(r for r in children if r.data.tags["zslbench.ablation_row"] == "full")
    assert f"{100 * full.data.metrics['final_gzsl_h']:.1f} ± 0.0" in only_no_js
    assert "Δ H" in only_no_js and parents[0].info.run_id in only_no_js


def test_rerun_reuses_finished_cells_and_creates_no_run(only_no_js, workdir):
    before = {r.info.run_id for r in runs(workdir)}
    code, out, err = zslbench(["ablate", *TINY, "--only", "no_js"], workdir)
    assert code == 0, out + err
    assert {r.info.run_id for r in runs(workdir)} == before
    assert "2 already finished, 0 to run" in out and "2 of 2 cells reused" in out
    assert table_rows(out) == table_rows(only_no_js)


def test_full_paper_set_reuses_the_cells_it_shares(only_no_js, workdir):
    before = {r.info.run_id for r in runs(workdir)}
    code, out, err = zslbench(["ablate", *TINY], workdir)
    assert code == 0, out + err
    assert "2 already finished, 4 to run" in out
    assert table_rows(out) == [*paper_rows("svip"), "full model"]
    new = [r for r in runs(workdir) if r.info.run_id not in before]
    parent = [r for r in new if r.data.tags.get("zslbench.role") == "ablation-grid"]
    assert len(parent) == 1 and len(new) == 5  # the new grid's parent + 4 new cells
    rows = {r.data.tags["zslbench.ablation_row"]: r for r in new if r not in parent}
    assert set(rows) == {"baseline", "no_patch_selection", "no_replacement", "no_word_init"}
    assert rows["baseline"].data.tags["model"] == "vit"
    assert all(r.data.tags["mlflow.parentRunId"] == parent[0].info.run_id for r in rows.values())
