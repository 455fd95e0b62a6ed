"""Tests of zslbench.metrics (PROTOCOL.md §3): hand-computed cases, brute-force references, properties,
and the scores file."""

from __future__ import annotations

import ast
import dataclasses
import doctest
import importlib
import io
import math
import pkgutil
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from zslbench import metrics
from zslbench.core.errors import UserError
from zslbench.metrics import (
    GZSLResult,
    Scores,
    ScoresFileError,
    aggregate_seeds,
    ausuc,
    choose_gamma,
    evaluate_scores,
    gzsl_metrics,
    gzsl_sweep,
    overall_accuracy,
    per_class_accuracy,
    scores_file,
    select_epoch,
    zsl_accuracy,
)

PROPERTY_SETTINGS = settings(max_examples=40, deadline=None)

# --------------------------------------------------------------------------- a hand-computed case
# 3 seen classes (0, 1, 2) and 2 unseen classes (3, 4).
SEEN, UNSEEN = [0, 1, 2], [3, 4]
#                         0    1    2    3    4      label  γ=0 prediction   margin = best seen − best unseen
SCORES_SEEN = np.array([[3.0, 1.0, 0.0, 2.5, 0.0],  # 0   0 ✓              0.5
                        [0.0, 2.0, 0.0, 0.0, 1.0],  # 1   1 ✓              1.0
                        [0.0, 1.0, 0.0, 1.5, 0.0],  # 1   3 ✗ (seen: 1 ✓) -0.5
                        [0.0, 0.0, 4.0, 0.0, 0.0]])  # 2   2 ✓              4.0
LABELS_SEEN = np.array([0, 1, 1, 2])
SCORES_UNSEEN = np.array([[2.0, 0.0, 0.0, 1.0, 0.0],  # 3   0 ✗ (unseen: 3 ✓) 1.0
                          [0.0, 0.0, 0.0, 3.0, 0.0],  # 3   3 ✓             -3.0
                          [1.2, 0.0, 0.0, 0.0, 1.0],  # 4   0 ✗ (unseen: 4 ✓) 0.2
                          [0.0, 0.0, 0.0, 2.0, 1.0]])  # 4   3 ✗             -2.0
LABELS_UNSEEN = np.array([3, 3, 4, 4])
HAND = Scores(scores_seen=SCORES_SEEN, labels_seen=LABELS_SEEN, scores_unseen=SCORES_UNSEEN,
              labels_unseen=LABELS_UNSEEN, seen_classes=SEEN, unseen_classes=UNSEEN)


def gzsl_case(scores_seen, labels_seen, scores_unseen, labels_unseen, seen, unseen) -> Scores:
    """A small GZSL case from its six parts, in the order the comments of each test read them."""
    return Scores(scores_seen=np.asarray(scores_seen), labels_seen=np.asarray(labels_seen),
                  scores_unseen=np.asarray(scores_unseen), labels_unseen=np.asarray(labels_unseen),
                  seen_classes=seen, unseen_classes=unseen)


@pytest.mark.parametrize(
    ("gamma", "u", "s"),
    [
        # γ=0: S = (1 + 1/2 + 1)/3, U = (1/2 + 0)/2
        (0.0, 1 / 4, 5 / 6),
        # γ=0.6: seen row 0 (margin 0.5) switches to 3 ✗; unseen row 2 (0.2) switches to 4 ✓
        (0.6, 1 / 2, 1 / 2),
        # γ=1.5: also seen row 1 (1.0) switches to 4 ✗ and unseen row 0 (1.0) to 3 ✓
        (1.5, 3 / 4, 1 / 3),
        # γ=-3.5: everything predicted seen: U = 0, S = (1 + 2/2 + 1)/3
        (-3.5, 0.0, 1.0),
    ],
)
def test_hand_computed_logit_space(gamma: float, u: float, s: float) -> None:
    result = gzsl_metrics(HAND, gamma=gamma)
    assert result.u == pytest.approx(u)
    assert result.s == pytest.approx(s)
    assert result.h == pytest.approx(2 * u * s / (u + s))
    assert result.gamma == gamma


def test_hand_computed_h_at_gamma_zero_is_five_thirteenths() -> None:
    assert gzsl_metrics(HAND).h == pytest.approx(5 / 13)


def test_prob_space_differs_from_logit_space() -> None:
    # Unseen row 2: softmax([1.2, 0, 0, 0, 1]) gives p0 − p4 = (e^1.2 − e) / (e^1.2 + 3 + e) ≈ 0.067,
    # so γ = 0.1 switches it in probability space, while its logit margin is 0.2.
    prob_margin = (math.exp(1.2) - math.e) / (math.exp(1.2) + 3 + math.e)
    assert 0.06 < prob_margin < 0.07
    # Every other row keeps its prediction at γ = 0.1 in both spaces (prob margins ≈ 0.21, 0.36, 0.36 or < 0).
    logit = gzsl_metrics(HAND, gamma=0.1, space="logit")
    prob = gzsl_metrics(HAND, gamma=0.1, space="prob")
    assert (logit.u, logit.s) == pytest.approx((1 / 4, 5 / 6))
    assert (prob.u, prob.s) == pytest.approx((1 / 2, 5 / 6))
    assert prob.h == pytest.approx(0.625)


def test_zsl_accuracy_hand_computed() -> None:
    # argmax among unseen {3, 4}: rows → 3 ✓, 3 ✓, 4 ✓, 3 ✗ → class 3: 1, class 4: 1/2
    assert zsl_accuracy(HAND) == pytest.approx(0.75)


def test_per_class_and_overall_accuracy() -> None:
    pred, labels = [0, 1, 1, 1, 2], [0, 0, 1, 1, 2]
    assert per_class_accuracy(pred, labels) == pytest.approx((1 / 2 + 1 + 1) / 3)
    assert overall_accuracy(pred, labels) == pytest.approx(4 / 5)
    # restricted: only samples labelled 0 or 7 count, and absent class 7 is not averaged
    assert per_class_accuracy(pred, labels, classes=[0, 7]) == pytest.approx(1 / 2)


def test_per_class_accuracy_rejects_empty_restriction() -> None:
    with pytest.raises(ValueError, match="empty split"):
        per_class_accuracy([0, 1], [0, 1], classes=[5])


# --------------------------------------------------------------------------- guards and ties


def test_h_is_zero_not_nan_when_u_and_s_are_zero() -> None:
    # seen sample predicted unseen, unseen sample predicted seen: U = S = 0
    scores_seen = np.array([[0.0, 1.0]])
    scores_unseen = np.array([[1.0, 0.0]])
    case = gzsl_case(scores_seen, [0], scores_unseen, [1], [0], [1])
    result = gzsl_metrics(case)
    assert (result.u, result.s, result.h) == (0.0, 0.0, 0.0)
    sweep = gzsl_sweep(case, gammas=[-0.5, 0.0, 0.5])
    assert not np.isnan(sweep["h"]).any()
    assert sweep["h"][1] == 0.0


def test_tie_between_seen_and_unseen_goes_to_lowest_class_id() -> None:
    seen, unseen = [1, 2], [0, 3]
    scores = np.array([[1.0, 1.0, 0.0, 0.0]])  # unseen 0 ties seen 1 → 0 (unseen) wins
    assert gzsl_metrics(gzsl_case(scores, [1], scores, [0], seen, unseen)).u == 1.0
    assert gzsl_metrics(gzsl_case(scores, [1], scores, [0], seen, unseen)).s == 0.0
    scores = np.array([[0.0, 1.0, 0.0, 1.0]])  # seen 1 ties unseen 3 → 1 (seen) wins
    assert gzsl_metrics(gzsl_case(scores, [1], scores, [3], seen, unseen)).s == 1.0


def test_tie_created_by_gamma_goes_to_lowest_class_id() -> None:
    scores = np.array([[0.0, 1.5, 0.0]])  # seen 1; at γ = 1.5 all three adjusted scores are 0
    case = gzsl_case(scores, [1], scores, [0], seen=[1], unseen=[0, 2])
    at_margin = gzsl_metrics(case, gamma=1.5)
    assert at_margin.u == 1.0 and at_margin.s == 0.0  # class 0 (unseen) wins the three-way tie
    just_below = gzsl_metrics(case, gamma=np.nextafter(1.5, 0.0))
    assert just_below.u == 0.0 and just_below.s == 1.0
    sweep = gzsl_sweep(case, gammas=[1.5, np.nextafter(1.5, 0.0)])
    assert sweep["u"].tolist() == [1.0, 0.0]
    # seen {0, 1}, unseen {2}: at γ = 1.5 the adjusted scores are (−1.5, 0, 0): seen 1 beats unseen 2
    swapped = gzsl_metrics(gzsl_case(scores, [1], scores, [2], seen=[0, 1], unseen=[2]), gamma=1.5)
    assert (swapped.s, swapped.u) == (1.0, 0.0)


def test_tie_within_seen_classes_goes_to_lowest_id() -> None:
    scores = np.array([[2.0, 2.0, 0.0]])
    assert gzsl_metrics(gzsl_case(scores, [0], scores, [2], [0, 1], [2])).s == 1.0
    assert gzsl_metrics(gzsl_case(scores, [1], scores, [2], [0, 1], [2])).s == 0.0


def test_columns_outside_seen_and_unseen_never_win() -> None:
    # a validation split predicts among its own classes only: column 1 is neither seen nor unseen
    scores = np.array([[1.0, 9.0, 0.0, 0.5]])
    case = gzsl_case(scores, [0], scores, [3], seen=[0, 2], unseen=[3])
    result = gzsl_metrics(case, gamma=0.0)
    assert (result.s, result.u) == (1.0, 0.0)
    assert gzsl_metrics(case, gamma=0.6, space="prob").u == 1.0


# --------------------------------------------------------------------------- brute-force references


def random_problem(
    seed: int,
    n_classes: int = 9,
    n_seen_classes: int = 6,
    n_seen: int = 40,
    n_unseen: int = 30,
    integer: bool = False,
) -> Scores:
    """Random GZSL scores over interleaved class ids; ``integer`` makes many exact ties."""
    rng = np.random.default_rng(seed)
    perm = rng.permutation(n_classes)
    seen, unseen = np.sort(perm[:n_seen_classes]), np.sort(perm[n_seen_classes:])
    labels_seen, labels_unseen = rng.choice(seen, n_seen), rng.choice(unseen, n_unseen)

    def scores(labels: np.ndarray) -> np.ndarray:
        if integer:
            return rng.integers(0, 4, (labels.size, n_classes)).astype(np.float64)
        matrix = rng.standard_normal((labels.size, n_classes))
        matrix[np.arange(labels.size), labels] += 1.0  # informative, so accuracies are non-trivial
        return matrix

    return Scores(scores_seen=scores(labels_seen), labels_seen=labels_seen, scores_unseen=scores(labels_unseen),
                  labels_unseen=labels_unseen, seen_classes=seen, unseen_classes=unseen)


def softmax_rows(matrix: np.ndarray) -> np.ndarray:
    exp = np.exp(matrix - matrix.max(axis=1, keepdims=True))
    return exp / exp.sum(axis=1, keepdims=True)


def direct_prediction(scores: np.ndarray, seen: np.ndarray, unseen: np.ndarray, gamma: float, space: str) -> np.ndarray:
    """The textbook definition: subtract γ from seen columns, argmax over seen ∪ unseen."""
    candidates = np.union1d(seen, unseen)
    matrix = scores[:, candidates]
    if space == "prob":
        matrix = softmax_rows(matrix)
    adjusted = matrix - gamma * np.isin(candidates, seen)
    return candidates[np.argmax(adjusted, axis=1)]


def direct_metrics(problem: Scores, gamma: float, space: str = "logit") -> tuple[float, float, float]:
    scores_seen, labels_seen, scores_unseen, labels_unseen, seen, unseen = parts(problem)
    u = per_class_accuracy(direct_prediction(scores_unseen, seen, unseen, gamma, space), labels_unseen)
    s = per_class_accuracy(direct_prediction(scores_seen, seen, unseen, gamma, space), labels_seen)
    return u, s, (2 * u * s / (u + s) if u + s > 0 else 0.0)


def brute_force_operating_points(problem: Scores, space: str = "logit") -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(γ, U, S) at every sample margin, every midpoint and beyond both ends, in γ order."""
    scores_seen, _, scores_unseen, _, seen, unseen = parts(problem)
    margins = []
    for scores in (scores_seen, scores_unseen):
        matrix = softmax_rows(scores[:, np.union1d(seen, unseen)]) if space == "prob" else scores
        if space == "prob":  # columns of the candidate matrix, in candidate order
            candidates = np.union1d(seen, unseen)
            margins.append(matrix[:, np.isin(candidates, seen)].max(1) - matrix[:, np.isin(candidates, unseen)].max(1))
        else:
            margins.append(matrix[:, seen].max(1) - matrix[:, unseen].max(1))
    points = np.unique(np.concatenate(margins))
    span = np.abs(points).max() + 10.0
    gammas = np.sort(np.concatenate([points, (points[:-1] + points[1:]) / 2, [-span, span]]))
    u, s, _ = np.array([direct_metrics(problem, g, space) for g in gammas]).T
    return gammas, u, s


def parts(problem: Scores) -> tuple[np.ndarray, ...]:
    """The six arrays of a problem, for the reference implementations below."""
    return (problem.scores_seen, problem.labels_seen, problem.scores_unseen, problem.labels_unseen,
            problem.seen_classes, problem.unseen_classes)


def trapezoid_area(u: np.ndarray, s: np.ndarray) -> float:
    return float(np.sum(np.diff(u) * (s[1:] + s[:-1]) / 2))


@pytest.mark.parametrize("space", ["logit", "prob"])
@pytest.mark.parametrize(
    ("seed", "n_seen_classes", "integer"), [(0, 6, False), (1, 3, False), (2, 6, True), (3, 2, True)]
)
def test_gzsl_metrics_matches_textbook_argmax(seed: int, n_seen_classes: int, integer: bool, space: str) -> None:
    problem = random_problem(seed, n_seen_classes=n_seen_classes, integer=integer)
    for gamma in (-1.0, 0.0, 0.05, 0.5, 1.0, 2.0):
        result = gzsl_metrics(problem, gamma=gamma, space=space)
        assert (result.u, result.s, result.h) == pytest.approx(direct_metrics(problem, gamma, space), abs=1e-12)


@pytest.mark.parametrize("space", ["logit", "prob"])
@pytest.mark.parametrize(("seed", "n_seen_classes", "integer"), [(4, 6, False), (5, 3, False), (6, 5, True)])
def test_sweep_equals_loop_over_gzsl_metrics(seed: int, n_seen_classes: int, integer: bool, space: str) -> None:
    problem = random_problem(seed, n_seen_classes=n_seen_classes, integer=integer)
    # unsorted γ, repeated values, exact integer margins (ties when scores are integers), infinities
    gammas = np.array([0.5, -3.0, 0.0, 1.0, 1.0, 2.0, -1.0, 0.25, np.inf, -np.inf, 3.0, -0.75])
    sweep = gzsl_sweep(problem, gammas=gammas, space=space)
    looped = [gzsl_metrics(problem, gamma=g, space=space) for g in gammas]
    np.testing.assert_allclose(sweep["u"], [r.u for r in looped], atol=1e-12)
    np.testing.assert_allclose(sweep["s"], [r.s for r in looped], atol=1e-12)
    np.testing.assert_allclose(sweep["h"], [r.h for r in looped], atol=1e-12)
    np.testing.assert_array_equal(sweep["gamma"], gammas)


@pytest.mark.parametrize("space", ["logit", "prob"])
@pytest.mark.parametrize(("seed", "n_seen_classes", "integer"), [(7, 6, False), (8, 2, False), (9, 5, True)])
def test_ausuc_equals_brute_force(seed: int, n_seen_classes: int, integer: bool, space: str) -> None:
    problem = random_problem(seed, n_seen_classes=n_seen_classes, integer=integer)
    gammas, u, s = brute_force_operating_points(problem, space)
    area, curve = ausuc(problem, space=space)
    assert area == pytest.approx(trapezoid_area(u, s), abs=1e-12)
    # the curve runs from all-seen (U = 0) to all-unseen (S = 0), U increasing, S decreasing
    assert curve.u[0] == 0.0 and curve.s[-1] == 0.0
    assert curve.gamma[0] == -np.inf and curve.gamma[-1] == np.inf
    assert np.all(np.diff(curve.u) >= 0) and np.all(np.diff(curve.s) <= 0)
    # every operating point on the curve is a real one: gzsl_metrics at its γ gives it
    for g, cu, cs in zip(curve.gamma[1:-1], curve.u[1:-1], curve.s[1:-1]):
        result = gzsl_metrics(problem, gamma=g, space=space)
        assert (result.u, result.s) == pytest.approx((cu, cs), abs=1e-12)
    # and the distinct brute-force points are exactly the curve's points
    brute_points = {(round(a, 9), round(b, 9)) for a, b in zip(u, s)}
    curve_points = {(round(a, 9), round(b, 9)) for a, b in zip(curve.u, curve.s)}
    assert curve_points == brute_points


@pytest.mark.parametrize("space", ["logit", "prob"])
@pytest.mark.parametrize(("seed", "integer"), [(10, False), (11, True), (12, False)])
def test_oracle_gamma_reaches_the_brute_force_maximum(seed: int, integer: bool, space: str) -> None:
    problem = random_problem(seed, integer=integer)
    gammas, u, s = brute_force_operating_points(problem, space)
    best_h = max(direct_metrics(problem, g, space)[2] for g in gammas)
    choice = choose_gamma("oracle", problem, space=space)
    gamma, h = choice
    assert choice.oracle and choice.policy == "oracle"
    assert h == pytest.approx(best_h, abs=1e-12)
    assert gzsl_metrics(problem, gamma=gamma, space=space).h == h
    # γ lies strictly inside an interval: nudging it either way changes nothing
    for nudged in (np.nextafter(gamma, -np.inf), np.nextafter(gamma, np.inf)):
        assert gzsl_metrics(problem, gamma=nudged, space=space).h == pytest.approx(h, abs=1e-12)


def test_oracle_prefers_gamma_zero_when_calibration_cannot_help() -> None:
    problem = perfectly_separable_problem()
    assert tuple(choose_gamma("oracle", problem)) == (0.0, 1.0)


def perfectly_separable_problem() -> Scores:
    rng = np.random.default_rng(13)
    n_classes, seen, unseen = 7, np.array([0, 2, 3, 5]), np.array([1, 4, 6])
    labels_seen, labels_unseen = rng.choice(seen, 20), rng.choice(unseen, 15)
    scores_seen = rng.uniform(0, 1, (20, n_classes))
    scores_unseen = rng.uniform(0, 1, (15, n_classes))
    scores_seen[np.arange(20), labels_seen] = 5.0  # margins ≥ 4 for seen samples, ≤ −4 for unseen ones
    scores_unseen[np.arange(15), labels_unseen] = 5.0
    return gzsl_case(scores_seen, labels_seen, scores_unseen, labels_unseen, seen, unseen)


@pytest.mark.parametrize("space", ["logit", "prob"])
def test_perfectly_separable_scores_have_ausuc_one(space: str) -> None:
    area, curve = ausuc(perfectly_separable_problem(), space=space)
    assert area == pytest.approx(1.0, abs=1e-12)
    assert (1.0, 1.0) in set(zip(curve.u.tolist(), curve.s.tolist()))


def test_ausuc_of_hand_case() -> None:
    # Switches that change correctness, by margin (seen weights 1/3, 1/6, 1/6, 1/3; unseen 1/4 each):
    #   -3.0 unseen row 1 → ✓ (U +1/4)      -0.5 seen row 2 → ✗ (S −1/6)
    #    0.2 unseen row 2 → ✓ (U +1/4)       0.5 seen row 0 → ✗ (S −1/3)
    #    1.0 seen row 1 → ✗ (S −1/6) and unseen row 0 → ✓ (U +1/4)
    #    4.0 seen row 3 → ✗ (S −1/3)        (unseen row 3 is wrong either way)
    # Area = 1/4·1 + 1/4·5/6 + 1/4·(1/2 + 1/3)/2 = 9/16.
    area, curve = ausuc(HAND)
    assert curve.u.tolist() == pytest.approx([0.0, 0.25, 0.25, 0.5, 0.5, 0.75, 0.75])
    assert curve.s.tolist() == pytest.approx([1.0, 1.0, 5 / 6, 5 / 6, 1 / 2, 1 / 3, 0.0])
    assert area == pytest.approx(9 / 16)
    _, u, s = brute_force_operating_points(HAND)
    assert trapezoid_area(u, s) == pytest.approx(9 / 16)


# --------------------------------------------------------------------------- properties


@st.composite
def problems(draw: st.DrawFn) -> Scores:
    """Small random continuous-score problems (no exact ties)."""
    n_classes = draw(st.integers(2, 8))
    n_seen_classes = draw(st.integers(1, n_classes - 1))
    return random_problem(
        seed=draw(st.integers(0, 2**32 - 1)),
        n_classes=n_classes,
        n_seen_classes=n_seen_classes,
        n_seen=draw(st.integers(1, 12)),
        n_unseen=draw(st.integers(1, 12)),
    )


gamma_values = st.floats(min_value=-4.0, max_value=4.0, allow_nan=False)
spaces = st.sampled_from(["logit", "prob"])


@PROPERTY_SETTINGS
@given(problems(), gamma_values, spaces)
def test_h_lies_between_u_and_s(problem: Scores, gamma: float, space: str) -> None:
    result = gzsl_metrics(problem, gamma=gamma, space=space)
    assert 0.0 <= result.h <= max(result.u, result.s) + 1e-15
    if result.u > 0 and result.s > 0:
        assert result.h >= min(result.u, result.s) - 1e-15


@PROPERTY_SETTINGS
@given(problems(), st.integers(0, 2**32 - 1), gamma_values, spaces)
def test_invariant_to_class_relabelling(problem: Scores, perm_seed: int, gamma: float, space: str) -> None:
    scores_seen, labels_seen, scores_unseen, labels_unseen, seen, unseen = parts(problem)
    relabel = np.random.default_rng(perm_seed).permutation(scores_seen.shape[1])  # old id c → relabel[c]

    def move_columns(scores: np.ndarray) -> np.ndarray:
        moved = np.empty_like(scores)
        moved[:, relabel] = scores
        return moved

    relabelled = gzsl_case(
        move_columns(scores_seen), relabel[labels_seen], move_columns(scores_unseen),
        relabel[labels_unseen], relabel[seen], relabel[unseen],
    )  # fmt: skip
    before = gzsl_metrics(problem, gamma=gamma, space=space)
    after = gzsl_metrics(relabelled, gamma=gamma, space=space)
    assert (after.u, after.s, after.h) == pytest.approx((before.u, before.s, before.h), abs=1e-12)
    assert ausuc(relabelled, space=space)[0] == pytest.approx(ausuc(problem, space=space)[0], abs=1e-12)
    assert zsl_accuracy(relabelled) == pytest.approx(zsl_accuracy(problem))


@PROPERTY_SETTINGS
@given(problems(), spaces)
def test_gamma_zero_is_uncalibrated(problem: Scores, space: str) -> None:
    scores_seen, labels_seen, scores_unseen, labels_unseen, seen, unseen = parts(problem)
    candidates = np.union1d(seen, unseen)
    u = per_class_accuracy(candidates[np.argmax(scores_unseen[:, candidates], 1)], labels_unseen)
    s = per_class_accuracy(candidates[np.argmax(scores_seen[:, candidates], 1)], labels_seen)
    result = gzsl_metrics(problem, gamma=0.0, space=space)
    assert (result.u, result.s) == pytest.approx((u, s), abs=1e-12)
    report = evaluate_scores(problem, space=space)
    assert (report["gzsl_u0"], report["gzsl_s0"], report["gzsl_h0"]) == (result.u, result.s, result.h)
    assert (report["gzsl_u"], report["gzsl_s"], report["gamma"]) == (result.u, result.s, 0.0)


@PROPERTY_SETTINGS
@given(problems(), st.lists(gamma_values, min_size=1, max_size=6), spaces)
def test_ausuc_bounds_every_operating_rectangle(problem: Scores, gammas: list[float], space: str) -> None:
    area, _ = ausuc(problem, space=space)
    assert 0.0 <= area <= 1.0
    sweep = gzsl_sweep(problem, gammas=gammas, space=space)
    assert np.all(area >= sweep["u"] * sweep["s"] - 1e-12)


@PROPERTY_SETTINGS
@given(
    st.lists(
        st.fixed_dictionaries(
            {"gzsl_h": st.floats(0, 1), "zsl_t1": st.floats(0, 1), "model": st.just("svip"), "ok": st.booleans()}
        ),
        min_size=1,
        max_size=6,
    )
)
def test_aggregate_seeds_matches_numpy(results: list[dict]) -> None:
    summary = aggregate_seeds(results)
    assert set(summary) == {"gzsl_h", "zsl_t1"}  # strings and booleans are not aggregated
    for key in summary:
        values = np.array([r[key] for r in results])
        mean, std, n = summary[key]
        assert n == len(results)
        assert mean == pytest.approx(np.mean(values))
        assert std == (pytest.approx(np.std(values, ddof=1)) if n > 1 else 0.0)


def test_aggregate_seeds_counts_missing_keys_per_key() -> None:
    summary = aggregate_seeds([{"gzsl_h": 0.5, "ausuc": 0.2}, {"gzsl_h": 0.7}])
    assert summary["ausuc"] == (0.2, 0.0, 1)
    assert summary["gzsl_h"][2] == 2


# --------------------------------------------------------------------------- policies and evaluate_scores


def test_evaluate_scores_keys_and_policies() -> None:
    problem = random_problem(16)
    report = evaluate_scores(problem, gamma_policy="oracle")
    assert set(report) >= {
        "zsl_t1", "gzsl_u", "gzsl_s", "gzsl_h", "gamma", "gamma_policy", "gzsl_u0", "gzsl_s0", "gzsl_h0",
        "ausuc", "gzsl_h_oracle", "gamma_oracle",
    }  # fmt: skip
    assert report["gamma_policy"] == "oracle"
    assert report["gzsl_h"] == report["gzsl_h_oracle"] >= report["gzsl_h0"]
    assert report["gamma"] == report["gamma_oracle"]
    assert report["zsl_t1"] == zsl_accuracy(problem)
    assert report["ausuc"] == ausuc(problem)[0]
    assert all(0.0 <= report[key] <= 1.0 for key in ("zsl_t1", "gzsl_u", "gzsl_s", "gzsl_h", "ausuc"))

    fixed = evaluate_scores(problem, gamma_policy="fixed", gamma=0.7)
    assert fixed["gamma"] == 0.7 and fixed["gamma_policy"] == "fixed"
    assert fixed["gzsl_h"] == gzsl_metrics(problem, gamma=0.7).h
    assert evaluate_scores(problem, gamma_policy="fixed:0.7")["gzsl_h"] == fixed["gzsl_h"]
    assert evaluate_scores(problem)["gamma"] == 0.0


def test_evaluate_scores_prob_space_keeps_zsl_on_raw_scores() -> None:
    problem = random_problem(17)
    logit, prob = evaluate_scores(problem), evaluate_scores(problem, space="prob")
    assert prob["zsl_t1"] == logit["zsl_t1"]
    assert prob["gamma_space"] == "prob"


def test_val_policy_chooses_on_validation_scores() -> None:
    test, val = random_problem(18), dataclasses.replace(random_problem(19), split="val")
    gamma_val, h_val = choose_gamma("val", val)
    given = evaluate_scores(test, gamma_policy="val", val=val)
    # the same validation scores stored beside the test scores, and read back from the file
    stored = scores_file.to_arrays(test) | scores_file.to_arrays(val)
    from_file = evaluate_scores(test, gamma_policy="val", val=scores_file.from_arrays(
        stored, seen_classes=val.seen_classes, unseen_classes=val.unseen_classes, split="val"))
    assert given["gamma"] == from_file["gamma"] == gamma_val
    assert given["gzsl_h"] == gzsl_metrics(test, gamma=gamma_val).h
    assert h_val == gzsl_metrics(val, gamma=gamma_val).h
    assert not choose_gamma("val", val).oracle


def test_val_policy_without_validation_split_is_a_user_error() -> None:
    expected = r"gamma policy 'val' needs a validation split.*eval.gamma_policy=none or oracle"
    with pytest.raises(UserError, match=expected):
        evaluate_scores(HAND, gamma_policy="val")


def test_choose_gamma_none_and_fixed() -> None:
    assert choose_gamma("none").gamma == 0.0
    assert math.isnan(choose_gamma("fixed", gamma=0.3).h)
    gamma, h = choose_gamma("fixed:0.6", HAND)
    assert gamma == 0.6 and h == pytest.approx(0.5)
    with pytest.raises(ValueError, match="needs the scores"):
        choose_gamma("oracle")


@pytest.mark.parametrize(
    ("policy", "message"),
    [("best", "unknown gamma policy 'best'"), ("fixed:abc", "must be a number"), ("oracle:1", "takes no value")],
)
def test_bad_gamma_policy(policy: str, message: str) -> None:
    with pytest.raises(UserError, match=message):
        evaluate_scores(HAND, gamma_policy=policy)


def test_bad_space_is_a_user_error() -> None:
    with pytest.raises(UserError, match="unknown gamma space 'probs'.*Did you mean 'prob'"):
        gzsl_metrics(HAND, space="probs")


# --------------------------------------------------------------------------- input validation


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"scores_unseen": SCORES_UNSEEN[:, :4]}, "5 class columns but test_unseen scores have 4"),
        ({"labels_seen": LABELS_SEEN[:3]}, "test_seen: 4 score rows but 3 labels"),
        ({"scores_seen": np.zeros((0, 5)), "labels_seen": np.zeros(0, dtype=int)}, "test_seen split is empty"),
        ({"labels_unseen": np.array([3, 3, 4, 1])}, r"test_unseen labels \[1\] are not in unseen_classes"),
        ({"labels_seen": np.array([0, 1, 1, 9])}, "class id 9 but the scores have only 5 columns"),
        ({"unseen_classes": [2, 3, 4]}, "overlap"),
        ({"seen_classes": []}, "seen_classes is empty"),
        ({"seen_classes": [0, 1, 1, 2]}, "more than once"),
        ({"scores_seen": SCORES_SEEN[0]}, "2-D"),
        ({"labels_seen": np.array([0.0, 1.0, 1.0, 2.0])}, "integer class ids"),
        ({"scores_unseen": np.where(SCORES_UNSEEN == 3.0, np.nan, SCORES_UNSEEN)}, "NaN or infinite"),
    ],
)
def test_bad_inputs_are_rejected_with_clear_messages(change: dict, message: str) -> None:
    arguments = dict(
        scores_seen=SCORES_SEEN, labels_seen=LABELS_SEEN, scores_unseen=SCORES_UNSEEN,
        labels_unseen=LABELS_UNSEEN, seen_classes=SEEN, unseen_classes=UNSEEN,
    )  # fmt: skip
    arguments.update(change)
    with pytest.raises(ValueError, match=message):  # checked when the value is built, or (NaN) when scored
        gzsl_metrics(Scores(**arguments))


def test_nan_gamma_is_rejected() -> None:
    with pytest.raises(ValueError, match="gammas contain NaN"):
        gzsl_sweep(HAND, gammas=[0.0, np.nan])


# --------------------------------------------------------------------------- the Scores value


def test_scores_fields_are_keyword_only() -> None:
    # six arrays by position are what used to get swapped; the value refuses them
    with pytest.raises(TypeError):
        Scores(SCORES_SEEN, LABELS_SEEN, SCORES_UNSEEN, LABELS_UNSEEN, SEEN, UNSEEN)  # type: ignore[misc]


def test_scores_keep_arrays_as_given_and_class_sets_sorted() -> None:
    scores = gzsl_case(SCORES_SEEN.astype(np.float32), LABELS_SEEN.astype(np.int32), SCORES_UNSEEN, LABELS_UNSEEN,
                       seen=[2, 0, 1], unseen=[4, 3])
    assert scores.scores_seen.dtype == np.float32 and scores.labels_seen.dtype == np.int32
    assert scores.scores_unseen is SCORES_UNSEEN  # not copied
    assert scores.seen_classes.tolist() == [0, 1, 2] and scores.unseen_classes.tolist() == [3, 4]
    assert scores.n_classes == 5 and scores.candidates.tolist() == [0, 1, 2, 3, 4]
    assert scores.split_names == ("test_seen", "test_unseen")
    assert scores != HAND  # equality compares dtypes too
    assert gzsl_metrics(scores, gamma=0.6).as_dict() == gzsl_metrics(HAND, gamma=0.6).as_dict()


def test_kept_masks_must_match_their_split() -> None:
    with pytest.raises(ValueError, match=r"test_seen: 4 score rows but kept super-patch masks of shape \(3, 4\)"):
        dataclasses.replace(HAND, kept_seen=np.zeros((3, 4), dtype=bool))


def test_validation_scores_name_their_splits_in_errors() -> None:
    with pytest.raises(ValueError, match="val_unseen: 4 score rows but 3 labels"):
        dataclasses.replace(HAND, labels_unseen=LABELS_UNSEEN[:3], split="val")


def test_calibrated_hand_case() -> None:
    # γ = 0.6 subtracted from the seen columns 0, 1, 2: U = S = 1/2 (see the hand-computed case above)
    calibrated = HAND.calibrated(0.6)
    np.testing.assert_allclose(calibrated.scores_seen[:, :3], SCORES_SEEN[:, :3] - 0.6)
    np.testing.assert_array_equal(calibrated.scores_unseen[:, 3:], SCORES_UNSEEN[:, 3:])
    assert (gzsl_metrics(calibrated).u, gzsl_metrics(calibrated).s) == pytest.approx((1 / 2, 1 / 2))


@pytest.mark.parametrize("space", ["logit", "prob"])
@pytest.mark.parametrize("seed", [20, 21])
def test_calibrated_scores_give_the_metrics_at_that_gamma(seed: int, space: str) -> None:
    problem = random_problem(seed)
    for gamma in (-0.5, 0.0, 0.05, 0.3, 1.0):
        shifted = gzsl_metrics(problem.calibrated(gamma, space))  # plain argmax of the shifted scores
        assert shifted.as_dict() | {"gamma": gamma} == pytest.approx(
            gzsl_metrics(problem, gamma=gamma, space=space).as_dict(), abs=1e-12)


# --------------------------------------------------------------------------- the scores file


def trainer_arrays(seed: int, n_seen: int = 7, n_unseen: int = 5, n_classes: int = 6) -> dict[str, dict]:
    """One evaluation as the trainer collects it: float32 scores over all classes, int64 labels, bool kept."""
    rng = np.random.default_rng(seed)
    seen, unseen = np.array([0, 2, 3, 5]), np.array([1, 4])
    split = {}
    for tag, classes, n in (("test_seen", seen, n_seen), ("test_unseen", unseen, n_unseen)):
        split[tag] = {"scores": rng.standard_normal((n, n_classes)).astype(np.float32),
                      "labels": rng.choice(classes, n).astype(np.int64),
                      "kept": rng.random((n, 4)) < 0.5}
    return split


def todays_file(split: dict[str, dict]) -> bytes:
    """A scores file exactly as the trainer wrote it before the scores module existed."""
    arrays = {f"{tag}_{key}": value for tag, part in split.items() for key, value in part.items()}
    buffer = io.BytesIO()
    np.savez_compressed(buffer, **arrays)
    return buffer.getvalue()


def npz_members(data: bytes) -> list[tuple[str, bytes]]:
    """The stored .npy members of an npz file: names, order and bytes (header + data), not zip timestamps."""
    import zipfile

    with zipfile.ZipFile(io.BytesIO(data)) as archive:
        return [(name, archive.read(name)) for name in archive.namelist()]


SYNTH_SEEN, SYNTH_UNSEEN = np.array([0, 2, 3, 5]), np.array([1, 4])


def test_a_file_in_todays_format_loads_and_is_written_back_identically(tmp_path: Path) -> None:
    split = trainer_arrays(22)
    legacy = tmp_path / "epoch001.npz"
    legacy.write_bytes(todays_file(split))
    scores = scores_file.load(legacy, seen_classes=SYNTH_SEEN, unseen_classes=SYNTH_UNSEEN)
    assert scores.labels_seen is not None and scores.kept_unseen is not None
    for side, tag in (("seen", "test_seen"), ("unseen", "test_unseen")):
        for part in ("scores", "labels", "kept"):
            stored, loaded = split[tag][part], getattr(scores, f"{part}_{side}")
            assert loaded.dtype == stored.dtype and np.array_equal(loaded, stored), (tag, part)
    # the writer reproduces every member of the old file, in the same order, byte for byte
    assert npz_members(scores_file.to_bytes(scores)) == npz_members(legacy.read_bytes())
    assert list(scores_file.to_arrays(scores)) == [
        "test_seen_scores", "test_seen_labels", "test_seen_kept",
        "test_unseen_scores", "test_unseen_labels", "test_unseen_kept"]


def test_scores_file_round_trip(tmp_path: Path) -> None:
    split = trainer_arrays(23)
    scores = Scores(scores_seen=split["test_seen"]["scores"], labels_seen=split["test_seen"]["labels"],
                    scores_unseen=split["test_unseen"]["scores"], labels_unseen=split["test_unseen"]["labels"],
                    seen_classes=SYNTH_SEEN, unseen_classes=SYNTH_UNSEEN)  # no kept masks: a baseline
    path = tmp_path / "scores" / "epoch000.npz"
    scores_file.save(path, scores)
    assert [p.name for p in path.parent.iterdir()] == ["epoch000.npz"]  # atomic: no temporary file left
    loaded = scores_file.load(path, seen_classes=SYNTH_SEEN, unseen_classes=SYNTH_UNSEEN)
    assert loaded == scores and loaded.kept_seen is None and loaded.kept_unseen is None
    assert scores_file.from_bytes(path.read_bytes(), seen_classes=SYNTH_SEEN, unseen_classes=SYNTH_UNSEEN) == scores
    assert scores_file.load(path) == scores  # the class sets inferred from the labels are the run's here
    assert evaluate_scores(loaded, gamma_policy="oracle") == evaluate_scores(scores, gamma_policy="oracle")
    with np.load(path) as stored:
        assert stored.files == ["test_seen_scores", "test_seen_labels", "test_unseen_scores", "test_unseen_labels"]


def test_scores_file_keeps_seen_and_unseen_apart(tmp_path: Path) -> None:
    # the hand-computed case in today's format: the splits differ in every array, and U ≠ S
    path = tmp_path / "hand.npz"
    path.write_bytes(todays_file({"test_seen": {"scores": SCORES_SEEN, "labels": LABELS_SEEN},
                                  "test_unseen": {"scores": SCORES_UNSEEN, "labels": LABELS_UNSEEN}}))
    loaded = scores_file.load(path, seen_classes=SEEN, unseen_classes=UNSEEN)
    assert loaded == HAND
    np.testing.assert_array_equal(loaded.scores_seen, SCORES_SEEN)
    np.testing.assert_array_equal(loaded.labels_seen, LABELS_SEEN)
    np.testing.assert_array_equal(loaded.scores_unseen, SCORES_UNSEEN)
    np.testing.assert_array_equal(loaded.labels_unseen, LABELS_UNSEEN)
    result = gzsl_metrics(loaded)
    assert (result.u, result.s) == pytest.approx((1 / 4, 5 / 6))  # swapped splits would give other numbers
    assert zsl_accuracy(loaded) == pytest.approx(0.75)
    inferred = scores_file.load(path)
    assert inferred.seen_classes.tolist() == SEEN and inferred.unseen_classes.tolist() == UNSEEN
    # swapped class sets are refused, not silently scored
    with pytest.raises(ValueError, match=r"test_seen labels \[0, 1, 2\] are not in seen_classes"):
        scores_file.load(path, seen_classes=UNSEEN, unseen_classes=SEEN)
    # and the writer puts each split under its own keys
    arrays = scores_file.to_arrays(loaded)
    assert arrays["test_seen_labels"] is loaded.labels_seen and arrays["test_unseen_scores"] is loaded.scores_unseen


def test_validation_scores_beside_the_test_scores() -> None:
    val = dataclasses.replace(random_problem(24), split="val")
    arrays = scores_file.to_arrays(HAND) | scores_file.to_arrays(val)
    assert scores_file.missing_keys(arrays, "val") == [] and scores_file.missing_keys(scores_file.to_arrays(HAND), "val")
    assert scores_file.from_arrays(arrays, seen_classes=SEEN, unseen_classes=UNSEEN) == HAND
    loaded = scores_file.from_arrays(arrays, seen_classes=val.seen_classes, unseen_classes=val.unseen_classes,
                                     split="val")
    assert loaded == val and loaded.split_names == ("val_seen", "val_unseen")


def test_unusable_scores_files_are_named() -> None:
    with pytest.raises(ScoresFileError, match="lack test_unseen_labels"):
        scores_file.from_arrays({k: v for k, v in scores_file.to_arrays(HAND).items() if k != "test_unseen_labels"})
    with pytest.raises(ScoresFileError, match=r"unreadable or corrupt \(BadZipFile"):
        scores_file.from_bytes(b"PK\x03\x04 not a zip")
    with pytest.raises(ValueError, match="both seen_classes and unseen_classes, or neither"):
        scores_file.from_bytes(scores_file.to_bytes(HAND), seen_classes=SEEN)
    assert issubclass(ScoresFileError, UserError)


# --------------------------------------------------------------------------- epoch selection


HISTORY = [
    {"gzsl_h": 0.30, "zsl_t1": 0.50, "val_gzsl_h": 0.40},
    {"gzsl_h": 0.45, "zsl_t1": 0.40, "val_gzsl_h": 0.35},
    {"gzsl_h": 0.45, "zsl_t1": 0.55, "val_gzsl_h": 0.40},
    {"gzsl_h": 0.40, "zsl_t1": 0.52},  # no validation metric logged this epoch
]


def test_select_epoch_final_val_oracle() -> None:
    final = select_epoch(HISTORY, "final")
    assert (final.epoch, final.epoch_h, final.epoch_t1, final.oracle) == (3, 3, 3, False)
    val = select_epoch(HISTORY, "val")
    assert (val.epoch, val.oracle) == (0, False)  # first of the tied best
    oracle = select_epoch(HISTORY, "oracle")
    assert (oracle.epoch, oracle.epoch_h, oracle.epoch_t1, oracle.oracle) == (1, 1, 2, True)
    t1 = select_epoch(HISTORY, "oracle", metric="zsl_t1")
    assert (t1.epoch, t1.epoch_h, t1.epoch_t1) == (2, 1, 2)


def test_select_epoch_errors() -> None:
    with pytest.raises(UserError, match=r"needs per-epoch 'val_gzsl_h'.*eval.selection=final or oracle"):
        select_epoch([{"gzsl_h": 0.3}], "val")
    with pytest.raises(UserError, match="unknown epoch selection policy 'best'"):
        select_epoch(HISTORY, "best")
    with pytest.raises(ValueError, match="history is empty"):
        select_epoch([], "final")


# --------------------------------------------------------------------------- result types and docs


def test_gzsl_result_is_a_frozen_mapping() -> None:
    result = GZSLResult(u=0.25, s=0.5, h=1 / 3, gamma=0.1)
    assert result["u"] == 0.25
    assert dict(result) == result.as_dict() == {"u": 0.25, "s": 0.5, "h": 1 / 3, "gamma": 0.1}
    assert list(result.keys()) == ["u", "s", "h", "gamma"]
    with pytest.raises(KeyError):
        result["t1"]
    with pytest.raises(dataclasses.FrozenInstanceError):
        result.u = 1.0  # type: ignore[misc]


METRIC_MODULES = ["zslbench.metrics"] + [f"zslbench.metrics.{m.name}" for m in pkgutil.iter_modules(metrics.__path__)]


@pytest.mark.parametrize("name", METRIC_MODULES)
def test_docstring_examples_run(name: str) -> None:
    outcome = doctest.testmod(importlib.import_module(name))
    assert outcome.attempted > 0 and outcome.failed == 0  # every module shows how it is used


def test_the_package_has_every_concept_in_its_own_module() -> None:
    assert {name.rsplit(".", 1)[-1] for name in METRIC_MODULES} >= {
        "scores", "scores_file", "accuracy", "stacking", "gzsl", "su_curve", "evaluate", "paper", "selection"}


@pytest.mark.parametrize("name", METRIC_MODULES)
def test_metrics_import_nothing_of_zslbench_but_core_and_never_torch(name: str) -> None:
    source = Path(importlib.import_module(name).__file__).read_text()
    imported = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            imported |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module:
            imported.add(node.module)
    outside = {m for m in imported if m.split(".")[0] in ("zslbench", "torch")
               and not m.startswith(("zslbench.core", "zslbench.metrics"))}
    assert outside == set()
    assert len(source.splitlines()) < 400  # split by concept, each module short
