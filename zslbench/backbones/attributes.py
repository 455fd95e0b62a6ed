"""Class scoring from attribute predictions, shared by SVIP and the ``vit`` baseline (SVIP.md §5).

Class logits are z = a · Sᵀ with S the L2-normalised class-attribute rows (a itself is not
normalised); cross-entropy and evaluation use σ · z with σ = ``logit_scale``. The class-attribute
matrix, its seen-class rows and the global-id → seen-index lookup are non-persistent buffers (data,
not weights: checkpoints hold weights only, and buffers follow the model across devices).
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from zslbench.catalogue import DatasetInfo


def class_logits(attributes: Tensor, class_attributes: Tensor) -> Tensor:
    """``[B, A] · [C, A]ᵀ → [B, C]`` in float32, outside autocast."""
    with torch.autocast(device_type=attributes.device.type, enabled=False):
        return attributes.float() @ class_attributes.float().t()


class AttributeScoring:
    """Mixin for an ``nn.Module`` predicting attributes ``output["attributes"]`` [B, A]."""

    logit_scale: float

    def _register_dataset(self, info: DatasetInfo) -> None:
        module: nn.Module = self  # type: ignore[assignment]
        attributes = torch.as_tensor(info.class_attributes, dtype=torch.float32)
        seen = torch.as_tensor(info.seen_classes, dtype=torch.long)
        lookup = torch.full((info.num_classes,), -1, dtype=torch.long)
        lookup[seen] = torch.arange(len(seen))
        module.register_buffer("class_attributes", attributes, persistent=False)
        module.register_buffer("seen_attributes", attributes[seen].clone(), persistent=False)
        module.register_buffer("seen_lookup", lookup, persistent=False)

    def seen_targets(self, batch: dict[str, Tensor]) -> Tensor:
        """Indices into the seen classes: ``batch["seen_label"]``, else mapped from ``batch["label"]``."""
        if "seen_label" in batch:
            return batch["seen_label"].long()
        targets = self.seen_lookup[batch["label"].long()]  # type: ignore[attr-defined]
        if bool((targets < 0).any()):
            raise ValueError("a training batch holds an unseen class; losses use seen classes only")
        return targets

    def seen_class_logits(self, attributes: Tensor) -> Tensor:
        """Unscaled z = a · S_seenᵀ (float32) → ``[B, C_s]``."""
        return class_logits(attributes, self.seen_attributes)  # type: ignore[attr-defined]

    def class_scores(self, output: dict[str, Tensor], class_attributes: Tensor) -> Tensor:
        """σ · a · Sᵀ against any class set ``[C, A]`` → ``[B, C]`` (float32)."""
        return self.logit_scale * class_logits(output["attributes"], class_attributes)
