"""The ViT baseline (``vit``; BASELINES.md §1): SVIP's ablation baseline.

The same timm backbone as SVIP, one fused-attention pass, no patch selection, no contextualisation,
no consistency loss. ``head=patches`` (default): final-norm patch tokens → super-patches [B, P, 4D]
→ P2A Linear(4D → A) → pooled over all P (``pool=mean|max``) → attributes a; ``head=cls``: the
final-norm CLS token → Linear(D → A). Class logits σ · a · Sᵀ; one loss term ``ce`` on the seen
classes. Warm-up trains the attribute head only.

Output keys: ``attributes`` [B, A], ``features`` [B, P, 4D] (``head=patches``), ``kept`` [B, P]
(all True: every super-patch is used).
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from zslbench.backbones.vit import add_positions, build_vit, embed_patches, patch_grid, patch_size, run_blocks
from zslbench.catalogue import DatasetInfo
from zslbench.backbones.attributes import AttributeScoring
from zslbench.backbones.superpatch import group, num_superpatches, pool_superpatches


class ViTBaseline(AttributeScoring, nn.Module):
    """ViT → super-patches → P2A → pool → σ · a · Sᵀ (or the CLS token with ``head=cls``)."""

    def __init__(self, cfg: Any, info: DatasetInfo):
        super().__init__()
        self.cfg = cfg
        self.logit_scale = float(cfg.logit_scale)
        self.vit = build_vit(cfg)
        self.grid = patch_grid(self.vit)
        self.patch_size = patch_size(self.vit)
        self.num_superpatches = num_superpatches(self.grid)
        dim = self.vit.embed_dim
        self.head = getattr(cfg, "head", "patches")
        self.p2a = nn.Linear(dim if self.head == "cls" else 4 * dim, info.num_attributes)
        self._register_dataset(info)

    def head_modules(self) -> list[nn.Module]:
        return [self.p2a]

    def param_groups(self, phase: str) -> list[dict[str, Any]]:
        if phase == "warmup":
            return [{"params": list(self.p2a.parameters()), "name": "heads"}]
        if phase == "full":
            return [{"params": list(self.parameters()), "name": "all"}]
        raise ValueError(f"unknown training phase {phase!r}; valid: warmup, full")

    def forward(self, batch: dict[str, Tensor]) -> dict[str, Tensor]:
        images = batch["image"]
        encoded = run_blocks(self.vit, add_positions(self.vit, embed_patches(self.vit, images)))
        kept = torch.ones(images.shape[0], self.num_superpatches, dtype=torch.bool, device=images.device)
        if self.head == "cls":
            return {"attributes": self.p2a(encoded[:, 0]), "kept": kept}
        features = group(encoded[:, 1:], self.grid)
        attributes = pool_superpatches(self.p2a(features), None, self.cfg.pool)
        return {"attributes": attributes, "features": features, "kept": kept}

    def losses(self, output: dict[str, Tensor], batch: dict[str, Tensor]) -> dict[str, Tensor]:
        """One term, ``ce``: cross-entropy of σ · a · S_seenᵀ."""
        logits = self.logit_scale * self.seen_class_logits(output["attributes"])
        return {"ce": F.cross_entropy(logits, self.seen_targets(batch))}
