"""Stored test scores of runs: download (cached), and re-evaluation under another γ policy.

Every finished run stores the class scores of its selected epoch as the artifact
``scores/test_scores.npz``, read here as a :class:`~zslbench.metrics.Scores` value by the one
reader of that file (:mod:`zslbench.metrics.scores_file`, which documents its arrays). From them
the metrics are recomputed with :func:`zslbench.metrics.evaluate_scores` — no retraining — so a
table can show how much choosing γ on the test set (``oracle``, marked †) inflates H compared
with no calibration (``none``) or a γ chosen on validation data (``val``).

Class sets: the artifact does not store them, so they are inferred as in xlsa17
(:func:`zslbench.metrics.scores_file.infer_class_sets`): the unseen classes are the labels of
``test_unseen`` (every unseen class has test images), the seen classes all other columns.

Validation for ``val``: validation scores stored beside the test scores (the ``val_*`` arrays
of the scores file) choose γ; otherwise the γ the run
itself chose on its validation protocol (final metric ``val_gamma``, logged when the run used
``eval.gamma_policy=val`` or ``eval.selection=val``) is applied. A run with neither cannot be
re-evaluated under ``val`` (a :class:`UserError` names it).

Epoch selection ``oracle`` (†) is re-applied over every epoch: a run that stored its per-epoch decisions
(``scores/epochs.npz``, :mod:`zslbench.metrics.epochs`) is re-evaluated at every epoch under the new γ
policy, then U/S/H come from the best-H epoch and T1 from the best-T1 epoch (``val`` needs validation
scores per epoch, which are not stored: the selected epoch's scores are used, as for runs without decisions).

Paper reporting modes (:func:`reevaluate_mode`): every run's numbers recomputed as one paper reported
them (:func:`zslbench.metrics.paper_result`) from its per-epoch decisions — always test-selected (†).

Downloads are cached per run under ``<tmp>/zslbench-artifacts/<run id>/`` (finished runs never
change their artifacts).
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import polars as pl

from zslbench.core.version import PROTOCOL_VERSION
from zslbench.core.errors import UserError, unknown_name

if TYPE_CHECKING:  # pragma: no cover
    from zslbench.metrics import EpochDecisions, Scores

SCORES_ARTIFACT = "scores/test_scores.npz"
DECISIONS_ARTIFACT = "scores/epochs.npz"
#: The numbers a paper mode replaces (AUSUC is no part of any paper's protocol: it is left out).
MODE_METRICS = ("zsl_t1", "gzsl_u", "gzsl_s", "gzsl_h", "gamma", "gzsl_u_max", "gzsl_s_max", "ausuc")
RESOLVED_ARTIFACT = "resolved.yaml"
REEVALUATION_POLICIES = ("none", "val", "oracle")


def cache_root() -> Path:
    """Where downloaded artifacts are kept: ``$ZSLBENCH_ARTIFACT_CACHE`` or ``<tmp>/zslbench-artifacts``."""
    return Path(os.environ.get("ZSLBENCH_ARTIFACT_CACHE") or Path(tempfile.gettempdir()) / "zslbench-artifacts")


def download_artifact(run_id: str, artifact: str, tracking_uri: str = "", cache_dir: Path | None = None,
                      required: bool = True) -> Path | None:
    """The local path of a run's artifact, downloaded once into the per-run cache.

    ``required=False`` returns ``None`` for a missing artifact instead of raising a :class:`UserError`.
    """
    from zslbench.tracking import ArtifactUnavailable, download_run_artifact

    target_dir = (cache_dir or cache_root()) / run_id
    target = target_dir / artifact
    if target.is_file():
        return target
    target_dir.mkdir(parents=True, exist_ok=True)
    try:  # atomic: a half-downloaded file is never cached
        return download_run_artifact(run_id, artifact, target_dir, tracking_uri)
    except ArtifactUnavailable as exc:
        if not required:
            return None
        raise UserError(f"run {run_id} has no artifact {artifact} ({exc.reason}); "
                        "it was logged without it (track.log_scores=false?) — re-run it") from None


def _stored_arrays(run_id: str, tracking_uri: str, cache_dir: Path | None) -> dict[str, np.ndarray]:
    from zslbench.metrics import scores_file

    return scores_file.read_arrays(download_artifact(run_id, SCORES_ARTIFACT, tracking_uri, cache_dir))


def load_scores(run_id: str, tracking_uri: str = "", cache_dir: Path | None = None) -> Scores:
    """A run's stored test scores (``scores/test_scores.npz``, downloaded and cached), class sets inferred."""
    from zslbench.metrics import scores_file

    arrays = _stored_arrays(run_id, tracking_uri, cache_dir)
    missing = scores_file.missing_keys(arrays)
    if missing:
        raise UserError(f"the scores artifact of run {run_id} lacks {', '.join(missing)}; re-run it")
    return scores_file.from_arrays(arrays)


def load_validation_scores(run_id: str, tracking_uri: str = "", cache_dir: Path | None = None) -> Scores | None:
    """The validation scores stored beside a run's test scores (the ``val_*`` arrays), or None."""
    from zslbench.metrics import scores_file

    arrays = _stored_arrays(run_id, tracking_uri, cache_dir)
    return None if scores_file.missing_keys(arrays, "val") else scores_file.from_arrays(arrays, split="val")


def load_decisions(run_id: str, tracking_uri: str = "", cache_dir: Path | None = None,
                   required: bool = True) -> EpochDecisions | None:
    """A run's per-epoch decisions (``scores/epochs.npz``), or None when absent and not ``required``."""
    from zslbench.metrics import epochs

    path = download_artifact(run_id, DECISIONS_ARTIFACT, tracking_uri, cache_dir, required=required)
    return None if path is None else epochs.load(path)


def selected_metrics(decisions: EpochDecisions, selection: str, policy: str, space: str = "logit") -> dict[str, Any]:
    """Epoch selection ``final`` or ``oracle`` (†) re-applied under γ ``policy`` on per-epoch decisions: every
    epoch evaluated; under ``oracle`` U/S/H (with γ and AUSUC) from the best-H epoch, T1 from the best-T1 epoch."""
    from zslbench.metrics import evaluate_epoch, select_epoch

    rows = [{"epoch": int(epoch), **evaluate_epoch(decisions, i, policy, space=space)}
            for i, epoch in enumerate(decisions.epochs)]
    choice = select_epoch(rows, selection)
    metrics = dict(rows[choice.epoch_h])
    metrics["zsl_t1"] = rows[choice.epoch_t1]["zsl_t1"]
    metrics["selected_epoch"] = float(rows[choice.epoch_h]["epoch"])
    metrics["selected_epoch_t1"] = float(rows[choice.epoch_t1]["epoch"])
    del metrics["epoch"]
    return metrics


def evaluate_run_scores(scores: Scores, policy: str, space: str = "logit", val_gamma: float | None = None,
                        run_id: str = "", val: Scores | None = None) -> dict[str, Any]:
    """Protocol metrics of one run's stored scores under γ ``policy`` (none | val | oracle).

    Under ``val``, γ is chosen on the validation scores ``val`` when the run stored them, else the
    run's own validation γ (``val_gamma``) is applied.
    """
    from zslbench.metrics import evaluate_scores

    if policy not in REEVALUATION_POLICIES:
        raise unknown_name("gamma policy", policy, REEVALUATION_POLICIES)
    if policy == "val":
        if val is not None:
            return evaluate_scores(scores, gamma_policy="val", space=space, val=val)
        if val_gamma is None or not np.isfinite(val_gamma):
            raise UserError(f"run {run_id or '?'} has no validation scores and no validation γ, so --gamma-policy val "
                            "cannot re-evaluate it; re-run it with --set eval.gamma_policy=val, "
                            "or use --gamma-policy none|oracle")
        metrics = evaluate_scores(scores, gamma_policy="fixed", gamma=float(val_gamma), space=space)
        metrics["gamma_policy"] = "val"
        return metrics
    return evaluate_scores(scores, gamma_policy=policy, space=space)


def reevaluate(frame: pl.DataFrame, policy: str, tracking_uri: str = "", cache_dir: Path | None = None) -> pl.DataFrame:
    """The runs frame with every run's metrics recomputed from its stored scores under ``policy``.

    The result's ``gamma_policy`` is ``policy``, ``protocol`` the current protocol version (the
    metric code that recomputed them) and ``oracle`` is set for test-selected numbers. Runs whose
    artifact is missing or that cannot be evaluated under ``val`` are named in one UserError line.
    """
    if policy not in REEVALUATION_POLICIES:
        raise unknown_name("gamma policy", policy, REEVALUATION_POLICIES)
    updates: list[dict[str, Any]] = []
    missing: list[str] = []
    no_val: list[str] = []
    for record in frame.iter_rows(named=True):
        run_id = record["run_id"]
        try:
            scores = load_scores(run_id, tracking_uri, cache_dir)
            val = load_validation_scores(run_id, tracking_uri, cache_dir) if policy == "val" else None
        except UserError:
            missing.append(run_id)
            continue
        val_gamma = record.get("val_gamma")
        selection = record.get("selection") or "final"
        decisions = load_decisions(run_id, tracking_uri, cache_dir, required=False) \
            if selection in ("final", "oracle") and policy != "val" else None
        try:
            if decisions is not None:
                metrics = selected_metrics(decisions, selection, policy, record.get("gamma_space") or "logit")
            else:
                metrics = evaluate_run_scores(scores, policy, record.get("gamma_space") or "logit", val_gamma, run_id,
                                              val=val)
        except UserError:
            no_val.append(run_id)
            continue
        updates.append({"run_id": run_id, **{k: float(v) for k, v in metrics.items()
                                              if isinstance(v, (int, float)) and not isinstance(v, bool)}})
    if missing:
        raise UserError(f"{len(missing)} run(s) have no {SCORES_ARTIFACT} to re-evaluate ({', '.join(missing[:5])}"
                        f"{', …' if len(missing) > 5 else ''}); re-run them with track.log_scores on, or drop --gamma-policy")
    if no_val:
        raise UserError(f"--gamma-policy val needs validation scores or a validation γ, which run(s) "
                        f"{', '.join(no_val[:5])}{', …' if len(no_val) > 5 else ''} lack; re-run them with "
                        "--set eval.gamma_policy=val, or use --gamma-policy none|oracle")
    recomputed = pl.DataFrame(updates)
    replaced = [c for c in recomputed.columns if c != "run_id"]
    result = frame.drop([c for c in replaced if c in frame.columns]).join(recomputed, on="run_id", how="left")
    return result.with_columns(
        pl.lit(policy).alias("gamma_policy"),
        pl.lit(PROTOCOL_VERSION).alias("protocol"),
        pl.lit("standard").alias("mode"),  # a run logged under a paper mode gets the protocol's numbers here
        ((pl.col("selection") == "oracle") | pl.lit(policy == "oracle")).alias("oracle"),
    ).select([c for c in frame.columns if c != "mode"] + ["mode"] + [c for c in replaced if c not in frame.columns])


def reevaluate_mode(frame: pl.DataFrame, mode: str, tracking_uri: str = "", cache_dir: Path | None = None) -> pl.DataFrame:
    """The runs frame with every run's numbers recomputed under paper ``mode`` (svip | transzero | apn) from its
    per-epoch decisions; ``mode`` and ``oracle`` (always: test-selected) set, AUSUC left out. Runs without
    stored decisions are named in one UserError line."""
    from zslbench.metrics import PAPER_MODES, paper_result

    if mode not in PAPER_MODES:
        raise unknown_name("paper reporting mode", mode, PAPER_MODES)
    updates: list[dict[str, Any]] = []
    missing: list[str] = []
    for record in frame.iter_rows(named=True):
        run_id = record["run_id"]
        try:
            decisions = load_decisions(run_id, tracking_uri, cache_dir)
        except UserError:
            missing.append(run_id)
            continue
        result = paper_result(mode, decisions, record["dataset"])  # type: ignore[arg-type]
        row: dict[str, Any] = {"run_id": run_id, "ausuc": None}
        for key in MODE_METRICS[:-1]:
            value = float(getattr(result, key))
            row[key] = None if np.isnan(value) else value
        row["selected_epoch"] = None if result.epoch_h is None else float(result.epoch_h)
        row["selected_epoch_t1"] = None if result.epoch_t1 is None else float(result.epoch_t1)
        updates.append(row)
    if missing:
        raise UserError(f"{len(missing)} run(s) have no {DECISIONS_ARTIFACT} to recompute --mode {mode} from "
                        f"({', '.join(missing[:5])}{', …' if len(missing) > 5 else ''}); they were logged before runs "
                        "stored their per-epoch decisions (or with track.log_scores off) — re-run them")
    schema = {c: (pl.Utf8 if c == "run_id" else pl.Float64) for c in updates[0]} if updates else {}
    recomputed = pl.DataFrame(updates, schema=schema)
    replaced = [c for c in recomputed.columns if c != "run_id"]
    result_frame = frame.drop([c for c in replaced if c in frame.columns]).join(recomputed, on="run_id", how="left")
    return result_frame.with_columns(
        pl.lit(mode).alias("mode"),
        pl.lit(PROTOCOL_VERSION).alias("protocol"),
        pl.lit(True).alias("oracle"),
    ).select([c for c in frame.columns if c != "mode"] + ["mode"] + [c for c in replaced if c not in frame.columns])


__all__ = ["DECISIONS_ARTIFACT", "REEVALUATION_POLICIES", "SCORES_ARTIFACT", "cache_root", "download_artifact",
           "evaluate_run_scores", "load_decisions", "load_scores", "load_validation_scores", "selected_metrics",
           "reevaluate", "reevaluate_mode"]
