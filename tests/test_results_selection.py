"""Which runs a table uses: containers (ablation grids, sweeps) are never rows, sweep trials never enter the main
or ablation table, Δ is against the same grid's full model, sensitivity only for swept parameters, and
--parent / --run / --tag choose explicitly."""

from __future__ import annotations

import pytest

from results_store import RunSpec, make_store
from zslbench.core.errors import UserError
from zslbench.results.experiment import experiment_table
from zslbench.results.render import render
from zslbench.results.selection import Selection

TINY = {"data.synth_preset": "tiny"}


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("selection")
    runs = [
        RunSpec(role="ablation-grid", params=TINY, start_time=1_000),                                     # 0 old grid
        RunSpec(parent="@0", params=TINY, metrics={"gzsl_h": 0.30}, start_time=1_001),                    # 1
        RunSpec(role="ablation-grid", params=TINY, start_time=2_000),                                     # 2 new grid
        RunSpec(parent="@2", params=TINY, metrics={"gzsl_h": 0.40, "zsl_t1": 0.6}, start_time=2_001),     # 3 full
        RunSpec(parent="@2", params=TINY, ablations="no_js", metrics={"gzsl_h": 0.38}, start_time=2_002),  # 4
        RunSpec(parent="@2", params=TINY, model="vit", ablations="baseline", metrics={"gzsl_h": 0.35},
                start_time=2_003),                                                                        # 5
        RunSpec(role="sweep", params={**TINY, "sweep.params": "temperature"}, tags={"optuna.study": "s"},
                start_time=3_000),                                                                        # 6 sweep
        RunSpec(parent="@6", role="sweep-trial", params={**TINY, "model.logit_scale": 13.469415096427044},
                metrics={"gzsl_h": 0.47}, start_time=3_001),                                              # 7
        RunSpec(parent="@6", role="sweep-trial", params={**TINY, "model.logit_scale": 2.0},
                metrics={"gzsl_h": 0.20}, start_time=3_002),                                              # 8
        RunSpec(seed=1, params=TINY, metrics={"gzsl_h": 0.44, "zsl_t1": 0.7}, start_time=4_000),          # 9 plain
        RunSpec(seed=2, parent="deadbeef" * 4, params=TINY, start_time=5_000),                           # 10 orphan
    ]
    uri, ids = make_store(tmp, {"flow": runs})
    return uri, ids["flow"]


def rows(table) -> dict[str, object]:
    return {row.label: row for block in table.blocks for row in block.rows}


def h(row, dataset="synth"):
    return row.cells[(dataset, "gzsl_h")]


def test_main_table_has_methods_only_no_container_and_no_sweep_trial(store, capsys) -> None:
    uri, ids = store
    table = experiment_table("main", "flow", tracking_uri=uri)
    got = rows(table)
    assert sorted(got) == ["SVIP", "ViT"]  # no "logit_scale=…" row, no parent run, no w/o JSD
    assert h(got["SVIP"]).mean == pytest.approx((0.40 + 0.44) / 2) and h(got["SVIP"]).n == 2
    assert sorted(table.run_ids()) == sorted([ids[3], ids[9], ids[5]])
    assert "did not finish; they are left out — pass --parent" in capsys.readouterr().err


def test_ablation_deltas_come_from_the_latest_grid_only(store) -> None:
    uri, ids = store
    table = experiment_table("ablation", "flow", tracking_uri=uri)
    got = rows(table)
    assert h(got["Full SVIP"]).mean == pytest.approx(0.40)  # the grid's own full model, not the plain seed-1 run
    assert h(got["w/o JSD"]).delta == pytest.approx(-0.02)
    assert h(got["Baseline: ViT + attribute head"]).delta == pytest.approx(-0.05)
    assert ids[9] not in table.run_ids() and ids[7] not in table.run_ids()
    old = rows(experiment_table("ablation", "flow", tracking_uri=uri, selection=Selection(parents=(ids[0],))))
    assert list(old) == ["Full SVIP"] and h(old["Full SVIP"]).mean == pytest.approx(0.30)


def test_sensitivity_only_for_swept_parameters(store) -> None:
    uri, _ = store
    table = experiment_table("sensitivity", "flow", tracking_uri=uri, param="temperature")
    assert [row.label for row in table.blocks[0].rows] == ["2", "13.5"]  # the sweep's trials, values to 3 digits
    with pytest.raises(UserError, match="no sweep of patch_number: a sensitivity table shows swept parameters only"):
        experiment_table("sensitivity", "flow", tracking_uri=uri, param="patch_number")


def test_run_and_tag_choose_explicitly(store) -> None:
    uri, ids = store
    only = experiment_table("main", "flow", tracking_uri=uri, selection=Selection(runs=(ids[9],)))
    assert only.run_ids() == [ids[9]]
    tagged = experiment_table("main", "flow", tracking_uri=uri, selection=Selection.from_options(tags=["seed=1"]))
    assert tagged.run_ids() == [ids[9]]
    orphan = experiment_table("main", "flow", tracking_uri=uri, selection=Selection(runs=(ids[10],)))
    assert orphan.run_ids() == [ids[10]]  # an explicit choice may take a run of an unfinished parent
    with pytest.raises(UserError, match=f"--run {ids[2]} is an ablation grid or sweep .* --parent {ids[2]}"):
        experiment_table("main", "flow", tracking_uri=uri, selection=Selection(runs=(ids[2],)))
    with pytest.raises(UserError, match="--parent nope: no finished ablation grid or sweep"):
        experiment_table("main", "flow", tracking_uri=uri, selection=Selection(parents=("nope",)))
    with pytest.raises(UserError, match="give key=value"):
        Selection.from_options(tags=["seed"])


def test_cli_table_selection_options(store, tmp_path) -> None:
    import subprocess
    import sys

    uri, ids = store
    done = subprocess.run([sys.executable, "-m", "zslbench.cli", "table", "ablation", "--experiment", "flow",
                           "--tracking-uri", uri, "--format", "markdown", "--parent", ids[0]],
                          capture_output=True, text=True, cwd=tmp_path, timeout=300)
    assert done.returncode == 0, done.stderr
    assert "Full SVIP | 50.0 | 30.0 |" in done.stdout
    done = subprocess.run([sys.executable, "-m", "zslbench.cli", "table", "main", "--experiment", "flow",
                           "--tracking-uri", uri, "--format", "markdown", "--tag", "seed=1", "--run", ids[3]],
                          capture_output=True, text=True, cwd=tmp_path, timeout=300)
    assert done.returncode == 2 and "no result run" in done.stderr  # seed 0's run has no seed=1 tag
    assert "Traceback" not in done.stderr


def test_latex_headers_are_benchmark_names(store) -> None:
    uri, _ = store
    latex = render(experiment_table("main", "flow", tracking_uri=uri), "latex")
    assert "\\multicolumn{5}{c}{synth}" in latex and "@" not in latex
