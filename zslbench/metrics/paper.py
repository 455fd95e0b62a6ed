"""Paper reporting modes: GZSL computed the way a reference repository computed its published numbers.

Opt-in and always test-selected (results marked †); recomputable from stored scores. The SVIP
reference (SVIP.md §8): softmax over all classes, γ **added to the unseen-class probabilities**
over ``np.arange(-1, 1, 0.01)``, **per-sample** U and S, γ picked on the test set.

>>> from zslbench.metrics.scores import Scores
>>> scores = Scores(scores_seen=[[2.0, 0.0, 1.0]], labels_seen=[0], scores_unseen=[[1.5, 0.0, 1.0]],
...                 labels_unseen=[2], seen_classes=[0, 1], unseen_classes=[2])
>>> official = official_gzsl_search(scores)
>>> official.result.h, official.test_selected
(1.0, True)
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numpy.typing import ArrayLike

from zslbench.metrics.scores import Scores
from zslbench.metrics.stacking import GZSLResult, check_gammas, gzsl_problem

#: The γ grid of the SVIP reference implementation: [-1, 1) in steps of 0.01 (200 values),
#: built exactly as the reference builds it.
OFFICIAL_GAMMAS = np.arange(-1.0, 1.0, 0.01)
OFFICIAL_GAMMAS.setflags(write=False)


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


def official_gzsl_search(scores: Scores, gammas: ArrayLike = OFFICIAL_GAMMAS) -> OfficialGZSLResult:
    """Calibrated GZSL of ``scores`` as the SVIP reference computes it (SVIP.md §8); test-selected.

    Softmax over all classes; γ from ``gammas`` (default [−1, 1) step 0.01) is *added* to the
    unseen-class probabilities (the same decisions as subtracting it from the seen ones);
    per-sample (micro) U, S, H at every γ; the γ with the best H on these (test) scores wins,
    the first one on ties. ``result`` is that micro U/S/H; ``per_class`` the protocol's
    per-class U/S/H at the same γ.
    """
    problem = gzsl_problem(scores, "prob")
    grid = check_gammas(gammas)
    if grid.size == 0:
        raise ValueError("official_gzsl_search needs at least one γ")
    sweep = problem.sweep(grid, average="micro")
    gamma = float(grid[int(np.argmax(sweep["h"]))])
    return OfficialGZSLResult(
        result=problem.result(gamma, average="micro"), per_class=problem.result(gamma), gamma=gamma
    )


__all__ = ["OFFICIAL_GAMMAS", "OfficialGZSLResult", "official_gzsl_search"]
