"""Every evaluated epoch's GZSL decisions, compactly: what epoch selection and the paper modes recompute from.

The reference repositories report maxima over epochs (best H, best T1) — so recomputing their numbers,
or the protocol's own ``oracle`` selection under another γ policy, needs every epoch, not only the
selected one. Storing every epoch's ``[N, C]`` score matrices would cost megabytes per epoch; but a
GZSL decision under calibrated stacking only ever depends on three numbers per image (see
:mod:`zslbench.metrics.stacking`): its best seen class, its best unseen class, and the margin between
them. An :class:`EpochDecisions` keeps exactly those, per epoch and per split, in each score space the
metrics use:

* ``logit`` — the stored scores as the model ranks them (the protocol's default γ space);
* ``prob`` — a softmax of the stored scores over all classes (γ space ``prob``; APN's reporting);
* ``svip`` — a softmax of ``5 · a · Sᵀ``: the stored scores rescaled by ``5 / σ`` (``σ`` the run's
  ``model.logit_scale``, 1 for models without one), as the SVIP reference evaluates whatever its
  training scale (its evaluation hard-codes 5).

Each space holds exactly what :func:`zslbench.metrics.stacking.gzsl_problem` reduces the scores to, so
a problem rebuilt from the file decides every image as the full scores would — the same U, S, H, AUSUC
and γ, bit for bit. The file (``scores/epochs.npz``) has the arrays:

==================================  ===========  ==============================================
key                                 shape        notes
==================================  ===========  ==============================================
``epochs``                          ``[E]``      0-based epoch of each row
``seen_classes``, ``unseen_classes``              global class ids
``score_scale``                     ``[]``       σ of the stored scores (``svip`` rescales by 5/σ)
``<side>_labels``                   ``[N]``      ``side`` = ``seen`` (test_seen) or ``unseen``
``<space>_<side>_margin``           ``[E, N]``   best seen − best unseen score (float64)
``<space>_<side>_best_seen``        ``[E, N]``   class ids; ``prob``/``svip`` only when they differ
``<space>_<side>_best_unseen``      ``[E, N]``   from ``logit``'s (a softmax underflowing to ties)
==================================  ===========  ==============================================

A CUB run of 30 epochs stores about 4731 × 30 × 28 bytes ≈ 4 MB before compression.

>>> from zslbench.metrics.scores import Scores
>>> epoch = Scores(scores_seen=[[2.0, 0.0, 1.0]], labels_seen=[0], scores_unseen=[[0.5, 0.0, 1.0]],
...                labels_unseen=[2], seen_classes=[0, 1], unseen_classes=[2])
>>> decisions = EpochDecisions.from_scores([(0, epoch)], score_scale=5.0)
>>> decisions.problem(0, "logit").unseen.margin.tolist()
[-0.5]
>>> from_bytes(to_bytes(decisions)).problem(0, "logit").unseen.margin.tolist()
[-0.5]
"""

from __future__ import annotations

import io
import os
import zipfile
from collections.abc import Iterable
from dataclasses import dataclass

import numpy as np

from zslbench.core.errors import UserError
from zslbench.core.files import atomic_write
from zslbench.metrics.accuracy import as_ids
from zslbench.metrics.scores import Scores
from zslbench.metrics.stacking import GZSLProblem, Switches, gzsl_problem

#: The score spaces an :class:`EpochDecisions` holds.
DECISION_SPACES = ("logit", "prob", "svip")
#: The scale the SVIP reference evaluates with: softmax over all classes of 5 · a · Sᵀ.
SVIP_EVAL_SCALE = 5.0
SIDES = ("seen", "unseen")


class EpochDecisionsError(UserError):
    """A decisions file is unreadable, corrupt, or lacks an array."""


@dataclass(frozen=True)
class SpaceDecisions:
    """One split's decisions in one score space, every epoch: ``[E, N]`` arrays."""

    best_seen: np.ndarray
    best_unseen: np.ndarray
    margin: np.ndarray


@dataclass(frozen=True, eq=False)
class EpochDecisions:
    """Per-epoch GZSL decisions of one run's test (or validation) evaluations; see the module docstring."""

    epochs: np.ndarray
    seen_classes: np.ndarray
    unseen_classes: np.ndarray
    score_scale: float
    labels: dict[str, np.ndarray]  # side → [N]
    spaces: dict[tuple[str, str], SpaceDecisions]  # (space, side) → decisions

    def __len__(self) -> int:
        return int(self.epochs.size)

    def problem(self, index: int, space: str) -> GZSLProblem:
        """The reduced GZSL problem of the ``index``-th stored epoch in ``space``."""
        if space not in DECISION_SPACES:
            raise ValueError(f"unknown decision space {space!r}; one of {', '.join(DECISION_SPACES)}")
        switches = {}
        for side in SIDES:
            d = self.spaces[(space, side)]
            best_seen, best_unseen = d.best_seen[index].astype(np.int64), d.best_unseen[index].astype(np.int64)
            switches[side] = Switches(self.labels[side], best_seen, best_unseen, d.margin[index].astype(np.float64),
                                      best_unseen < best_seen)
        return GZSLProblem(seen=switches["seen"], unseen=switches["unseen"])

    def index_of(self, epoch: int) -> int:
        """The row of 0-based ``epoch``."""
        rows = np.flatnonzero(self.epochs == epoch)
        if rows.size == 0:
            raise KeyError(f"epoch {epoch} was not evaluated (evaluated: {self.epochs.tolist()})")
        return int(rows[0])

    @classmethod
    def from_scores(cls, evaluations: Iterable[tuple[int, Scores]], score_scale: float = 1.0) -> EpochDecisions:
        """Reduce ``(epoch, scores)`` pairs (every evaluated epoch, in order) of one run.

        ``score_scale`` is σ of the scores (``model.logit_scale``; 1 when the model has none): the
        ``svip`` space ranks ``SVIP_EVAL_SCALE / σ`` times the scores.
        """
        epochs: list[int] = []
        per_space: dict[tuple[str, str], list[tuple[np.ndarray, np.ndarray, np.ndarray]]] = {}
        first: Scores | None = None
        rescale = SVIP_EVAL_SCALE / float(score_scale)
        for epoch, scores in evaluations:
            if first is None:
                first = scores
            else:
                _check_same_samples(first, scores, epoch)
            epochs.append(int(epoch))
            problems = {"logit": gzsl_problem(scores, "logit"), "prob": gzsl_problem(scores, "prob"),
                        "svip": gzsl_problem(_rescaled(scores, rescale), "prob")}
            for space, problem in problems.items():
                for side in SIDES:
                    switches = getattr(problem, side)
                    per_space.setdefault((space, side), []).append(
                        (switches.best_seen, switches.best_unseen, switches.margin))
        if first is None:
            raise ValueError("EpochDecisions.from_scores needs at least one evaluated epoch")
        id_type = np.int16 if first.n_classes <= np.iinfo(np.int16).max else np.int32
        spaces = {key: SpaceDecisions(np.stack([r[0] for r in rows]).astype(id_type),
                                      np.stack([r[1] for r in rows]).astype(id_type),
                                      np.stack([r[2] for r in rows]).astype(np.float64))
                  for key, rows in per_space.items()}
        labels = {"seen": as_ids(first.labels_seen, "labels"), "unseen": as_ids(first.labels_unseen, "labels")}
        return cls(np.asarray(epochs, dtype=np.int32), first.seen_classes, first.unseen_classes, float(score_scale),
                   labels, spaces)


def _rescaled(scores: Scores, factor: float) -> Scores:
    if factor == 1.0:
        return scores
    return scores._replace(scores_seen=np.asarray(scores.scores_seen) * np.float32(factor),
                           scores_unseen=np.asarray(scores.scores_unseen) * np.float32(factor))


def _check_same_samples(first: Scores, other: Scores, epoch: int) -> None:
    same = (np.array_equal(first.labels_seen, other.labels_seen)
            and np.array_equal(first.labels_unseen, other.labels_unseen)
            and np.array_equal(first.seen_classes, other.seen_classes)
            and np.array_equal(first.unseen_classes, other.unseen_classes))
    if not same:
        raise ValueError(f"epoch {epoch} was evaluated on other images or classes than the first epoch")


# --------------------------------------------------------------------------- arrays ↔ EpochDecisions
def to_arrays(decisions: EpochDecisions) -> dict[str, np.ndarray]:
    """The file's arrays (see the module docstring); ``prob``/``svip`` classes only where they differ."""
    arrays: dict[str, np.ndarray] = {
        "epochs": decisions.epochs, "seen_classes": decisions.seen_classes,
        "unseen_classes": decisions.unseen_classes, "score_scale": np.asarray(decisions.score_scale),
    }
    for side in SIDES:
        arrays[f"{side}_labels"] = decisions.labels[side]
    for space in DECISION_SPACES:
        for side in SIDES:
            d, logit = decisions.spaces[(space, side)], decisions.spaces[("logit", side)]
            arrays[f"{space}_{side}_margin"] = d.margin
            if space == "logit" or not (np.array_equal(d.best_seen, logit.best_seen)
                                        and np.array_equal(d.best_unseen, logit.best_unseen)):
                arrays[f"{space}_{side}_best_seen"] = d.best_seen
                arrays[f"{space}_{side}_best_unseen"] = d.best_unseen
    return arrays


def from_arrays(arrays: dict[str, np.ndarray]) -> EpochDecisions:
    """The :class:`EpochDecisions` of a file's arrays; :class:`EpochDecisionsError` names a missing one."""
    required = ["epochs", "seen_classes", "unseen_classes", "score_scale",
                *(f"{side}_labels" for side in SIDES),
                *(f"{space}_{side}_margin" for space in DECISION_SPACES for side in SIDES),
                *(f"logit_{side}_{part}" for side in SIDES for part in ("best_seen", "best_unseen"))]
    missing = [name for name in required if name not in arrays]
    if missing:
        raise EpochDecisionsError(f"the epoch decisions lack {', '.join(missing)}; they were not written by "
                                  "zslbench — re-run the evaluation")
    spaces = {}
    for space in DECISION_SPACES:
        for side in SIDES:
            source = space if f"{space}_{side}_best_seen" in arrays else "logit"
            spaces[(space, side)] = SpaceDecisions(arrays[f"{source}_{side}_best_seen"],
                                                   arrays[f"{source}_{side}_best_unseen"],
                                                   arrays[f"{space}_{side}_margin"])
    return EpochDecisions(np.asarray(arrays["epochs"]), np.asarray(arrays["seen_classes"], dtype=np.int64),
                          np.asarray(arrays["unseen_classes"], dtype=np.int64), float(arrays["score_scale"]),
                          {side: as_ids(arrays[f"{side}_labels"], "labels") for side in SIDES}, spaces)


def to_bytes(decisions: EpochDecisions) -> bytes:
    """``decisions`` as the bytes of a compressed ``.npz`` file."""
    buffer = io.BytesIO()
    np.savez_compressed(buffer, **to_arrays(decisions))
    return buffer.getvalue()


def save(path: str | os.PathLike[str], decisions: EpochDecisions) -> None:
    """Write ``decisions`` to ``path`` atomically."""
    atomic_write(path, to_bytes(decisions))


def from_bytes(data: bytes) -> EpochDecisions:
    """The decisions stored in a file's bytes."""
    return _read(io.BytesIO(data), "epoch decisions bytes")


def load(path: str | os.PathLike[str]) -> EpochDecisions:
    """The decisions stored at ``path``."""
    return _read(path, f"epoch decisions file {path}")


def _read(source, where: str) -> EpochDecisions:
    try:
        with np.load(source) as stored:
            arrays = {name: stored[name] for name in stored.files}
    except FileNotFoundError:
        raise
    except (OSError, ValueError, EOFError, zipfile.BadZipFile) as exc:
        raise EpochDecisionsError(f"{where} is unreadable or corrupt ({type(exc).__name__}); "
                                  "re-run the evaluation that wrote it") from None
    return from_arrays(arrays)


__all__ = ["DECISION_SPACES", "SVIP_EVAL_SCALE", "EpochDecisions", "EpochDecisionsError", "SpaceDecisions",
           "from_arrays", "from_bytes", "load", "save", "to_arrays", "to_bytes"]
