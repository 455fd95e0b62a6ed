"""ZSL and GZSL metrics, calibrated stacking, exact γ search and AUSUC (PROTOCOL.md §3).

One implementation used everywhere; numpy only, no model code.

Conventions
-----------
* ``scores`` are ``[N, C]`` float arrays over **all** classes: column ``c`` is global class id ``c``.
  Labels and class-id arrays hold global ids.
* Accuracies are fractions in ``[0, 1]``. Per-class (macro) accuracy averages over the classes
  *present in the split*; micro (per-sample) accuracy is available but never the default.
* argmax ties go to the lowest class id.
* GZSL predicts among the candidate classes ``seen ∪ unseen`` (all columns in the standard
  setting; a validation split can use fewer). Calibrated stacking subtracts γ from the seen-class
  scores, in ``space="logit"`` (raw scores) or ``space="prob"`` (softmax over the candidate
  classes first). The same γ applies to both test splits.

How γ is handled exactly
------------------------
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
and the exact AUSUC curve.

Example
-------
>>> import numpy as np
>>> scores = np.array([[2.0, 0.0, 1.0],    # test_seen, label 0
...                    [0.5, 0.0, 1.0],    # test_unseen, label 2
...                    [2.0, 0.0, 1.0]])   # test_unseen, label 2
>>> r = gzsl_metrics(scores[:1], [0], scores[1:], [2, 2], seen_classes=[0, 1], unseen_classes=[2])
>>> (r.u, r.s, r.h)
(0.5, 1.0, 0.6666666666666666)
>>> gzsl_metrics(scores[:1], [0], scores[1:], [2, 2], [0, 1], [2], gamma=1.5)["u"]
1.0
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, fields
from typing import Any, Literal

import numpy as np
from numpy.typing import ArrayLike

from zslbench.core.errors import UserError, unknown_name

Space = Literal["logit", "prob"]
Average = Literal["macro", "micro"]

SPACES = ("logit", "prob")
GAMMA_POLICIES = ("none", "fixed", "val", "oracle")
SELECTION_POLICIES = ("final", "val", "oracle")

#: The γ grid of the SVIP reference implementation: [-1, 1) in steps of 0.01 (200 values),
#: built exactly as the reference builds it.
OFFICIAL_GAMMAS = np.arange(-1.0, 1.0, 0.01)
OFFICIAL_GAMMAS.setflags(write=False)

VAL_SPLIT_MISSING = (
    "gamma policy 'val' needs a validation split; this dataset/run has none — "
    "use --set eval.gamma_policy=none or oracle"
)


# --------------------------------------------------------------------------- result types


class _FieldMapping:
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
class GZSLResult(_FieldMapping):
    """GZSL accuracies at one calibration offset γ (fractions in [0, 1])."""

    u: float
    s: float
    h: float
    gamma: float


@dataclass(frozen=True)
class SUCurve(_FieldMapping):
    """The seen–unseen accuracy curve: one operating point per distinct prediction state.

    Sorted by ``u`` (which is also increasing γ); ``gamma[i]`` is a γ that produces point ``i``
    (``-inf`` for all-seen, ``+inf`` for all-unseen).
    """

    u: np.ndarray
    s: np.ndarray
    gamma: np.ndarray


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


@dataclass(frozen=True)
class OfficialGZSLResult:
    """SVIP-reference-compatible calibrated GZSL (SVIP.md §8); always test-selected.

    ``result`` holds the per-sample (micro) U/S/H at the chosen γ, as the reference reports them;
    ``per_class`` holds the protocol's per-class U/S/H at the same γ, for comparison.
    """

    result: GZSLResult
    per_class: GZSLResult
    gamma: float
    test_selected: bool = True


@dataclass(frozen=True)
class EpochSelection:
    """Which epochs (indices into the history list) the reported metrics come from.

    ``epoch`` is the selected epoch for the selection metric. Under ``oracle``, the best test H
    (``epoch_h``) and the best test T1 (``epoch_t1``) are tracked separately, as the reference
    implementations do; otherwise both equal ``epoch``.
    """

    policy: str
    epoch: int
    epoch_h: int
    epoch_t1: int
    oracle: bool


@dataclass(frozen=True)
class GZSLScores:
    """Class scores and labels of a GZSL evaluation split (test, or validation for γ choice)."""

    scores_seen: ArrayLike
    labels_seen: ArrayLike
    scores_unseen: ArrayLike
    labels_unseen: ArrayLike
    seen_classes: ArrayLike
    unseen_classes: ArrayLike

    @classmethod
    def coerce(cls, value: GZSLScores | Sequence[ArrayLike] | Mapping[str, ArrayLike]) -> GZSLScores:
        """Accept an instance, a 6-tuple in field order, or a mapping with the field names."""
        if isinstance(value, GZSLScores):
            return value
        names = [f.name for f in fields(cls)]
        if isinstance(value, Mapping):
            missing = [name for name in names if name not in value]
            if missing:
                raise ValueError(f"validation split is missing {', '.join(missing)}; expected keys {', '.join(names)}")
            return cls(**{name: value[name] for name in names})
        if len(value) != len(names):
            raise ValueError(f"validation split must have {len(names)} entries ({', '.join(names)}), got {len(value)}")
        return cls(*value)

    def astuple(self) -> tuple[ArrayLike, ...]:
        return tuple(getattr(self, f.name) for f in fields(self))


# --------------------------------------------------------------------------- plain accuracies


def _class_mean(correct: np.ndarray, labels: np.ndarray) -> float:
    """Mean over the classes present in ``labels`` of the fraction of correct samples."""
    n_ids = int(labels.max()) + 1
    counts = np.bincount(labels, minlength=n_ids)
    hits = np.bincount(labels, weights=correct, minlength=n_ids)
    present = counts > 0
    return float(np.mean(hits[present] / counts[present]))


def _as_ids(values: ArrayLike, what: str) -> np.ndarray:
    ids = np.asarray(values)
    if ids.ndim != 1:
        raise ValueError(f"{what} must be a 1-D array of class ids, got shape {ids.shape}")
    if ids.size and ids.dtype.kind not in "iu":
        raise ValueError(f"{what} must hold integer class ids, got dtype {ids.dtype}")
    if ids.size and ids.min() < 0:
        raise ValueError(f"{what} holds a negative class id ({ids.min()})")
    return ids.astype(np.int64, copy=False)


def per_class_accuracy(pred: ArrayLike, labels: ArrayLike, classes: ArrayLike | None = None) -> float:
    """Macro accuracy: mean over classes of ``#{y=c ∧ ŷ=c} / #{y=c}``.

    The mean runs over the classes present in ``labels``. With ``classes``, only samples whose
    label is in ``classes`` are used (so classes of ``classes`` absent from the split are not
    averaged, and samples of other classes are ignored).

    >>> per_class_accuracy([0, 0, 1, 2], [0, 1, 1, 1])   # class 0: 1/1, class 1: 1/3
    0.6666666666666666
    >>> per_class_accuracy([0, 0, 1, 2], [0, 1, 1, 1], classes=[1])
    0.3333333333333333
    """
    pred_ids = _as_ids(pred, "pred")
    label_ids = _as_ids(labels, "labels")
    if pred_ids.shape != label_ids.shape:
        raise ValueError(f"pred and labels differ in length: {pred_ids.size} vs {label_ids.size}")
    if classes is not None:
        keep = np.isin(label_ids, _as_ids(classes, "classes"))
        pred_ids, label_ids = pred_ids[keep], label_ids[keep]
    if label_ids.size == 0:
        raise ValueError("per-class accuracy of an empty split: no sample has a label in the given classes")
    return _class_mean(pred_ids == label_ids, label_ids)


def overall_accuracy(pred: ArrayLike, labels: ArrayLike) -> float:
    """Micro (per-sample) accuracy. Not the protocol's default; see :func:`per_class_accuracy`.

    >>> overall_accuracy([0, 0, 1, 2], [0, 1, 1, 1])
    0.5
    """
    pred_ids = _as_ids(pred, "pred")
    label_ids = _as_ids(labels, "labels")
    if pred_ids.shape != label_ids.shape:
        raise ValueError(f"pred and labels differ in length: {pred_ids.size} vs {label_ids.size}")
    if label_ids.size == 0:
        raise ValueError("overall accuracy of an empty split")
    return float(np.mean(pred_ids == label_ids))


def harmonic_mean(u: ArrayLike, s: ArrayLike) -> np.ndarray | float:
    """H = 2US/(U+S), 0 where U+S = 0 (never NaN). Works elementwise on arrays."""
    u_arr, s_arr = np.asarray(u, dtype=np.float64), np.asarray(s, dtype=np.float64)
    total = u_arr + s_arr
    with np.errstate(divide="ignore", invalid="ignore"):
        h = np.where(total > 0, 2.0 * u_arr * s_arr / np.where(total > 0, total, 1.0), 0.0)
    return float(h) if h.ndim == 0 else h


# --------------------------------------------------------------------------- input checks


def _as_scores(scores: ArrayLike, name: str) -> np.ndarray:
    matrix = np.asarray(scores)
    if matrix.ndim != 2:
        raise ValueError(f"{name} scores must be a 2-D [samples, classes] array, got shape {matrix.shape}")
    if matrix.dtype.kind not in "f":
        if matrix.dtype.kind not in "iub":
            raise ValueError(f"{name} scores must be numeric, got dtype {matrix.dtype}")
        matrix = matrix.astype(np.float64)
    return matrix


def _class_set(classes: ArrayLike, name: str, n_classes: int) -> np.ndarray:
    ids = _as_ids(classes, name)
    if ids.size == 0:
        raise ValueError(f"{name} is empty: GZSL needs at least one seen and one unseen class")
    if ids.max() >= n_classes:
        raise ValueError(f"{name} holds class id {ids.max()} but the scores have only {n_classes} columns")
    unique = np.unique(ids)
    if unique.size != ids.size:
        raise ValueError(f"{name} lists a class id more than once")
    return unique


def _split_labels(labels: ArrayLike, n_rows: int, name: str, members: np.ndarray, set_name: str) -> np.ndarray:
    """Check one split's labels: right length, non-empty, all inside the split's class set."""
    ids = _as_ids(labels, f"{name} labels")
    if ids.size != n_rows:
        raise ValueError(f"{name}: {n_rows} score rows but {ids.size} labels")
    if ids.size == 0:
        raise ValueError(f"{name} split is empty: it needs at least one sample")
    if ids.max() >= members.size:
        raise ValueError(f"{name} labels hold class id {ids.max()} but the scores have only {members.size} columns")
    outside = ~members[ids]
    if outside.any():
        bad = np.unique(ids[outside])[:5].tolist()
        raise ValueError(f"{name} labels {bad} are not in {set_name}; labels and class sets disagree")
    return ids


def _check_gzsl_inputs(
    scores_seen: ArrayLike,
    labels_seen: ArrayLike,
    scores_unseen: ArrayLike,
    labels_unseen: ArrayLike,
    seen_classes: ArrayLike,
    unseen_classes: ArrayLike,
    split_names: tuple[str, str] = ("test_seen", "test_unseen"),
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    seen_name, unseen_name = split_names
    matrix_seen = _as_scores(scores_seen, seen_name)
    matrix_unseen = _as_scores(scores_unseen, unseen_name)
    n_classes = matrix_seen.shape[1]
    if matrix_unseen.shape[1] != n_classes:
        raise ValueError(
            f"{seen_name} scores have {n_classes} class columns but {unseen_name} scores have {matrix_unseen.shape[1]}"
        )
    seen = _class_set(seen_classes, "seen_classes", n_classes)
    unseen = _class_set(unseen_classes, "unseen_classes", n_classes)
    is_seen = np.zeros(n_classes, dtype=bool)
    is_seen[seen] = True
    if is_seen[unseen].any():
        raise ValueError("seen_classes and unseen_classes overlap; a class must be either seen or unseen")
    is_unseen = np.zeros(n_classes, dtype=bool)
    is_unseen[unseen] = True
    y_seen = _split_labels(labels_seen, matrix_seen.shape[0], seen_name, is_seen, "seen_classes")
    y_unseen = _split_labels(labels_unseen, matrix_unseen.shape[0], unseen_name, is_unseen, "unseen_classes")
    return matrix_seen, y_seen, matrix_unseen, y_unseen, seen, unseen


def _check_space(space: str) -> str:
    if space not in SPACES:
        raise unknown_name("gamma space", space, SPACES)
    return space


# --------------------------------------------------------------------------- per-sample candidates


def _softmax(matrix: np.ndarray) -> np.ndarray:
    """Row softmax in the matrix' float dtype (a new array)."""
    shifted = matrix - matrix.max(axis=1, keepdims=True)
    np.exp(shifted, out=shifted)
    shifted /= shifted.sum(axis=1, keepdims=True)
    return shifted


def _argmax_columns(matrix: np.ndarray, columns: np.ndarray) -> np.ndarray:
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
    best_small = small[_argmax_columns(matrix, small)]
    best_large = top.copy()
    top_in_small = in_seen[top] if seen_is_small else ~in_seen[top]
    rows = np.flatnonzero(top_in_small)
    if rows.size:
        best_large[rows] = large[matrix[np.ix_(rows, large)].argmax(axis=1)]
    return (best_small, best_large) if seen_is_small else (best_large, best_small)


@dataclass(frozen=True)
class _Switches:
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
        return float(np.mean(correct)) if average == "micro" else _class_mean(correct, self.labels)

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
            base = _class_mean(correct_seen, self.labels)
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
) -> _Switches:
    candidates = np.union1d(seen, unseen)
    if candidates.size == matrix.shape[1]:
        seen_cols, unseen_cols = seen, unseen
    else:  # a validation split predicts among fewer classes than there are columns
        matrix = matrix[:, candidates]
        seen_cols, unseen_cols = np.searchsorted(candidates, seen), np.searchsorted(candidates, unseen)
    if space == "prob":
        matrix = _softmax(matrix)
    seen_col, unseen_col = _best_per_group(matrix, seen_cols, unseen_cols)
    rows = np.arange(matrix.shape[0])
    seen_value = matrix[rows, seen_col].astype(np.float64)
    unseen_value = matrix[rows, unseen_col].astype(np.float64)
    margin = seen_value - unseen_value
    if not np.isfinite(margin).all():
        raise ValueError(f"{name} scores contain NaN or infinite values; check the model outputs")
    best_seen, best_unseen = candidates[seen_col], candidates[unseen_col]
    return _Switches(labels, best_seen, best_unseen, margin, best_unseen < best_seen)


@dataclass(frozen=True)
class _GZSLProblem:
    """Both test splits reduced to per-sample candidates: everything the γ machinery needs."""

    seen: _Switches
    unseen: _Switches

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

    def ausuc(self) -> tuple[float, SUCurve]:
        points = self.breakpoints()
        inner = np.empty(max(2 * points.size - 1, 0))
        inner[0::2] = points
        inner[1::2] = points[:-1] + (points[1:] - points[:-1]) / 2
        gammas = np.concatenate([[-np.inf], inner, [np.inf]])
        u = self.unseen.accuracy_curve(gammas)
        s = self.seen.accuracy_curve(gammas)
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


def _problem(
    scores_seen: ArrayLike,
    labels_seen: ArrayLike,
    scores_unseen: ArrayLike,
    labels_unseen: ArrayLike,
    seen_classes: ArrayLike,
    unseen_classes: ArrayLike,
    space: str,
    split_names: tuple[str, str] = ("test_seen", "test_unseen"),
) -> _GZSLProblem:
    _check_space(space)
    matrix_seen, y_seen, matrix_unseen, y_unseen, seen, unseen = _check_gzsl_inputs(
        scores_seen, labels_seen, scores_unseen, labels_unseen, seen_classes, unseen_classes, split_names
    )
    return _GZSLProblem(
        seen=_switches(matrix_seen, y_seen, seen, unseen, space, split_names[0]),
        unseen=_switches(matrix_unseen, y_unseen, seen, unseen, space, split_names[1]),
    )


# --------------------------------------------------------------------------- public metrics


def zsl_accuracy(scores: ArrayLike, labels: ArrayLike, unseen_classes: ArrayLike) -> float:
    """ZSL top-1: argmax among the unseen classes only, per-class accuracy over unseen classes.

    >>> zsl_accuracy([[9.0, 3.0, 2.0], [9.0, 3.0, 2.0]], [1, 2], unseen_classes=[1, 2])  # class 0 ignored
    0.5
    """
    matrix = _as_scores(scores, "test_unseen")
    unseen = _class_set(unseen_classes, "unseen_classes", matrix.shape[1])
    is_unseen = np.zeros(matrix.shape[1], dtype=bool)
    is_unseen[unseen] = True
    y = _split_labels(labels, matrix.shape[0], "test_unseen", is_unseen, "unseen_classes")
    pred = unseen[_argmax_columns(matrix, unseen)]
    return _class_mean(pred == y, y)


def gzsl_metrics(
    scores_seen: ArrayLike,
    labels_seen: ArrayLike,
    scores_unseen: ArrayLike,
    labels_unseen: ArrayLike,
    seen_classes: ArrayLike,
    unseen_classes: ArrayLike,
    gamma: float = 0.0,
    space: Space = "logit",
) -> GZSLResult:
    """GZSL U, S, H with calibrated stacking: γ is subtracted from the seen-class scores.

    ``space="prob"`` applies γ to softmax probabilities (softmax over seen ∪ unseen) instead of
    raw scores; the two are not equivalent. U is per-class accuracy on test_unseen (over unseen
    classes), S on test_seen (over seen classes); H = 2US/(U+S), 0 when U+S = 0.
    """
    problem = _problem(scores_seen, labels_seen, scores_unseen, labels_unseen, seen_classes, unseen_classes, space)
    return problem.result(_check_gamma(gamma))


def _check_gamma(gamma: float) -> float:
    value = float(gamma)
    if math.isnan(value):
        raise ValueError("gamma is NaN")
    return value


def _check_gammas(gammas: ArrayLike) -> np.ndarray:
    values = np.asarray(gammas, dtype=np.float64)
    if values.ndim != 1:
        values = values.reshape(-1)
    if np.isnan(values).any():
        raise ValueError("gammas contain NaN")
    return values


def gzsl_sweep(
    scores_seen: ArrayLike,
    labels_seen: ArrayLike,
    scores_unseen: ArrayLike,
    labels_unseen: ArrayLike,
    seen_classes: ArrayLike,
    unseen_classes: ArrayLike,
    gammas: ArrayLike,
    space: Space = "logit",
) -> dict[str, np.ndarray]:
    """U, S, H at every γ of ``gammas`` at once (no loop over γ).

    Returns ``{"gamma", "u", "s", "h"}``, arrays aligned with ``gammas``; each entry equals
    :func:`gzsl_metrics` at that γ (up to float summation order).
    """
    problem = _problem(scores_seen, labels_seen, scores_unseen, labels_unseen, seen_classes, unseen_classes, space)
    return problem.sweep(_check_gammas(gammas))


def ausuc(
    scores_seen: ArrayLike,
    labels_seen: ArrayLike,
    scores_unseen: ArrayLike,
    labels_unseen: ArrayLike,
    seen_classes: ArrayLike,
    unseen_classes: ArrayLike,
    space: Space = "logit",
) -> tuple[float, SUCurve]:
    """Exact area under the seen–unseen accuracy curve (Chao et al. 2016), calibration-free.

    γ sweeps from −∞ (everything predicted seen: U = 0) to +∞ (everything predicted unseen:
    S = 0) through every γ at which a decision changes; the operating points (per-class U, S)
    are joined by straight lines (trapezoidal rule). Returns ``(area, curve)``.
    """
    problem = _problem(scores_seen, labels_seen, scores_unseen, labels_unseen, seen_classes, unseen_classes, space)
    return problem.ausuc()


def _parse_gamma_policy(policy: str, gamma: float) -> tuple[str, float]:
    """Accept ``none``, ``fixed`` (with ``gamma``), ``fixed:<value>``, ``val``, ``oracle``."""
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


def choose_gamma(
    policy: str,
    scores_seen: ArrayLike | None = None,
    labels_seen: ArrayLike | None = None,
    scores_unseen: ArrayLike | None = None,
    labels_unseen: ArrayLike | None = None,
    seen_classes: ArrayLike | None = None,
    unseen_classes: ArrayLike | None = None,
    *,
    gamma: float = 0.0,
    space: Space = "logit",
) -> GammaChoice:
    """Choose the calibration offset γ; returns ``GammaChoice`` (unpacks as ``gamma, h``).

    The scores passed are the ones γ is chosen on: the **validation** split for ``val``, the
    **test** split for ``oracle`` (the choice is then marked ``oracle=True``). Policies:
    ``none`` → 0; ``fixed`` → ``gamma`` (or ``"fixed:<value>"``); ``val``/``oracle`` → the γ
    maximising H on the given scores, searched over the exact breakpoints, so H is the true
    maximum, not a grid approximation. ``h`` is H at the chosen γ on the given scores (NaN when
    ``none``/``fixed`` get no scores).
    """
    name, value = _parse_gamma_policy(policy, gamma)
    data = (scores_seen, labels_seen, scores_unseen, labels_unseen, seen_classes, unseen_classes)
    have_data = all(item is not None for item in data)
    if not have_data and any(item is not None for item in data):
        raise ValueError("choose_gamma needs all six of scores/labels seen/unseen and both class sets, or none")
    if name in ("val", "oracle") and not have_data:
        raise ValueError(f"gamma policy {name!r} needs the scores to choose γ on")
    if not have_data:
        return GammaChoice(gamma=value, h=math.nan, policy=name, oracle=False)
    split_names = ("val_seen", "val_unseen") if name == "val" else ("test_seen", "test_unseen")
    problem = _problem(*data, space=space, split_names=split_names)  # type: ignore[arg-type]
    if name in ("val", "oracle"):
        value, h = problem.best_gamma()
    else:
        h = problem.result(value).h
    return GammaChoice(gamma=value, h=h, policy=name, oracle=name == "oracle")


def official_gzsl_search(
    scores_seen: ArrayLike,
    labels_seen: ArrayLike,
    scores_unseen: ArrayLike,
    labels_unseen: ArrayLike,
    seen_classes: ArrayLike,
    unseen_classes: ArrayLike,
    gammas: ArrayLike = OFFICIAL_GAMMAS,
) -> OfficialGZSLResult:
    """Calibrated GZSL as the SVIP reference computes it (SVIP.md §8); test-selected.

    Softmax over all classes; γ from ``gammas`` (default [−1, 1) step 0.01) is *added* to the
    unseen-class probabilities (the same decisions as subtracting it from the seen ones);
    per-sample (micro) U, S, H at every γ; the γ with the best H on these (test) scores wins,
    the first one on ties. ``result`` is that micro U/S/H; ``per_class`` the protocol's
    per-class U/S/H at the same γ.
    """
    problem = _problem(scores_seen, labels_seen, scores_unseen, labels_unseen, seen_classes, unseen_classes, "prob")
    grid = _check_gammas(gammas)
    if grid.size == 0:
        raise ValueError("official_gzsl_search needs at least one γ")
    sweep = problem.sweep(grid, average="micro")
    gamma = float(grid[int(np.argmax(sweep["h"]))])
    return OfficialGZSLResult(
        result=problem.result(gamma, average="micro"), per_class=problem.result(gamma), gamma=gamma
    )


def evaluate_scores(
    scores_seen: ArrayLike,
    labels_seen: ArrayLike,
    scores_unseen: ArrayLike,
    labels_unseen: ArrayLike,
    seen_classes: ArrayLike,
    unseen_classes: ArrayLike,
    gamma_policy: str = "none",
    gamma: float = 0.0,
    space: Space = "logit",
    val: GZSLScores | Sequence[ArrayLike] | Mapping[str, ArrayLike] | None = None,
) -> dict[str, float | str]:
    """All protocol metrics of one set of test scores, as one flat dict.

    Keys: ``zsl_t1``; ``gzsl_u, gzsl_s, gzsl_h`` at the γ chosen by ``gamma_policy``;
    ``gamma``, ``gamma_policy``, ``gamma_space``; ``gzsl_u0, gzsl_s0, gzsl_h0`` uncalibrated
    (γ = 0); ``ausuc``; ``gzsl_h_oracle`` and ``gamma_oracle`` (test-selected, always computed as
    a reference). ``val`` holds the validation scores for the ``val`` policy: a
    :class:`GZSLScores`, a 6-tuple in its field order, or a dict with its field names.
    """
    policy, fixed_gamma = _parse_gamma_policy(gamma_policy, gamma)
    _check_space(space)
    if policy == "val" and val is None:
        raise UserError(VAL_SPLIT_MISSING)
    problem = _problem(scores_seen, labels_seen, scores_unseen, labels_unseen, seen_classes, unseen_classes, space)
    if space == "logit":
        zsl_t1 = _class_mean(problem.unseen.best_unseen == problem.unseen.labels, problem.unseen.labels)
    else:  # probabilities of unseen classes may underflow to ties; ZSL ranks raw scores
        zsl_t1 = zsl_accuracy(scores_unseen, labels_unseen, unseen_classes)
    uncalibrated = problem.result(0.0)
    gamma_oracle, h_oracle = problem.best_gamma()
    if policy == "none":
        chosen = 0.0
    elif policy == "fixed":
        chosen = fixed_gamma
    elif policy == "oracle":
        chosen = gamma_oracle
    else:
        val_scores = GZSLScores.coerce(val).astuple()  # type: ignore[arg-type]
        val_problem = _problem(*val_scores, space=space, split_names=("val_seen", "val_unseen"))
        chosen = val_problem.best_gamma()[0]
    calibrated = problem.result(chosen)
    area, _ = problem.ausuc()
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


# --------------------------------------------------------------------------- epochs and seeds


def _best_index(history: Sequence[Mapping[str, Any]], key: str) -> int | None:
    """Index of the first epoch with the largest finite value of ``key`` (None if never logged)."""
    values = np.array([_numeric(entry.get(key)) for entry in history], dtype=np.float64)
    if not np.isfinite(values).any():
        return None
    return int(np.argmax(np.where(np.isfinite(values), values, -np.inf)))


def _numeric(value: Any) -> float:
    return float(value) if _is_number(value) else math.nan


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float, np.integer, np.floating)) and not isinstance(value, (bool, np.bool_))


def select_epoch(history: Sequence[Mapping[str, Any]], policy: str, metric: str = "gzsl_h") -> EpochSelection:
    """Pick the epoch whose metrics are reported; indices are positions in ``history``.

    ``final``: the last entry. ``val``: the best ``val_<metric>`` (first on ties).
    ``oracle``: the best test ``metric``, with the best ``gzsl_h`` epoch and the best ``zsl_t1``
    epoch reported separately (test-selected, results marked †).

    >>> h = [{"gzsl_h": 0.2, "zsl_t1": 0.5}, {"gzsl_h": 0.4, "zsl_t1": 0.3}, {"gzsl_h": 0.3, "zsl_t1": 0.4}]
    >>> sel = select_epoch(h, "oracle")
    >>> (sel.epoch, sel.epoch_h, sel.epoch_t1, sel.oracle)
    (1, 1, 0, True)
    """
    if policy not in SELECTION_POLICIES:
        raise unknown_name("epoch selection policy", policy, SELECTION_POLICIES)
    if len(history) == 0:
        raise ValueError("epoch selection needs at least one evaluated epoch; the history is empty")
    if policy == "final":
        last = len(history) - 1
        return EpochSelection(policy, last, last, last, oracle=False)
    if policy == "val":
        best = _best_index(history, f"val_{metric}")
        if best is None:
            raise UserError(
                f"epoch selection 'val' needs per-epoch 'val_{metric}', which this run never logged "
                "(no validation split) — use --set eval.selection=final or oracle"
            )
        return EpochSelection(policy, best, best, best, oracle=False)
    best = _best_index(history, metric)
    if best is None:
        raise ValueError(f"epoch selection 'oracle': no epoch logged {metric!r}")
    best_h = _best_index(history, "gzsl_h")
    best_t1 = _best_index(history, "zsl_t1")
    return EpochSelection(
        policy,
        best,
        best if best_h is None else best_h,
        best if best_t1 is None else best_t1,
        oracle=True,
    )


def aggregate_seeds(results: Sequence[Mapping[str, Any]]) -> dict[str, tuple[float, float, int]]:
    """Mean, sample standard deviation (ddof=1; 0.0 for one seed) and count of every numeric key.

    Non-numeric values (strings, booleans, None) are ignored; a key missing from some results
    is aggregated over the results that have it.

    >>> summary = aggregate_seeds([{"gzsl_h": 0.25, "model": "svip"}, {"gzsl_h": 0.75, "model": "svip"}])
    >>> mean, std, n = summary["gzsl_h"]
    >>> (list(summary), mean, round(std, 4), n)
    (['gzsl_h'], 0.5, 0.3536, 2)
    """
    if len(results) == 0:
        raise ValueError("aggregate_seeds needs at least one result")
    collected: dict[str, list[float]] = {}
    for result in results:
        for key, value in result.items():
            if _is_number(value):
                collected.setdefault(key, []).append(float(value))
    summary: dict[str, tuple[float, float, int]] = {}
    for key, values in collected.items():
        array = np.asarray(values)
        std = float(np.std(array, ddof=1)) if array.size > 1 else 0.0
        summary[key] = (float(np.mean(array)), std, int(array.size))
    return summary


__all__ = [
    "GAMMA_POLICIES",
    "OFFICIAL_GAMMAS",
    "SELECTION_POLICIES",
    "SPACES",
    "EpochSelection",
    "GammaChoice",
    "GZSLResult",
    "GZSLScores",
    "OfficialGZSLResult",
    "SUCurve",
    "aggregate_seeds",
    "ausuc",
    "choose_gamma",
    "evaluate_scores",
    "gzsl_metrics",
    "gzsl_sweep",
    "harmonic_mean",
    "official_gzsl_search",
    "overall_accuracy",
    "per_class_accuracy",
    "select_epoch",
    "zsl_accuracy",
]
