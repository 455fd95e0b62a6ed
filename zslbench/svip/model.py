"""SVIP: semantically contextualised visual patches for zero-shot learning (SVIP.md).

One training step runs two ViT passes:

1. **source pass** — the unmodified image through every block with explicit attention maps
   (the only place they are materialised); the attention rollout scores the patches, the scores
   are grouped to super-patches and the top-K become the *kept* set (PatchCls pseudo-labels);
   P2A pooled over the kept super-patches gives ``attributes_src``;
2. **contextualised pass** — non-kept super-patches are contextualised by the W2P vector e
   (``add``/``replace``) or dropped (``drop``), then all blocks run with fused attention; P2A pooled
   over the top-K super-patches by similarity to their mean gives ``attributes``.

Inference is one contextualised pass (fused attention, no rollout) whose kept set is the K
super-patches PatchCls finds least likely to be unrelated; P2A is pooled over all P super-patches
(``inference_pool=all``) or the similarity top-K (``topk``). With ``contextualize=drop`` only the kept
super-patches exist in the output, so every pooling runs over those K.

``patch_selection=False`` ("w/o SSPS"): no PatchCls and no patch loss; K uniformly random
super-patches (global RNG) are kept at training and test, the other P − K contextualised, and the
source pass uses fused attention (no rollout is needed).

Output keys (``forward``): ``attributes`` [B, A] (contextualised pass: the prediction),
``features`` [B, P or K, 4D], ``kept`` [B, P] bool, ``patch_logits`` [B, P] (PatchCls, when on); in
training also ``attributes_src`` [B, A], ``features_src`` [B, P, 4D] and, with patch selection,
``patch_scores`` [B, P] (grouped rollout scores) and ``patch_targets`` [B, P] (1 = unrelated).
Loss terms (weighted): ``ce_src``, ``ce_ctx``, ``consistency``, ``patch_cls``, ``att_group``, ``mse``.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from zslbench.backbones.vit import add_positions, build_vit, embed_patches, patch_grid, patch_size, run_blocks, \
    run_blocks_with_attention
from zslbench.core.errors import ConfigError, DataError
from zslbench.catalogue import DatasetInfo
from zslbench.backbones.attributes import AttributeScoring
from zslbench.svip.losses import attribute_group_l21, group_membership, jsd_consistency, kl_consistency, patch_bce
from zslbench.svip.rollout import AttentionRollout
from zslbench.svip.selection import group_scores, kept_indices, patch_targets, random_mask, similarity_mask, \
    top_k_mask
from zslbench.backbones.superpatch import group, num_superpatches, pool_superpatches, superpatch_token_index, ungroup
from zslbench.svip.w2p import FreeContextVector, WordToPatch, contextualize

PATCH_CLASSIFIER_HIDDEN = 512


class SVIP(AttributeScoring, nn.Module):
    """SVIP on a timm ViT of any even-grid geometry (see the module docstring)."""

    def __init__(self, cfg: Any, info: DatasetInfo):
        super().__init__()
        self.cfg = cfg
        self.logit_scale = float(cfg.logit_scale)
        self.vit = build_vit(cfg)
        self.grid = patch_grid(self.vit)
        self.patch_size = patch_size(self.vit)
        self.num_superpatches = num_superpatches(self.grid)
        self.keep = int(cfg.keep)
        if not 1 <= self.keep <= self.num_superpatches:
            raise ConfigError(f"model.keep={cfg.keep} must be between 1 and the {self.num_superpatches} super-patches "
                              f"of the {self.grid}×{self.grid} patch grid; lower model.keep")
        dim = self.vit.embed_dim
        width = 4 * dim
        attributes = info.num_attributes
        self.p2a = nn.Linear(width, attributes)
        self.patch_cls = nn.Sequential(nn.Linear(width, PATCH_CLASSIFIER_HIDDEN), nn.ReLU(),
                                       nn.Linear(PATCH_CLASSIFIER_HIDDEN, 1)) if cfg.patch_selection else None
        self.w2p = None if cfg.contextualize == "drop" else _context_vector(cfg, info, dim)
        self._register_dataset(info)
        self.register_buffer("token_index", superpatch_token_index(self.grid), persistent=False)
        self.register_buffer("group_membership", group_membership(info.attribute_groups, attributes), persistent=False)

    # ------------------------------------------------------------------ parameters
    def head_modules(self) -> list[nn.Module]:
        """The heads trained during warm-up: P2A, PatchCls, W2P (v2p, p2t) or the free vector."""
        return [m for m in (self.p2a, self.patch_cls, self.w2p) if m is not None]

    def param_groups(self, phase: str) -> list[dict[str, Any]]:
        if phase == "warmup":
            return [{"params": [p for m in self.head_modules() for p in m.parameters()], "name": "heads"}]
        if phase == "full":
            return [{"params": list(self.parameters()), "name": "all"}]
        raise ValueError(f"unknown training phase {phase!r}; valid: warmup, full")

    # ------------------------------------------------------------------ forward
    def forward(self, batch: dict[str, Tensor]) -> dict[str, Tensor]:
        patches = embed_patches(self.vit, batch["image"])  # [B, G², D], before CLS and positions
        superpatches = group(patches, self.grid)  # [B, P, 4D]
        output: dict[str, Tensor] = {}
        if self.patch_cls is not None:
            output["patch_logits"] = self._patch_logits(superpatches)  # logit of P(unrelated)
        if self.training:
            tokens = add_positions(self.vit, patches)
            kept = self._source_pass(tokens, output)
        else:
            tokens = None
            kept = self._inference_kept(output, patches)
        features = self._contextualised_pass(patches, superpatches, kept, tokens)
        pool_all = not self.training and self.cfg.inference_pool == "all"
        pooled = None if pool_all else similarity_mask(features, self.keep, self.cfg.pool)
        output.update(features=features, kept=kept,
                      attributes=pool_superpatches(self.p2a(features), pooled, self.cfg.pool))
        return output

    def _patch_logits(self, superpatches: Tensor) -> Tensor:
        """PatchCls → ``[B, P]``; its last layer in float32 (outside autocast): the K kept super-patches are the
        K lowest of these logits, and bf16 would make near neighbours tie."""
        hidden = self.patch_cls[:-1](superpatches)
        with torch.autocast(device_type=hidden.device.type, enabled=False):
            return self.patch_cls[-1](hidden.float()).squeeze(-1)

    def _source_pass(self, tokens: Tensor, output: dict[str, Tensor]) -> Tensor:
        """The unmodified image; rollout pseudo-labels when patch selection is on. Returns the kept mask."""
        cfg = self.cfg
        if self.patch_cls is not None:
            rollout = AttentionRollout(cfg.rollout)
            encoded = run_blocks_with_attention(self.vit, tokens, rollout.add)
            scores = group_scores(rollout.scores(), self.grid, cfg.score_grouping)
            kept = top_k_mask(scores, self.keep)
            output["patch_scores"] = scores
            output["patch_targets"] = patch_targets(scores, kept, cfg.patch_targets)
        else:
            encoded = run_blocks(self.vit, tokens)
            kept = random_mask(tokens.shape[0], self.num_superpatches, self.keep, tokens.device)
        features = group(encoded[:, 1:], self.grid)
        output["features_src"] = features
        output["attributes_src"] = pool_superpatches(self.p2a(features), kept, cfg.pool)
        return kept

    def _inference_kept(self, output: dict[str, Tensor], patches: Tensor) -> Tensor:
        if self.patch_cls is not None:  # the K least likely to be unrelated
            return top_k_mask(output["patch_logits"].detach().float(), self.keep, largest=False)
        return random_mask(patches.shape[0], self.num_superpatches, self.keep, patches.device)

    def _contextualised_pass(self, patches: Tensor, superpatches: Tensor, kept: Tensor,
                             tokens: Tensor | None) -> Tensor:
        """Contextualise (or drop) the non-kept super-patches, run all blocks fused → ``[B, P or K, 4D]``."""
        if self.w2p is None:  # contextualize=drop: keep CLS + the kept super-patches' own tokens
            if tokens is None:
                tokens = add_positions(self.vit, patches)
            batch, dim = tokens.shape[0], tokens.shape[-1]
            order = 1 + self.token_index[kept_indices(kept, self.keep)].reshape(batch, -1)  # super-patch-major
            order = torch.cat([order.new_zeros(batch, 1), order], dim=1)
            encoded = run_blocks(self.vit, tokens.gather(1, order.unsqueeze(-1).expand(-1, -1, dim)))
            return encoded[:, 1:].reshape(batch, self.keep, 4 * dim)
        mixed = contextualize(superpatches, kept, self.w2p(), self.cfg.contextualize)
        encoded = run_blocks(self.vit, add_positions(self.vit, ungroup(mixed, self.grid)))
        return group(encoded[:, 1:], self.grid)

    # ------------------------------------------------------------------ losses
    def losses(self, output: dict[str, Tensor], batch: dict[str, Tensor]) -> dict[str, Tensor]:
        """Weighted terms: ce_src, ce_ctx, consistency (λ1), patch_cls (λ2), att_group (att_dec²), mse."""
        cfg = self.cfg
        targets = self.seen_targets(batch)
        z_ctx = self.seen_class_logits(output["attributes"])  # z = a · S_seenᵀ, unscaled
        terms: dict[str, Tensor] = {}
        if "attributes_src" in output:
            z_src = self.seen_class_logits(output["attributes_src"])
            terms["ce_src"] = F.cross_entropy(self.logit_scale * z_src, targets)
        terms["ce_ctx"] = F.cross_entropy(self.logit_scale * z_ctx, targets)
        if "attributes_src" in output and cfg.consistency != "none" and cfg.js_weight:
            form = kl_consistency if cfg.consistency == "kl" else jsd_consistency
            # on the unscaled z, tempered by T (the reference: σ enters the CE only)
            terms["consistency"] = cfg.js_weight * form(z_ctx, z_src, cfg.consistency_temperature)
        if "patch_targets" in output and cfg.patch_cls_weight:
            terms["patch_cls"] = cfg.patch_cls_weight * patch_bce(output["patch_logits"], output["patch_targets"])
        if self.group_membership.shape[0] and cfg.att_dec:
            terms["att_group"] = cfg.att_dec * cfg.att_dec * attribute_group_l21(output["attributes"],
                                                                                 self.group_membership)
        if cfg.mse_weight:
            truth = self.seen_attributes[targets]
            mse = F.mse_loss(output["attributes"].float(), truth)
            if "attributes_src" in output:
                mse = mse + F.mse_loss(output["attributes_src"].float(), truth)
            terms["mse"] = cfg.mse_weight * mse
        return terms


def _context_vector(cfg: Any, info: DatasetInfo, dim: int) -> nn.Module:
    """W2P from the attribute word vectors, or the free vector of "w/o W2P"."""
    if not cfg.word_init:
        return FreeContextVector(dim)
    words = torch.as_tensor(info.word_vectors, dtype=torch.float32)
    if words.ndim != 2 or words.shape[0] != info.num_attributes:
        raise DataError(f"word vectors of {info.name} have shape {tuple(words.shape)}, expected "
                        f"[{info.num_attributes}, d] (one per attribute); regenerate them or set data.word_vectors")
    return WordToPatch(words, dim)
