"""Paper reporting modes and per-epoch decisions: hand-computed cases, the reference loops, the stored file,
and oracle epoch selection (T1 from the best-T1 epoch, U/S/H from the best-H epoch)."""

from __future__ import annotations

import math

import numpy as np
import pytest

from zslbench.metrics import EpochDecisions, Scores, epochs, evaluate_epoch, evaluate_scores, paper_result
from zslbench.metrics.paper import SVIP_GAMMAS, epoch_numbers, reference_best

# --------------------------------------------------------------------------- a hand-computed case
# Seen classes {0, 2, 3}, unseen classes {1, 4} (interleaved ids, so an identity mapping would show).
# Every row is a probability vector with off-grid margins; the stored scores are σ/5 · ln p, so that a
# softmax of 5/σ times them — the SVIP reference's softmax(5·a·Sᵀ) — gives p back.
SEEN, UNSEEN = [0, 2, 3], [1, 4]
SEEN_LABELS, UNSEEN_LABELS = [0, 2, 3, 3], [1, 4, 4]
EPOCHS = {
    0: ([[0.6875, 0.125, 0.0625, 0.0625, 0.0625],    # label 0: best seen 0, best unseen 1, margin 0.5625
         [0.0625, 0.3125, 0.4375, 0.125, 0.0625],    # label 2: margin 0.125
         [0.5, 0.125, 0.125, 0.125, 0.125],          # label 3: best seen 0 — always wrong
         [0.0625, 0.0625, 0.125, 0.4375, 0.3125]],   # label 3: margin 0.125
        [[0.3125, 0.375, 0.125, 0.125, 0.0625],      # label 1: margin −0.0625
         [0.4375, 0.0625, 0.125, 0.0625, 0.3125],    # label 4: margin 0.125
         [0.6875, 0.0625, 0.0625, 0.0625, 0.125]]),  # label 4: margin 0.5625
    1: ([[0.6875, 0.125, 0.0625, 0.0625, 0.0625],    # margin 0.5625
         [0.0625, 0.1875, 0.5625, 0.125, 0.0625],    # margin 0.375
         [0.125, 0.125, 0.125, 0.5, 0.125],          # margin 0.375
         [0.0625, 0.0625, 0.125, 0.4375, 0.3125]],   # margin 0.125
        [[0.3125, 0.375, 0.125, 0.125, 0.0625],      # margin −0.0625
         [0.375, 0.0625, 0.0625, 0.0625, 0.4375],    # margin −0.0625
         [0.5, 0.3125, 0.0625, 0.0625, 0.0625]]),    # best unseen 1: always wrong (ZSL too)
    2: ([[0.6875, 0.125, 0.0625, 0.0625, 0.0625],    # margin 0.5625
         [0.5, 0.3125, 0.0625, 0.0625, 0.0625],      # best seen 0: always wrong
         [0.5, 0.125, 0.125, 0.125, 0.125],          # always wrong
         [0.5, 0.125, 0.0625, 0.25, 0.0625]],        # always wrong
        [[0.3125, 0.375, 0.125, 0.125, 0.0625],      # margin −0.0625
         [0.375, 0.0625, 0.0625, 0.0625, 0.4375],    # margin −0.0625
         [0.0625, 0.0625, 0.0625, 0.0625, 0.75]]),   # margin −0.6875
}


def epoch_scores(epoch: int, sigma: float = 5.0) -> Scores:
    seen_p, unseen_p = (np.asarray(p, dtype=np.float64) for p in EPOCHS[epoch])
    return Scores(scores_seen=(sigma / 5.0 * np.log(seen_p)).astype(np.float32), labels_seen=SEEN_LABELS,
                  scores_unseen=(sigma / 5.0 * np.log(unseen_p)).astype(np.float32), labels_unseen=UNSEEN_LABELS,
                  seen_classes=SEEN, unseen_classes=UNSEEN)


def hand_decisions(sigma: float = 5.0) -> EpochDecisions:
    return EpochDecisions.from_scores([(e, epoch_scores(e, sigma)) for e in EPOCHS], score_scale=sigma)


# SVIP, by hand (per-sample U over 3 unseen images, S over 4 seen images; γ added to unseen probabilities):
#   epoch 0: for −0.0625 < γ < 0.125: S = 3/4, U = 1/3, H = 6/13; for 0.125 < γ < 0.5625: S = 1/4, U = 2/3,
#            H = 4/11 → best at the first grid γ above −0.0625 (−0.06). ZSL T1: class 1 1/1, class 4 2/2 → 1.
#   epoch 1: −0.0625 < γ < 0.125: S = 4/4, U = 2/3, H = 4/5 (best); T1: class 4 1/2 → 0.75.
#   epoch 2: −0.0625 < γ < 0.5625: S = 1/4, U = 3/3, H = 2/5 (best); T1 = 1 (ties epoch 0: the first stays).
#   → T1 1.0 (epoch 0), H 0.8 with U 2/3, S 1 (epoch 1), γ −0.06; independent maxima U 1 (epoch 2), S 1.
@pytest.mark.parametrize("sigma", [5.0, 2.5])  # σ ≠ 5: the SVIP reference still evaluates softmax(5·a·Sᵀ)
def test_svip_mode_hand_case(sigma: float) -> None:
    r = paper_result("svip", hand_decisions(sigma), "CUB")
    assert (r.zsl_t1, r.epoch_t1) == (1.0, 0)
    assert (r.gzsl_u, r.gzsl_s, r.gzsl_h, r.epoch_h) == pytest.approx((2 / 3, 1.0, 0.8, 1))
    assert r.gamma == pytest.approx(-0.06)
    assert (r.gzsl_u_max, r.gzsl_s_max) == pytest.approx((1.0, 1.0))
    assert r.test_selected


def test_svip_mode_per_epoch_hand_numbers() -> None:
    decisions = hand_decisions()
    got = [epoch_numbers("svip", decisions, i, "CUB") for i in range(3)]
    assert [v for n in got for v in (n.u, n.s, n.h)] == pytest.approx([1 / 3, 3 / 4, 6 / 13, 2 / 3, 1, 0.8,
                                                                       1, 1 / 4, 0.4])
    assert [n.t1 for n in got] == pytest.approx([1.0, 0.75, 1.0])


# TransZero, by hand (the scores at γ = 0; per-class over every class of the class set):
#   epoch 0: S: class 0 1, class 2 1, class 3 1/2 → 5/6; U: class 1 1, class 4 0 → 1/2; H = 0.625; T1 1.
#   epoch 1: S = 1; U: class 1 1, class 4 1/2 → 3/4; H = 6/7 (best); T1 0.75.
#   epoch 2: S: 1, 0, 0 → 1/3; U = 1; H = 1/2; T1 1.
def test_transzero_mode_hand_case() -> None:
    r = paper_result("transzero", hand_decisions(), "CUB")
    assert (r.gzsl_u, r.gzsl_s, r.gzsl_h, r.epoch_h) == pytest.approx((0.75, 1.0, 6 / 7, 1))
    assert (r.zsl_t1, r.epoch_t1) == (1.0, 0)
    assert r.gamma == 0.0 and math.isnan(r.gzsl_u_max)


def test_transzero_mode_averages_over_every_class_so_an_absent_class_gives_nan_and_h_zero() -> None:
    scores = epoch_scores(0)
    with_absent = Scores(scores_seen=np.pad(scores.scores_seen, ((0, 0), (0, 1)), constant_values=-9.0),
                         labels_seen=SEEN_LABELS, scores_unseen=np.pad(scores.scores_unseen, ((0, 0), (0, 1)),
                                                                       constant_values=-9.0),
                         labels_unseen=UNSEEN_LABELS, seen_classes=[*SEEN, 5], unseen_classes=UNSEEN)
    numbers = epoch_numbers("transzero", EpochDecisions.from_scores([(0, with_absent)]), 0, "CUB")
    assert math.isnan(numbers.s) and numbers.h == 0.0  # seen class 5 has no test image: 0/0
    assert evaluate_scores(with_absent)["gzsl_s"] == pytest.approx(5 / 6)  # the protocol: classes present


# APN on SUN (γ = 0.4 subtracted from seen probabilities, per-class):
#   epoch 0: switched iff margin < 0.4 → S: class 0 1, class 2 0, class 3 0 → 1/3; U: 1, 1/2 → 3/4; H = 6/13.
#   epoch 1: S 1/3; U: 1, 1/2 → 3/4; H = 6/13 (a tie: the first epoch stays).
#   epoch 2: S 1/3; U 1; H = 1/2 (best). T1: 1 (epoch 0), 0.75, 1.
def test_apn_mode_hand_case_sun() -> None:
    r = paper_result("apn", hand_decisions(), "SUN")
    assert (r.gzsl_u, r.gzsl_s, r.gzsl_h, r.epoch_h, r.gamma) == pytest.approx((1.0, 1 / 3, 0.5, 2, 0.4))
    assert (r.zsl_t1, r.epoch_t1) == (1.0, 0)
    assert [epoch_numbers("apn", hand_decisions(), i, "SUN").h for i in range(3)] == pytest.approx(
        [6 / 13, 6 / 13, 0.5])


def test_apn_mode_is_micro_on_awa2_and_subtracts_point_seven() -> None:
    # one epoch; γ = 0.7: only margins above 0.7 stay seen
    seen_p = [[0.875, 0.0625, 0.0, 0.0, 0.0625], [0.875, 0.0625, 0.0, 0.0, 0.0625],  # label 0, margin 0.8125
              [0.5, 0.4, 0.05, 0.0, 0.05],                                            # label 0, margin 0.1 → wrong
              [0.05, 0.45, 0.5, 0.0, 0.0]]                                            # label 2, margin 0.05 → wrong
    unseen_p = [[0.3125, 0.375, 0.125, 0.125, 0.0625],                               # label 1 → right
                [0.375, 0.0625, 0.0625, 0.0625, 0.4375],                             # label 4 → right
                [0.875, 0.0625, 0.0, 0.0, 0.0625]]                                   # label 4: stays seen; ZSL: 1 → wrong
    scores = Scores(scores_seen=np.log(np.clip(seen_p, 1e-12, 1)).astype(np.float32), labels_seen=[0, 0, 0, 2],
                    scores_unseen=np.log(np.clip(unseen_p, 1e-12, 1)).astype(np.float32), labels_unseen=[1, 4, 4],
                    seen_classes=SEEN, unseen_classes=UNSEEN)
    decisions = EpochDecisions.from_scores([(0, scores)])
    awa2 = epoch_numbers("apn", decisions, 0, "AWA2")
    assert (awa2.s, awa2.u, awa2.h, awa2.t1, awa2.gamma) == pytest.approx((2 / 4, 2 / 3, 4 / 7, 2 / 3, 0.7))
    cub = epoch_numbers("apn", decisions, 0, "CUB")  # per-class on CUB: S (2/3 + 0)/2, U (1 + 1/2)/2, T1 the same
    assert (cub.s, cub.u, cub.t1) == pytest.approx((1 / 3, 0.75, 0.75))


def test_reference_best_keeps_the_first_of_ties_and_needs_to_beat_the_start() -> None:
    assert reference_best([0.5, 0.7, 0.7], start=-1.0) == 1
    assert reference_best([0.0, 0.0], start=0.0) is None
    assert reference_best([float("nan"), 0.1], start=0.0) == 1


def test_no_epoch_above_zero_reports_zeros_as_the_references_do() -> None:
    # every seen image wrong at γ = 0 under TransZero: H = 0 at every epoch
    zero = Scores(scores_seen=[[0.0, 1.0]], labels_seen=[0], scores_unseen=[[1.0, 0.0]], labels_unseen=[1],
                  seen_classes=[0], unseen_classes=[1])
    r = paper_result("transzero", EpochDecisions.from_scores([(0, zero), (1, zero)]), "CUB")
    assert (r.gzsl_h, r.gzsl_u, r.gzsl_s, r.epoch_h) == (0.0, 0.0, 0.0, None)


# --------------------------------------------------------------------------- the SVIP reference loop
def reference_svip_epoch(scores: Scores, sigma: float) -> tuple[float, float, float, float]:
    """The SVIP reference's loop as it is written: softmax over all classes of 5·z, add γ to the unseen
    probabilities, per-sample accuracy, the first γ of the best H."""
    results = []
    for gamma in np.arange(-1, 1, 0.01):
        accs = []
        for matrix, labels in ((scores.scores_seen, scores.labels_seen), (scores.scores_unseen, scores.labels_unseen)):
            logits = 5.0 / sigma * np.asarray(matrix, dtype=np.float64)
            probs = np.exp(logits - logits.max(1, keepdims=True))
            probs /= probs.sum(1, keepdims=True)
            probs[:, scores.unseen_classes] += gamma
            accs.append(np.mean(np.argmax(probs, axis=1) == labels))
        s, u = accs
        results.append((100 * 2 * u * s / (u + s) if u + s > 0 else 0.0, u, s, gamma))
    h_list = [r[0] for r in results]
    h, u, s, gamma = results[h_list.index(max(h_list))]
    return h / 100, u, s, gamma


@pytest.mark.parametrize("seed, sigma", [(14, 5.0), (15, 2.0), (16, 8.0)])
def test_svip_epoch_matches_the_reference_loop(seed: int, sigma: float) -> None:
    rng = np.random.default_rng(seed)
    seen, unseen = np.array([0, 2, 3, 5, 7, 8]), np.array([1, 4, 6])
    labels_seen, labels_unseen = rng.choice(seen, 60), rng.choice(unseen, 50)

    def matrix(labels):
        m = rng.standard_normal((labels.size, 9)) * 0.6
        m[np.arange(labels.size), labels] += 0.8
        m[:, seen] += 0.3
        return (sigma * m).astype(np.float32)

    scores = Scores(scores_seen=matrix(labels_seen), labels_seen=labels_seen, scores_unseen=matrix(labels_unseen),
                    labels_unseen=labels_unseen, seen_classes=seen, unseen_classes=unseen)
    numbers = epoch_numbers("svip", EpochDecisions.from_scores([(0, scores)], sigma), 0, "CUB")
    h, u, s, gamma = reference_svip_epoch(scores, sigma)
    assert (numbers.h, numbers.u, numbers.s) == pytest.approx((h, u, s), abs=1e-12)
    assert numbers.gamma == pytest.approx(gamma)


def test_svip_grid_is_minus_one_to_one_step_one_hundredth() -> None:
    assert SVIP_GAMMAS.size == 200 and SVIP_GAMMAS[0] == -1.0 and SVIP_GAMMAS[-1] == pytest.approx(0.99)
    assert not SVIP_GAMMAS.flags.writeable


# --------------------------------------------------------------------------- the stored decisions
@pytest.mark.parametrize("space", ["logit", "prob"])
@pytest.mark.parametrize("policy", ["none", "oracle", "fixed:0.1"])
def test_stored_decisions_give_the_full_scores_metrics(tmp_path, space: str, policy: str) -> None:
    decisions = hand_decisions()
    epochs.save(tmp_path / "epochs.npz", decisions)
    loaded = epochs.load(tmp_path / "epochs.npz")
    for index, epoch in enumerate(EPOCHS):
        assert evaluate_epoch(loaded, index, policy, space=space) == evaluate_scores(epoch_scores(epoch), policy,
                                                                                     space=space)


def test_decisions_file_is_compact_and_names_missing_arrays(tmp_path) -> None:
    arrays = epochs.to_arrays(hand_decisions())
    # softmax never changes which class is best here: prob/svip class ids are not stored twice
    assert "prob_seen_best_seen" not in arrays and "logit_seen_best_seen" in arrays
    assert arrays["logit_seen_best_seen"].dtype == np.int16
    del arrays["prob_unseen_margin"]
    with pytest.raises(epochs.EpochDecisionsError, match="lack prob_unseen_margin"):
        epochs.from_arrays(arrays)
    (tmp_path / "bad.npz").write_bytes(b"not a zip")
    with pytest.raises(epochs.EpochDecisionsError, match="unreadable or corrupt"):
        epochs.load(tmp_path / "bad.npz")


# --------------------------------------------------------------------------- oracle epoch selection
def test_oracle_selection_takes_t1_from_the_best_t1_epoch(tmp_path) -> None:
    from zslbench.config import resolve
    from zslbench.engine.runner import finalize
    from zslbench.tracking import NullTracker

    history = [{"epoch": 0, "zsl_t1": 0.9, "gzsl_u": 0.1, "gzsl_s": 0.2, "gzsl_h": 0.13, "ausuc": 0.1},
               {"epoch": 1, "zsl_t1": 0.5, "gzsl_u": 0.4, "gzsl_s": 0.6, "gzsl_h": 0.48, "ausuc": 0.3},
               {"epoch": 2, "zsl_t1": 0.7, "gzsl_u": 0.3, "gzsl_s": 0.5, "gzsl_h": 0.375, "ausuc": 0.2}]
    cfg = resolve(overrides=["eval.selection=oracle", "train.epochs=3", "track.enabled=false"])
    final = finalize(cfg, history, "run", tmp_path, NullTracker())
    assert final["zsl_t1"] == 0.9 and final["selected_epoch_t1"] == 0  # best T1: epoch 0
    assert (final["gzsl_u"], final["gzsl_s"], final["gzsl_h"], final["ausuc"]) == (0.4, 0.6, 0.48, 0.3)
    assert final["selected_epoch"] == 1 and final["oracle"]
    final = finalize(resolve(overrides=["train.epochs=3"]), history, "run", tmp_path, NullTracker())
    assert (final["zsl_t1"], final["gzsl_h"], final["selected_epoch"], final["oracle"]) == (0.7, 0.375, 2, False)


def test_paper_mode_replaces_every_metric_of_the_run(tmp_path) -> None:
    from zslbench.config import resolve
    from zslbench.engine.runner import finalize
    from zslbench.metrics import scores_file
    from zslbench.tracking import NullTracker

    for epoch in EPOCHS:
        scores_file.save(tmp_path / "scores" / f"epoch{epoch:03d}.npz", epoch_scores(epoch))
    history = [{"epoch": e, "zsl_t1": 0.0, "gzsl_h": 0.0, "ausuc": 0.5, "gzsl_h0": 0.1} for e in EPOCHS]
    cfg = resolve(overrides=["eval.mode=svip", "train.epochs=3", "data.dataset=CUB"])
    final = finalize(cfg, history, "run", tmp_path, NullTracker())
    assert (final["zsl_t1"], final["gzsl_h"], final["selected_epoch"], final["selected_epoch_t1"]) == \
        pytest.approx((1.0, 0.8, 1, 0))
    assert final["mode"] == "svip" and final["oracle"] and "ausuc" not in final and "gzsl_h0" not in final


def test_test_selected_runs_are_tagged_in_mlflow(tmp_path) -> None:
    from zslbench.config import resolve
    from zslbench.engine.runner import finalize
    from zslbench.tracking import NullTracker

    class Tags(NullTracker):
        def __init__(self):
            super().__init__()
            self.tags = {}

        def set_tags(self, tags):
            self.tags.update(tags)

    history = [{"epoch": 0, "zsl_t1": 0.5, "gzsl_h": 0.2}, {"epoch": 1, "zsl_t1": 0.4, "gzsl_h": 0.3}]
    for overrides, expected in ((["eval.selection=oracle"], "true"), (["eval.gamma_policy=oracle"], "true"),
                                ([], "false")):
        tracker = Tags()
        finalize(resolve(overrides=["train.epochs=2", *overrides]), history, "run", tmp_path, tracker)
        assert tracker.tags["zslbench.test_selected"] == expected, overrides


def test_paper_mode_refuses_another_gamma_or_selection_policy() -> None:
    from zslbench.config import resolve
    from zslbench.core.errors import ConfigError

    with pytest.raises(ConfigError, match="eval.mode=apn reports as that paper did"):
        resolve(overrides=["eval.mode=apn", "eval.gamma_policy=oracle"])
    with pytest.raises(ConfigError, match="eval.mode"):
        resolve(overrides=["eval.mode=official"])


# --------------------------------------------------------------------------- tables recompute from the stored file
@pytest.fixture(scope="module")
def mode_store(tmp_path_factory):
    from results_store import RunSpec, make_store

    tmp = tmp_path_factory.mktemp("modes")
    stored = epochs.to_bytes(hand_decisions())
    uri, ids = make_store(tmp, {
        "modes": [RunSpec(dataset="SUN", decisions=stored, selection="oracle",
                          metrics={"zsl_t1": 0.11, "gzsl_h": 0.22})],  # logged numbers: replaced on re-evaluation
        "old": [RunSpec(dataset="SUN")],                                # logged before runs stored decisions
    })
    return uri, ids


def cells(table) -> dict[tuple[str, str], object]:
    (block,) = table.blocks
    (row,) = block.rows
    return row.cells


@pytest.mark.parametrize("mode, expected", [
    ("svip", {"zsl_t1": 1.0, "gzsl_u": 2 / 3, "gzsl_s": 1.0, "gzsl_h": 0.8}),
    ("transzero", {"zsl_t1": 1.0, "gzsl_u": 0.75, "gzsl_s": 1.0, "gzsl_h": 6 / 7}),
    ("apn", {"zsl_t1": 1.0, "gzsl_u": 1.0, "gzsl_s": 1 / 3, "gzsl_h": 0.5}),   # SUN: γ = 0.4
])
def test_table_mode_recomputes_the_hand_case_from_the_stored_decisions(mode_store, mode, expected) -> None:
    from zslbench.results.render import render
    from zslbench.results.experiment import experiment_table

    uri, _ = mode_store
    table = experiment_table("main", "modes", tracking_uri=uri, mode=mode)
    got = cells(table)
    for metric, value in expected.items():
        assert got[("SUN", metric)].mean == pytest.approx(value) and got[("SUN", metric)].oracle, metric
    assert ("SUN", "ausuc") not in got  # no paper reports AUSUC
    assert f"Paper reporting mode {mode}†" in render(table, "markdown")


def test_table_oracle_selection_is_reapplied_over_every_stored_epoch(mode_store) -> None:
    from zslbench.results.experiment import experiment_table

    uri, _ = mode_store
    got = cells(experiment_table("main", "modes", tracking_uri=uri, gamma_policy="none"))
    # γ = 0, per-class (the protocol): H per epoch 0.625, 6/7, 0.5 → epoch 1; T1 per epoch 1, 0.75, 1 → epoch 0
    assert (got[("SUN", "gzsl_h")].mean, got[("SUN", "zsl_t1")].mean) == pytest.approx((6 / 7, 1.0))


def test_table_mode_needs_decisions_and_no_gamma_policy(mode_store) -> None:
    from zslbench.core.errors import UserError
    from zslbench.results.experiment import experiment_table

    uri, ids = mode_store
    with pytest.raises(UserError, match=rf"no scores/epochs.npz to recompute --mode svip from \({ids['old'][0]}\)"):
        experiment_table("main", "old", tracking_uri=uri, mode="svip")
    with pytest.raises(UserError, match="drop --gamma-policy"):
        experiment_table("main", "modes", tracking_uri=uri, mode="apn", gamma_policy="oracle")
    with pytest.raises(UserError, match="unknown evaluation mode 'official'"):
        experiment_table("main", "modes", tracking_uri=uri, mode="official")


def test_cli_table_mode(mode_store, tmp_path) -> None:
    import subprocess
    import sys

    uri, _ = mode_store
    ok = subprocess.run([sys.executable, "-m", "zslbench.cli", "table", "main", "--mode", "transzero", "--format",
                         "markdown", "--experiment", "modes", "--tracking-uri", uri], capture_output=True, text=True,
                        cwd=tmp_path, timeout=300)
    assert ok.returncode == 0, ok.stderr
    assert "85.7†" in ok.stdout and "Paper reporting mode transzero†" in ok.stdout
    bad = subprocess.run([sys.executable, "-m", "zslbench.cli", "table", "main", "--mode", "best", "--experiment",
                          "modes", "--tracking-uri", uri], capture_output=True, text=True, cwd=tmp_path, timeout=300)
    assert bad.returncode == 2 and "unknown evaluation mode 'best'" in bad.stderr and "Traceback" not in bad.stderr
