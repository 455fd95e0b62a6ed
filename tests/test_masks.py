"""Part masks → patch / super-patch relevance and the kept-super-patch selection scores."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from zslbench.data.masks import (creature_superpatches, load_mask, patch_relevance, resize_nearest,
                                 selection_scores, superpatch_relevance)
from zslbench.core.errors import DataError


def test_patch_relevance_is_the_creature_fraction_per_patch():
    mask = np.zeros((8, 8), dtype=np.uint8)
    mask[0:4, 0:4] = 2  # all of patch (0, 0) at patch size 4
    mask[4, 4] = 1  # one pixel of patch (1, 1)
    relevance = patch_relevance(mask, 4)
    assert relevance.shape == (2, 2)
    np.testing.assert_allclose(relevance, [[1.0, 0.0], [0.0, 1 / 16]])


def test_superpatches_are_2x2_blocks_in_row_major_order_not_strips():
    # 8×8 mask, patch 1 → G = 8, P = 16 super-patches of 2×2 patches.
    mask = np.zeros((8, 8), dtype=np.uint8)
    mask[2:4, 0:2] = 1  # exactly super-patch (r=1, c=0) → index 4
    relevance = superpatch_relevance(mask, 1)
    expected = np.zeros(16)
    expected[4] = 1.0
    np.testing.assert_array_equal(relevance, expected)
    # a horizontal strip of 4 patches in row 0 touches two blocks (half each), not one super-patch
    strip = np.zeros((8, 8), dtype=np.uint8)
    strip[0, 0:4] = 3
    relevance = superpatch_relevance(strip, 1)
    np.testing.assert_allclose(relevance[:2], [0.5, 0.5])
    assert relevance[2:].sum() == 0


def test_superpatch_of_a_pixel_in_the_last_block():
    mask = np.zeros((64, 64), dtype=np.uint8)
    mask[63, 63] = 4
    flags = creature_superpatches(mask, 8)
    assert flags.shape == (16,) and flags.dtype == bool
    assert np.flatnonzero(flags).tolist() == [15]
    assert not creature_superpatches(mask, 8, threshold=0.01).any()


def test_model_size_differs_from_mask_size_resizes_nearest():
    mask = np.zeros((64, 64), dtype=np.uint8)
    mask[:32, :32] = 1
    relevance = patch_relevance(mask, 8, image_size=32)  # the model sees 32 px: a 4×4 grid
    assert relevance.shape == (4, 4)
    np.testing.assert_array_equal(relevance, [[1, 1, 0, 0], [1, 1, 0, 0], [0, 0, 0, 0], [0, 0, 0, 0]])
    assert set(np.unique(resize_nearest(np.array([[0, 3], [1, 2]], dtype=np.uint8), 7))) == {0, 1, 2, 3}


def test_odd_grid_and_indivisible_patch_are_rejected():
    with pytest.raises(ValueError, match="even patch grid"):
        superpatch_relevance(np.zeros((24, 24), dtype=np.uint8), 8)
    with pytest.raises(ValueError, match="does not divide"):
        patch_relevance(np.zeros((30, 30), dtype=np.uint8), 8)


def test_selection_scores_micro_and_per_image():
    kept = np.array([[1, 1, 1, 0], [1, 0, 0, 0]], dtype=bool)
    relevant = np.array([[1, 0, 0, 0], [1, 1, 1, 1]], dtype=bool)
    scores = selection_scores(kept, relevant)
    # micro: |kept ∧ rel| = 1 + 1 = 2, |kept| = 4, |rel| = 5, |kept ∨ rel| = 3 + 4 = 7
    assert scores["precision"] == pytest.approx(2 / 4)
    assert scores["recall"] == pytest.approx(2 / 5)
    assert scores["iou"] == pytest.approx(2 / 7)
    assert scores["precision_per_image"] == pytest.approx((1 / 3 + 1) / 2)
    assert scores["recall_per_image"] == pytest.approx((1 + 1 / 4) / 2)
    assert scores["iou_per_image"] == pytest.approx((1 / 3 + 1 / 4) / 2)
    assert scores["kept_mean"] == 2.0 and scores["relevant_mean"] == 2.5


def test_selection_scores_empty_sets_and_shape_errors():
    nothing = np.zeros((1, 4), dtype=bool)
    assert selection_scores(nothing, nothing)["iou"] == 1.0
    some = np.array([[True, False, False, False]])
    assert selection_scores(nothing, some)["recall_per_image"] == 0.0
    with pytest.raises(ValueError, match=r"\[B, P\]"):
        selection_scores(np.zeros((2, 4), bool), np.zeros((2, 3), bool))


def test_load_mask_round_trip_and_errors(tmp_path):
    mask = np.zeros((16, 16), dtype=np.uint8)
    mask[3:9, 4:12] = 2
    Image.fromarray(mask).save(tmp_path / "m.png")
    np.testing.assert_array_equal(load_mask(tmp_path / "m.png"), mask)
    with pytest.raises(DataError, match="missing; regenerate"):
        load_mask(tmp_path / "absent.png")
    Image.fromarray(np.zeros((4, 4, 3), dtype=np.uint8)).save(tmp_path / "rgb.png")
    with pytest.raises(DataError, match="not a single-channel"):
        load_mask(tmp_path / "rgb.png")
