"""SVIP building blocks: super-patch regrouping, rollout, score grouping, targets, W2P, loss formulas."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from zslbench.svip.losses import attribute_group_l21, jsd_consistency, kl_consistency, patch_bce
from zslbench.svip.rollout import AttentionRollout, rollout_paper, rollout_reference
from zslbench.svip.selection import group_scores, kept_indices, patch_targets, random_mask, similarity_mask, top_k_mask
from zslbench.backbones.superpatch import group, num_superpatches, pool_superpatches, superpatch_token_index, ungroup
from zslbench.svip.w2p import FreeContextVector, WordToPatch, contextualize


pytestmark = pytest.mark.usefixtures("single_thread")


# --------------------------------------------------------------------------- super-patches
@pytest.mark.parametrize("grid", [2, 4, 6, 14])
def test_ungroup_is_the_exact_inverse_of_group(grid):
    tokens = torch.randn(3, grid * grid, 5)
    superpatches = group(tokens, grid)
    assert superpatches.shape == (3, num_superpatches(grid), 20)
    assert torch.equal(ungroup(superpatches, grid), tokens)
    assert torch.equal(group(ungroup(superpatches, grid), grid), superpatches)


def test_group_concatenates_2x2_blocks_top_left_top_right_bottom_left_bottom_right():
    grid, dim = 6, 2
    # token (r, c) holds [10r + c, -(10r + c)] so every value names its grid cell
    cells = torch.tensor([[10.0 * r + c for c in range(grid)] for r in range(grid)]).reshape(1, grid * grid, 1)
    tokens = torch.cat([cells, -cells], dim=-1)
    superpatches = group(tokens, grid)
    assert superpatches.shape == (1, 9, 4 * dim)
    # super-patch 5 = block row 1, block col 2 → cells (2,4) (2,5) (3,4) (3,5)
    assert superpatches[0, 5].tolist() == [24, -24, 25, -25, 34, -34, 35, -35]
    assert superpatches[0, 0].tolist() == [0, 0, 1, -1, 10, -10, 11, -11]


def test_token_index_lists_each_superpatch_tokens_in_group_order():
    index = superpatch_token_index(6)
    assert index.shape == (9, 4)
    assert index[4].tolist() == [14, 15, 20, 21]
    tokens = torch.arange(36.0).reshape(1, 36, 1)
    assert torch.equal(group(tokens, 6)[0].long(), index)


def test_odd_grid_is_refused():
    with pytest.raises(ValueError, match="even"):
        group(torch.randn(1, 25, 3), 5)


def test_pool_mean_and_max_over_a_mask():
    values = torch.tensor([[[1.0, -1.0], [3.0, 5.0], [8.0, 0.0]]])
    mask = torch.tensor([[True, True, False]])
    assert pool_superpatches(values, mask, "mean").tolist() == [[2.0, 2.0]]
    assert pool_superpatches(values, mask, "max").tolist() == [[3.0, 5.0]]
    torch.testing.assert_close(pool_superpatches(values, None, "mean"), torch.tensor([[4.0, 4.0 / 3.0]]))
    assert pool_superpatches(values, None, "max").tolist() == [[8.0, 5.0]]


# --------------------------------------------------------------------------- rollout
def _random_attention(layers: int, batch: int, heads: int, tokens: int, seed: int = 0) -> list[torch.Tensor]:
    generator = torch.Generator().manual_seed(seed)
    return [torch.randn(batch, heads, tokens, tokens, generator=generator).softmax(-1) for _ in range(layers)]


def test_reference_rollout_equals_the_matrix_product_of_normalised_layers():
    attentions = _random_attention(layers=4, batch=2, heads=3, tokens=17)
    expected = []
    for b in range(2):
        product = np.eye(17)
        for attention in attentions:  # R = Â_L ··· Â_1: each later layer multiplies on the left
            mixed = attention[b].double().numpy().mean(axis=0) + np.eye(17)
            mixed = mixed / mixed.sum(axis=1, keepdims=True)
            product = mixed @ product
        expected.append(product[0, 1:])
    np.testing.assert_allclose(rollout_reference(attentions).numpy(), np.stack(expected), rtol=1e-5, atol=1e-7)


def test_paper_rollout_follows_its_recursion_with_summed_heads():
    attentions = _random_attention(layers=3, batch=2, heads=2, tokens=10, seed=1)
    expected = []
    for b in range(2):
        summed = [a[b].double().numpy().sum(axis=0) for a in attentions]
        w = summed[0]  # W¹ = T¹
        for t in summed[1:]:
            w = w + w @ t  # W^l = W^{l-1} + W^{l-1} T^l
        expected.append(w[0, 1:])
    np.testing.assert_allclose(rollout_paper(attentions).numpy(), np.stack(expected), rtol=1e-5)


def test_single_layer_rollouts():
    (attention,) = _random_attention(layers=1, batch=1, heads=2, tokens=5, seed=2)
    mixed = attention[0].mean(0) + torch.eye(5)
    torch.testing.assert_close(rollout_reference([attention])[0], (mixed / mixed.sum(-1, keepdim=True))[0, 1:])
    torch.testing.assert_close(rollout_paper([attention])[0], attention[0].sum(0)[0, 1:])


def test_rollout_stays_float32_under_bf16_autocast():
    attentions = _random_attention(layers=2, batch=1, heads=2, tokens=5)
    expected = rollout_reference(attentions)
    with torch.autocast(device_type="cpu", dtype=torch.bfloat16):
        rollout = AttentionRollout("reference")
        for attention in attentions:
            rollout.add(attention.bfloat16())
        scores = rollout.scores()
    assert scores.dtype == torch.float32
    torch.testing.assert_close(scores, expected, rtol=2e-2, atol=1e-3)


def test_unknown_rollout_is_refused():
    with pytest.raises(ValueError, match="reference, paper"):
        AttentionRollout("mean")


# --------------------------------------------------------------------------- score grouping and targets
def test_strip4_averages_row_strips_while_block_averages_2x2_blocks():
    scores = torch.zeros(4, 4)
    scores[2, :] = 1.0  # the third grid row is salient ...
    scores[3, 3] = 1.0  # ... and the bottom-right corner
    flat = scores.reshape(1, 16)
    strip = group_scores(flat, 4, "strip4")
    block = group_scores(flat, 4, "block")
    # strip4 on a 4×4 grid: strip p = grid row p (4 consecutive row-major patches)
    assert strip.tolist() == [[0.0, 0.0, 1.0, 0.25]]
    # block: p = 2×2 block (bottom-left = cells (2,0)(2,1)(3,0)(3,1), bottom-right = (2,2)(2,3)(3,2)(3,3))
    assert block.tolist() == [[0.0, 0.0, 0.5, 0.75]]
    assert top_k_mask(strip, 1).tolist() == [[False, False, True, False]]
    assert top_k_mask(block, 1).tolist() == [[False, False, False, True]]


def test_strip4_wraps_across_rows_when_four_does_not_divide_the_grid():
    flat = torch.zeros(1, 36)
    flat[0, 4:8] = 1.0  # row 0 cols 4,5 and row 1 cols 0,1
    assert group_scores(flat, 6, "strip4")[0].tolist() == [0.0, 1.0] + [0.0] * 7
    assert group_scores(flat, 6, "block")[0].tolist() == [0.5, 0.0, 0.5] + [0.0] * 6


def test_hard_targets_label_the_top_k_kept_as_zero():
    scores = torch.tensor([[0.3, 0.9, 0.1, 0.5]])
    kept = top_k_mask(scores, 2)
    assert kept.tolist() == [[False, True, False, True]]
    assert patch_targets(scores, kept, "hard").tolist() == [[1.0, 0.0, 1.0, 0.0]]


def test_soft_targets_are_one_minus_minmax_normalised_scores():
    scores = torch.tensor([[0.3, 0.9, 0.1, 0.5], [2.0, 2.0, 2.0, 2.0]])
    targets = patch_targets(scores, top_k_mask(scores, 2), "soft")
    torch.testing.assert_close(targets[0], torch.tensor([0.75, 0.0, 1.0, 0.5]))
    assert targets[1].tolist() == [0.5] * 4


def test_random_mask_keeps_exactly_k_and_follows_the_global_seed():
    torch.manual_seed(3)
    first = random_mask(5, 9, 4)
    torch.manual_seed(3)
    assert torch.equal(random_mask(5, 9, 4), first)
    assert first.sum(1).tolist() == [4] * 5
    assert len({tuple(row.tolist()) for row in first}) > 1


def test_similarity_mask_picks_superpatches_aligned_with_the_mean():
    features = torch.tensor([[[1.0, 0.0], [1.0, 0.1], [-1.0, 0.0], [0.9, 0.0]]])  # mean ≈ [0.475, 0.025]
    assert similarity_mask(features, 2).tolist() == [[True, True, False, False]]


def test_kept_indices_are_ascending():
    kept = torch.tensor([[False, True, False, True, True], [True, False, True, False, True]])
    assert kept_indices(kept, 3).tolist() == [[1, 3, 4], [0, 2, 4]]


# --------------------------------------------------------------------------- W2P and contextualisation
def test_w2p_flattens_the_d_by_4_map_as_the_reference():
    torch.manual_seed(0)
    words = torch.randn(12, 50)
    w2p = WordToPatch(words, dim=8)
    per_dim = w2p.p2t(w2p.v2p(words).t())  # [D, 4]
    e = w2p()
    assert e.shape == (32,)
    for d in range(8):
        for j in range(4):
            assert e[d * 4 + j] == per_dim[d, j]


def test_free_vector_is_a_parameter_of_width_4d():
    free = FreeContextVector(dim=8)
    assert [p.shape for p in free.parameters()] == [torch.Size([32])]


def test_contextualize_changes_only_the_non_kept():
    superpatches = torch.randn(2, 4, 6)
    e = torch.randn(6)
    kept = torch.tensor([[True, False, True, False], [False, False, True, True]])
    added = contextualize(superpatches, kept, e, "add")
    replaced = contextualize(superpatches, kept, e, "replace")
    assert torch.equal(added[kept], superpatches[kept]) and torch.equal(replaced[kept], superpatches[kept])
    torch.testing.assert_close(added[~kept], superpatches[~kept] + e)
    assert torch.equal(replaced[~kept], e.expand(int((~kept).sum()), 6))
    with pytest.raises(ValueError, match="add, replace"):
        contextualize(superpatches, kept, e, "drop")


# --------------------------------------------------------------------------- loss formulas
def _softmax(x: np.ndarray) -> np.ndarray:
    x = x - x.max(axis=1, keepdims=True)
    return np.exp(x) / np.exp(x).sum(axis=1, keepdims=True)


LOGITS_CTX = np.array([[0.9, -0.3, 0.2, 0.0], [0.1, 0.4, -0.8, 0.6], [1.5, 1.0, -1.0, 0.0]])
LOGITS_SRC = np.array([[0.5, 0.1, -0.2, 0.3], [0.7, -0.4, 0.0, 0.2], [-1.0, 2.0, 0.5, 0.1]])


def test_kl_consistency_is_the_reference_element_mean_times_t_squared():
    t = 2.0  # a small temperature keeps the value far from zero
    p_ctx, p_src = _softmax(LOGITS_CTX / t), _softmax(LOGITS_SRC / t)
    expected = (p_ctx * np.log(p_ctx / p_src)).sum() / p_ctx.size * t * t
    value = kl_consistency(torch.tensor(LOGITS_CTX), torch.tensor(LOGITS_SRC), t)
    assert value.item() == pytest.approx(expected, rel=1e-5)
    swapped = kl_consistency(torch.tensor(LOGITS_SRC), torch.tensor(LOGITS_CTX), t)
    assert swapped.item() != pytest.approx(expected, rel=1e-3)  # KL(P_ctx ‖ P_src), not the reverse


def test_jsd_consistency_is_the_true_jensen_shannon_divergence():
    t = 2.0
    p, q = _softmax(LOGITS_CTX / t), _softmax(LOGITS_SRC / t)
    m = (p + q) / 2
    per_sample = 0.5 * (p * np.log(p / m)).sum(1) + 0.5 * (q * np.log(q / m)).sum(1)
    expected = per_sample.mean() * t * t
    value = jsd_consistency(torch.tensor(LOGITS_CTX), torch.tensor(LOGITS_SRC), t)
    assert value.item() == pytest.approx(expected, rel=1e-5)
    swapped = jsd_consistency(torch.tensor(LOGITS_SRC), torch.tensor(LOGITS_CTX), t)
    assert swapped.item() == pytest.approx(expected, rel=1e-5)  # symmetric
    assert value.item() != pytest.approx(kl_consistency(torch.tensor(LOGITS_CTX), torch.tensor(LOGITS_SRC), t).item())


def test_consistency_gradients_reach_both_passes():
    z_ctx = torch.tensor(LOGITS_CTX, requires_grad=True)
    z_src = torch.tensor(LOGITS_SRC, requires_grad=True)
    kl_consistency(z_ctx, z_src, 20.0).backward()
    assert z_ctx.grad.abs().sum() > 0 and z_src.grad.abs().sum() > 0  # no stop-gradient


def test_attribute_group_l21_is_the_mean_over_groups_of_batch_mean_norms():
    attributes = np.array([[3.0, 4.0, 1.0, 0.0, 2.0], [0.0, 0.0, 2.0, 2.0, 1.0]])
    groups = [[0, 1], [2, 3, 4]]
    membership = torch.zeros(2, 5)
    for row, members in enumerate(groups):
        membership[row, members] = 1
    expected = np.mean([np.linalg.norm(attributes[:, g], axis=1).mean() for g in groups])
    assert attribute_group_l21(torch.tensor(attributes), membership).item() == pytest.approx(expected, rel=1e-6)


def test_patch_bce_is_the_mean_binary_cross_entropy_of_the_sigmoid():
    logits = np.array([[0.2, -1.0], [2.0, 0.0]])
    targets = np.array([[1.0, 0.0], [0.25, 1.0]])
    probability = 1 / (1 + np.exp(-logits))
    expected = -(targets * np.log(probability) + (1 - targets) * np.log(1 - probability)).mean()
    assert patch_bce(torch.tensor(logits), torch.tensor(targets)).item() == pytest.approx(expected, rel=1e-6)
