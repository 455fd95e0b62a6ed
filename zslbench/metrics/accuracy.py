"""Plain accuracies of predicted class ids: per-class (macro, the protocol's default), micro, and H.

Per-class accuracy averages over the classes *present in the split* (PROTOCOL.md §3); micro
(per-sample) accuracy exists for the paper reporting modes but is never the default.

>>> per_class_accuracy([0, 0, 1, 2], [0, 1, 1, 1]), overall_accuracy([0, 0, 1, 2], [0, 1, 1, 1])
(0.6666666666666666, 0.5)
"""

from __future__ import annotations

from typing import Literal

import numpy as np
from numpy.typing import ArrayLike

Average = Literal["macro", "micro"]


def as_ids(values: ArrayLike, what: str) -> np.ndarray:
    """``values`` as a 1-D int64 array of class ids; ``what`` names it in the error.

    >>> as_ids([2, 0], "labels").tolist()
    [2, 0]
    """
    ids = np.asarray(values)
    if ids.ndim != 1:
        raise ValueError(f"{what} must be a 1-D array of class ids, got shape {ids.shape}")
    if ids.size and ids.dtype.kind not in "iu":
        raise ValueError(f"{what} must hold integer class ids, got dtype {ids.dtype}")
    if ids.size and ids.min() < 0:
        raise ValueError(f"{what} holds a negative class id ({ids.min()})")
    return ids.astype(np.int64, copy=False)


def class_mean(correct: np.ndarray, labels: np.ndarray) -> float:
    """Mean over the classes present in ``labels`` of the fraction of correct samples.

    >>> class_mean(np.array([True, False, True]), np.array([0, 1, 1]))  # (1/1 + 1/2) / 2
    0.75
    """
    n_ids = int(labels.max()) + 1
    counts = np.bincount(labels, minlength=n_ids)
    hits = np.bincount(labels, weights=correct, minlength=n_ids)
    present = counts > 0
    return float(np.mean(hits[present] / counts[present]))


def _paired(pred: ArrayLike, labels: ArrayLike) -> tuple[np.ndarray, np.ndarray]:
    pred_ids = as_ids(pred, "pred")
    label_ids = as_ids(labels, "labels")
    if pred_ids.shape != label_ids.shape:
        raise ValueError(f"pred and labels differ in length: {pred_ids.size} vs {label_ids.size}")
    return pred_ids, label_ids


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
    pred_ids, label_ids = _paired(pred, labels)
    if classes is not None:
        keep = np.isin(label_ids, as_ids(classes, "classes"))
        pred_ids, label_ids = pred_ids[keep], label_ids[keep]
    if label_ids.size == 0:
        raise ValueError("per-class accuracy of an empty split: no sample has a label in the given classes")
    return class_mean(pred_ids == label_ids, label_ids)


def overall_accuracy(pred: ArrayLike, labels: ArrayLike) -> float:
    """Micro (per-sample) accuracy. Not the protocol's default; see :func:`per_class_accuracy`.

    >>> overall_accuracy([0, 0, 1, 2], [0, 1, 1, 1])
    0.5
    """
    pred_ids, label_ids = _paired(pred, labels)
    if label_ids.size == 0:
        raise ValueError("overall accuracy of an empty split")
    return float(np.mean(pred_ids == label_ids))


def harmonic_mean(u: ArrayLike, s: ArrayLike) -> np.ndarray | float:
    """H = 2US/(U+S), 0 where U+S = 0 (never NaN). Works elementwise on arrays.

    >>> harmonic_mean(0.5, 1.0), harmonic_mean(0.0, 0.0)
    (0.6666666666666666, 0.0)
    """
    u_arr, s_arr = np.asarray(u, dtype=np.float64), np.asarray(s, dtype=np.float64)
    total = u_arr + s_arr
    with np.errstate(divide="ignore", invalid="ignore"):
        h = np.where(total > 0, 2.0 * u_arr * s_arr / np.where(total > 0, total, 1.0), 0.0)
    return float(h) if h.ndim == 0 else h


__all__ = ["Average", "as_ids", "class_mean", "harmonic_mean", "overall_accuracy", "per_class_accuracy"]
