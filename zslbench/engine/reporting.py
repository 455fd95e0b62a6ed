"""What a finished run reports: the selected epochs' metrics, its per-epoch decisions, and a paper mode.

* **Epoch selection** (``eval.selection``): ``final`` and ``val`` report one epoch; ``oracle`` (†) reports
  T1 from the best-T1 epoch and U/S/H (with γ, AUSUC) from the best-H epoch, as the reference
  repositories track them (PROTOCOL.md §3).
* **Per-epoch decisions**: every evaluated epoch's score files (``<run>/scores/epochNNN.npz``) are reduced
  to ``scores/epochs.npz`` (:mod:`zslbench.metrics.epochs`), logged with the run, so epoch selection
  and the paper modes can be recomputed later without retraining.
* **Paper modes** (``eval.mode=svip|transzero|apn``, †): the reported numbers are the mode's
  (:func:`zslbench.metrics.paper_result`), marked test-selected.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any, Mapping, Sequence

from zslbench.config import Config
from zslbench.metrics import EpochDecisions, EpochSelection, paper_result, scores_file

DECISIONS_ARTIFACT = "scores/epochs.npz"
#: Keys of an epoch's metrics that the best-T1 epoch supplies under oracle selection.
T1_KEYS = ("zsl_t1",)
#: The final keys a paper mode sets (besides its epochs).
PAPER_KEYS = ("zsl_t1", "gzsl_u", "gzsl_s", "gzsl_h", "gamma", "gzsl_u_max", "gzsl_s_max")


def score_scale(cfg: Config) -> float:
    """σ of the run's stored scores: ``model.logit_scale`` for models that scale by it, else 1."""
    return float(getattr(cfg.model, "logit_scale", 1.0))


def selected_row(evaluated: Sequence[Mapping[str, Any]], choice: EpochSelection) -> dict[str, Any]:
    """The metrics a selection reports: the selected epoch's, with T1 from the best-T1 epoch under ``oracle``.

    >>> rows = [{"epoch": 0, "zsl_t1": 0.9, "gzsl_h": 0.1}, {"epoch": 1, "zsl_t1": 0.5, "gzsl_h": 0.4}]
    >>> from zslbench.metrics import select_epoch
    >>> row = selected_row(rows, select_epoch(rows, "oracle"))
    >>> row["zsl_t1"], row["gzsl_h"], row["epoch"], row["selected_epoch_t1"]
    (0.9, 0.4, 1, 0)
    """
    row = dict(evaluated[choice.epoch_h if choice.oracle else choice.epoch])
    t1_row = evaluated[choice.epoch_t1 if choice.oracle else choice.epoch]
    for key in T1_KEYS:
        if key in t1_row:
            row[key] = t1_row[key]
    row["selected_epoch_t1"] = int(t1_row["epoch"])
    return row


def epoch_decisions(out_dir: Path, evaluated: Sequence[Mapping[str, Any]], info, scale: float) -> EpochDecisions | None:
    """The run's per-epoch decisions from its score files, or None when an evaluated epoch has none."""
    paths = [out_dir / "scores" / f"epoch{int(row['epoch']):03d}.npz" for row in evaluated]
    if not paths or not all(p.exists() for p in paths):
        return None

    def scores(path: Path):
        if info is None:
            return scores_file.load(path)
        return scores_file.load(path, seen_classes=info.seen_classes, unseen_classes=info.unseen_classes)

    return EpochDecisions.from_scores(((int(row["epoch"]), scores(p)) for row, p in zip(evaluated, paths)), scale)


def paper_final(mode: str, decisions: EpochDecisions, dataset: str) -> dict[str, Any]:
    """The final-metric keys a paper ``mode`` reports (fractions; † always), for the run's final dict."""
    result = paper_result(mode, decisions, dataset)
    final: dict[str, Any] = {key: float(getattr(result, key)) for key in PAPER_KEYS
                             if not math.isnan(float(getattr(result, key)))}
    final.update({"mode": mode, "oracle": True})
    if result.epoch_h is not None:
        final["selected_epoch"] = result.epoch_h
    if result.epoch_t1 is not None:
        final["selected_epoch_t1"] = result.epoch_t1
    return final


__all__ = ["DECISIONS_ARTIFACT", "epoch_decisions", "paper_final", "score_scale", "selected_row"]
