"""What SVIP pools, how labels map to seen classes, and what warm-up trains — checked against values derived
here from the model's own intermediate outputs, on a 16-super-patch geometry where a wrong choice shows."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from zslbench.catalogue import DatasetInfo
from zslbench.svip.entry import SVIPConfig
from zslbench.svip.model import SVIP

GEOMETRY = dict(backbone="vit_tiny_patch16_224", img_size=64, patch_size=8, embed_dim=32, depth=2, num_heads=2)
K, ATTRIBUTES = 5, 12
#: seen classes with gaps: mapping global ids to seen positions by the identity would pick wrong classes
SEEN = np.array([1, 3, 4, 7, 8, 10])
UNSEEN = np.array([0, 2, 5, 6, 9])

pytestmark = pytest.mark.usefixtures("single_thread")


@pytest.fixture(scope="module")
def info() -> DatasetInfo:
    rng = np.random.default_rng(1)
    attributes = rng.random((11, ATTRIBUTES)).astype(np.float32)
    attributes /= np.linalg.norm(attributes, axis=1, keepdims=True) + 1e-5
    return DatasetInfo(name="gaps", class_attributes=attributes, seen_classes=SEEN, unseen_classes=UNSEEN,
                       word_vectors=rng.standard_normal((ATTRIBUTES, 20)).astype(np.float32),
                       attribute_groups=[list(range(6)), list(range(6, 12))])


def make_model(info, **fields) -> SVIP:
    torch.manual_seed(0)
    return SVIP(SVIPConfig(**{**GEOMETRY, "keep": K, **fields}), info)


def batch(seed: int = 0, size: int = 6) -> dict[str, torch.Tensor]:
    generator = torch.Generator().manual_seed(seed)
    return {"image": torch.randn(size, 3, 64, 64, generator=generator),
            "label": torch.as_tensor(np.resize(SEEN, size))}


def top_k(scores: torch.Tensor, k: int) -> torch.Tensor:
    return torch.zeros_like(scores, dtype=torch.bool).scatter_(1, scores.topk(k, dim=1).indices, True)


def masked_mean(values: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    return (values * mask.unsqueeze(-1)).sum(1) / mask.sum(1, keepdim=True)


def test_the_source_pass_pools_exactly_the_rollout_kept_superpatches(info):
    model = make_model(info)
    with torch.no_grad():
        out = model(batch())
    kept = top_k(out["patch_scores"], K)  # the rollout's K best-scoring super-patches
    assert torch.equal(out["kept"], kept)
    per_patch = model.p2a(out["features_src"])
    torch.testing.assert_close(out["attributes_src"], masked_mean(per_patch, kept))
    assert not torch.allclose(out["attributes_src"], per_patch.mean(1), atol=1e-4)  # pooling all would differ


@pytest.mark.parametrize("pool", ["mean", "max"])
def test_the_contextualised_pass_pools_its_similarity_top_k_built_with_the_pool(info, pool):
    model = make_model(info, pool=pool)
    with torch.no_grad():
        out = model(batch(seed=2))
    features = out["features"]
    prototype = features.amax(1, keepdim=True) if pool == "max" else features.mean(1, keepdim=True)
    chosen = top_k((features * prototype).sum(-1), K)
    per_patch = model.p2a(features)
    expected = (per_patch.masked_fill(~chosen.unsqueeze(-1), float("-inf")).amax(1) if pool == "max"
                else masked_mean(per_patch, chosen))
    torch.testing.assert_close(out["attributes"], expected)
    other = features.mean(1, keepdim=True) if pool == "max" else features.amax(1, keepdim=True)
    assert not torch.equal(chosen, top_k((features * other).sum(-1), K))  # the other prototype picks others
    assert not torch.equal(chosen, out["kept"])  # and the rollout's choice is not what this pass pools


def test_global_labels_map_to_seen_positions_not_to_themselves(info):
    model = make_model(info)
    data = batch(seed=3)
    with torch.no_grad():
        out = model(data)
        terms = model.losses(out, data)  # only global labels: the model maps them
    seen_position = torch.as_tensor(info.seen_index())[data["label"]]
    assert seen_position.tolist() == [0, 1, 2, 3, 4, 5]
    logits = model.logit_scale * out["attributes"] @ torch.as_tensor(info.class_attributes[SEEN]).t()
    torch.testing.assert_close(terms["ce_ctx"], F.cross_entropy(logits, seen_position))
    assert not torch.allclose(terms["ce_ctx"], F.cross_entropy(logits, data["label"] % len(SEEN)))


def test_warm_up_through_the_trainer_trains_the_heads_and_only_them(tmp_path):
    from zslbench.config import resolve
    from zslbench.engine.run_data import load_run_data
    from zslbench.engine.trainer import EvalSets, Trainer
    from zslbench.catalogue import build_model

    cfg = resolve("svip", "synth", "tiny", overrides=[f"data.root={tmp_path}", "train.warmup_epochs=1",
                                                     "train.max_steps_per_epoch=3"])
    data = load_run_data(cfg)
    torch.manual_seed(0)
    model = build_model(cfg, data.info)
    split = data.split
    trainer = Trainer(cfg, data, model, torch.device("cpu"), split.split("trainval"),
                      EvalSets(split.split("test_seen"), split.split("test_unseen")), tmp_path / "run")
    heads = {id(p) for m in model.head_modules() for p in m.parameters()}
    before = {name: p.detach().clone() for name, p in model.named_parameters()}
    trainer.train_epoch(0)
    changed = {name for name, p in model.named_parameters() if not torch.equal(p.detach(), before[name])}
    head_names = {name for name, p in model.named_parameters() if id(p) in heads}
    assert {"p2a.weight", "patch_cls.0.weight", "w2p.v2p.weight"} <= changed
    assert changed <= head_names  # the backbone waits for the full phase (clean quirks)
    trainer.train_epoch(1)
    assert not torch.equal(model.vit.blocks[0].attn.qkv.weight, before["vit.blocks.0.attn.qkv.weight"])


@pytest.mark.parametrize("cache_images", [True, False])
def test_every_batch_source_labels_images_by_their_seen_position(tmp_path, cache_images):
    from zslbench.config import resolve
    from zslbench.engine.batches import make_batches
    from zslbench.engine.run_data import load_run_data

    cfg = resolve("svip", "synth", "tiny", overrides=[f"data.root={tmp_path}", f"data.cache_images={cache_images}"])
    data = load_run_data(cfg)
    seen = list(data.info.seen_classes)
    assert seen != list(range(len(seen)))  # gaps in the seen ids: an identity mapping would show
    source = make_batches(cfg, data, data.split.split("trainval"), train=True, device=torch.device("cpu"))
    for item in source:
        assert item["seen_label"].tolist() == [seen.index(int(label)) for label in item["label"]]
