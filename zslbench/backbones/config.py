"""Backbone settings as data: the config section of the models on a timm ViT (SVIP and ``vit``), their
schedules, and the CPU-sized ViT and CNN geometries of the synthetic benchmark and the tiny preset.

Torch-free: the model packages declare their catalogue entries from this module.

>>> cfg = ViTBackbone(**{k.split(".", 1)[1]: v for k, v in SYNTH_VIT.items()})
>>> cfg.img_size // cfg.patch_size   # an 8×8 patch grid → 16 super-patches
8
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar, Literal

from zslbench.backbones.weights import parse
from zslbench.catalogue import ReferenceLoop
from zslbench.config import ModelConfig
from zslbench.core.errors import ConfigError


@dataclass
class PretrainedBackbone(ModelConfig):
    """A timm backbone and the weights it starts from: ``model.pretrained`` is none | paper | timm:<tag> | hub |
    a weights file (:mod:`zslbench.backbones.weights`); ``paper`` means the class's ``paper_weights``."""

    backbone: str = ""
    pretrained: str = "none"

    def validate(self) -> None:
        super().validate()
        parse(self.pretrained, self.paper_weights, self.backbone)


@dataclass
class ViTBackbone(PretrainedBackbone):
    """A timm ViT of any even-grid geometry (0 = the named architecture's own value); the reference
    implementations of SVIP and its ViT baseline start from the original ImageNet-21k→1k ViT-B/16."""

    paper_weights: ClassVar[str] = "vit_base_patch16_224.orig_in21k_ft_in1k"

    backbone: str = "vit_base_patch16_224"
    img_size: int = 224
    patch_size: int = 0
    embed_dim: int = 0
    depth: int = 0
    num_heads: int = 0
    logit_scale: float = 5.0  # σ (SVIP.md §5); swept as `temperature`
    pool: Literal["mean", "max"] = "mean"

    def validate(self) -> None:
        super().validate()
        if self.patch_size and (self.img_size // self.patch_size) % 2:
            raise ConfigError(
                f"model.img_size/model.patch_size = {self.img_size}/{self.patch_size} gives an odd patch grid; "
                "super-patches need an even grid (e.g. img_size 64, patch_size 8)")
        if self.logit_scale <= 0:
            raise ConfigError(f"model.logit_scale (temperature σ) must be positive, got {self.logit_scale}")
        for name in ("patch_size", "embed_dim", "depth", "num_heads"):  # 0 = the architecture's own value
            if getattr(self, name) < 0:
                raise ConfigError(f"model.{name} must be 0 (the backbone's own value) or positive, "
                                  f"got {getattr(self, name)}")


#: The CPU-sized ViT used on the synthetic benchmark (input 64 px, patch 8 → 8×8 grid, 16 super-patches).
SYNTH_VIT: dict[str, Any] = {
    "model.backbone": "vit_tiny_patch16_224",
    "model.img_size": 64,
    "model.patch_size": 8,
    "model.embed_dim": 96,
    "model.depth": 4,
    "model.num_heads": 3,
}

#: The schedule of SVIP's paper per dataset (SVIP.md §7: warm-up epochs 0..3 → 4 warm-up epochs), which its
#: ViT baseline shares (BASELINES.md §1: identical data, schedule and evaluation); synth: a CPU-sized one.
VIT_SCHEDULES: dict[str, dict[str, Any]] = {
    "CUB": {"train.epochs": 30, "train.warmup_epochs": 4, "train.warmup_lr": 5e-5, "train.lr": 3e-5,
            "train.betas": (0.5, 0.999)},
    "AWA2": {"train.epochs": 30, "train.warmup_epochs": 6, "train.warmup_lr": 1e-6, "train.lr": 3e-6,
             "train.betas": (0.8, 0.999)},
    "SUN": {"train.epochs": 50, "train.warmup_epochs": 4, "train.warmup_lr": 1e-4, "train.lr": 1e-5,
            "train.betas": (0.5, 0.999)},
    "synth": {**SYNTH_VIT, "train.epochs": 12, "train.warmup_epochs": 1, "train.warmup_lr": 1e-3,
              "train.lr": 5e-4, "train.lr_decay_every": 4, "train.betas": (0.9, 0.999), "train.batch_size": 64},
}

#: SVIP's reference training loop (SVIP.md §7), which its ViT baseline shares: Adam re-created at every epoch
#: after warm-up, backbone gradients built up (never zeroed) during warm-up, an unshuffled loader, anomaly
#: detection on.
VIT_REFERENCE_LOOP = ReferenceLoop(recreate_optimizer="full", warmup_gradient_buildup=True, shuffle=False,
                                   anomaly_detection=True)

#: ``--preset`` patches of every ViT model (the model adds its own keys, e.g. SVIP's K).
VIT_PRESET_PATCHES: dict[str, dict[str, Any]] = {
    "paper": {"model.backbone": "vit_base_patch16_224", "model.img_size": 224, "model.patch_size": 0,
              "model.embed_dim": 0, "model.depth": 0, "model.num_heads": 0},
    "quick": {**SYNTH_VIT, "model.img_size": 64, "model.pretrained": "none"},
    "tiny": {**SYNTH_VIT, "model.img_size": 32, "model.patch_size": 8, "model.embed_dim": 32,
             "model.depth": 2, "model.num_heads": 2, "train.warmup_lr": 1e-3, "train.lr": 1e-3,
             "model.pretrained": "none"},
}


@dataclass
class CNNBackbone(PretrainedBackbone):
    """A timm CNN (any timm model, its last feature map as regions); the reference implementations of
    TransZero and APN start from torchvision's ImageNet ResNet-101."""

    paper_weights: ClassVar[str] = "resnet101.tv_in1k"

    backbone: str = "resnet101"
    output_stride: int = 0  # 0 native; 8/16 dilate the last CNN stages (larger maps, more regions)


#: A CPU-sized CNN for the 64 px synthetic benchmark: a random-init resnet18 dilated to 4×4 maps of 512 channels
#: (this machine has no ImageNet weights: random frozen features are a weak stand-in, so synth numbers of the
#: CNN models test the pipeline rather than the method).
SYNTH_CNN: dict[str, Any] = {"model.backbone": "resnet18", "model.pretrained": "none", "model.img_size": 64,
                             "model.output_stride": 16}
#: The tiny preset's CNN: resnet10t at 32 px, 4×4 maps (seconds on a CPU).
TINY_CNN: dict[str, Any] = {"model.backbone": "resnet10t", "model.pretrained": "none", "model.img_size": 32,
                            "model.output_stride": 8}
