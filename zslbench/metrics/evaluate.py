"""Every protocol metric of one :class:`~zslbench.metrics.scores.Scores` value, as one flat dict.

This is what the trainer logs per epoch and what stored scores are re-evaluated with: ZSL T1,
GZSL U/S/H at the γ of the run's policy, the uncalibrated U/S/H, AUSUC, and the oracle γ and H
(always computed, as a reference). The scores are reduced to per-sample switches once
(:mod:`zslbench.metrics.stacking`) and every number is read off that reduction.

>>> from zslbench.metrics.scores import Scores
>>> scores = Scores(scores_seen=[[2.0, 0.0, 1.0]], labels_seen=[0],
...                 scores_unseen=[[0.5, 0.0, 1.0], [1.5, 0.0, 1.0]], labels_unseen=[2, 2],
...                 seen_classes=[0, 1], unseen_classes=[2])
>>> report = evaluate_scores(scores, gamma_policy="oracle")   # margins: seen 1.0; unseen −0.5, 0.5
>>> report["gzsl_h0"], report["gzsl_h"], report["gamma"], report["ausuc"]
(0.6666666666666666, 1.0, 0.75, 1.0)
"""

from __future__ import annotations

from zslbench.core.errors import UserError
from zslbench.metrics.accuracy import class_mean
from zslbench.metrics.su_curve import exact_curve
from zslbench.metrics.gzsl import VAL_SPLIT_MISSING, parse_gamma_policy, zsl_accuracy
from zslbench.metrics.scores import Scores, Space, check_space
from zslbench.metrics.epochs import EpochDecisions
from zslbench.metrics.stacking import GZSLProblem, gzsl_problem

#: The metrics every results table reports, in order, with their short column headers.
REPORTED_METRICS = {"zsl_t1": "T1", "gzsl_u": "U", "gzsl_s": "S", "gzsl_h": "H", "ausuc": "AUSUC"}

def evaluate_scores(scores: Scores, gamma_policy: str = "none", gamma: float = 0.0, space: Space = "logit",
                    val: Scores | None = None) -> dict[str, float | str]:
    """All protocol metrics of ``scores`` (the test scores), as one flat dict.

    Keys: ``zsl_t1``; ``gzsl_u, gzsl_s, gzsl_h`` at the γ chosen by ``gamma_policy``;
    ``gamma``, ``gamma_policy``, ``gamma_space``; ``gzsl_u0, gzsl_s0, gzsl_h0`` uncalibrated
    (γ = 0); ``ausuc``; ``gzsl_h_oracle`` and ``gamma_oracle`` (test-selected, always computed as
    a reference). ``val`` holds the validation scores the ``val`` policy chooses γ on.
    """
    policy, _ = parse_gamma_policy(gamma_policy, gamma)
    check_space(space)
    if policy == "val" and val is None:
        raise UserError(VAL_SPLIT_MISSING)
    problem = gzsl_problem(scores, space)
    if space == "logit":
        zsl_t1 = class_mean(problem.unseen.best_unseen == problem.unseen.labels, problem.unseen.labels)
    else:  # probabilities of unseen classes may underflow to ties; ZSL ranks raw scores
        zsl_t1 = zsl_accuracy(scores)
    val_problem = gzsl_problem(val, space) if val is not None else None
    return evaluate_problem(problem, zsl_t1, gamma_policy, gamma, space, val_problem)


def evaluate_problem(problem: GZSLProblem, zsl_t1: float, gamma_policy: str = "none", gamma: float = 0.0,
                     space: Space = "logit", val: GZSLProblem | None = None) -> dict[str, float | str]:
    """The metrics of :func:`evaluate_scores` from an already reduced problem (in ``space``) and its ZSL T1."""
    policy, fixed_gamma = parse_gamma_policy(gamma_policy, gamma)
    if policy == "val" and val is None:
        raise UserError(VAL_SPLIT_MISSING)
    uncalibrated = problem.result(0.0)
    gamma_oracle, h_oracle = problem.best_gamma()
    if policy == "none":
        chosen = 0.0
    elif policy == "fixed":
        chosen = fixed_gamma
    elif policy == "oracle":
        chosen = gamma_oracle
    else:
        chosen = val.best_gamma()[0]  # type: ignore[union-attr]
    calibrated = problem.result(chosen)
    area, _ = exact_curve(problem)
    return {
        "zsl_t1": zsl_t1,
        "gzsl_u": calibrated.u,
        "gzsl_s": calibrated.s,
        "gzsl_h": calibrated.h,
        "gamma": chosen,
        "gamma_policy": policy,
        "gamma_space": space,
        "gzsl_u0": uncalibrated.u,
        "gzsl_s0": uncalibrated.s,
        "gzsl_h0": uncalibrated.h,
        "ausuc": area,
        "gzsl_h_oracle": h_oracle,
        "gamma_oracle": gamma_oracle,
    }


def evaluate_epoch(decisions: EpochDecisions, index: int, gamma_policy: str = "none", gamma: float = 0.0,
                   space: Space = "logit") -> dict[str, float | str]:
    """The metrics of :func:`evaluate_scores` for the ``index``-th epoch of stored decisions — the same
    numbers the full scores give (``val`` is not available: validation scores are not stored per epoch)."""
    check_space(space)
    logit = decisions.problem(index, "logit")
    zsl_t1 = class_mean(logit.unseen.best_unseen == logit.unseen.labels, logit.unseen.labels)
    return evaluate_problem(logit if space == "logit" else decisions.problem(index, space), zsl_t1,
                            gamma_policy, gamma, space)


__all__ = ["evaluate_epoch", "evaluate_problem", "evaluate_scores"]
