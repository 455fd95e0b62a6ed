"""The README's "Everyday use" sequence, as written, in one folder and one experiment (tiny preset): run, ablate,
sweep, every table kind in every format, every plot, report — exit codes, no table mixing incomparable runs,
LaTeX that compiles without overfull boxes, output files that respect the umask, and `--json -` that is JSON."""

from __future__ import annotations

import csv
import io
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

TINY = ["--preset", "tiny", "--set", "train.threads=1"]


def zslbench(args: list[str], cwd: Path, separate: bool = False) -> subprocess.CompletedProcess:
    """The command line in this process (imports paid once), or in its own process (``separate``: real stdout)."""
    env = {"ZSLBENCH_DATA": str(cwd / "data"), "NO_COLOR": "1", "COLUMNS": "200"}
    if separate:
        full = {**os.environ, **env}
        full.pop("MLFLOW_TRACKING_URI", None)
        done = subprocess.run([sys.executable, "-m", "zslbench.cli", *args], cwd=cwd, env=full, capture_output=True,
                              text=True, timeout=900)
    else:
        done = in_process(args, cwd, env)
    assert done.returncode == 0, f"zslbench {' '.join(args)} → {done.returncode}\n{done.stdout}\n{done.stderr}"
    return done


def in_process(args: list[str], cwd: Path, env: dict[str, str]) -> subprocess.CompletedProcess:
    import contextlib

    from zslbench.cli import main

    out, err = io.StringIO(), io.StringIO()
    saved = {k: os.environ.get(k) for k in [*env, "MLFLOW_TRACKING_URI"]}
    previous = os.getcwd()
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
    return subprocess.CompletedProcess(args, code, out.getvalue(), err.getvalue())


@pytest.fixture(scope="module")
def flow(tmp_path_factory) -> dict:
    """The README's training commands, in order, in one folder."""
    cwd = tmp_path_factory.mktemp("readme")
    old_umask = os.umask(0o027)  # the outputs must follow it (0640), not be private to their writer
    try:
        out = {"cwd": cwd}
        out["run"] = zslbench(["run", *TINY], cwd)
        zslbench(["run", "--ablate", "no_replacement", "--seed", "0", "--seed", "1", *TINY], cwd)
        out["json"] = zslbench(["run", "--model", "vit", *TINY, "--json", "-"], cwd, separate=True)
        out["ablate"] = zslbench(["ablate", *TINY, "--seed", "0"], cwd)
        out["sweep"] = zslbench(["sweep", "temperature", "--trials", "2", *TINY], cwd)
        tables = {}
        for kind in (["main"], ["ablation"], ["sensitivity", "temperature"]):
            for fmt in ("latex", "markdown", "csv"):
                tables[(kind[0], fmt)] = zslbench(["table", *kind, "--format", fmt], cwd).stdout
        tables[("main", "reported")] = zslbench(["table", "main", "--format", "latex", "--reported", "--out",
                                                 "main.tex"], cwd)
        tables[("main", "oracle")] = zslbench(["table", "main", "--gamma-policy", "oracle", "--format", "csv"], cwd).stdout
        tables[("main", "svip")] = zslbench(["table", "main", "--mode", "svip", "--format", "markdown"], cwd).stdout
        out["tables"] = tables
        svip_run = json.loads((cwd / "runs").joinpath(_first_svip_run(cwd), "final.json").read_text())["run_id"]
        for args in (["ausuc", "--out", "ausuc.png"], ["sensitivity", "temperature", "--out", "sensitivity.pdf"],
                     ["patches", "--run", svip_run, "--out", "patches.png"]):
            zslbench(["plot", *args], cwd)
        out["report"] = zslbench(["report", "--experiment", "zslbench", "--out", "report/"], cwd)
    finally:
        os.umask(old_umask)
    return out


def _first_svip_run(cwd: Path) -> str:
    for folder in sorted((cwd / "runs").iterdir(), key=lambda p: p.stat().st_mtime):
        final = folder / "final.json"
        if final.is_file() and json.loads(final.read_text()).get("model") == "svip":
            return folder.name
    raise AssertionError("no finished SVIP run folder")


def records(text: str) -> list[dict[str, str]]:
    return list(csv.DictReader(io.StringIO(text)))


def test_json_dash_is_only_json(flow) -> None:
    result = json.loads(flow["json"].stdout)
    assert result["model"] == "vit" and 0 <= result["gzsl_h"] <= 1
    assert "epoch 2/2" in flow["json"].stderr  # the human output went to stderr


def test_main_table_holds_methods_only(flow) -> None:
    rows = {r["row"] for r in records(flow["tables"][("main", "csv")])}
    # methods only: no paper-ablation row (w/o PSC: the ablation table's), no sweep trial, the grid's ViT baseline
    # and the plain ViT run one method
    assert rows == {"SVIP", "ViT"}, rows
    policies = {r["policy"] for r in records(flow["tables"][("main", "csv")])}
    assert policies == {"none/logit/final"}
    oracle = records(flow["tables"][("main", "oracle")])
    assert {r["policy"] for r in oracle} == {"oracle/logit/final"} and all(
        r["test_selected"] == "true" for r in oracle if r["metric"] in ("U", "S", "H"))
    assert "Paper reporting mode svip†" in flow["tables"][("main", "svip")]


def test_ablation_table_is_the_grid_against_its_own_full_model(flow) -> None:
    import mlflow

    rows = records(flow["tables"][("ablation", "csv")])
    assert [r["row"] for r in rows if r["metric"] == "H"][-1] == "Full SVIP"
    client = mlflow.MlflowClient(tracking_uri=f"sqlite:///{flow['cwd'] / 'mlflow.db'}")
    parents = {client.get_run(run_id).data.tags.get("mlflow.parentRunId")
               for r in rows for run_id in r["run_ids"].split()}
    assert len(parents) == 1 and client.get_run(parents.pop()).data.tags["zslbench.role"] == "ablation-grid"
    full = {r["metric"]: float(r["mean"]) for r in rows if r["row"] == "Full SVIP"}
    for r in rows:
        if r["delta"]:
            assert float(r["delta"]) == pytest.approx(float(r["mean"]) - full[r["metric"]], abs=0.11)


def test_sensitivity_rows_are_the_swept_values(flow) -> None:
    rows = {r["row"] for r in records(flow["tables"][("sensitivity", "csv")])}
    assert len(rows) == 2 and all(len(r) <= 5 for r in rows)  # two trials, values to 3 significant digits


@pytest.mark.skipif(shutil.which("pdflatex") is None, reason="pdflatex is absent: LaTeX compile check skipped")
def test_latex_compiles_without_overfull_boxes(flow, tmp_path) -> None:
    from test_tables import compile_latex

    body = "".join(flow["tables"][(kind, "latex")] for kind in ("main", "ablation", "sensitivity"))
    compile_latex(tmp_path, body + (flow["cwd"] / "main.tex").read_text())


def test_outputs_follow_the_umask_and_the_report_counts_results_only(flow) -> None:
    cwd = flow["cwd"]
    for path in (cwd / "main.tex", cwd / "ausuc.png", cwd / "sensitivity.pdf", cwd / "patches.png",
                 cwd / "report" / "report.md", cwd / "report" / "report.html"):
        assert path.stat().st_size > 0 and path.stat().st_mode & 0o777 == 0o640, path
    markdown = (cwd / "report" / "report.md").read_text()
    assert "**parent runs (ablation grids, sweeps; no results of their own)**: 2" in markdown
    assert "## Sensitivity (temperature)" in markdown and "## Sensitivity (patch_number)" not in markdown


def test_training_logs_one_line_per_epoch_when_not_a_terminal(flow) -> None:
    output = flow["run"].stdout
    assert "epoch 1/2 · loss" in output and "epoch 2/2 · loss" in output and "ETA" in output
    assert "INFO mlflow" not in flow["run"].stderr


def test_a_batch_job_log_shows_each_epoch_while_it_trains(tmp_path) -> None:
    """`nohup zslbench run … > log 2>&1`: the log file gets each epoch's line when the epoch ends."""
    import time

    env = {**os.environ, "ZSLBENCH_DATA": str(tmp_path / "data"), "NO_COLOR": "1"}
    env.pop("MLFLOW_TRACKING_URI", None)
    log = tmp_path / "log"
    with log.open("w") as handle:
        process = subprocess.Popen([sys.executable, "-m", "zslbench.cli", "run", *TINY, "--epochs", "8",
                                    "--set", "track.enabled=false"], cwd=tmp_path, env=env, stdout=handle,
                                   stderr=subprocess.STDOUT)
        seen_while_running = False
        deadline = time.time() + 600
        while process.poll() is None and time.time() < deadline:
            if "epoch 1/8 · loss" in log.read_text():
                seen_while_running = process.poll() is None
                break
            time.sleep(0.05)
        process.wait(timeout=600)
    text = log.read_text()
    assert process.returncode == 0, text
    assert seen_while_running, "the first epoch's line reached the log only when the run ended"
    assert text.count(" · loss ") == 8 and "ETA" in text and "\x1b[" not in text  # plain lines, no bar
