"""APN-style baseline (Xu et al., NeurIPS 2020; BASELINES.md §3): attribute prototypes on a fine-tuned ResNet.

* Backbone: a timm ResNet (any depth); its stem and ``layer1`` are frozen — stored as buffers
  (:func:`zslbench.backbones.cnn.freeze_as_buffers`), so no optimiser, clipping or phase switch can
  train them — and BatchNorm runs in train mode as in the reference. The last map is [C, h, w].
* Global branch (predicts): a bias-free 1×1 conv W [A, C] → maps → max- or avg-pool → attribute
  scores f [B, A]; class scores f · Sᵀ.
* Prototype branch (losses only): prototypes P [A, C] as a 1×1 conv → similarity maps
  M [B, A, h, w] → max-pool → local attribute scores.

S is ``DatasetInfo.class_attributes``: ``original_att`` clipped at 0 with rows scaled by
1/(‖row‖ + 10⁻⁵). The reference uses xlsa17 ``att`` (the same rows L2-normalised, unclipped); the
two differ only where ``original_att`` has negative ("missing") entries (4 of AWA2's) and by the 10⁻⁵.
W and P start as 2·10⁻⁴·U(0, 1), as in the reference.

Losses (weights keep the reference's option names; a term whose weight is 0 is not computed):

========================== =================================================== ===========
term                       what                                                weight
========================== =================================================== ===========
ce                         CE of f·S_seenᵀ over the seen classes               xe
attribute_regression       MSE(f, S[y])                                        attri
local_ce                   CE of local·S_seenᵀ                                 l_xe
local_attribute_regression MSE(local, S[y])                                    l_attri
decorrelation              attribute decorrelation of the global conv rows W   regular
local_decorrelation        attribute decorrelation of the prototypes P         l_regular
compactness                Σ sigmoid(M)·((i−i*)² + (j−j*)²) (sum over batch)   cpt
========================== =================================================== ===========

Each switch below defaults to the reference code's behaviour (which produced the published numbers);
the other value is the cleaner form:

* ``double_softmax`` (reference: on) — both CE terms are applied to class scores that are already
  softmaxed, CE(log_softmax(softmax(z))): with C_s classes its gradient is about C_s times smaller than
  plain CE's, against unchanged regularisers. Off: CE on the logits.
* ``decorrelation`` — ``reference``: Σ_g sqrt(Σ_c (Σ_{a∈g} V[a, c]² + 10⁻⁸)), one Frobenius norm per group,
  over the reference's groups (:mod:`zslbench.baselines.apn.groups`: on CUB its seven body parts with
  *belly* twice); ``l21``: the paper's group-wise L2,1, Σ_g Σ_c sqrt(Σ_{a∈g} V[a, c]² + 10⁻⁸) — every
  group and channel its own norm, so attributes of one group compete for channels — over the dataset's
  attribute groups (CUB: its 28 attribute types). Without groups (``use_groups`` off, AWA2's reference
  setting, or a dataset without groups): ‖V‖_F in both forms.
* ``compactness_in_warmup`` (reference: off) — the compactness term only counts once warm-up is over
  (the trainer tells the model its phase: :meth:`APN.set_phase`).

Compactness uses each map's arg-max (i*, j*) as a constant and sums over the batch, as the reference
(whose weights are tuned for that scale).

Example:
    >>> attribute_decorrelation(torch.tensor([[3.0, 0.0], [4.0, 0.0]]), groups=[]).item()
    5.0
    >>> round(attribute_decorrelation(torch.tensor([[3.0, 1.0], [4.0, 0.0]]), [[0, 1]], "reference").item(), 4)
    5.099
"""

from __future__ import annotations

from typing import Any, Sequence

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from zslbench.backbones.attributes import class_logits
from zslbench.backbones.cnn import create_backbone, freeze_as_buffers, is_resnet, region_map, resnet_stem_and_layer1
from zslbench.baselines.apn.groups import decorrelation_groups
from zslbench.core.errors import ConfigError
from zslbench.catalogue import DatasetInfo

PROTOTYPE_INIT_SCALE = 2e-4
GROUP_EPS = 1e-8  # per channel, as the reference adds it; keeps the square root differentiable at 0


def attribute_decorrelation(vectors: Tensor, groups: Sequence[Sequence[int]], form: str = "l21") -> Tensor:
    """Decorrelation of the attribute rows of ``vectors`` [A, C] over ``groups`` (the module docstring's two
    forms); the Frobenius norm ‖V‖_F when there are none."""
    if not groups:
        return vectors.norm()
    total = vectors.new_zeros(())
    for members in groups:
        per_channel = vectors[list(members)].pow(2).sum(dim=0) + GROUP_EPS  # [C]
        total = total + (per_channel.sum().sqrt() if form == "reference" else per_channel.sqrt().sum())
    return total


def compactness(maps: Tensor) -> Tensor:
    """Σ over batch, attributes and cells of sigmoid(M)·squared distance to the map's arg-max cell."""
    batch, attributes, h, w = maps.shape
    peak = maps.detach().flatten(2).argmax(dim=-1)  # [B, A]
    peak_row, peak_col = (peak // w).float(), (peak % w).float()
    rows = torch.arange(h, device=maps.device, dtype=torch.float32).view(1, 1, h, 1)
    cols = torch.arange(w, device=maps.device, dtype=torch.float32).view(1, 1, 1, w)
    distance = (rows - peak_row[..., None, None]) ** 2 + (cols - peak_col[..., None, None]) ** 2
    return (torch.sigmoid(maps.float()) * distance).sum()


class APN(nn.Module):
    """APN-style model on images (module docstring; config: ``APNConfig``)."""

    def __init__(self, cfg: Any, info: DatasetInfo):
        super().__init__()
        self.cfg = cfg
        self.backbone = create_backbone(cfg.backbone, cfg.pretrained, output_stride=int(cfg.output_stride),
                                        paper_tag=cfg.paper_weights)
        if not is_resnet(self.backbone):
            raise ConfigError(f"model.backbone {cfg.backbone!r} is not a timm ResNet (layer1..layer4); APN freezes "
                              "the stem and layer1 of a ResNet, use e.g. resnet101 or resnet18")
        for module in resnet_stem_and_layer1(self.backbone):
            freeze_as_buffers(module)
        channels = int(self.backbone.num_features)
        num_attributes = info.num_attributes
        self.global_conv = nn.Parameter(PROTOTYPE_INIT_SCALE * torch.rand(num_attributes, channels))
        self.prototypes = nn.Parameter(PROTOTYPE_INIT_SCALE * torch.rand(num_attributes, channels))
        attributes = torch.as_tensor(np.asarray(info.class_attributes), dtype=torch.float32)
        self.register_buffer("class_attributes", attributes, persistent=False)
        self.register_buffer("seen_classes", torch.as_tensor(info.seen_classes, dtype=torch.long), persistent=False)
        self.groups = decorrelation_groups(info.name, info.attribute_names, info.attribute_groups, cfg.decorrelation,
                                           bool(cfg.use_groups))
        self.phase = "full"  # the trainer says when warm-up runs (set_phase)

    # ------------------------------------------------------------------ interface
    def set_phase(self, phase: str) -> None:
        """``warmup`` or ``full``: the reference adds the compactness term only after warm-up."""
        self.phase = phase

    def param_groups(self, phase: str) -> list[dict[str, Any]]:
        """warm-up: prototypes and the global conv; full: every parameter (stem/layer1 are buffers)."""
        if phase == "warmup":
            return [{"params": [self.global_conv, self.prototypes]}]
        return [{"params": [p for p in self.parameters()]}]

    def forward(self, batch: dict[str, Tensor]) -> dict[str, Tensor]:
        return self.heads(region_map(self.backbone, batch["image"]))

    def heads(self, fmap: Tensor) -> dict[str, Tensor]:
        """Both branches on the backbone's last map ``fmap`` [B, C, h, w]."""
        global_maps = torch.einsum("ac,bchw->bahw", self.global_conv.to(fmap.dtype), fmap)
        pooled = global_maps.amax(dim=(2, 3)) if self.cfg.pool == "max" else global_maps.mean(dim=(2, 3))
        similarity = torch.einsum("ac,bchw->bahw", self.prototypes.to(fmap.dtype), fmap)
        return {"attributes": pooled, "local_attributes": similarity.amax(dim=(2, 3)), "similarity_maps": similarity}

    def class_scores(self, output: dict[str, Tensor], class_attributes: Tensor) -> Tensor:
        """f · Sᵀ from the global branch (float32, also under bf16 autocast)."""
        attributes = output["attributes"]
        return class_logits(attributes, class_attributes.to(attributes.device))

    def _class_ce(self, attributes: Tensor, seen_labels: Tensor) -> Tensor:
        logits = class_logits(attributes, self.class_attributes[self.seen_classes])
        if self.cfg.double_softmax:  # the reference: CE (a log-softmax) of softmax outputs
            logits = logits.softmax(dim=-1)
        return F.cross_entropy(logits, seen_labels)

    def losses(self, output: dict[str, Tensor], batch: dict[str, Tensor]) -> dict[str, Tensor]:
        cfg = self.cfg
        target = self.class_attributes[batch["label"]]
        seen_labels = batch["seen_label"]
        weighted = {
            "ce": (cfg.xe, lambda: self._class_ce(output["attributes"], seen_labels)),
            "attribute_regression": (cfg.attri, lambda: F.mse_loss(output["attributes"].float(), target)),
            "local_ce": (cfg.l_xe, lambda: self._class_ce(output["local_attributes"], seen_labels)),
            "local_attribute_regression": (cfg.l_attri,
                                           lambda: F.mse_loss(output["local_attributes"].float(), target)),
            "decorrelation": (cfg.regular, lambda: attribute_decorrelation(self.global_conv, self.groups,
                                                                            cfg.decorrelation)),
            "local_decorrelation": (cfg.l_regular, lambda: attribute_decorrelation(self.prototypes, self.groups,
                                                                                   cfg.decorrelation)),
            "compactness": (cfg.cpt if self.phase == "full" or cfg.compactness_in_warmup else 0.0,
                            lambda: compactness(output["similarity_maps"])),
        }
        return {name: float(weight) * term() for name, (weight, term) in weighted.items() if weight}
