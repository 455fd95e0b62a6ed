"""The one value every metric reads: class scores and labels of a GZSL evaluation, with its class sets.

A :class:`Scores` holds the two splits of one evaluation — the images of seen classes (``test_seen``)
and of unseen classes (``test_unseen``), or the validation protocol's ``val_seen``/``val_unseen`` —
each as a ``[N, C]`` score matrix over **all** classes (column ``c`` is global class id ``c``) and its
labels, plus the seen and unseen class-id sets and, for SVIP, the kept super-patch masks per image.
It is checked once, when built, so a metric never sees labels outside their class set, mismatched
shapes or overlapping class sets. Fields are keyword-only: the six arrays are easy to swap by
position, and a swap is exactly what this type exists to prevent.

The arrays are kept as given (same objects, same dtypes) except the class sets, which are stored
sorted and unique as int64; so writing a value back to a file (:mod:`zslbench.metrics.scores_file`)
reproduces the arrays it was read from.

>>> s = Scores(scores_seen=[[2.0, 0.0, 1.0]], labels_seen=[0], scores_unseen=[[0.5, 0.0, 1.0]],
...            labels_unseen=[2], seen_classes=[1, 0], unseen_classes=[2])
>>> s.seen_classes.tolist(), s.n_classes
([0, 1], 3)
>>> s.calibrated(1.5).scores_seen.tolist()       # γ subtracted from the seen columns 0 and 1
[[0.5, -1.5, 1.0]]
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from typing import Any, Literal

import numpy as np
from numpy.typing import ArrayLike

from zslbench.core.errors import unknown_name
from zslbench.metrics.accuracy import as_ids

Space = Literal["logit", "prob"]

#: Where calibrated stacking subtracts γ: raw scores (``logit``) or softmax probabilities over the
#: candidate classes (``prob``, as APN/ZSLViT/SVIP do). The two are not equivalent.
SPACES = ("logit", "prob")


def check_space(space: str) -> str:
    """``space`` if it is one of :data:`SPACES`, else the standard 'unknown name' UserError.

    >>> check_space("prob")
    'prob'
    """
    if space not in SPACES:
        raise unknown_name("gamma space", space, SPACES)
    return space


def softmax_rows(matrix: np.ndarray) -> np.ndarray:
    """Row softmax in the matrix' float dtype (a new array).

    >>> softmax_rows(np.array([[0.0, 0.0]])).tolist()
    [[0.5, 0.5]]
    """
    shifted = matrix - matrix.max(axis=1, keepdims=True)
    np.exp(shifted, out=shifted)
    shifted /= shifted.sum(axis=1, keepdims=True)
    return shifted


def as_score_matrix(scores: ArrayLike, name: str) -> np.ndarray:
    """A 2-D float score matrix (integer or boolean scores become float64; floats are not copied).

    >>> as_score_matrix([[1, 2]], "test_seen").dtype
    dtype('float64')
    """
    matrix = np.asarray(scores)
    if matrix.ndim != 2:
        raise ValueError(f"{name} scores must be a 2-D [samples, classes] array, got shape {matrix.shape}")
    if matrix.dtype.kind not in "f":
        if matrix.dtype.kind not in "iub":
            raise ValueError(f"{name} scores must be numeric, got dtype {matrix.dtype}")
        matrix = matrix.astype(np.float64)
    return matrix


def class_set(classes: ArrayLike, name: str, n_classes: int) -> np.ndarray:
    """Sorted unique class ids of ``classes``: non-empty, no repeats, every id a score column.

    >>> class_set([4, 1], "unseen_classes", 5).tolist()
    [1, 4]
    """
    ids = as_ids(classes, name)
    if ids.size == 0:
        raise ValueError(f"{name} is empty: GZSL needs at least one seen and one unseen class")
    if ids.max() >= n_classes:
        raise ValueError(f"{name} holds class id {ids.max()} but the scores have only {n_classes} columns")
    unique = np.unique(ids)
    if unique.size != ids.size:
        raise ValueError(f"{name} lists a class id more than once")
    return unique


def _check_split_labels(labels: ArrayLike, n_rows: int, name: str, members: np.ndarray, set_name: str) -> None:
    """One split's labels: right length, non-empty, all inside the split's class set."""
    ids = as_ids(labels, f"{name} labels")
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


def _check_kept(kept: np.ndarray | None, n_rows: int, name: str) -> None:
    if kept is not None and (kept.ndim == 0 or kept.shape[0] != n_rows):
        raise ValueError(f"{name}: {n_rows} score rows but kept super-patch masks of shape {kept.shape}")


def _membership(classes: np.ndarray, n_classes: int) -> np.ndarray:
    member = np.zeros(n_classes, dtype=bool)
    member[classes] = True
    return member


@dataclass(frozen=True, kw_only=True, eq=False)
class Scores:
    """Class scores and labels of one GZSL evaluation (test, or validation for the γ choice).

    ``split`` names the evaluation (``"test"`` or ``"val"``): its splits are ``<split>_seen`` and
    ``<split>_unseen`` in error messages and in the scores file's keys. ``kept_seen`` and
    ``kept_unseen`` are the per-image kept super-patch masks (SVIP), ``None`` when the model has none.
    Equality compares every array, dtypes included.
    """

    scores_seen: np.ndarray
    labels_seen: np.ndarray
    scores_unseen: np.ndarray
    labels_unseen: np.ndarray
    seen_classes: np.ndarray
    unseen_classes: np.ndarray
    kept_seen: np.ndarray | None = None
    kept_unseen: np.ndarray | None = None
    split: str = "test"

    def __post_init__(self) -> None:
        for name in ("scores_seen", "labels_seen", "scores_unseen", "labels_unseen", "kept_seen", "kept_unseen"):
            value = getattr(self, name)
            if value is not None:
                object.__setattr__(self, name, np.asarray(value))
        seen_name, unseen_name = self.split_names
        n_classes = as_score_matrix(self.scores_seen, seen_name).shape[1]
        n_unseen_columns = as_score_matrix(self.scores_unseen, unseen_name).shape[1]
        if n_unseen_columns != n_classes:
            raise ValueError(f"{seen_name} scores have {n_classes} class columns but {unseen_name} scores have "
                             f"{n_unseen_columns}")
        seen = class_set(self.seen_classes, "seen_classes", n_classes)
        unseen = class_set(self.unseen_classes, "unseen_classes", n_classes)
        if _membership(seen, n_classes)[unseen].any():
            raise ValueError("seen_classes and unseen_classes overlap; a class must be either seen or unseen")
        object.__setattr__(self, "seen_classes", seen)
        object.__setattr__(self, "unseen_classes", unseen)
        _check_split_labels(self.labels_seen, self.scores_seen.shape[0], seen_name, _membership(seen, n_classes),
                            "seen_classes")
        _check_split_labels(self.labels_unseen, self.scores_unseen.shape[0], unseen_name,
                            _membership(unseen, n_classes), "unseen_classes")
        _check_kept(self.kept_seen, self.scores_seen.shape[0], seen_name)
        _check_kept(self.kept_unseen, self.scores_unseen.shape[0], unseen_name)

    @property
    def split_names(self) -> tuple[str, str]:
        """``("<split>_seen", "<split>_unseen")``: the names of the two splits."""
        return f"{self.split}_seen", f"{self.split}_unseen"

    @property
    def n_classes(self) -> int:
        """Number of score columns (all classes, whatever the class sets hold)."""
        return int(self.scores_seen.shape[1])

    @property
    def candidates(self) -> np.ndarray:
        """The classes GZSL predicts among: seen ∪ unseen, sorted (all columns in the standard setting)."""
        return np.union1d(self.seen_classes, self.unseen_classes)

    def calibrated(self, gamma: float, space: Space = "logit") -> Scores:
        """These scores after calibrated stacking: ``gamma`` subtracted from every seen-class column.

        In ``space="prob"`` each row first becomes a softmax over the candidate classes (other
        columns become ``-inf``: they never win). An argmax over the candidates of the result is the
        GZSL prediction at γ, up to the rounding of the subtraction — the metrics themselves decide
        on exact score margins (see :mod:`zslbench.metrics.stacking`) and never build this copy.

        >>> s = Scores(scores_seen=[[0.0, 0.0]], labels_seen=[0], scores_unseen=[[0.0, 0.0]],
        ...            labels_unseen=[1], seen_classes=[0], unseen_classes=[1])
        >>> s.calibrated(0.25, space="prob").scores_unseen.tolist()
        [[0.25, 0.5]]
        """
        check_space(space)
        return self._replace(scores_seen=self._calibrated_matrix(self.scores_seen, float(gamma), space),
                             scores_unseen=self._calibrated_matrix(self.scores_unseen, float(gamma), space))

    def _calibrated_matrix(self, scores: np.ndarray, gamma: float, space: str) -> np.ndarray:
        matrix = as_score_matrix(scores, self.split)
        if space == "prob":
            probabilities = np.full_like(matrix, -np.inf)
            probabilities[:, self.candidates] = softmax_rows(matrix[:, self.candidates])
            matrix = probabilities
        shift = np.zeros(matrix.shape[1], dtype=matrix.dtype)
        shift[self.seen_classes] = gamma
        return matrix - shift

    def _replace(self, **changes: Any) -> Scores:
        values = {f.name: getattr(self, f.name) for f in fields(self)}
        return Scores(**(values | changes))

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Scores):
            return NotImplemented
        return self.split == other.split and all(
            _same_array(getattr(self, f.name), getattr(other, f.name)) for f in fields(self) if f.name != "split")

    def __repr__(self) -> str:
        seen_name, unseen_name = self.split_names
        kept = ", kept super-patches" if self.kept_seen is not None or self.kept_unseen is not None else ""
        return (f"Scores({seen_name}: {self.scores_seen.shape[0]} images, {unseen_name}: "
                f"{self.scores_unseen.shape[0]} images, {self.n_classes} classes ({self.seen_classes.size} seen, "
                f"{self.unseen_classes.size} unseen){kept})")


def _same_array(a: np.ndarray | None, b: np.ndarray | None) -> bool:
    if a is None or b is None:
        return a is b
    return a.dtype == b.dtype and a.shape == b.shape and bool(np.array_equal(a, b, equal_nan=a.dtype.kind in "fc"))


__all__ = ["SPACES", "Scores", "Space", "as_score_matrix", "check_space", "class_set", "softmax_rows"]
