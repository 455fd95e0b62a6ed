"""The SVIP model on tiny ViTs: outputs, passes, ablations, gradients, losses, training behaviour."""

from __future__ import annotations

import numpy as np
import pytest
import torch

import zslbench.backbones.vit as backbones
from zslbench.backbones.vit import add_positions
from zslbench.ablations import patches_for
from zslbench.config import resolve
from zslbench.svip.entry import SVIPConfig
from zslbench.core.errors import ConfigError
from zslbench.catalogue import DatasetInfo, build_model
from zslbench.svip.model import SVIP
from zslbench.backbones.superpatch import group

TINY = dict(backbone="vit_tiny_patch16_224", img_size=32, patch_size=8, embed_dim=32, depth=2, num_heads=2)
SEEN, ATTRIBUTES = 7, 12


pytestmark = pytest.mark.usefixtures("single_thread")


@pytest.fixture(scope="module")
def info() -> DatasetInfo:
    """10 classes (7 seen, 3 unseen), 12 attributes in 3 groups, 50-d word vectors."""
    rng = np.random.default_rng(0)
    attributes = rng.random((10, ATTRIBUTES)).astype(np.float32)
    attributes /= np.linalg.norm(attributes, axis=1, keepdims=True) + 1e-5
    words = rng.standard_normal((ATTRIBUTES, 50)).astype(np.float32)
    return DatasetInfo(name="tiny", class_attributes=attributes, seen_classes=np.arange(SEEN),
                       unseen_classes=np.arange(SEEN, 10), word_vectors=words,
                       attribute_names=[f"a{i}" for i in range(ATTRIBUTES)],
                       attribute_groups=[[0, 1, 2, 3], [4, 5, 6, 7], [8, 9, 10, 11]])


def make_batch(batch: int = 4, size: int = 32, seed: int = 0) -> dict[str, torch.Tensor]:
    generator = torch.Generator().manual_seed(seed)
    labels = torch.arange(batch) % SEEN
    return {"image": torch.randn(batch, 3, size, size, generator=generator), "label": labels, "seen_label": labels}


def make_svip(info: DatasetInfo, seed: int = 0, **fields) -> SVIP:
    torch.manual_seed(seed)
    return SVIP(SVIPConfig(**{**TINY, "keep": 3, **fields}), info)


def from_ablations(info: DatasetInfo, *names: str, overrides: tuple[str, ...] = ()):
    """The model the CLI would build: tiny preset + the named ablations."""
    torch.manual_seed(0)
    cfg = resolve(model="svip", preset="tiny", ablations=patches_for(list(names), model="svip"),
                  overrides=list(overrides))
    return build_model(cfg, info)


def blocks_input_lengths(model) -> tuple[list[int], object]:
    """Record the token-sequence length entering the first block at every pass."""
    lengths: list[int] = []
    handle = model.vit.blocks[0].register_forward_pre_hook(lambda module, args: lengths.append(args[0].shape[1]))
    return lengths, handle


# --------------------------------------------------------------------------- outputs
def test_training_outputs_and_shapes(info):
    model = make_svip(info)
    assert (model.grid, model.num_superpatches, model.patch_size) == (4, 4, 8)
    out = model(make_batch())
    assert out["attributes"].shape == out["attributes_src"].shape == (4, ATTRIBUTES)
    assert out["features"].shape == out["features_src"].shape == (4, 4, 128)
    assert out["patch_logits"].shape == out["patch_targets"].shape == out["patch_scores"].shape == (4, 4)
    assert out["kept"].dtype == torch.bool and out["kept"].sum(1).tolist() == [3] * 4
    # hard targets: the rollout-kept super-patches are labelled 0 (related), the others 1
    assert torch.equal(out["patch_targets"], (~out["kept"]).float())
    terms = model.losses(out, make_batch())
    assert list(terms) == ["ce_src", "ce_ctx", "consistency", "patch_cls", "att_group"]
    assert all(v.ndim == 0 and torch.isfinite(v) for v in terms.values())


def test_inference_keeps_the_k_lowest_unrelated_probabilities(info):
    model = make_svip(info).eval()
    with torch.no_grad():
        out = model(make_batch())
    assert set(out) == {"patch_logits", "features", "kept", "attributes"}
    lowest = out["patch_logits"].topk(3, dim=1, largest=False).indices
    assert torch.equal(out["kept"], torch.zeros(4, 4, dtype=torch.bool).scatter_(1, lowest, True))
    scores = model.class_scores(out, model.class_attributes)
    assert scores.shape == (4, 10)
    torch.testing.assert_close(scores, 5.0 * out["attributes"] @ model.class_attributes.t())


def test_inference_pools_all_superpatches_by_default_and_top_k_when_asked(info):
    batch = make_batch()
    model = make_svip(info).eval()
    with torch.no_grad():
        out = model(batch)
    torch.testing.assert_close(out["attributes"], model.p2a(out["features"]).mean(1))
    model.cfg.inference_pool = "topk"
    with torch.no_grad():
        topk = model(batch)
    assert not torch.allclose(topk["attributes"], out["attributes"])


def test_other_geometry_grid_6(info):
    model = make_svip(info, img_size=48, keep=5)
    assert (model.grid, model.num_superpatches) == (6, 9)
    batch = make_batch(size=48)
    out = model(batch)
    assert out["features"].shape == (4, 9, 128) and out["kept"].sum(1).tolist() == [5] * 4
    sum(model.losses(out, batch).values()).backward()
    model.eval()
    with torch.no_grad():
        assert model(batch)["kept"].shape == (4, 9)


def test_keep_larger_than_the_superpatches_is_a_config_error(info):
    with pytest.raises(ConfigError, match="model.keep=5 must be between 1 and the 4 super-patches"):
        make_svip(info, keep=5)


def test_odd_grid_is_a_config_error(info):
    with pytest.raises(ConfigError, match="even grid"):
        make_svip(info, img_size=40)


def test_losses_map_global_labels_when_seen_label_is_absent(info):
    model = make_svip(info)
    batch = make_batch()
    out = model(batch)
    with_seen = model.losses(out, batch)
    without = model.losses(out, {"image": batch["image"], "label": batch["label"]})
    assert {k: v.item() for k, v in with_seen.items()} == {k: v.item() for k, v in without.items()}


# --------------------------------------------------------------------------- the two passes
def test_with_zero_context_vector_the_contextualised_pass_equals_the_source_pass(info):
    model = make_svip(info)
    with torch.no_grad():
        model.w2p.p2t.weight.zero_()
        model.w2p.p2t.bias.zero_()
    out = model(make_batch())
    torch.testing.assert_close(out["features"], out["features_src"], rtol=1e-4, atol=1e-5)


def test_source_pass_alone_materialises_attention(info, monkeypatch):
    calls = []
    original = backbones.block_forward_with_attention

    def counting(block, x):
        calls.append(x.shape[1])
        return original(block, x)

    monkeypatch.setattr(backbones, "block_forward_with_attention", counting)
    model = make_svip(info)
    assert all(block.attn.fused_attn for block in model.vit.blocks)
    model(make_batch())
    assert calls == [17, 17]  # depth 2, source pass only: 1 + 16 tokens
    calls.clear()
    model.eval()
    with torch.no_grad():
        model(make_batch())
    assert calls == []


def test_replace_sets_the_non_kept_superpatches_to_e(info):
    model = make_svip(info, contextualize="replace").eval()
    captured = []
    model.vit.blocks[0].register_forward_pre_hook(lambda module, args: captured.append(args[0]))
    batch = make_batch()
    with torch.no_grad():
        out = model(batch)
        inputs = group(captured[0][:, 1:] - model.vit.pos_embed[:, 1:], model.grid)
        raw = group(model.vit.patch_embed(batch["image"]), model.grid)
        e = model.w2p()
    kept = out["kept"]
    torch.testing.assert_close(inputs[~kept], e.expand(int((~kept).sum()), -1), rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(inputs[kept], raw[kept], rtol=1e-5, atol=1e-6)


def test_add_adds_e_to_the_non_kept_superpatches(info):
    model = make_svip(info).eval()
    captured = []
    model.vit.blocks[0].register_forward_pre_hook(lambda module, args: captured.append(args[0]))
    batch = make_batch()
    with torch.no_grad():
        out = model(batch)
        inputs = group(captured[0][:, 1:] - model.vit.pos_embed[:, 1:], model.grid)
        raw = group(model.vit.patch_embed(batch["image"]), model.grid)
    kept = out["kept"]
    torch.testing.assert_close(inputs[~kept], raw[~kept] + model.w2p(), rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(inputs[kept], raw[kept], rtol=1e-5, atol=1e-6)


# --------------------------------------------------------------------------- gradients and parameters
VARIANTS = {
    "default": {},
    "no_ssps": {"patch_selection": False},
    "drop": {"contextualize": "drop"},
    "free_vector": {"word_init": False},
    "replace_max_jsd_mse": {"contextualize": "replace", "pool": "max", "consistency": "jsd", "mse_weight": 1.0},
    "paper_block_soft": {"rollout": "paper", "score_grouping": "block", "patch_targets": "soft"},
}


@pytest.mark.parametrize("fields", list(VARIANTS.values()), ids=list(VARIANTS))
def test_gradients_reach_every_trainable_parameter(info, fields):
    model = make_svip(info, **fields)
    batch = make_batch()
    terms = model.losses(model(batch), batch)
    sum(terms.values()).backward()
    missing = [name for name, p in model.named_parameters()
               if p.requires_grad and (p.grad is None or not p.grad.abs().sum())]
    assert missing == []


def test_param_groups_split_heads_from_the_backbone(info):
    model = make_svip(info)
    heads = {id(p) for group_ in model.param_groups("warmup") for p in group_["params"]}
    expected = {id(p) for m in (model.p2a, model.patch_cls, model.w2p) for p in m.parameters()}
    assert heads == expected
    everything = [p for group_ in model.param_groups("full") for p in group_["params"]]
    assert {id(p) for p in everything} == {id(p) for p in model.parameters()}
    with pytest.raises(ValueError, match="warmup, full"):
        model.param_groups("late")


def test_frozen_backbone_warmup_still_trains_the_heads(info):
    model = make_svip(info)
    for p in model.vit.parameters():
        p.requires_grad_(False)
    batch = make_batch()
    sum(model.losses(model(batch), batch).values()).backward()
    assert all(p.grad is not None for m in model.head_modules() for p in m.parameters())


# --------------------------------------------------------------------------- ablations (as the CLI builds them)
def test_full_model_from_the_tiny_preset(info):
    model = from_ablations(info)
    assert isinstance(model, SVIP) and model.patch_cls is not None and model.w2p is not None


def test_no_patch_selection_removes_patchcls_and_keeps_random_superpatches(info, monkeypatch):
    model = from_ablations(info, "no_patch_selection", overrides=("model.img_size=64", "model.keep=5"))
    assert model.patch_cls is None
    assert not any("patch_cls" in name for name, _ in model.named_parameters())
    materialised = []
    monkeypatch.setattr(backbones, "block_forward_with_attention",
                        lambda block, x: materialised.append(1) or (block(x), None))
    batch = make_batch(batch=6, size=64)
    torch.manual_seed(1)
    out = model(batch)
    assert materialised == []  # no rollout without patch selection
    assert "patch_logits" not in out and "patch_targets" not in out
    assert "patch_cls" not in model.losses(out, batch)
    assert out["kept"].sum(1).tolist() == [5] * 6
    assert len({tuple(row.tolist()) for row in out["kept"]}) > 1  # random per image
    model.eval()
    with torch.no_grad():
        torch.manual_seed(2)
        first = model(batch)["kept"]
        torch.manual_seed(2)
        again = model(batch)["kept"]
        torch.manual_seed(3)
        other = model(batch)["kept"]
    assert torch.equal(first, again) and not torch.equal(first, other)
    assert first.sum(1).tolist() == [5] * 6


def test_no_replacement_drops_the_tokens_of_non_kept_superpatches(info):
    model = from_ablations(info, "no_replacement")
    keep, dim = model.keep, model.vit.embed_dim
    assert model.w2p is None and not any(n.startswith("w2p") for n, _ in model.named_parameters())
    lengths, handle = blocks_input_lengths(model)
    captured = []
    model.vit.blocks[0].register_forward_pre_hook(lambda module, args: captured.append(args[0]))
    batch = make_batch()
    out = model(batch)
    # the source pass (own block forward, all 1 + G² tokens) does not fire the hook: only the dropped pass does
    assert lengths == [1 + 4 * keep]
    assert out["features"].shape == (4, keep, 4 * dim)
    # the kept tokens enter with their own position embeddings (gathered, not zeroed or re-positioned)
    with torch.no_grad():
        source_tokens = add_positions(model.vit, model.vit.patch_embed(batch["image"]))
    kept_tokens = group(source_tokens[:, 1:], model.grid)[out["kept"]].reshape(4, keep, 4 * dim)
    torch.testing.assert_close(captured[0][:, 1:].reshape(4, keep, 4 * dim), kept_tokens)
    torch.testing.assert_close(captured[0][:, 0], source_tokens[:, 0])
    model.eval()
    lengths.clear()
    with torch.no_grad():
        evaluated = model(batch)
    assert lengths == [1 + 4 * keep] and evaluated["kept"].shape == (4, model.num_superpatches)
    handle.remove()


def test_no_js_removes_only_the_consistency_term(info):
    full, ablated = from_ablations(info), from_ablations(info, "no_js")
    batch = make_batch()
    full_terms, ablated_terms = full.losses(full(batch), batch), ablated.losses(ablated(batch), batch)
    assert "consistency" in full_terms and "consistency" not in ablated_terms
    assert set(full_terms) - set(ablated_terms) == {"consistency"}


def test_no_word_init_uses_a_free_vector(info):
    model = from_ablations(info, "no_word_init")
    names = [n for n, _ in model.named_parameters() if n.startswith("w2p")]
    assert names == ["w2p.vector"]
    assert model.w2p().shape == (4 * model.vit.embed_dim,)


def test_baseline_ablation_builds_the_vit_model(info):
    from zslbench.baselines.vit.model import ViTBaseline

    assert isinstance(from_ablations(info, "baseline"), ViTBaseline)


# --------------------------------------------------------------------------- losses and training
def test_consistency_term_is_lambda1_times_the_chosen_form(info):
    from zslbench.svip.losses import jsd_consistency, kl_consistency

    batch = make_batch()
    for form, function in (("kl", kl_consistency), ("jsd", jsd_consistency)):
        model = make_svip(info, consistency=form, js_weight=0.5)
        out = model(batch)
        z_ctx = out["attributes"] @ model.seen_attributes.t()
        z_src = out["attributes_src"] @ model.seen_attributes.t()
        expected = 0.5 * function(z_ctx, z_src, 20.0)
        torch.testing.assert_close(model.losses(out, batch)["consistency"], expected)


def test_weighted_terms_follow_the_config(info):
    batch = make_batch()
    model = make_svip(info, patch_cls_weight=4.0, att_dec=0.5, mse_weight=2.0)
    out = model(batch)
    terms = model.losses(out, batch)
    from zslbench.svip.losses import attribute_group_l21, patch_bce

    torch.testing.assert_close(terms["patch_cls"], 4.0 * patch_bce(out["patch_logits"], out["patch_targets"]))
    group_term = attribute_group_l21(out["attributes"], model.group_membership)
    torch.testing.assert_close(terms["att_group"], 0.25 * group_term)
    truth = model.seen_attributes[batch["seen_label"]]
    expected_mse = 2.0 * (((out["attributes"] - truth) ** 2).mean() + ((out["attributes_src"] - truth) ** 2).mean())
    torch.testing.assert_close(terms["mse"], expected_mse)


def test_no_attribute_groups_means_no_group_term(info):
    from dataclasses import replace

    model = make_svip(replace(info, attribute_groups=[]))
    batch = make_batch()
    assert "att_group" not in model.losses(model(batch), batch)


def test_losses_decrease_when_overfitting_a_tiny_batch(info):
    model = make_svip(info)
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    batch = make_batch(batch=8)
    history = []
    for _ in range(30):
        terms = model.losses(model(batch), batch)
        loss = sum(terms.values())
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        history.append({k: v.item() for k, v in terms.items()} | {"total": loss.item()})
    assert history[-1]["total"] < 0.5 * history[0]["total"]
    assert history[-1]["ce_ctx"] < 0.5 * history[0]["ce_ctx"]
    assert history[-1]["ce_src"] < 0.5 * history[0]["ce_src"]


def test_runs_under_bf16_autocast(info):
    model = make_svip(info)
    batch = make_batch()
    with torch.autocast(device_type="cpu", dtype=torch.bfloat16):
        out = model(batch)
        terms = model.losses(out, batch)
    assert out["patch_scores"].dtype == torch.float32
    assert all(v.dtype == torch.float32 and torch.isfinite(v) for v in terms.values())
    sum(terms.values()).backward()
