"""Paper reporting modes: the numbers each reference repository printed, recomputed from stored decisions.

Opt-in (``eval.mode=svip|transzero|apn``, ``zslbench table … --mode``) and always **test-selected**:
every mode picks γ and/or epochs on the test set, so its numbers are marked †. They are recomputed from a
run's per-epoch decisions (:mod:`zslbench.metrics.epochs`) — no retraining. What each mode does
(PROTOCOL.md §3, SVIP.md §8; docs/PROTOCOL.md lists every difference to the default protocol):

``svip`` — the SVIP reference (``evaluate_all_dual``)
    ZSL T1: per-class top-1 among the unseen classes. GZSL: softmax over all classes of ``5 · a · Sᵀ``;
    γ from ``np.arange(-1, 1, 0.01)`` **added to the unseen-class probabilities**; U and S are
    **per-sample** accuracies; at every epoch the γ with the best H (first on ties). Over epochs: the
    best T1 and the best H are maxima taken separately (possibly different epochs); U and S are those of
    the best-H epoch. The reference also prints U and S maximised independently over epochs
    (``gzsl_u_max``/``gzsl_s_max``: never one operating point; shown as such).
``transzero`` — TransZero (and DAZLE/MSDN, ``eval_zs_gzsl``)
    The model's own scores at γ = 0 (TransZero's scores carry their built-in ±1 margin, a logit γ of 2;
    other models have none). Per-class accuracy averaged over **every** class of the split's class set
    (the training-seen classes for S): a class without test images makes it NaN, and H is then 0.
    Best-H and best-T1 epochs separately (strictly better than 0).
``apn`` — APN (``test_gzsl``/``test_zsl``)
    Softmax over all classes, γ **subtracted from the seen-class probabilities**: 0.7 on CUB and AWA2,
    0.4 on SUN (0.7 elsewhere); **micro** (per-sample) accuracy on AWA2, per-class otherwise. Best-H and
    best-T1 epochs separately (APN's ZSL and GZSL runs each keep their best epoch).

A worked example — two epochs, two classes (0 seen, 1 unseen)::

    >>> from zslbench.metrics.scores import Scores
    >>> from zslbench.metrics.epochs import EpochDecisions
    >>> def epoch(unseen_row):
    ...     return Scores(scores_seen=[[2.0, 1.0]], labels_seen=[0], scores_unseen=[unseen_row],
    ...                   labels_unseen=[1], seen_classes=[0], unseen_classes=[1])
    >>> runs = EpochDecisions.from_scores([(0, epoch([0.9, 1.0])), (1, epoch([1.2, 1.0]))], 5.0)
    >>> r = paper_result("transzero", runs, "CUB")    # epoch 0: both right (H 1); epoch 1: the unseen image is not
    >>> (r.gzsl_h, r.epoch_h, r.zsl_t1, r.test_selected)
    (1.0, 0, 1.0, True)
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from zslbench.core.errors import unknown_name
from zslbench.metrics.accuracy import class_mean
from zslbench.metrics.epochs import EpochDecisions
from zslbench.metrics.stacking import FieldMapping, Switches

#: ``eval.mode``: the default protocol, or one paper's reporting protocol.
EVAL_MODES = ("standard", "svip", "transzero", "apn")
PAPER_MODES = EVAL_MODES[1:]
#: The γ grid of the SVIP reference: [-1, 1) in steps of 0.01 (200 values), built as it builds it.
SVIP_GAMMAS = np.arange(-1.0, 1.0, 0.01)
SVIP_GAMMAS.setflags(write=False)
#: APN's fixed calibration (subtracted from seen-class probabilities) per dataset, and elsewhere.
APN_GAMMAS = {"CUB": 0.7, "AWA2": 0.7, "SUN": 0.4}
APN_DEFAULT_GAMMA = 0.7
#: Datasets whose APN numbers are micro (per-sample) accuracies.
APN_MICRO_DATASETS = ("AWA2",)
#: One line per mode for table footnotes and ``--help``.
MODE_SUMMARIES = {
    "svip": "SVIP reference: softmax of 5·a·Sᵀ, γ ∈ [−1, 1) step 0.01 added to unseen probabilities and "
            "chosen on test per epoch, per-sample U/S; best T1 and best H over epochs, each on test",
    "transzero": "TransZero reference: the model's scores (TransZero's built-in ±1 margin), per-class accuracy "
                 "over every class of the split; best-H and best-T1 epochs on test",
    "apn": "APN reference: γ subtracted from seen-class probabilities (0.7 CUB/AWA2, 0.4 SUN), micro accuracy "
           "on AWA2; best-H and best-T1 epochs on test",
}


@dataclass(frozen=True)
class EpochNumbers:
    """One epoch's numbers under a mode (fractions; NaN where the reference would print NaN)."""

    t1: float
    u: float
    s: float
    h: float
    gamma: float


@dataclass(frozen=True)
class PaperResult(FieldMapping):
    """A run's numbers as a reference repository reports them; always test-selected (†).

    Epochs are 0-based (``None`` when no epoch beat the reference's starting value of 0, which then
    reports zeros). ``gzsl_u_max``/``gzsl_s_max``: the SVIP reference's independent maxima (NaN in the
    other modes).
    """

    mode: str
    zsl_t1: float
    gzsl_u: float
    gzsl_s: float
    gzsl_h: float
    gamma: float
    epoch_h: int | None
    epoch_t1: int | None
    gzsl_u_max: float = math.nan
    gzsl_s_max: float = math.nan
    test_selected: bool = True


def check_mode(mode: str) -> str:
    """``mode`` if it is one of :data:`EVAL_MODES`, else the standard 'unknown name' UserError.

    >>> check_mode("apn")
    'apn'
    """
    if mode not in EVAL_MODES:
        raise unknown_name("evaluation mode", mode, EVAL_MODES)
    return mode


def apn_gamma(dataset: str) -> float:
    """APN's γ for ``dataset`` (0.7 where the reference has none).

    >>> apn_gamma("SUN"), apn_gamma("synth")
    (0.4, 0.7)
    """
    return APN_GAMMAS.get(dataset, APN_DEFAULT_GAMMA)


# --------------------------------------------------------------------------- one epoch
def _zsl_correct(decisions: EpochDecisions, index: int) -> tuple[np.ndarray, np.ndarray]:
    """(correct, labels) of ZSL on the unseen split: argmax among the unseen classes of the raw scores."""
    unseen = decisions.problem(index, "logit").unseen
    return unseen.best_unseen == unseen.labels, unseen.labels


def _over_class_set(correct: np.ndarray, labels: np.ndarray, classes: np.ndarray) -> float:
    """Mean over every class of ``classes`` of its accuracy; NaN when one has no sample (0/0), as torch gives."""
    counts = np.bincount(labels, minlength=int(classes.max()) + 1)[classes]
    hits = np.bincount(labels, weights=correct, minlength=int(classes.max()) + 1)[classes]
    with np.errstate(divide="ignore", invalid="ignore"):
        return float(np.mean(hits / counts))


def _reference_h(u: float, s: float) -> float:
    """H as TransZero and APN compute it: 0 unless U + S > 0 (so NaN gives 0)."""
    return 2 * u * s / (u + s) if (u + s) > 0 else 0.0


def _svip_epoch(decisions: EpochDecisions, index: int) -> EpochNumbers:
    problem = decisions.problem(index, "svip")
    sweep = problem.sweep(np.asarray(SVIP_GAMMAS, dtype=np.float64), average="micro")
    best = int(np.argmax(sweep["h"]))  # list.index(max(H_list)): the first γ on ties
    correct, labels = _zsl_correct(decisions, index)
    return EpochNumbers(t1=class_mean(correct, labels), u=float(sweep["u"][best]), s=float(sweep["s"][best]),
                        h=float(sweep["h"][best]), gamma=float(SVIP_GAMMAS[best]))


def _transzero_epoch(decisions: EpochDecisions, index: int) -> EpochNumbers:
    problem = decisions.problem(index, "logit")

    def accuracy(split: Switches, classes: np.ndarray) -> float:
        return _over_class_set(split.predictions(0.0) == split.labels, split.labels, classes)

    u = accuracy(problem.unseen, decisions.unseen_classes)
    s = accuracy(problem.seen, decisions.seen_classes)
    correct, labels = _zsl_correct(decisions, index)
    return EpochNumbers(t1=_over_class_set(correct, labels, decisions.unseen_classes), u=u, s=s,
                        h=_reference_h(u, s), gamma=0.0)


def _apn_epoch(decisions: EpochDecisions, index: int, dataset: str) -> EpochNumbers:
    gamma = apn_gamma(dataset)
    micro = dataset in APN_MICRO_DATASETS
    result = decisions.problem(index, "prob").result(gamma, average="micro" if micro else "macro")
    correct, labels = _zsl_correct(decisions, index)
    t1 = float(np.mean(correct)) if micro else class_mean(correct, labels)
    return EpochNumbers(t1=t1, u=result.u, s=result.s, h=_reference_h(result.u, result.s), gamma=gamma)


def epoch_numbers(mode: str, decisions: EpochDecisions, index: int, dataset: str) -> EpochNumbers:
    """The numbers of the ``index``-th stored epoch under paper ``mode``."""
    if mode == "svip":
        return _svip_epoch(decisions, index)
    if mode == "transzero":
        return _transzero_epoch(decisions, index)
    if mode == "apn":
        return _apn_epoch(decisions, index, dataset)
    raise unknown_name("paper reporting mode", mode, PAPER_MODES)


# --------------------------------------------------------------------------- over epochs
#: The value each reference starts its running maximum from (a later epoch must beat it strictly).
_START = {"svip": -1.0, "transzero": 0.0, "apn": 0.0}


def reference_best(values: Sequence[float], start: float) -> int | None:
    """The epoch a reference's running maximum ends on: the first strictly better than every earlier one
    and than ``start`` (NaN never is); ``None`` when none beats ``start``.

    >>> reference_best([0.2, 0.5, 0.5, float("nan")], start=0.0), reference_best([0.0, 0.0], start=0.0)
    (1, None)
    """
    best, value = None, start
    for i, v in enumerate(values):
        if v > value:
            best, value = i, v
    return best


def paper_result(mode: str, decisions: EpochDecisions, dataset: str) -> PaperResult:
    """Paper ``mode``'s numbers for one run from its per-epoch ``decisions`` (see the module docstring)."""
    if mode not in PAPER_MODES:
        raise unknown_name("paper reporting mode", mode, PAPER_MODES)
    if len(decisions) == 0:
        raise ValueError("a paper mode needs at least one evaluated epoch")
    numbers = [epoch_numbers(mode, decisions, i, dataset) for i in range(len(decisions))]
    start = _START[mode]
    best_h = reference_best([n.h for n in numbers], start)
    best_t1 = reference_best([n.t1 for n in numbers], start)
    at_h = numbers[best_h] if best_h is not None else EpochNumbers(0.0, 0.0, 0.0, 0.0, math.nan)
    extra = {}
    if mode == "svip":
        u_best = reference_best([n.u for n in numbers], start)
        s_best = reference_best([n.s for n in numbers], start)
        extra = {"gzsl_u_max": numbers[u_best].u if u_best is not None else math.nan,
                 "gzsl_s_max": numbers[s_best].s if s_best is not None else math.nan}
    epochs = decisions.epochs
    return PaperResult(mode=mode, zsl_t1=numbers[best_t1].t1 if best_t1 is not None else 0.0,
                       gzsl_u=at_h.u, gzsl_s=at_h.s, gzsl_h=at_h.h, gamma=at_h.gamma,
                       epoch_h=int(epochs[best_h]) if best_h is not None else None,
                       epoch_t1=int(epochs[best_t1]) if best_t1 is not None else None, **extra)


__all__ = ["APN_DEFAULT_GAMMA", "APN_GAMMAS", "APN_MICRO_DATASETS", "EVAL_MODES", "MODE_SUMMARIES", "PAPER_MODES",
           "SVIP_GAMMAS", "EpochNumbers", "PaperResult", "apn_gamma", "check_mode", "epoch_numbers", "paper_result",
           "reference_best"]
