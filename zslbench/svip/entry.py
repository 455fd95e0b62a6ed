"""SVIP in the catalogue: its config section, the paper's settings per dataset, its ablations (torch-free).

The model itself (:class:`zslbench.svip.model.SVIP`) is imported only when a run builds it.

>>> from zslbench.config import resolve
>>> cfg = resolve(model="svip", dataset="AWA2")
>>> cfg.model.keep, cfg.train.warmup_epochs, cfg.train.betas
(45, 6, (0.8, 0.999))
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

from zslbench.backbones.config import VIT_PRESET_PATCHES, VIT_REFERENCE_LOOP, VIT_SCHEDULES, ViTBackbone
from zslbench.catalogue import Ablation, ModelEntry, register_ablation, register_model
from zslbench.core.errors import ConfigError


@dataclass
class SVIPConfig(ViTBackbone):
    name: str = "svip"
    keep: int = 40  # K kept super-patches (the paper's patch number M)
    patch_selection: bool = True  # False = "w/o SSPS": K uniformly random super-patches
    rollout: Literal["reference", "paper"] = "reference"
    score_grouping: Literal["strip4", "block"] = "strip4"
    patch_targets: Literal["hard", "soft"] = "hard"
    contextualize: Literal["add", "replace", "drop"] = "add"  # drop = "w/o PSC"
    word_init: bool = True  # False = "w/o W2P": e is a free random vector
    inference_pool: Literal["all", "topk"] = "all"
    consistency: Literal["kl", "jsd", "none"] = "kl"
    consistency_temperature: float = 20.0
    js_weight: float = 1.0  # λ1
    patch_cls_weight: float = 3.0  # λ2
    att_dec: float = 0.3  # attribute-group L2,1 weight (applied twice, as the reference)
    mse_weight: float = 0.0

    def validate(self) -> None:
        super().validate()
        if self.keep < 1:
            raise ConfigError(f"model.keep must be at least 1, got {self.keep}")
        for name in ("js_weight", "patch_cls_weight", "att_dec", "mse_weight"):
            if getattr(self, name) < 0:
                raise ConfigError(f"model.{name} is a loss weight and must be non-negative, got {getattr(self, name)}")
        if self.consistency_temperature <= 0:
            raise ConfigError(f"model.consistency_temperature must be positive, got {self.consistency_temperature}")


#: SVIP.md §7: the ViT schedule of each dataset, K of 49 super-patches and the loss weights; synth: CPU-sized.
_MODEL_KEYS: dict[str, dict[str, Any]] = {
    "CUB": {"model.keep": 40, "model.patch_cls_weight": 3.0, "model.att_dec": 0.3},
    "AWA2": {"model.keep": 45, "model.patch_cls_weight": 4.0, "model.att_dec": 1.0},
    "SUN": {"model.keep": 45, "model.patch_cls_weight": 3.0, "model.att_dec": 0.3},
    "synth": {"model.keep": 12, "model.patch_cls_weight": 3.0, "model.att_dec": 0.3},
}
PRESETS: dict[str, dict[str, Any]] = {dataset: {**VIT_SCHEDULES[dataset], **keys} for dataset, keys in _MODEL_KEYS.items()}

def load_model() -> type:
    """The model class (imports torch and timm): the catalogue's lazy entry point."""
    from zslbench.svip.model import SVIP

    return SVIP


register_model(ModelEntry(
    name="svip",
    config=SVIPConfig,
    load=load_model,
    display_name="SVIP",
    help="SVIP (ICCV 2025): self-supervised patch selection + semantic contextualisation",
    presets=PRESETS,
    preset_patches={**VIT_PRESET_PATCHES, "tiny": {**VIT_PRESET_PATCHES["tiny"], "model.keep": 3}},
    table_rank=100,  # the proposed method: last in tables
    reference_loop=VIT_REFERENCE_LOOP,
    paper_mode="svip",
))


# --------------------------------------------------------------------------- the paper's ablation rows (SVIP.md §9)
def _svip_ablation(name: str, patch: dict[str, Any], help: str, **kwargs: Any) -> None:
    register_ablation(Ablation(name, patch, help, models=kwargs.pop("models", ("svip",)), **kwargs))


_svip_ablation("baseline", {"model.name": "vit"},
               "ViT + attribute head: no SSPS, no PSC, no consistency (the paper's baseline row)",
               label="Baseline: ViT + attribute head", paper_row=0, exclusive=True)
_svip_ablation("no_patch_selection", {"model.patch_selection": False},
               "w/o SSPS: no patch classifier or its loss; K uniformly random super-patches are kept "
               "(the rest contextualised) at training and test", label="w/o SSPS", paper_row=1)
_svip_ablation("no_replacement", {"model.contextualize": "drop"},
               "w/o PSC: non-kept super-patches are dropped from the token sequence instead of contextualised",
               label="w/o PSC", paper_row=2)
_svip_ablation("no_js", {"model.consistency": "none"},
               "w/o JSD: no consistency loss between the source and contextualised passes", label="w/o JSD", paper_row=3)
_svip_ablation("no_word_init", {"model.word_init": False},
               "w/o W2P: the contextualising vector is a free random-init parameter, not built from attribute "
               "word vectors", label="w/o W2P", paper_row=4)

# --------------------------------------------------------------------------- variants (paper text vs reference code)
_svip_ablation("paper_rollout", {"model.rollout": "paper"},
               "rollout as the paper's text: heads summed, W^l = W^(l-1) + W^(l-1)·T^l")
_svip_ablation("block_grouping", {"model.score_grouping": "block"},
               "group patch scores by true 2x2 blocks (the reference averages 1x4 strips)")
_svip_ablation("soft_targets", {"model.patch_targets": "soft"},
               "patch-classifier targets are the normalised rollout scores, not hard 0/1 labels")
_svip_ablation("max_pool", {"model.pool": "max"},
               "max-pool attribute scores over super-patches (the paper's text; reference: mean)", models=("svip", "vit"))
_svip_ablation("jsd", {"model.consistency": "jsd"}, "true Jensen-Shannon consistency instead of the reference's scaled KL")
_svip_ablation("replace", {"model.contextualize": "replace"},
               "non-kept super-patches are replaced by the semantic vector (abstract) instead of having it added "
               "(reference)")
_svip_ablation("topk_inference", {"model.inference_pool": "topk"},
               "pool only the top-K super-patches at inference (reference: all)")
