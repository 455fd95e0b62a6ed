"""MLflow runs → polars frames: one row per finished run, then seeds aggregated per configuration.

A run row carries its identity (run id, parent), its tags (model, dataset, ablations, seed,
policies, protocol version, data fingerprint, git commit), every config param under its dotted
name (``model.keep``, ``train.epochs``…) and its final metrics without the ``final_`` prefix
(``zsl_t1``, ``gzsl_h``, ``ausuc``…).

Aggregation (:func:`aggregate`) groups runs that are the same experiment apart from the seed:
the same model, dataset (and data fingerprint), ablations, protocol version, γ policy and space,
epoch-selection policy, and the same values of every configuration key that is not a nuisance
(seed, device, threads, paths, tracking). Runs that differ in any of those are never averaged.

Mixing rules, applied by the tables (see :func:`check_protocols` and ``zslbench.results.tables``):

* several **protocol versions** in one table is ambiguous (the metric code differed), so it is a
  :class:`~zslbench.core.errors.UserError` unless ``protocol=`` picks one — or the numbers are
  recomputed from the stored scores with the current code (``--gamma-policy``);
* several **γ / selection policies** in one table is allowed: rows stay separate, rows whose
  policy is not the table's majority carry it in their label, the table gets a footnote line
  saying so, and a warning goes to stderr.

Example (no MLflow needed)::

    >>> import polars as pl
    >>> runs = pl.DataFrame({"model": ["svip", "svip"], "dataset": ["synth"] * 2, "ablations": ["none"] * 2,
    ...                      "protocol": ["1"] * 2, "gamma_policy": ["none"] * 2, "gamma_space": ["logit"] * 2,
    ...                      "selection": ["final"] * 2, "data_fingerprint": ["f"] * 2, "seed": [0, 1],
    ...                      "run_id": ["a", "b"], "oracle": [False, False], "gzsl_h": [0.25, 0.75]})
    >>> row = aggregate(runs, metrics=("gzsl_h",)).row(0, named=True)
    >>> row["gzsl_h_mean"], round(row["gzsl_h_std"], 4), row["n"]
    (0.5, 0.3536, 2)
"""

from __future__ import annotations

import sys
from typing import TYPE_CHECKING, Any, Iterable, Sequence

import polars as pl

from zslbench.core.errors import UserError
from zslbench.metrics import REPORTED_METRICS

if TYPE_CHECKING:  # pragma: no cover - typing only
    from zslbench.tracking.queries import Run  # MLflow's run entity

#: Metrics shown by the tables (fractions in [0, 1]).
TABLE_METRICS = tuple(REPORTED_METRICS)
#: Keys that identify a configuration, whatever its hyperparameters.
IDENTITY_KEYS = ("model", "dataset", "ablations", "protocol", "gamma_policy", "gamma_space", "selection", "mode",
                 "data_fingerprint", "weights", "precision")
#: Config params that never split a configuration (they do not change the numbers, or only by seed).
NUISANCE_PARAMS = frozenset({
    "train.seed", "train.device", "train.threads", "train.amp", "train.eval_every", "eval.batch_size",
    "eval.gamma_policy", "eval.selection", "eval.gamma_space", "eval.mode", "data.root", "data.image_root", "preset",
    "ablations", "model.name",
})
NUISANCE_PREFIXES = ("track.", "sweep.")
PARAM_PREFIXES = ("model.", "train.", "eval.", "data.", "sweep.")
TAG_COLUMNS = {
    "model": "model", "dataset": "dataset", "ablations": "ablations", "seed": "seed", "selection": "selection",
    "gamma_policy": "gamma_policy", "gamma_space": "gamma_space", "eval_mode": "mode", "zslbench.protocol": "protocol",
    "data.fingerprint": "data_fingerprint", "git.commit": "git_commit", "git.dirty": "git_dirty",
    "mlflow.parentRunId": "parent_run_id", "mlflow.runName": "run_name",
    # containers and fidelity: which runs are results, and what may share a table cell
    "zslbench.role": "role", "zslbench.grid_hash": "grid", "optuna.study": "study", "zslbench.cell_runs": "cell_runs",
    "zslbench.weights": "weights", "zslbench.precision": "precision",
}
_STRING_DEFAULTS = {"ablations": "none", "selection": "final", "gamma_policy": "none", "gamma_space": "logit",
                    "mode": "standard",
                    "protocol": "unknown", "data_fingerprint": "", "git_commit": "unknown", "git_dirty": "unknown",
                    "parent_run_id": "", "run_name": "", "model": "unknown", "dataset": "unknown", "role": "",
                    "grid": "", "study": "", "cell_runs": "", "weights": "", "precision": ""}


# --------------------------------------------------------------------------- loading
def load_runs(experiment: str, tracking_uri: str = "") -> pl.DataFrame:
    """Every FINISHED run of ``experiment`` as one frame row (all result pages are read).

    Raises a one-line :class:`UserError` for an unknown experiment (listing the existing ones)
    and for an experiment without finished runs.
    """
    from zslbench.tracking import find_runs, mask_credentials, resolve_tracking_uri

    uri = resolve_tracking_uri(tracking_uri)
    require_experiment(experiment, uri)
    runs = find_runs(experiment, "attributes.status = 'FINISHED'", tracking_uri=uri)
    frame = runs_frame(run for run in runs if run.info.status == "FINISHED")
    if frame.is_empty():
        raise UserError(f"no finished runs in experiment {experiment!r} at {mask_credentials(uri)}; "
                        "run `zslbench run` first")
    return frame


def experiment_names(tracking_uri: str = "") -> list[str]:
    """Names of the active experiments of the store (sorted); a store that cannot be opened or read
    is a one-line :class:`UserError`."""
    from zslbench import tracking

    return tracking.experiment_names(tracking_uri)


def require_experiment(experiment: str, tracking_uri: str = "") -> None:
    """Raise a one-line :class:`UserError` naming the existing experiments if ``experiment`` is not one."""
    from zslbench.tracking import mask_credentials, resolve_tracking_uri

    names = experiment_names(tracking_uri)
    if experiment in names:
        return
    shown = ", ".join(names) if names else "none"
    raise UserError(f"unknown experiment {experiment!r} in {mask_credentials(resolve_tracking_uri(tracking_uri))}; "
                    f"existing experiments: {shown}; pass one with --experiment")


def runs_frame(runs: Iterable["Run"]) -> pl.DataFrame:
    """MLflow ``Run`` objects → one frame row each (see the module docstring for the columns)."""
    rows = [run_row(run) for run in runs]
    if not rows:
        return pl.DataFrame()
    columns: dict[str, None] = {}
    for row in rows:
        columns.update(dict.fromkeys(row))
    metric_names = {k for row in rows for k, v in row.items() if isinstance(v, float)}
    data = {name: [row.get(name) for row in rows] for name in columns}
    schema: dict[str, Any] = {}
    for name, values in data.items():
        if name in metric_names:
            schema[name] = pl.Float64
        elif name == "seed":
            schema[name] = pl.Int64
        elif name == "oracle":
            schema[name] = pl.Boolean
        elif name == "start_time":
            schema[name] = pl.Int64
        else:
            schema[name] = pl.Utf8
    return pl.DataFrame(data, schema=schema)


def run_row(run: "Run") -> dict[str, Any]:
    """One run's row as a dict: identity, tags, params (dotted names), final metrics (prefix stripped)."""
    tags, params, metrics = run.data.tags, run.data.params, run.data.metrics
    row: dict[str, Any] = {"run_id": run.info.run_id, "start_time": int(run.info.start_time or 0),
                           "artifact_uri": run.info.artifact_uri or ""}
    for tag, column in TAG_COLUMNS.items():
        row[column] = tags.get(tag, _STRING_DEFAULTS.get(column, ""))
    row["seed"] = _as_int(tags.get("seed", params.get("train.seed")))
    if row["ablations"] in ("", "[]"):
        row["ablations"] = "none"
    row["oracle"] = row["selection"] == "oracle" or row["gamma_policy"] == "oracle" or row["mode"] != "standard"
    for key, value in params.items():
        if key.startswith(PARAM_PREFIXES):
            row[key] = value
    for key, value in metrics.items():
        name = key[len("final_"):]
        # final_seed (and the like) repeat a tag; the tag's typed column wins
        if key.startswith("final_") and name not in row:
            row[name] = float(value)
    return row


def _as_int(value: Any) -> int | None:
    try:
        return int(str(value))
    except (TypeError, ValueError):
        return None


# --------------------------------------------------------------------------- configurations
def param_columns(frame: pl.DataFrame) -> list[str]:
    """The frame's config-param columns (dotted names)."""
    return [c for c in frame.columns if c.startswith(PARAM_PREFIXES)]


def hyperparameter_columns(frame: pl.DataFrame) -> list[str]:
    """Config params that define a configuration (all but :data:`NUISANCE_PARAMS`)."""
    return [c for c in param_columns(frame) if c not in NUISANCE_PARAMS and not c.startswith(NUISANCE_PREFIXES)]


def varying_hyperparameters(frame: pl.DataFrame) -> list[str]:
    """Hyperparameters whose value differs between runs of the same model, dataset and ablations."""
    columns = hyperparameter_columns(frame)
    if not columns or frame.is_empty():
        return []
    counts = frame.group_by(["model", "dataset", "ablations"]).agg(
        [pl.col(c).n_unique().alias(c) for c in columns])
    return [c for c in columns if counts[c].max() > 1]


def method_label(model: str, ablations: str) -> str:
    """A paper-style method name: the model's display name plus its ablations (catalogue labels).

    >>> method_label("svip", "none"), method_label("svip", "no_js"), method_label("vit", "baseline")
    ('SVIP', 'SVIP w/o JSD', 'ViT (baseline)')
    """
    from zslbench.catalogue import ABLATIONS, ablation_label, display_name

    name = display_name(model)
    if ablations in ("", "none"):
        return name
    names = ablations.split(",")
    if len(names) == 1 and names[0] in ABLATIONS and ABLATIONS.get(names[0]).exclusive:
        return f"{name} ({names[0]})"  # it replaced the model: the model's name says what ran
    parts = [ablation_label(a) for a in names]
    return f"{name} " + " ".join(p if p.startswith("w/o") else f"+{p}" for p in parts)


def aggregate(frame: pl.DataFrame, metrics: Sequence[str] = TABLE_METRICS,
              by: Sequence[str] | None = None, extra: Sequence[str] = ()) -> pl.DataFrame:
    """Seeds aggregated per configuration: ``<metric>_mean``, ``<metric>_std`` (sample std, 0 for one
    seed, as :func:`zslbench.metrics.aggregate_seeds`), ``<metric>_n``, ``n`` (runs), ``seeds``,
    ``run_ids``, ``git_commits``, ``oracle`` (any run test-selected) and ``hyperparameters`` (the
    varying ones, ``key=value`` joined by ``, ``).

    ``by`` defaults to :data:`IDENTITY_KEYS` plus :func:`varying_hyperparameters`; ``extra`` keys
    are added to it (columns that are constant within a configuration, kept in the result).
    """
    if frame.is_empty():
        return pl.DataFrame()
    frame = _with_defaults(frame)
    varying = varying_hyperparameters(frame)
    keys = list(by) if by is not None else [k for k in IDENTITY_KEYS if k in frame.columns] + varying
    keys += [k for k in extra if k not in keys]
    frame = _latest_run_per_seed(frame, keys)
    present = [m for m in metrics if m in frame.columns]
    aggregations: list[pl.Expr] = [
        pl.len().alias("n"),
        pl.col("seed").sort().alias("seeds"),
        pl.col("run_id").sort_by("seed").alias("run_ids"),
        pl.col("git_commit").unique().sort().alias("git_commits"),
        pl.col("oracle").any().alias("oracle"),
    ]
    for metric in present:
        values = pl.col(metric).drop_nulls().drop_nans()
        aggregations += [values.mean().alias(f"{metric}_mean"),
                         pl.when(values.count() > 1).then(values.std(ddof=1)).otherwise(0.0).alias(f"{metric}_std"),
                         values.count().alias(f"{metric}_n")]
    for column in ("parent_run_id", "dataset_label"):
        if column in frame.columns and column not in keys:
            aggregations.append(pl.col(column).first().alias(column))
    grouped = frame.group_by(keys, maintain_order=True).agg(aggregations)
    label = [pl.concat_str([pl.lit(f"{c}="), pl.col(c).cast(pl.Utf8).fill_null("")]) for c in varying]
    grouped = grouped.with_columns(
        (pl.concat_str(label, separator=", ") if label else pl.lit("")).alias("hyperparameters"))
    return grouped.sort(keys)


def _latest_run_per_seed(frame: pl.DataFrame, keys: Sequence[str]) -> pl.DataFrame:
    """One run per seed of a configuration (the latest): a repeated seed is a re-run, not another sample."""
    if "start_time" not in frame.columns:
        return frame
    seeded = frame.filter(pl.col("seed").is_not_null()).sort("start_time")
    latest = seeded.unique(subset=[*keys, "seed"], keep="last", maintain_order=True)
    if latest.height < seeded.height:
        older = sorted(set(seeded["run_id"]) - set(latest["run_id"])) if "run_id" in seeded.columns else []
        named = f" (superseded: {', '.join(r[:8] for r in older)})" if older else ""
        warn(f"{seeded.height - latest.height} run(s) repeat a seed of the same configuration; the latest is "
             f"used{named}")
    return pl.concat([latest, frame.filter(pl.col("seed").is_null())], how="diagonal_relaxed")


def _with_defaults(frame: pl.DataFrame) -> pl.DataFrame:
    """Fill the identity columns a hand-made frame may lack, and name each run's benchmark (``dataset_label``:
    the dataset, with its variant where several appear) so variants are never averaged or shown together."""
    additions = []
    for column, default in _STRING_DEFAULTS.items():
        if column not in frame.columns:
            additions.append(pl.lit(default).alias(column))
    if "oracle" not in frame.columns:
        additions.append(pl.lit(False).alias("oracle"))
    if "seed" not in frame.columns:
        additions.append(pl.lit(None, dtype=pl.Int64).alias("seed"))
    if additions:
        frame = frame.with_columns(additions)
    return frame.with_columns(pl.Series("dataset_label", benchmark_labels(frame), dtype=pl.Utf8))


def benchmark_labels(frame: pl.DataFrame) -> list[str]:
    """A readable benchmark name per run: the dataset, and its variant only where a dataset appears in several
    (the synthetic preset — ``synth (tiny)`` — else the data fingerprint: ``CUB (data 1a2b3c4)``).

    >>> f = pl.DataFrame({"dataset": ["synth", "synth", "CUB"], "data.synth_preset": ["tiny", "default", "default"],
    ...                   "data_fingerprint": ["a" * 8, "b" * 8, "c" * 8]})
    >>> benchmark_labels(f)
    ['synth (tiny)', 'synth (default)', 'CUB']
    """
    datasets = frame["dataset"].to_list()
    fingerprints = [f or "" for f in frame["data_fingerprint"].to_list()] if "data_fingerprint" in frame.columns \
        else [""] * frame.height
    presets = [p or "" for p in frame["data.synth_preset"].to_list()] if "data.synth_preset" in frame.columns \
        else [""] * frame.height
    variants: dict[str, set[tuple[str, str]]] = {}
    for dataset, preset, fingerprint in zip(datasets, presets, fingerprints):
        variants.setdefault(dataset, set()).add((preset if dataset == "synth" else "", fingerprint))
    labels = []
    for dataset, preset, fingerprint in zip(datasets, presets, fingerprints):
        mine = variants[dataset]
        if len(mine) == 1:
            labels.append(dataset)
            continue
        preset = preset if dataset == "synth" else ""
        by_preset = {p for p, _ in mine}
        named = preset if preset and len(by_preset) > 1 else ""
        same_name = [f for p, f in mine if p == preset] if named else [f for _, f in mine]
        detail = ", ".join(x for x in (named, f"data {fingerprint[:7]}" if len(same_name) > 1 else "") if x)
        labels.append(f"{dataset} ({detail})")
    return labels


# --------------------------------------------------------------------------- mixing rules
def check_protocols(frame: pl.DataFrame, protocol: str | None = None) -> pl.DataFrame:
    """Keep one protocol version: ``protocol`` if given, the only one present otherwise.

    Several versions without a choice is ambiguous → :class:`UserError` (metric code changed
    between them, so their numbers are not comparable).
    """
    if frame.is_empty() or "protocol" not in frame.columns:
        return frame
    versions = sorted(frame["protocol"].unique().to_list())
    if protocol is not None:
        if str(protocol) not in versions:
            raise UserError(f"no runs with protocol version {protocol!r}; versions present: {', '.join(versions)}")
        return frame.filter(pl.col("protocol") == str(protocol))
    if len(versions) > 1:
        raise UserError(f"the runs use protocol versions {', '.join(versions)}, whose metrics are not comparable; "
                        "pick one with --protocol, or recompute all from stored scores with --gamma-policy")
    return frame


def policy_sentence(gamma: str, space: str, selection: str) -> str:
    """The footnote sentence for a γ policy, γ space and epoch-selection policy."""
    gamma_text = {"none": "no calibration (γ = 0)", "oracle": "γ chosen on the test set†",
                  "val": "γ chosen on validation data", "fixed": "a fixed γ"}.get(gamma, f"γ policy {gamma}")
    selection_text = {"final": "the last epoch", "oracle": "the epoch with the best test H (T1: the best test T1)†",
                      "val": "the epoch chosen on validation data"}.get(selection, f"selection {selection}")
    return f"Epoch selection: {selection_text}; calibrated stacking: {gamma_text} ({space} space)."


def mode_sentence(mode: str) -> str:
    """The footnote sentence for a paper reporting mode.

    >>> mode_sentence("apn").startswith("Paper reporting mode apn†")
    True
    """
    from zslbench.metrics.paper import MODE_SUMMARIES

    return f"Paper reporting mode {mode}† (every number test-selected): {MODE_SUMMARIES[mode]}; no AUSUC."


_WARNED: set[str] = set()


def warn(message: str) -> None:
    """A warning line on stderr (tables stay clean on stdout), once per command: a report builds several
    tables from the same runs."""
    if message in _WARNED:
        return
    _WARNED.add(message)
    sys.stderr.write(f"warning: {message}\n")


__all__ = [
    "IDENTITY_KEYS", "TABLE_METRICS", "aggregate", "check_protocols", "experiment_names", "hyperparameter_columns",
    "load_runs", "method_label", "mode_sentence", "param_columns", "policy_sentence", "require_experiment",
    "run_row", "runs_frame", "varying_hyperparameters",
]
