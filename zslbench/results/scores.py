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
    from zslbench.metrics import Scores

SCORES_ARTIFACT = "scores/test_scores.npz"
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
        try:
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
        ((pl.col("selection") == "oracle") | pl.lit(policy == "oracle")).alias("oracle"),
    ).select([c for c in frame.columns] + [c for c in replaced if c not in frame.columns])


__all__ = ["REEVALUATION_POLICIES", "SCORES_ARTIFACT", "cache_root", "download_artifact", "evaluate_run_scores",
           "load_scores", "load_validation_scores", "reevaluate"]
