"""The protocol metrics on a large score matrix, and how they compare with a per-γ Python loop.

Scores: 20,000 test samples × 717 classes (SUN's class count: 645 seen, 72 unseen), float32, half
test_seen and half test_unseen, with a label signal and a seen-class bias so calibration matters.
The library computes ZSL top-1, GZSL U/S/H (uncalibrated and at the oracle γ), calibrated stacking
over the 200 γ values of SVIP's reference search and the exact AUSUC. The reference below does the same the
straightforward way — per γ: shift, argmax, per-class accuracies in a Python loop — and must agree
with the library on U/S/H at every γ (a correctness check; only the library's time is a target).
Quick mode: 2,000 samples.
"""

from __future__ import annotations

import numpy as np
import pytest

from bench_timing import SideBySide, cpu_seconds

pytestmark = pytest.mark.benchmark(group="metrics", timer=cpu_seconds)

CLASSES, SEEN = 717, 645
LIBRARY_CALLS = 5


@pytest.fixture(scope="module")
def scores(quick):
    rng = np.random.default_rng(0)
    samples = 2_000 if quick else 20_000
    seen_classes = np.arange(SEEN)
    unseen_classes = np.arange(SEEN, CLASSES)

    def split(n: int, classes: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        labels = rng.choice(classes, size=n)
        matrix = rng.standard_normal((n, CLASSES), dtype=np.float32)
        matrix[np.arange(n), labels] += 2.5  # the model knows something
        matrix[:, seen_classes] += 0.4  # and, as usual, is biased towards the seen classes
        return matrix, labels

    seen_split = split(samples // 2, seen_classes)
    unseen_split = split(samples - samples // 2, unseen_classes)
    return (*seen_split, *unseen_split, seen_classes, unseen_classes)


def library_metrics(scores_seen, labels_seen, scores_unseen, labels_unseen, seen, unseen) -> dict:
    """What an evaluation computes: the checked scores value, every protocol metric, and the 200-γ
    calibrated-stacking sweep."""
    from zslbench.metrics import Scores, evaluate_scores, gzsl_sweep
    from zslbench.metrics.paper import SVIP_GAMMAS

    checked = Scores(scores_seen=scores_seen, labels_seen=labels_seen, scores_unseen=scores_unseen,
                     labels_unseen=labels_unseen, seen_classes=seen, unseen_classes=unseen)
    metrics = evaluate_scores(checked, gamma_policy="oracle")
    sweep = gzsl_sweep(checked, SVIP_GAMMAS)
    return {"metrics": metrics, "sweep": sweep}


def _per_class_accuracy_loop(predictions: np.ndarray, labels: np.ndarray) -> float:
    accuracies = []
    for label in np.unique(labels):
        members = labels == label
        accuracies.append(np.mean(predictions[members] == label))
    return float(np.mean(accuracies))


def reference_metrics(scores_seen, labels_seen, scores_unseen, labels_unseen, seen, unseen, gammas) -> dict:
    """The straightforward implementation: one full pass over the scores per γ, Python loops per class."""
    zsl_predictions = unseen[np.argmax(scores_unseen[:, unseen], axis=1)]
    zsl_t1 = _per_class_accuracy_loop(zsl_predictions, labels_unseen)
    u, s = [], []
    for gamma in gammas:
        accuracy = []
        for matrix, labels in ((scores_unseen, labels_unseen), (scores_seen, labels_seen)):
            shifted = matrix.astype(np.float64)  # float64 like the library's decisions
            shifted[:, seen] -= gamma
            accuracy.append(_per_class_accuracy_loop(np.argmax(shifted, axis=1), labels))
        u.append(accuracy[0])
        s.append(accuracy[1])
    u, s = np.array(u), np.array(s)
    h = np.where(u + s > 0, 2 * u * s / np.maximum(u + s, 1e-300), 0.0)
    # AUSUC on that curve: the all-seen and all-unseen end points, sorted by U, trapezoids
    curve_u = np.concatenate([[0.0], u, [zsl_t1]])
    curve_s = np.concatenate([[_per_class_accuracy_loop(seen[np.argmax(scores_seen[:, seen], axis=1)], labels_seen)],
                              s, [0.0]])
    order = np.argsort(curve_u, kind="stable")
    area = float(np.sum(np.diff(curve_u[order]) * (curve_s[order][1:] + curve_s[order][:-1]) / 2))
    return {"zsl_t1": zsl_t1, "u": u, "s": s, "h": h, "ausuc_grid": area}


def test_metrics_seconds(benchmark, recorder, scores, quick):
    """CPU seconds of the library's evaluation of one large score set (median of rounds)."""
    single = SideBySide({"library": lambda: library_metrics(*scores)})
    single.warm_up()
    benchmark.pedantic(single.round, rounds=2 if quick else 7, iterations=1)
    recorder.record("metrics_seconds", single.median("library"), rounds=single.rounds,
                    samples=scores[0].shape[0] + scores[2].shape[0], classes=CLASSES, gammas=200,
                    sides=single.summary())


def test_metrics_speedup_over_loop(benchmark, recorder, scores, quick):
    """The per-γ loop reference ÷ the library, side by side; both must give the same U/S/H.

    The reference takes ~10³ times longer, so one round runs it once and the library
    ``LIBRARY_CALLS`` times in a row (the library side's figure is the time per call).
    """
    from zslbench.metrics.paper import SVIP_GAMMAS

    outputs = {}

    def library_calls() -> None:
        for _ in range(LIBRARY_CALLS):
            outputs["library"] = library_metrics(*scores)

    pair = SideBySide({
        "library_x5": library_calls,
        "reference_loop": lambda: outputs.__setitem__("reference", reference_metrics(*scores, SVIP_GAMMAS)),
    })
    benchmark.pedantic(pair.round, rounds=1, iterations=1)

    library, reference = outputs["library"], outputs["reference"]
    for key in ("u", "s", "h"):  # correctness, not timing: the shared γ grid gives the same numbers
        np.testing.assert_allclose(library["sweep"][key], reference[key], rtol=0, atol=1e-9)
    assert library["metrics"]["zsl_t1"] == pytest.approx(reference["zsl_t1"], abs=1e-12)
    speedup = pair.median("reference_loop") / (pair.median("library_x5") / LIBRARY_CALLS)
    recorder.record("metrics_speedup_over_loop", speedup, rounds=pair.rounds, library_calls_per_round=LIBRARY_CALLS,
                    agreement="U/S/H equal (atol 1e-9) at all 200 γ; ZSL T1 equal",
                    ausuc_exact=library["metrics"]["ausuc"], ausuc_reference_200_gamma_grid=reference["ausuc_grid"],
                    sides=pair.summary())
