"""ZSL and GZSL metrics, calibrated stacking, exact γ search and AUSUC (PROTOCOL.md §3) — on one scores object.

One implementation used everywhere; numpy only, no model code (imports nothing of zslbench but
:mod:`zslbench.core`, and never torch).

Modules
-------
* :mod:`~zslbench.metrics.scores` — :class:`Scores`, the value every metric reads: both splits'
  score matrices over all classes, labels, class sets and kept super-patches, checked once;
* :mod:`~zslbench.metrics.scores_file` — the one reader and writer of the stored scores file;
* :mod:`~zslbench.metrics.accuracy` — per-class (macro) and micro accuracy, H;
* :mod:`~zslbench.metrics.stacking` — calibrated stacking reduced to one switch per sample (exact γ);
* :mod:`~zslbench.metrics.gzsl` — ZSL T1, GZSL U/S/H, γ sweeps, γ policies and :func:`choose_gamma`;
* :mod:`~zslbench.metrics.su_curve` — the seen–unseen curve and its exact area (AUSUC);
* :mod:`~zslbench.metrics.evaluate` — every protocol metric of one :class:`Scores` as a flat dict;
* :mod:`~zslbench.metrics.epochs` — every evaluated epoch's decisions, compactly (the ``epochs.npz`` file);
* :mod:`~zslbench.metrics.paper` — paper reporting modes (SVIP, TransZero, APN), recomputed from them;
* :mod:`~zslbench.metrics.selection` — epoch selection policies and seed aggregation.

Conventions
-----------
* Scores are ``[N, C]`` float arrays over **all** classes: column ``c`` is global class id ``c``.
  Labels and class-id arrays hold global ids.
* Accuracies are fractions in ``[0, 1]``. Per-class (macro) accuracy averages over the classes
  *present in the split*; micro (per-sample) accuracy is available but never the default.
* argmax ties go to the lowest class id.
* GZSL predicts among the candidate classes ``seen ∪ unseen`` (all columns in the standard
  setting; a validation split can use fewer). Calibrated stacking subtracts γ from the seen-class
  scores, in ``space="logit"`` (raw scores) or ``space="prob"`` (softmax over the candidate
  classes first). The same γ applies to both splits.

Example
-------
>>> import numpy as np
>>> scores = Scores(scores_seen=[[2.0, 0.0, 1.0]], labels_seen=[0],               # test_seen, label 0
...                 scores_unseen=[[0.5, 0.0, 1.0], [2.0, 0.0, 1.0]], labels_unseen=[2, 2],
...                 seen_classes=[0, 1], unseen_classes=[2])
>>> r = gzsl_metrics(scores)
>>> (r.u, r.s, r.h)
(0.5, 1.0, 0.6666666666666666)
>>> gzsl_metrics(scores, gamma=1.5)["u"]
1.0
>>> gzsl_metrics(scores.calibrated(1.5))["u"]     # the same decisions, on explicitly shifted scores
1.0
"""

from __future__ import annotations

from zslbench.metrics import epochs, scores_file
from zslbench.metrics.accuracy import harmonic_mean, overall_accuracy, per_class_accuracy
from zslbench.metrics.epochs import EpochDecisions
from zslbench.metrics.evaluate import REPORTED_METRICS, evaluate_epoch, evaluate_problem, evaluate_scores
from zslbench.metrics.gzsl import (
    GAMMA_POLICIES,
    VAL_SPLIT_MISSING,
    GammaChoice,
    choose_gamma,
    gzsl_metrics,
    gzsl_sweep,
    zsl_accuracy,
)
from zslbench.metrics.paper import EVAL_MODES, PAPER_MODES, PaperResult, check_mode, paper_result
from zslbench.metrics.scores import SPACES, Scores, Space
from zslbench.metrics.scores_file import ScoresFileError
from zslbench.metrics.selection import SELECTION_POLICIES, EpochSelection, aggregate_seeds, select_epoch
from zslbench.metrics.stacking import GZSLResult
from zslbench.metrics.su_curve import SUCurve, ausuc

__all__ = [
    "EVAL_MODES",
    "GAMMA_POLICIES",
    "PAPER_MODES",
    "REPORTED_METRICS",
    "SELECTION_POLICIES",
    "SPACES",
    "VAL_SPLIT_MISSING",
    "EpochDecisions",
    "EpochSelection",
    "GammaChoice",
    "GZSLResult",
    "PaperResult",
    "SUCurve",
    "Scores",
    "ScoresFileError",
    "Space",
    "aggregate_seeds",
    "ausuc",
    "check_mode",
    "choose_gamma",
    "epochs",
    "evaluate_epoch",
    "evaluate_problem",
    "evaluate_scores",
    "gzsl_metrics",
    "gzsl_sweep",
    "harmonic_mean",
    "paper_result",
    "overall_accuracy",
    "per_class_accuracy",
    "scores_file",
    "select_epoch",
    "zsl_accuracy",
]
