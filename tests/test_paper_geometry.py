"""SVIP at the paper's geometry (ViT-B/16, 224 px → 14×14 patches, 49 super-patches), random init, on CPU."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from zslbench.svip.entry import SVIPConfig
from zslbench.catalogue import DatasetInfo
from zslbench.svip.model import SVIP


pytestmark = pytest.mark.usefixtures("single_thread")


@pytest.mark.slow
def test_svip_vit_b16_trains_one_step_and_infers():
    rng = np.random.default_rng(0)
    classes, seen, attributes = 200, 150, 312  # CUB-like
    class_attributes = rng.random((classes, attributes)).astype(np.float32)
    class_attributes /= np.linalg.norm(class_attributes, axis=1, keepdims=True) + 1e-5
    groups = np.array_split(np.arange(attributes), 28)
    info = DatasetInfo(name="cub-like", class_attributes=class_attributes, seen_classes=np.arange(seen),
                       unseen_classes=np.arange(seen, classes),
                       word_vectors=rng.standard_normal((attributes, 300)).astype(np.float32),
                       attribute_groups=[g.tolist() for g in groups])
    torch.manual_seed(0)
    model = SVIP(SVIPConfig(keep=40), info)  # the library default: vit_base_patch16_224 at 224 px
    assert (model.grid, model.num_superpatches, model.vit.embed_dim, len(model.vit.blocks)) == (14, 49, 768, 12)
    labels = torch.tensor([3, 120])
    batch = {"image": torch.randn(2, 3, 224, 224), "label": labels, "seen_label": labels}

    optimizer = torch.optim.Adam(model.param_groups("full"), lr=1e-5)
    model.train()
    out = model(batch)
    assert out["attributes"].shape == out["attributes_src"].shape == (2, attributes)
    assert out["patch_logits"].shape == out["patch_targets"].shape == (2, 49)
    assert out["kept"].sum(1).tolist() == [40, 40]
    terms = model.losses(out, batch)
    assert set(terms) == {"ce_src", "ce_ctx", "consistency", "patch_cls", "att_group"}
    assert all(torch.isfinite(v) for v in terms.values())
    before = model.p2a.weight.detach().clone()
    optimizer.zero_grad()
    sum(terms.values()).backward()
    torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
    optimizer.step()
    assert not torch.equal(model.p2a.weight, before)

    model.eval()
    with torch.no_grad():
        out = model(batch)
        scores = model.class_scores(out, model.class_attributes)
    assert out["kept"].shape == (2, 49) and out["kept"].sum(1).tolist() == [40, 40]
    assert scores.shape == (2, classes) and bool(torch.isfinite(scores).all())
