"""``zslbench report``: Markdown + self-contained HTML with the tables, plots and every run id."""

from __future__ import annotations

from pathlib import Path

import pytest

from results_store import RunSpec, make_store
from zslbench.core.errors import UserError
from zslbench.core.version import PROTOCOL_VERSION
from zslbench.results.report import write_report


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory):
    tmp = tmp_path_factory.mktemp("report")
    runs = [RunSpec(seed=s, metrics={"gzsl_h": 0.4 + s / 100}) for s in range(2)]
    runs += [RunSpec(model="vit", ablations="baseline", seed=0), RunSpec(ablations="no_js", seed=0),
             RunSpec(seed=0, params={"model.keep": 6}),                       # varies K, but no sweep ran it
             RunSpec(role="sweep", params={"sweep.params": "temperature"}, tags={"optuna.study": "s"}),
             RunSpec(parent="@5", role="sweep-trial", params={"model.logit_scale": 2.0}),
             RunSpec(parent="@5", role="sweep-trial", params={"model.logit_scale": 9.0})]
    uri, ids = make_store(tmp, {"runs": runs, "empty": []})
    return uri, ids["runs"], tmp


def test_report_has_tables_plots_and_provenance(store, tmp_path: Path) -> None:
    uri, ids, tmp = store
    md_path, html_path = write_report("runs", tmp_path / "report", tracking_uri=uri, cache_dir=tmp / "cache")
    markdown, page = md_path.read_text(), html_path.read_text()
    for section in ("## Main results", "## Ablation", "## Sensitivity (temperature)",
                    "## How much does choosing γ on the test set inflate H?", "## Seen–unseen curves",
                    "## Provenance of every run"):
        assert section in markdown
    assert "Sensitivity (patch_number)" not in markdown  # never swept
    for run_id in ids[:5] + ids[6:]:
        assert run_id in markdown and run_id in page
    assert "**result runs reported**: 7" in markdown and "no results of their own)**: 1" in markdown
    assert "logit_scale=9" not in markdown.split("## Ablation")[0]  # no sweep trial among the methods
    assert f"protocol version {PROTOCOL_VERSION}" in markdown and "abc1234def" in markdown
    assert "![Seen–unseen curves](figures/ausuc.png)" in markdown
    assert (tmp_path / "report" / "figures" / "ausuc.png").stat().st_size > 5000
    assert page.startswith("<!DOCTYPE html>") and page.count("data:image/png;base64,") == 2  # curves + sensitivity
    assert "<b>" in page and "Reported by the authors (test-selected)" in page


def test_report_of_an_empty_experiment_is_a_user_error(store, tmp_path: Path) -> None:
    uri, _, _ = store
    with pytest.raises(UserError, match="no finished runs in experiment 'empty'"):
        write_report("empty", tmp_path / "r", tracking_uri=uri)
    assert not (tmp_path / "r" / "report.md").exists()
