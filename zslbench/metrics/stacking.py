"""Calibrated stacking, exactly: every sample's GZSL decision as one switch at its score margin.

Subtracting γ from every seen score never changes *which* seen class is best for a sample, nor
which unseen class is best. So each sample's GZSL prediction is one of two candidates: its best
seen class (for small γ) or its best unseen class (for large γ). It switches exactly once, at
``γ = margin = best_seen_score − best_unseen_score``; at ``γ == margin`` the candidate with the
lower class id wins. Decisions are taken on this margin (computed once, in float64), which is the
shifted argmax up to the rounding of the shift itself.

Macro accuracy is linear in per-sample correctness (a correct sample of class ``c`` adds
``1 / (n_c · K)``), so accuracy as a function of γ is a step function: its value at any set of
γ is one sort plus one cumulative sum, and its breakpoints are the margins of the samples whose
switch changes correctness. That gives vectorised γ sweeps, the exact γ maximising H (no grid),
and the exact AUSUC curve (:mod:`zslbench.metrics.su_curve`).

>>> from zslbench.metrics.scores import Scores
>>> scores = Scores(scores_seen=[[2.0, 0.0, 1.0]], labels_seen=[0], scores_unseen=[[0.5, 0.0, 1.0]],
...                 labels_unseen=[2], seen_classes=[0, 1], unseen_classes=[2])
>>> problem = gzsl_problem(scores, "logit")
>>> problem.unseen.margin.tolist(), problem.result(0.0).u, problem.result(0.75).u
([-0.5], 1.0, 1.0)
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import dataclass, fields
from typing import Any

import numpy as np
from numpy.typing import ArrayLike

from zslbench.metrics.accuracy import Average, as_ids, class_mean, harmonic_mean
from zslbench.metrics.scores import Scores, as_score_matrix, check_space, softmax_rows

# --------------------------------------------------------------------------- result type


class FieldMapping:
    """Read-only mapping access to a dataclass' fields: ``r["u"]``, ``dict(r)``, ``r.as_dict()``."""

    def keys(self) -> tuple[str, ...]:
        return tuple(f.name for f in fields(self))  # type: ignore[arg-type]

    def __getitem__(self, key: str) -> Any:
        if key not in self.keys():
            raise KeyError(key)
        return getattr(self, key)

    def __iter__(self) -> Iterator[str]:
        return iter(self.keys())

    def __len__(self) -> int:
        return len(self.keys())

    def as_dict(self) -> dict[str, Any]:
        return {key: getattr(self, key) for key in self.keys()}


@dataclass(frozen=True)
class GZSLResult(FieldMapping):
    """GZSL accuracies at one calibration offset γ (fractions in [0, 1]).

    >>> dict(GZSLResult(u=0.5, s=1.0, h=2 / 3, gamma=0.0))["s"]
    1.0
    """

    u: float
    s: float
    h: float
    gamma: float


# --------------------------------------------------------------------------- γ values


def check_gamma(gamma: float) -> float:
    """``gamma`` as a float; NaN is refused (it would silently predict everything seen).

    >>> check_gamma(1)
    1.0
    """
    value = float(gamma)
    if math.isnan(value):
        raise ValueError("gamma is NaN")
    return value


def check_gammas(gammas: ArrayLike) -> np.ndarray:
    """``gammas`` as a flat float64 array without NaN."""
    values = np.asarray(gammas, dtype=np.float64)
    if values.ndim != 1:
        values = values.reshape(-1)
    if np.isnan(values).any():
        raise ValueError("gammas contain NaN")
    return values


# --------------------------------------------------------------------------- per-sample candidates


def argmax_columns(matrix: np.ndarray, columns: np.ndarray) -> np.ndarray:
    """Per row, the position in ``columns`` (sorted) of the largest entry; a slice when contiguous."""
    if columns[-1] - columns[0] + 1 == columns.size:
        return matrix[:, columns[0] : columns[-1] + 1].argmax(axis=1)
    return matrix[:, columns].argmax(axis=1)


def _best_per_group(
    matrix: np.ndarray, seen_cols: np.ndarray, unseen_cols: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Column of the best seen and of the best unseen entry of each row (ties → lowest column).

    Only the smaller group is scanned for every row; the larger group's best is the row's overall
    argmax wherever that falls in the larger group (one pass, no copy), and is scanned only on
    the remaining rows.
    """
    top = matrix.argmax(axis=1)
    in_seen = np.zeros(matrix.shape[1], dtype=bool)
    in_seen[seen_cols] = True
    seen_is_small = seen_cols.size <= unseen_cols.size
    small, large = (seen_cols, unseen_cols) if seen_is_small else (unseen_cols, seen_cols)
    best_small = small[argmax_columns(matrix, small)]
    best_large = top.copy()
    top_in_small = in_seen[top] if seen_is_small else ~in_seen[top]
    rows = np.flatnonzero(top_in_small)
    if rows.size:
        best_large[rows] = large[matrix[np.ix_(rows, large)].argmax(axis=1)]
    return (best_small, best_large) if seen_is_small else (best_large, best_small)


@dataclass(frozen=True)
class Switches:
    """One split's GZSL decisions reduced to the two candidates of each sample."""

    labels: np.ndarray
    best_seen: np.ndarray  # global class ids
    best_unseen: np.ndarray
    margin: np.ndarray  # best seen − best unseen score (float64): the switching γ
    unseen_wins_tie: np.ndarray  # at γ == margin the unseen candidate has the lower class id

    def switched(self, gamma: float) -> np.ndarray:
        return (gamma > self.margin) | ((gamma == self.margin) & self.unseen_wins_tie)

    def predictions(self, gamma: float) -> np.ndarray:
        return np.where(self.switched(gamma), self.best_unseen, self.best_seen)

    def accuracy(self, gamma: float, average: Average = "macro") -> float:
        correct = self.predictions(gamma) == self.labels
        return float(np.mean(correct)) if average == "micro" else class_mean(correct, self.labels)

    def accuracy_curve(self, gammas: np.ndarray, average: Average = "macro") -> np.ndarray:
        """Accuracy at every γ of ``gammas`` (any order): base + cumulative switch effects."""
        correct_seen = self.best_seen == self.labels
        change = (self.best_unseen == self.labels).astype(np.int8) - correct_seen.astype(np.int8)
        movers = np.flatnonzero(change)
        if average == "micro":
            sample_weight = np.full(movers.size, 1.0 / self.labels.size)
            base = float(np.mean(correct_seen))
        else:
            counts = np.bincount(self.labels)
            n_present = np.count_nonzero(counts)
            sample_weight = 1.0 / (counts[self.labels[movers]] * n_present)
            base = class_mean(correct_seen, self.labels)
        order = np.argsort(gammas, kind="stable")
        sorted_gammas = gammas[order]
        margins = self.margin[movers]
        # first γ index at which each mover has switched: γ > margin, or γ >= margin on a won tie
        first = np.where(
            self.unseen_wins_tie[movers],
            np.searchsorted(sorted_gammas, margins, side="left"),
            np.searchsorted(sorted_gammas, margins, side="right"),
        )
        steps = np.bincount(first, weights=change[movers] * sample_weight, minlength=gammas.size + 1)
        curve = np.empty(gammas.size)
        curve[order] = base + np.cumsum(steps[: gammas.size])
        return np.clip(curve, 0.0, 1.0)


def _switches(
    matrix: np.ndarray, labels: np.ndarray, seen: np.ndarray, unseen: np.ndarray, space: str, name: str
) -> Switches:
    candidates = np.union1d(seen, unseen)
    if candidates.size == matrix.shape[1]:
        seen_cols, unseen_cols = seen, unseen
    else:  # a validation split predicts among fewer classes than there are columns
        matrix = matrix[:, candidates]
        seen_cols, unseen_cols = np.searchsorted(candidates, seen), np.searchsorted(candidates, unseen)
    if space == "prob":
        matrix = softmax_rows(matrix)
    seen_col, unseen_col = _best_per_group(matrix, seen_cols, unseen_cols)
    rows = np.arange(matrix.shape[0])
    seen_value = matrix[rows, seen_col].astype(np.float64)
    unseen_value = matrix[rows, unseen_col].astype(np.float64)
    margin = seen_value - unseen_value
    if not np.isfinite(margin).all():
        raise ValueError(f"{name} scores contain NaN or infinite values; check the model outputs")
    best_seen, best_unseen = candidates[seen_col], candidates[unseen_col]
    return Switches(labels, best_seen, best_unseen, margin, best_unseen < best_seen)


# --------------------------------------------------------------------------- both splits


@dataclass(frozen=True)
class GZSLProblem:
    """Both splits reduced to per-sample candidates: everything the γ machinery needs."""

    seen: Switches
    unseen: Switches

    def result(self, gamma: float, average: Average = "macro") -> GZSLResult:
        u = self.unseen.accuracy(gamma, average)
        s = self.seen.accuracy(gamma, average)
        return GZSLResult(u=u, s=s, h=float(harmonic_mean(u, s)), gamma=float(gamma))

    def sweep(self, gammas: np.ndarray, average: Average = "macro") -> dict[str, np.ndarray]:
        u = self.unseen.accuracy_curve(gammas, average)
        s = self.seen.accuracy_curve(gammas, average)
        return {"gamma": gammas, "u": u, "s": s, "h": harmonic_mean(u, s)}

    def breakpoints(self) -> np.ndarray:
        """Sorted distinct γ at which some sample's switch changes correctness."""
        margins = []
        for split in (self.seen, self.unseen):
            changes = (split.best_seen == split.labels) != (split.best_unseen == split.labels)
            margins.append(split.margin[changes])
        return np.unique(np.concatenate(margins))

    def best_gamma(self) -> tuple[float, float]:
        """The γ maximising H exactly, and H there.

        Candidates: every breakpoint, the midpoint of every interval between breakpoints, one
        point beyond each end, and 0. Among maximisers prefer a γ strictly inside an interval
        (robust to rounding), then the smallest |γ| (so γ = 0 wins when calibration cannot help).
        """
        points = self.breakpoints()
        if points.size:
            mids = points[:-1] + (points[1:] - points[:-1]) / 2
            below = points[0] - max(1.0, abs(points[0]))
            above = points[-1] + max(1.0, abs(points[-1]))
            gammas = np.concatenate([[below], points, mids, [above], [0.0]])
            # a midpoint of two adjacent floats is one of them: treat it as a breakpoint
            mid_is_point = (mids == points[:-1]) | (mids == points[1:])
            on_point = np.concatenate([[False], np.ones(points.size, bool), mid_is_point, [False], [0.0 in points]])
        else:
            gammas, on_point = np.zeros(1), np.zeros(1, dtype=bool)
        h = self.sweep(gammas)["h"]
        best = np.lexsort((gammas, np.abs(gammas), on_point, -h))[0]
        gamma = float(gammas[best])
        return gamma, self.result(gamma).h


def gzsl_problem(scores: Scores, space: str) -> GZSLProblem:
    """``scores`` reduced to per-sample switches in ``space`` (``logit`` or ``prob``)."""
    check_space(space)
    seen_name, unseen_name = scores.split_names
    return GZSLProblem(
        seen=_switches(as_score_matrix(scores.scores_seen, seen_name), as_ids(scores.labels_seen, seen_name),
                       scores.seen_classes, scores.unseen_classes, space, seen_name),
        unseen=_switches(as_score_matrix(scores.scores_unseen, unseen_name), as_ids(scores.labels_unseen, unseen_name),
                         scores.seen_classes, scores.unseen_classes, space, unseen_name),
    )


__all__ = ["FieldMapping", "GZSLProblem", "GZSLResult", "Switches", "argmax_columns", "check_gamma", "check_gammas",
           "gzsl_problem"]
