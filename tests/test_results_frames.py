"""Runs in an MLflow store → polars frames: columns, seed aggregation, mixing rules, errors."""

from __future__ import annotations


import numpy as np
import polars as pl
import pytest

from results_store import RunSpec, make_store
from zslbench.core.errors import UserError
from zslbench.metrics import aggregate_seeds
from zslbench.core.version import PROTOCOL_VERSION
from zslbench.results.frames import aggregate, check_protocols, load_runs, method_label, varying_hyperparameters


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> tuple[str, dict[str, list[str]]]:
    tmp = tmp_path_factory.mktemp("frames")
    h_values = [0.40, 0.44, 0.51]
    runs = [RunSpec(seed=s, metrics={"gzsl_h": h, "zsl_t1": 0.6 + s / 100}) for s, h in enumerate(h_values)]
    runs += [RunSpec(seed=0, params={"model.keep": 6}, metrics={"gzsl_h": 0.2}),
             RunSpec(seed=0, status="FAILED", metrics={"gzsl_h": 0.99}),
             RunSpec(seed=0, model="vit", ablations="baseline", metrics={"gzsl_h": 0.3}, parent="p" * 32)]
    mixed = [RunSpec(seed=0, protocol="0", metrics={"gzsl_h": 0.1}), RunSpec(seed=1, metrics={"gzsl_h": 0.2})]
    return make_store(tmp, {"runs": runs, "mixed": mixed, "empty": [RunSpec(status="FAILED")]})


def test_one_row_per_finished_run_with_tags_params_and_final_metrics(store) -> None:
    uri, ids = store
    frame = load_runs("runs", uri)
    assert frame.height == 5  # the FAILED run is left out
    assert set(frame["run_id"]) == set(ids["runs"]) - {ids["runs"][4]}
    row = frame.filter(pl.col("run_id") == ids["runs"][0]).row(0, named=True)
    assert (row["model"], row["dataset"], row["ablations"], row["seed"]) == ("svip", "synth", "none", 0)
    assert (row["selection"], row["gamma_policy"], row["gamma_space"], row["protocol"]) == ("final", "none", "logit",
                                                                                          PROTOCOL_VERSION)
    assert row["oracle"] is False and row["git_commit"] == "abc1234def"
    assert row["model.keep"] == "12" and row["gzsl_h"] == pytest.approx(0.40) and "final_gzsl_h" not in frame.columns
    assert frame.filter(pl.col("model") == "vit")["parent_run_id"].to_list() == ["p" * 32]


def test_seeds_aggregate_to_mean_sample_std_and_count(store) -> None:
    uri, _ = store
    frame = load_runs("runs", uri)
    grouped = aggregate(frame)
    svip = grouped.filter((pl.col("model") == "svip") & (pl.col("model.keep") == "12")).row(0, named=True)
    expected = aggregate_seeds([{"gzsl_h": h} for h in (0.40, 0.44, 0.51)])["gzsl_h"]
    assert (svip["gzsl_h_mean"], svip["gzsl_h_std"], svip["n"]) == (pytest.approx(expected[0]),
                                                                   pytest.approx(expected[1]), 3)
    assert svip["gzsl_h_std"] == pytest.approx(np.std([0.40, 0.44, 0.51], ddof=1))
    assert svip["seeds"] == [0, 1, 2] and svip["hyperparameters"] == "model.keep=12"
    # a different hyperparameter value is another configuration, never averaged in
    other = grouped.filter(pl.col("model.keep") == "6").row(0, named=True)
    assert (other["n"], other["gzsl_h_mean"], other["gzsl_h_std"]) == (1, pytest.approx(0.2), 0.0)
    assert "model.keep" in varying_hyperparameters(frame) and "train.seed" not in varying_hyperparameters(frame)


def test_runs_of_different_protocols_are_never_averaged(store) -> None:
    uri, _ = store
    frame = load_runs("mixed", uri)
    assert aggregate(frame).height == 2
    with pytest.raises(UserError, match=rf"protocol versions 0, {PROTOCOL_VERSION}, .* --protocol"):
        check_protocols(frame)
    assert check_protocols(frame, PROTOCOL_VERSION)["protocol"].to_list() == [PROTOCOL_VERSION]
    with pytest.raises(UserError, match="no runs with protocol version '7'"):
        check_protocols(frame, "7")


def test_unknown_experiment_lists_the_existing_ones(store) -> None:
    uri, _ = store
    with pytest.raises(UserError, match=r"unknown experiment 'nope'.*existing experiments: .*empty, mixed, runs") as info:
        load_runs("nope", uri)
    assert "\n" not in str(info.value)


def test_experiment_without_finished_runs_says_to_run_first(store) -> None:
    uri, _ = store
    with pytest.raises(UserError, match=r"no finished runs in experiment 'empty'.*run `zslbench run` first") as info:
        load_runs("empty", uri)
    assert "\n" not in str(info.value)


def test_method_labels() -> None:
    assert method_label("svip", "no_patch_selection") == "SVIP w/o SSPS"
    assert method_label("svip", "jsd,max_pool") == "SVIP +jsd +max_pool"


def test_a_repeated_seed_counts_once_with_its_latest_run(store, capsys) -> None:
    uri, _ = store
    frame = load_runs("runs", uri).filter((pl.col("model") == "svip") & (pl.col("model.keep") == "12"))
    rerun = frame.filter(pl.col("seed") == 1).with_columns(pl.lit("rerun").alias("run_id"), pl.lit(0.9).alias("gzsl_h"),
                                                           (pl.col("start_time") + 1000).alias("start_time"))
    grouped = aggregate(pl.concat([frame, rerun])).row(0, named=True)
    assert grouped["n"] == 3 and grouped["seeds"] == [0, 1, 2] and "rerun" in grouped["run_ids"]
    assert grouped["gzsl_h_mean"] == pytest.approx((0.40 + 0.9 + 0.51) / 3)
    assert "repeat a seed" in capsys.readouterr().err
    aggregate(pl.concat([frame, rerun]))  # a second table of a report from the same runs
    assert capsys.readouterr().err == ""


def test_a_repeated_seed_names_the_superseded_run(store, capsys) -> None:
    uri, _ = store
    frame = load_runs("runs", uri).filter((pl.col("model") == "svip") & (pl.col("model.keep") == "12"))
    superseded = frame.filter(pl.col("seed") == 1)["run_id"][0]
    rerun = frame.filter(pl.col("seed") == 1).with_columns(pl.lit("rerun").alias("run_id"),
                                                           (pl.col("start_time") + 1000).alias("start_time"))
    aggregate(pl.concat([frame, rerun]))
    assert capsys.readouterr().err.strip() == (f"warning: 1 run(s) repeat a seed of the same configuration; the latest "
                                               f"is used (superseded: {superseded[:8]})")
