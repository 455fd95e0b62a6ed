"""Tables: golden LaTeX/Markdown renderings of a fixed frame, all kinds × formats, pdflatex compile,
re-evaluation from stored scores, and the CLI's one-line errors."""

from __future__ import annotations

import csv
import io
import os
import shutil
import subprocess
from pathlib import Path

import polars as pl
import pytest

from results_store import RunSpec, make_store
from zslbench.core.errors import UserError
from zslbench.results.render import FORMATS, render
from zslbench.results.experiment import experiment_table
from zslbench.results.tables import (ablation_table, build_table, main_table, reported_numbers,
                                     sensitivity_table)

GOLDEN = Path(__file__).parent / "golden"
UPDATE = os.environ.get("ZSLBENCH_UPDATE_GOLDEN") == "1"


def fixed_frame() -> pl.DataFrame:
    """Runs as `load_runs` returns them: SVIP (3 seeds), ViT baseline (2 seeds), two ablations, an oracle run,
    and two keep values for sensitivity."""
    rows = []

    def add(model, ablations, seed, h, t1, keep="12", gamma="none", selection="final", dataset="synth"):
        rows.append({"run_id": f"{model}-{ablations}-{keep}-{gamma}-{dataset}-{seed}", "parent_run_id": "",
                     "model": model, "dataset": dataset, "ablations": ablations, "seed": seed,
                     "selection": selection, "gamma_policy": gamma, "gamma_space": "logit", "protocol": "1",
                     "data_fingerprint": "f" * 64, "git_commit": "abc", "oracle": gamma == "oracle",
                     "model.keep": keep, "zsl_t1": t1, "gzsl_u": h - 0.05, "gzsl_s": h + 0.1, "gzsl_h": h,
                     "ausuc": h / 2})

    for seed, (h, t1) in enumerate([(0.50, 0.61), (0.52, 0.63), (0.54, 0.62)]):
        add("svip", "none", seed, h, t1)
        add("svip", "none", seed, h + 0.1, t1 + 0.1, dataset="CUB")
    for seed, (h, t1) in enumerate([(0.40, 0.55), (0.42, 0.57)]):
        add("vit", "baseline", seed, h, t1)
    add("svip", "no_js", 0, 0.51, 0.64)
    add("svip", "no_patch_selection", 0, 0.45, 0.58)
    add("svip", "none", 0, 0.60, 0.61, gamma="oracle")
    add("svip", "none", 0, 0.30, 0.50, keep="3")
    add("svip", "none", 1, 0.34, 0.52, keep="3")
    return pl.DataFrame(rows)


def check_golden(name: str, text: str) -> None:
    path = GOLDEN / name
    if UPDATE or not path.exists():
        path.parent.mkdir(exist_ok=True)
        path.write_text(text)
    assert text == path.read_text(), f"{name} changed; inspect it and set ZSLBENCH_UPDATE_GOLDEN=1 to accept"


@pytest.mark.parametrize("fmt, suffix", [("latex", "tex"), ("markdown", "md")])
def test_main_table_golden(fmt: str, suffix: str) -> None:
    check_golden(f"main.{suffix}", render(main_table(fixed_frame(), reported=True, experiment="golden"), fmt))


@pytest.mark.parametrize("fmt, suffix", [("latex", "tex"), ("markdown", "md")])
def test_ablation_table_golden(fmt: str, suffix: str) -> None:
    check_golden(f"ablation.{suffix}", render(ablation_table(fixed_frame(), experiment="golden"), fmt))


def test_main_table_marks_best_second_std_dagger_and_reported_block(capsys: pytest.CaptureFixture) -> None:
    table = main_table(fixed_frame(), reported=True)
    latex, markdown = render(table, "latex"), render(table, "markdown")
    svip_synth = "SVIP (patch\\_number=12) & \\textbf{62.0}{\\scriptsize$\\pm$1.0}"  # T1 mean of .61 .63 .62, std 1.0
    assert svip_synth in latex
    assert "\\underline{56.0}" in latex  # ViT's T1 is second
    assert "60.0$^\\dagger$" in latex and "60.0†" in markdown  # oracle-γ H
    assert "[$\\gamma$ oracle, epoch final]" in latex  # its row is labelled, not averaged in
    assert "mixes γ/selection policies" in capsys.readouterr().err
    assert "\\textit{Reported by the authors (test-selected)}" in latex
    reported_line = next(line for line in latex.splitlines() if line.startswith("ZSLViT"))
    assert "\\textbf" not in reported_line and "78.9" in reported_line  # reported rows are never ranked
    assert "selected on the test set by their authors" in markdown
    # the oracle row does not take "best" from the comparable rows: SVIP's H (52.0) is bold
    assert "**52.0** ± 2.0" in markdown
    # the paper ablations are not method rows of the main table
    assert "w/o JSD" not in markdown


def grid_frame() -> pl.DataFrame:
    """One ablation grid: full SVIP, w/o JSD and w/o SSPS over seeds 0-2, the ViT baseline over seeds 0-1 only."""
    rows = []
    for model, ablations, seeds, h in [("svip", "none", (0, 1, 2), 0.52), ("svip", "no_js", (0, 1, 2), 0.51),
                                       ("svip", "no_patch_selection", (0, 1, 2), 0.45), ("vit", "baseline", (0, 1), 0.41)]:
        for seed in seeds:
            rows.append({"run_id": f"{ablations}-{seed}", "model": model, "dataset": "synth", "ablations": ablations,
                         "seed": seed, "selection": "final", "gamma_policy": "none", "gamma_space": "logit",
                         "protocol": "2", "data_fingerprint": "f" * 64, "git_commit": "abc", "oracle": False,
                         "zsl_t1": h + 0.1, "gzsl_h": h + 0.01 * (seed - 1)})
    return pl.DataFrame(rows)


def test_ablation_table_deltas_against_full_svip_of_the_same_seeds() -> None:
    markdown = render(ablation_table(grid_frame()), "markdown")
    lines = {line.split(" | ")[0].lstrip("| "): line for line in markdown.splitlines() if line.startswith("|")}
    assert "<u>51.0</u> ± 1.0 (-1.0)" in lines["w/o JSD"]  # H 0.51 vs full SVIP 0.52, both over seeds 0, 1, 2
    assert "(-7.0)" in lines["w/o SSPS"]
    assert "(" not in lines["Baseline: ViT + attribute head"].split("|", 2)[2]  # seeds 0, 1 only: no Δ
    assert "No Δ where a row's seeds differ from full SVIP's" in markdown
    assert list(lines)[2:] == ["Baseline: ViT + attribute head", "w/o SSPS", "w/o JSD", "Full SVIP"]


def test_sensitivity_table_rows_are_values() -> None:
    table = sensitivity_table(fixed_frame(), "patch_number")
    labels = [row.label for row in table.blocks[0].rows]
    assert labels[:2] == ["3", "12"]
    markdown = render(table, "markdown")
    assert "| 3 | <u>51.0</u> ± 1.4 |" in markdown and "| 12 | **62.0** ± 1.0 |" in markdown
    with pytest.raises(UserError, match="do not vary model.logit_scale"):
        sensitivity_table(fixed_frame().with_columns(pl.lit("5.0").alias("model.logit_scale")), "temperature")
    with pytest.raises(UserError, match="unknown sensitivity parameter 'speed'"):
        sensitivity_table(fixed_frame(), "speed")


@pytest.mark.parametrize("kind", ["main", "ablation", "sensitivity"])
@pytest.mark.parametrize("fmt", FORMATS)
def test_every_kind_renders_in_every_format(kind: str, fmt: str) -> None:
    text = render(build_table(kind, fixed_frame(), param="patch_number", reported=True), fmt)
    assert text.endswith("\n") and len(text.splitlines()) > 3
    if fmt == "csv":
        records = list(csv.DictReader(io.StringIO(text)))
        assert {"block", "row", "dataset", "metric", "mean", "std", "n"} <= set(records[0])
        assert all(len(r["mean"].split(".")[1]) == 1 for r in records)  # one decimal


def test_reported_numbers_file_has_sources_and_caveats() -> None:
    reported = reported_numbers()
    assert {"source", "caveat"} <= set(reported.columns)
    svip = reported.filter((pl.col("table") == "main") & (pl.col("method") == "SVIP") & (pl.col("dataset") == "CUB"))
    assert svip.row(0, named=True)["gzsl_h"] == 75.0
    assert reported["caveat"].str.contains("test-selected").all()


# --------------------------------------------------------------------------- LaTeX compiles
@pytest.mark.skipif(shutil.which("pdflatex") is None,
                    reason="pdflatex is absent (apt-get install texlive-latex-recommended): compile test skipped")
def test_latex_compiles_unchanged_in_a_minimal_document(tmp_path: Path) -> None:
    frame = fixed_frame()
    body = "".join(render(build_table(kind, frame, param="patch_number", reported=True), "latex")
                   for kind in ("main", "ablation", "sensitivity"))
    compile_latex(tmp_path, body)


def compile_latex(folder: Path, body: str) -> None:
    """Compile ``body`` in a plain article (booktabs, graphicx); fail on an error or an overfull box over 1 pt."""
    import re

    (folder / "tables.tex").write_text(body)
    (folder / "doc.tex").write_text("\\documentclass{article}\n\\usepackage{booktabs,graphicx}\n"
                                    "\\begin{document}\n\\input{tables.tex}\n\\end{document}\n")
    done = subprocess.run(["pdflatex", "-interaction=nonstopmode", "-halt-on-error", "doc.tex"], cwd=folder,
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stdout[-2000:]
    assert (folder / "doc.pdf").stat().st_size > 1000
    log = (folder / "doc.log").read_text(errors="replace")
    overfull = [float(pt) for pt in re.findall(r"Overfull \\[hv]box \(([\d.]+)pt too", log)]
    assert all(pt <= 1.0 for pt in overfull), f"overfull boxes: {overfull} pt"


@pytest.mark.skipif(shutil.which("pdflatex") is None,
                    reason="pdflatex is absent (apt-get install texlive-latex-recommended): compile test skipped")
def test_wide_tables_fit_the_text_width(tmp_path: Path) -> None:
    frame = pl.concat([fixed_frame().with_columns(pl.lit(d).alias("dataset"),
                                                  pl.col("run_id") + d) for d in ("CUB", "AWA2", "SUN", "synth")])
    body = "".join(render(build_table(kind, frame, param="patch_number", reported=True), "latex")
                   for kind in ("main", "ablation"))
    compile_latex(tmp_path, body)
    (tmp_path / "doc.log").unlink()
    unscaled = body.replace("\\resizebox{\\ifdim\\width>\\linewidth\\linewidth\\else\\width\\fi}{!}{%", "{%")
    with pytest.raises(AssertionError, match="overfull boxes"):  # the check bites without the shrinking
        compile_latex(tmp_path, unscaled)


# --------------------------------------------------------------------------- from a store
@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> tuple[str, Path]:
    tmp = tmp_path_factory.mktemp("tables")
    runs = [RunSpec(seed=s) for s in range(3)] + [RunSpec(model="vit", ablations="baseline", seed=0)]
    uri, _ = make_store(tmp, {"runs": runs, "noscores": [RunSpec(scores=False)], "empty": []})
    return uri, tmp / "cache"


def test_reevaluation_oracle_never_below_none(store) -> None:
    uri, cache = store
    tables = {policy: experiment_table("main", "runs", tracking_uri=uri, gamma_policy=policy, cache_dir=cache)
              for policy in ("none", "oracle")}
    for plain_row, oracle_row in zip(tables["none"].blocks[0].rows, tables["oracle"].blocks[0].rows):
        plain, oracle = plain_row.cells[("synth", "gzsl_h")], oracle_row.cells[("synth", "gzsl_h")]
        assert oracle.mean >= plain.mean - 1e-12 and oracle.oracle and not plain.oracle
        assert plain_row.cells[("synth", "zsl_t1")].mean == oracle_row.cells[("synth", "zsl_t1")].mean
    # stored final metrics were placeholders; recomputed numbers differ from them
    assert tables["none"].blocks[0].rows[0].cells[("synth", "gzsl_h")].mean != pytest.approx(0.4)
    assert "γ chosen on the test set†" in render(tables["oracle"], "markdown")
    assert any(cache.iterdir())  # artifacts cached per run


def test_reevaluation_errors_name_the_runs(store) -> None:
    uri, cache = store
    with pytest.raises(UserError, match="no validation scores|lack; re-run them with --set eval.gamma_policy=val"):
        experiment_table("main", "runs", tracking_uri=uri, gamma_policy="val", cache_dir=cache)
    with pytest.raises(UserError, match=r"have no scores/test_scores.npz"):
        experiment_table("main", "noscores", tracking_uri=uri, gamma_policy="oracle", cache_dir=cache)


def run_cli(capsys: pytest.CaptureFixture, *args: str) -> tuple[int, str, str]:
    """Run the CLI entry point in-process: (exit code, stdout, stderr)."""
    from zslbench.cli import main

    try:
        main(list(args))
        code = 0
    except SystemExit as exc:
        code = int(exc.code or 0)
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def test_cli_table_writes_file_and_user_errors_exit_2_with_one_line(store, tmp_path: Path, capsys,
                                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    uri, _ = store
    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
    monkeypatch.setenv("NO_COLOR", "1")
    out = tmp_path / "main.md"
    code, _, err = run_cli(capsys, "table", "main", "--experiment", "runs", "--format", "markdown", "--out", str(out))
    assert code == 0, err
    assert out.read_text().startswith("**Main results (experiment runs)**")
    code, stdout, _ = run_cli(capsys, "table", "ablation", "--experiment", "runs", "--format", "csv")
    assert code == 0 and stdout.startswith("block,row,dataset,metric,mean")
    for args, message in [(("table", "main", "--experiment", "nope"), "unknown experiment 'nope'"),
                          (("table", "main", "--experiment", "empty"), "no finished runs in experiment 'empty'"),
                          (("table", "main", "--experiment", "runs", "--format", "html"), "unknown format 'html'"),
                          (("table", "sensitivity", "speed", "--experiment", "runs"), "unknown sensitivity parameter"),
                          (("table", "main", "--experiment", "runs", "--gamma-policy", "best"), "unknown gamma policy")]:
        code, _, err = run_cli(capsys, *args)
        assert code == 2 and message in err, err
        assert len(err.strip().splitlines()) == 1 and "Traceback" not in err


def test_every_text_a_latex_table_can_carry_is_typeset_not_replaced() -> None:
    """Paper-mode footnotes, method names, ablation labels and sweep labels reach LaTeX through latex_escape,
    which writes ``?`` for a symbol it cannot typeset; none of them may lose a character that way."""
    import zslbench.catalogue as catalogue
    from zslbench.metrics.paper import MODE_SUMMARIES
    from zslbench.results.render import latex_escape

    texts = [*MODE_SUMMARIES.values()]
    texts += [catalogue.display_name(name) for name in catalogue.MODELS.names()]
    texts += [catalogue.ablation_label(a.name) for a in catalogue.ABLATIONS.registered()]
    texts += [s.label for s in catalogue.SPACES.registered() if s.label]
    for text in texts:
        assert latex_escape(text).count("?") == text.count("?"), text
