"""The ``vit`` baseline and the shared timm backbone (construction, geometry, pretrained weights)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from zslbench.backbones.vit import build_vit, patch_grid
from zslbench.baselines.vit.entry import ViTConfig
from zslbench.baselines.vit.model import ViTBaseline
from zslbench.config import resolve
from zslbench.core.errors import ConfigError, UserError
from zslbench.catalogue import MODELS, DatasetInfo, build_model

TINY = dict(backbone="vit_tiny_patch16_224", img_size=32, patch_size=8, embed_dim=32, depth=2, num_heads=2)


pytestmark = pytest.mark.usefixtures("single_thread")


@pytest.fixture(scope="module")
def info() -> DatasetInfo:
    """10 classes (7 seen, 3 unseen), 12 attributes in 3 groups, 50-d word vectors."""
    rng = np.random.default_rng(1)
    attributes = rng.random((10, 12)).astype(np.float32)
    attributes /= np.linalg.norm(attributes, axis=1, keepdims=True) + 1e-5
    return DatasetInfo(name="tiny", class_attributes=attributes, seen_classes=np.arange(7),
                       unseen_classes=np.arange(7, 10), word_vectors=rng.standard_normal((12, 50)).astype(np.float32),
                       attribute_groups=[[0, 1, 2, 3], [4, 5, 6, 7], [8, 9, 10, 11]])


def make_batch(batch: int = 4, size: int = 32) -> dict[str, torch.Tensor]:
    generator = torch.Generator().manual_seed(0)
    labels = torch.arange(batch) % 7
    return {"image": torch.randn(batch, 3, size, size, generator=generator), "label": labels, "seen_label": labels}


def make_vit(info: DatasetInfo, **fields) -> ViTBaseline:
    torch.manual_seed(0)
    return ViTBaseline(ViTConfig(**{**TINY, **fields}), info)


# --------------------------------------------------------------------------- the baseline
def test_registered_and_built_from_the_tiny_preset(info):
    assert MODELS.get("vit").model_class() is ViTBaseline
    model = build_model(resolve(model="vit", preset="tiny"), info)
    assert isinstance(model, ViTBaseline) and (model.grid, model.num_superpatches, model.patch_size) == (4, 4, 8)


def test_patch_head_pools_p2a_over_every_superpatch(info):
    model = make_vit(info)
    batch = make_batch()
    out = model(batch)
    assert out["attributes"].shape == (4, 12) and out["features"].shape == (4, 4, 128)
    torch.testing.assert_close(out["attributes"], model.p2a(out["features"]).mean(1))
    assert out["kept"].dtype == torch.bool and bool(out["kept"].all())
    terms = model.losses(out, batch)
    assert list(terms) == ["ce"]
    logits = 5.0 * out["attributes"] @ model.seen_attributes.t()
    torch.testing.assert_close(terms["ce"], torch.nn.functional.cross_entropy(logits, batch["seen_label"]))
    scores = model.class_scores(out, model.class_attributes)
    torch.testing.assert_close(scores, 5.0 * out["attributes"] @ model.class_attributes.t())


def test_max_pool(info):
    model = make_vit(info, pool="max")
    out = model(make_batch())
    torch.testing.assert_close(out["attributes"], model.p2a(out["features"]).amax(1))


def test_cls_head_uses_the_class_token(info):
    model = make_vit(info, head="cls")
    assert model.p2a.in_features == 32
    assert model(make_batch())["attributes"].shape == (4, 12)


@pytest.mark.parametrize("head", ["patches", "cls"])
def test_gradients_reach_every_trainable_parameter(info, head):
    model = make_vit(info, head=head)
    batch = make_batch()
    sum(model.losses(model(batch), batch).values()).backward()
    missing = [n for n, p in model.named_parameters() if p.grad is None or not p.grad.abs().sum()]
    assert missing == []


def test_param_groups(info):
    model = make_vit(info)
    assert [p for g in model.param_groups("warmup") for p in g["params"]] == list(model.p2a.parameters())
    assert {id(p) for g in model.param_groups("full") for p in g["params"]} == {id(p) for p in model.parameters()}


def test_uses_fused_attention_at_inference(info):
    model = make_vit(info).eval()
    assert all(block.attn.fused_attn for block in model.vit.blocks)
    with torch.no_grad():
        assert model(make_batch())["kept"].shape == (4, 4)


def test_grid_6_geometry(info):
    model = make_vit(info, img_size=48)
    assert (model.grid, model.num_superpatches) == (6, 9)
    assert model(make_batch(size=48))["features"].shape == (4, 9, 128)


def test_learns_a_tiny_batch(info):
    model = make_vit(info)
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    batch = make_batch(batch=8)
    losses = []
    for _ in range(30):
        loss = model.losses(model(batch), batch)["ce"]
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    assert losses[-1] < 0.5 * losses[0]


# --------------------------------------------------------------------------- the backbone
def test_backbone_geometry_comes_from_the_config():
    vit = build_vit(ViTConfig(**{**TINY, "img_size": 64, "embed_dim": 48, "depth": 3, "num_heads": 3}))
    assert (patch_grid(vit), vit.embed_dim, len(vit.blocks)) == (8, 48, 3)
    assert vit.blocks[0].attn.qkv.bias is not None and vit.norm.eps == pytest.approx(1e-6)
    assert vit.num_classes == 0


def test_bad_geometry_and_names_are_config_errors():
    with pytest.raises(ConfigError, match="even grid"):
        build_vit(ViTConfig(**{**TINY, "img_size": 40}))
    with pytest.raises(ConfigError, match="divisible by model.num_heads"):
        build_vit(ViTConfig(**{**TINY, "embed_dim": 30, "num_heads": 4}))
    with pytest.raises(ConfigError, match="unknown timm backbone 'vit_nonexistent'"):
        build_vit(ViTConfig(**{**TINY, "backbone": "vit_nonexistent"}))
    with pytest.raises(ConfigError, match="not a timm VisionTransformer"):
        build_vit(ViTConfig(backbone="resnet18", img_size=32))


def _pretrained_state(tmp_path, suffix: str, **geometry):
    """A timm ViT with a classifier head, saved as a plain state dict."""
    import timm

    torch.manual_seed(5)
    source = timm.create_model("vit_tiny_patch16_224", pretrained=False, num_classes=5, **{**TINY_GEOMETRY, **geometry})
    path = tmp_path / f"weights{suffix}"
    state = source.state_dict()
    if suffix == ".safetensors":
        from safetensors.torch import save_file

        save_file({k: v.contiguous() for k, v in state.items()}, str(path))
    else:
        torch.save(state, path)
    return path, state


TINY_GEOMETRY = {k: v for k, v in TINY.items() if k != "backbone"}


@pytest.mark.parametrize("suffix", [".pth", ".safetensors"])
def test_pretrained_weights_load_from_a_local_file(tmp_path, suffix):
    path, state = _pretrained_state(tmp_path, suffix)
    vit = build_vit(ViTConfig(**{**TINY, "pretrained": str(path)}))
    loaded = vit.state_dict()
    for key in ("blocks.1.mlp.fc2.weight", "pos_embed", "cls_token", "patch_embed.proj.weight", "norm.bias"):
        assert torch.equal(loaded[key], state[key]), key


def test_pretrained_position_embeddings_are_resampled_to_another_grid(tmp_path):
    path, state = _pretrained_state(tmp_path, ".pth")
    vit = build_vit(ViTConfig(**{**TINY, "img_size": 48, "pretrained": str(path)}))
    assert vit.pos_embed.shape == (1, 1 + 36, 32)
    assert torch.equal(vit.pos_embed[0, 0], state["pos_embed"][0, 0])  # the CLS position is kept as is
    assert torch.equal(vit.state_dict()["blocks.0.attn.qkv.weight"], state["blocks.0.attn.qkv.weight"])


def test_pretrained_problems_are_user_errors(tmp_path):
    with pytest.raises(UserError, match="do not exist; set model.pretrained"):
        build_vit(ViTConfig(**{**TINY, "pretrained": str(tmp_path / "missing.pth")}))
    wide, _ = _pretrained_state(tmp_path, ".pth", embed_dim=48, num_heads=3)
    with pytest.raises(UserError, match="do not fit the backbone"):
        build_vit(ViTConfig(**{**TINY, "pretrained": str(wide)}))
    partial = tmp_path / "partial.pth"
    torch.save({"cls_token": torch.zeros(1, 1, 32)}, partial)
    with pytest.raises(UserError, match="lacks keys"):
        build_vit(ViTConfig(**{**TINY, "pretrained": str(partial)}))
    garbage = tmp_path / "garbage.pth"
    garbage.write_bytes(b"not a checkpoint")
    with pytest.raises(UserError, match="cannot read pretrained weights"):
        build_vit(ViTConfig(**{**TINY, "pretrained": str(garbage)}))
