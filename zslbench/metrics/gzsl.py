"""ZSL top-1, GZSL U/S/H with calibrated stacking, γ sweeps, and the γ policies (PROTOCOL.md §3).

* ZSL T1: test_unseen images, argmax among the **unseen classes only**, per-class over unseen.
* GZSL: argmax among seen ∪ unseen (all columns in the standard setting); U = per-class accuracy
  on test_unseen, S on test_seen, H = 2US/(U+S), 0 when U+S = 0.
* Calibrated stacking subtracts γ from the seen-class scores — raw scores (``space="logit"``) or
  softmax probabilities (``space="prob"``) — the same γ for both splits.
* γ policies: ``none`` (γ = 0), ``fixed`` / ``fixed:<value>``, ``val`` (chosen on validation
  scores), ``oracle`` (chosen on the test scores; results marked †).

>>> from zslbench.metrics.scores import Scores
>>> scores = Scores(scores_seen=[[2.0, 0.0, 1.0]], labels_seen=[0],
...                 scores_unseen=[[0.5, 0.0, 1.0], [2.0, 0.0, 1.0]], labels_unseen=[2, 2],
...                 seen_classes=[0, 1], unseen_classes=[2])
>>> r = gzsl_metrics(scores)
>>> (r.u, r.s, r.h)
(0.5, 1.0, 0.6666666666666666)
>>> gzsl_metrics(scores, gamma=1.5)["u"]
1.0
>>> zsl_accuracy(scores)                         # only class 2 competes
1.0
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np
from numpy.typing import ArrayLike

from zslbench.core.errors import UserError, unknown_name
from zslbench.metrics.accuracy import as_ids, class_mean
from zslbench.metrics.scores import Scores, Space, as_score_matrix
from zslbench.metrics.stacking import GZSLResult, argmax_columns, check_gamma, check_gammas, gzsl_problem

GAMMA_POLICIES = ("none", "fixed", "val", "oracle")

VAL_SPLIT_MISSING = (
    "gamma policy 'val' needs a validation split; this dataset/run has none — "
    "use --set eval.gamma_policy=none or oracle"
)


@dataclass(frozen=True)
class GammaChoice:
    """A chosen calibration offset. Unpacks as ``gamma, h = choice``.

    ``h`` is H at ``gamma`` on the scores the choice was made on (NaN for ``none``/``fixed``
    without scores). ``oracle`` is True when γ was chosen on the test set (results marked †).
    """

    gamma: float
    h: float
    policy: str
    oracle: bool

    def __iter__(self) -> Iterator[float]:
        return iter((self.gamma, self.h))


def zsl_accuracy(scores: Scores) -> float:
    """ZSL top-1: on the unseen split, argmax among the unseen classes only, per-class accuracy.

    Ranks the raw scores (a softmax would not change the ranking, but may underflow to ties).
    """
    _, unseen_name = scores.split_names
    matrix = as_score_matrix(scores.scores_unseen, unseen_name)
    labels = as_ids(scores.labels_unseen, unseen_name)
    pred = scores.unseen_classes[argmax_columns(matrix, scores.unseen_classes)]
    return class_mean(pred == labels, labels)


def gzsl_metrics(scores: Scores, gamma: float = 0.0, space: Space = "logit") -> GZSLResult:
    """GZSL U, S, H with calibrated stacking: γ is subtracted from the seen-class scores.

    ``space="prob"`` applies γ to softmax probabilities (softmax over seen ∪ unseen) instead of
    raw scores; the two are not equivalent. U is per-class accuracy on the unseen split (over
    unseen classes), S on the seen split (over seen classes); H = 2US/(U+S), 0 when U+S = 0.
    """
    return gzsl_problem(scores, space).result(check_gamma(gamma))


def gzsl_sweep(scores: Scores, gammas: ArrayLike, space: Space = "logit") -> dict[str, np.ndarray]:
    """U, S, H at every γ of ``gammas`` at once (no loop over γ).

    Returns ``{"gamma", "u", "s", "h"}``, arrays aligned with ``gammas``; each entry equals
    :func:`gzsl_metrics` at that γ (up to float summation order).
    """
    return gzsl_problem(scores, space).sweep(check_gammas(gammas))


def parse_gamma_policy(policy: str, gamma: float) -> tuple[str, float]:
    """Accept ``none``, ``fixed`` (with ``gamma``), ``fixed:<value>``, ``val``, ``oracle``.

    Returns the policy name and its fixed γ (0 for every policy but ``fixed``).

    >>> parse_gamma_policy("fixed:0.5", 0.0), parse_gamma_policy("oracle", 0.3)
    (('fixed', 0.5), ('oracle', 0.0))
    """
    name, _, value = str(policy).partition(":")
    if name not in GAMMA_POLICIES:
        raise unknown_name("gamma policy", str(policy), GAMMA_POLICIES)
    if value:
        if name != "fixed":
            raise UserError(f"gamma policy {policy!r} takes no value; only 'fixed:<value>' does")
        try:
            gamma = float(value)
        except ValueError:
            raise UserError(
                f"gamma policy {policy!r}: the value after 'fixed:' must be a number, e.g. fixed:0.5"
            ) from None
    if math.isnan(float(gamma)):
        raise UserError("gamma is NaN; give a number, e.g. --set eval.gamma=0.5")
    return name, float(gamma) if name == "fixed" else 0.0


def choose_gamma(policy: str, scores: Scores | None = None, *, gamma: float = 0.0,
                 space: Space = "logit") -> GammaChoice:
    """Choose the calibration offset γ; returns ``GammaChoice`` (unpacks as ``gamma, h``).

    ``scores`` are the ones γ is chosen on: the **validation** scores for ``val``, the **test**
    scores for ``oracle`` (the choice is then marked ``oracle=True``). Policies: ``none`` → 0;
    ``fixed`` → ``gamma`` (or ``"fixed:<value>"``); ``val``/``oracle`` → the γ maximising H on
    ``scores``, searched over the exact breakpoints, so H is the true maximum, not a grid
    approximation. ``h`` is H at the chosen γ on ``scores`` (NaN when ``none``/``fixed`` get none).

    >>> choose_gamma("fixed:0.25")
    GammaChoice(gamma=0.25, h=nan, policy='fixed', oracle=False)
    """
    name, value = parse_gamma_policy(policy, gamma)
    if scores is None:
        if name in ("val", "oracle"):
            raise ValueError(f"gamma policy {name!r} needs the scores to choose γ on")
        return GammaChoice(gamma=value, h=math.nan, policy=name, oracle=False)
    problem = gzsl_problem(scores, space)
    if name in ("val", "oracle"):
        value, h = problem.best_gamma()
    else:
        h = problem.result(value).h
    return GammaChoice(gamma=value, h=h, policy=name, oracle=name == "oracle")


__all__ = ["GAMMA_POLICIES", "VAL_SPLIT_MISSING", "GammaChoice", "choose_gamma", "gzsl_metrics", "gzsl_sweep",
           "parse_gamma_policy", "zsl_accuracy"]
