"""The scores file: the one reader and writer of stored class scores (``.npz``, compressed).

The trainer writes one per evaluated epoch (``<run>/scores/epochNNN.npz``), the runner logs the
selected epoch's to MLflow (``scores/test_scores.npz``), and results re-evaluate runs from it
without retraining. Its layout is fixed — files written by every earlier zslbench load as they
are, and writing a value read from a file reproduces its arrays, keys, key order and dtypes:

==========================  ==================  =============================================
key                         array               notes
==========================  ==================  =============================================
``<split>_seen_scores``     float ``[N_s, C]``  scores over **all** classes (column = class id)
``<split>_seen_labels``     int ``[N_s]``       global class ids
``<split>_seen_kept``       bool ``[N_s, K]``   kept super-patches (SVIP only; optional)
``<split>_unseen_scores``   float ``[N_u, C]``
``<split>_unseen_labels``   int ``[N_u]``
``<split>_unseen_kept``     bool ``[N_u, K]``   optional
==========================  ==================  =============================================

``<split>`` is ``test`` (also in the validation protocol's own run folder, whose "test" is its
validation split) or ``val`` (validation scores stored beside the test scores). The class sets
are not stored: readers pass the run's seen and unseen classes, or leave both out to infer them
as in xlsa17 — the unseen classes are the labels of the unseen split (every unseen class has
test images) and the seen classes are every other column.

>>> from zslbench.metrics.scores import Scores
>>> scores = Scores(scores_seen=np.float32([[2, 0, 1]]), labels_seen=[0], scores_unseen=np.float32([[0, 0, 1]]),
...                 labels_unseen=[2], seen_classes=[0, 1], unseen_classes=[2])
>>> list(to_arrays(scores))
['test_seen_scores', 'test_seen_labels', 'test_unseen_scores', 'test_unseen_labels']
>>> from_bytes(to_bytes(scores)) == scores       # class sets inferred: {0, 1} seen, {2} unseen
True
"""

from __future__ import annotations

import io
import os
import zipfile
from collections.abc import Mapping
from pathlib import Path

import numpy as np
from numpy.typing import ArrayLike

from zslbench.core.errors import UserError
from zslbench.core.files import atomic_write
from zslbench.metrics.scores import Scores

#: The arrays of one split, in file order; ``kept`` is optional.
PARTS = ("scores", "labels", "kept")
OPTIONAL_PARTS = ("kept",)


class ScoresFileError(UserError):
    """A scores file is unreadable, corrupt, or lacks an array the metrics need."""


def key(split: str, side: str, part: str) -> str:
    """The file key of one array: ``key("test", "unseen", "labels")`` → ``"test_unseen_labels"``."""
    return f"{split}_{side}_{part}"


def required_keys(split: str = "test") -> tuple[str, ...]:
    """The keys every scores file of ``split`` holds, in file order.

    >>> required_keys("val")
    ('val_seen_scores', 'val_seen_labels', 'val_unseen_scores', 'val_unseen_labels')
    """
    return tuple(key(split, side, part) for side in ("seen", "unseen") for part in PARTS
                 if part not in OPTIONAL_PARTS)


def missing_keys(arrays: Mapping[str, np.ndarray], split: str = "test") -> list[str]:
    """The required keys of ``split`` that ``arrays`` lacks (empty when it holds that split)."""
    return [name for name in required_keys(split) if name not in arrays]


# --------------------------------------------------------------------------- arrays ↔ Scores


def to_arrays(scores: Scores) -> dict[str, np.ndarray]:
    """The file's arrays of ``scores``, keyed and ordered as stored (kept masks only when present)."""
    arrays: dict[str, np.ndarray] = {}
    for side in ("seen", "unseen"):
        for part in PARTS:
            value = getattr(scores, f"{part}_{side}")
            if value is not None:
                arrays[key(scores.split, side, part)] = value
    return arrays


def infer_class_sets(arrays: Mapping[str, np.ndarray], split: str = "test") -> tuple[np.ndarray, np.ndarray]:
    """(seen, unseen) class ids when a file is read without them: unseen = the unseen split's labels,
    seen = every other column of the score matrix.

    >>> arrays = {"test_seen_scores": np.zeros((2, 4)), "test_unseen_labels": np.array([3, 1, 3])}
    >>> [c.tolist() for c in infer_class_sets(arrays)]
    [[0, 2], [1, 3]]
    """
    n_classes = int(np.asarray(arrays[key(split, "seen", "scores")]).shape[1])
    unseen = np.unique(np.asarray(arrays[key(split, "unseen", "labels")], dtype=np.int64))
    seen = np.setdiff1d(np.arange(n_classes, dtype=np.int64), unseen)
    return seen, unseen


def from_arrays(arrays: Mapping[str, np.ndarray], *, seen_classes: ArrayLike | None = None,
                unseen_classes: ArrayLike | None = None, split: str = "test") -> Scores:
    """The ``split`` scores held in ``arrays`` (a file's arrays; other keys are ignored).

    Pass both class sets, or neither to infer them (:func:`infer_class_sets`). Raises
    :class:`ScoresFileError` when a required array is missing, ``ValueError`` when the arrays
    disagree with each other or with the class sets (see :class:`~zslbench.metrics.scores.Scores`).
    """
    missing = missing_keys(arrays, split)
    if missing:
        raise ScoresFileError(f"the scores lack {', '.join(missing)}; they were not written by zslbench's "
                              "scores writer — re-run the evaluation")
    if (seen_classes is None) != (unseen_classes is None):
        raise ValueError("pass both seen_classes and unseen_classes, or neither to infer them from the labels")
    if seen_classes is None:
        seen_classes, unseen_classes = infer_class_sets(arrays, split)
    parts = {f"{part}_{side}": arrays.get(key(split, side, part)) for side in ("seen", "unseen") for part in PARTS}
    return Scores(**parts, seen_classes=seen_classes, unseen_classes=unseen_classes, split=split)  # type: ignore[arg-type]


# --------------------------------------------------------------------------- bytes and files


def to_bytes(scores: Scores) -> bytes:
    """``scores`` as the bytes of a compressed ``.npz`` file."""
    buffer = io.BytesIO()
    np.savez_compressed(buffer, **to_arrays(scores))
    return buffer.getvalue()


def save(path: str | os.PathLike[str], scores: Scores) -> None:
    """Write ``scores`` to ``path`` atomically (a reader never sees a half-written file)."""
    atomic_write(path, to_bytes(scores))


def read_arrays(source: str | os.PathLike[str] | bytes) -> dict[str, np.ndarray]:
    """Every array of a scores file (a path, or the file's bytes), in file order."""
    where = "scores bytes" if isinstance(source, bytes) else f"scores file {Path(source)}"
    try:
        with np.load(io.BytesIO(source) if isinstance(source, bytes) else source) as stored:
            return {name: stored[name] for name in stored.files}
    except FileNotFoundError:
        raise
    except (OSError, ValueError, EOFError, zipfile.BadZipFile) as exc:
        raise ScoresFileError(f"{where} is unreadable or corrupt ({type(exc).__name__}); "
                              "re-run the evaluation that wrote it") from None


def from_bytes(data: bytes, *, seen_classes: ArrayLike | None = None, unseen_classes: ArrayLike | None = None,
               split: str = "test") -> Scores:
    """The ``split`` scores of a scores file's bytes; class sets as in :func:`from_arrays`."""
    return from_arrays(read_arrays(data), seen_classes=seen_classes, unseen_classes=unseen_classes, split=split)


def load(path: str | os.PathLike[str], *, seen_classes: ArrayLike | None = None,
         unseen_classes: ArrayLike | None = None, split: str = "test") -> Scores:
    """The ``split`` scores stored at ``path``; class sets as in :func:`from_arrays`."""
    return from_arrays(read_arrays(path), seen_classes=seen_classes, unseen_classes=unseen_classes, split=split)


__all__ = ["PARTS", "ScoresFileError", "from_arrays", "from_bytes", "infer_class_sets", "key", "load",
           "missing_keys", "read_arrays", "required_keys", "save", "to_arrays", "to_bytes"]
