"""AUSUC: the exact area under the seen–unseen accuracy curve (Chao et al. 2016), and the curve.

Calibration-free: γ sweeps from −∞ (everything predicted seen: U = 0) to +∞ (everything
predicted unseen: S = 0) through every γ at which a decision changes — the breakpoints of
:mod:`zslbench.metrics.stacking`, not a grid — and the operating points (per-class U, S) are
joined by straight lines (trapezoidal rule).

>>> from zslbench.metrics.scores import Scores
>>> scores = Scores(scores_seen=[[2.0, 0.0, 1.0]], labels_seen=[0], scores_unseen=[[0.5, 0.0, 1.0]],
...                 labels_unseen=[2], seen_classes=[0, 1], unseen_classes=[2])
>>> area, curve = ausuc(scores)
>>> area, curve.u.tolist(), curve.s.tolist()     # both right at γ = 0: a perfect curve
(1.0, [0.0, 1.0, 1.0], [1.0, 1.0, 0.0])
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from zslbench.metrics.scores import Scores, Space
from zslbench.metrics.stacking import FieldMapping, GZSLProblem, gzsl_problem


@dataclass(frozen=True)
class SUCurve(FieldMapping):
    """The seen–unseen accuracy curve: one operating point per distinct prediction state.

    Sorted by ``u`` (which is also increasing γ); ``gamma[i]`` is a γ that produces point ``i``
    (``-inf`` for all-seen, ``+inf`` for all-unseen).
    """

    u: np.ndarray
    s: np.ndarray
    gamma: np.ndarray


def ausuc(scores: Scores, space: Space = "logit") -> tuple[float, SUCurve]:
    """Exact area under the seen–unseen accuracy curve of ``scores``, calibration-free.

    γ sweeps from −∞ (everything predicted seen: U = 0) to +∞ (everything predicted unseen:
    S = 0) through every γ at which a decision changes; the operating points (per-class U, S)
    are joined by straight lines (trapezoidal rule). Returns ``(area, curve)``.
    """
    return exact_curve(gzsl_problem(scores, space))


def exact_curve(problem: GZSLProblem) -> tuple[float, SUCurve]:
    """AUSUC and the curve of an already reduced problem (one reduction serves every metric)."""
    points = problem.breakpoints()
    inner = np.empty(max(2 * points.size - 1, 0))
    inner[0::2] = points
    inner[1::2] = points[:-1] + (points[1:] - points[:-1]) / 2
    gammas = np.concatenate([[-np.inf], inner, [np.inf]])
    u = problem.unseen.accuracy_curve(gammas)
    s = problem.seen.accuracy_curve(gammas)
    # one point per run of equal (U, S); its γ: ±inf at the ends, else an interval midpoint
    # when the run has one (a γ exactly on a breakpoint is fragile to rounding)
    run = np.cumsum(np.concatenate([[True], (np.diff(u) != 0) | (np.diff(s) != 0)])) - 1
    priority = np.ones(gammas.size, dtype=np.int8)
    priority[1:-1:2] = 2  # breakpoints sit at the odd positions of `gammas`
    priority[[0, -1]] = 0
    ranked = np.lexsort((priority, run))  # by run, then priority, then γ order (stable)
    _, first_of_run = np.unique(run[ranked], return_index=True)
    keep = ranked[first_of_run]
    u, s, gammas = u[keep], s[keep], gammas[keep]
    order = np.argsort(u, kind="stable")  # already increasing in γ; keeps γ order on ties
    u, s, gammas = u[order], s[order], gammas[order]
    area = float(np.sum(np.diff(u) * (s[1:] + s[:-1]) / 2.0))
    return min(max(area, 0.0), 1.0), SUCurve(u=u, s=s, gamma=gammas)


__all__ = ["SUCurve", "ausuc", "exact_curve"]
