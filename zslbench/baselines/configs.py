"""Config sections and presets of the TransZero-style and APN-style baselines (BASELINES.md §2, §3).

Importing this module (``zslbench.config`` does so on first use) registers the two config
dataclasses and adds their per-dataset presets to :data:`zslbench.config.MODEL_PRESETS` and their
``--preset`` patches to :data:`zslbench.config.PRESET_PATCHES`. It imports neither torch nor timm.

Example:
    >>> from zslbench.config import resolve
    >>> cfg = resolve(model="transzero", dataset="SUN")
    >>> cfg.model.d_model, cfg.model.attribute_self_attention, cfg.train.optimizer, cfg.train.epochs
    (128, False, 'sgd', 400)
    >>> resolve(model="apn", dataset="AWA2").model.pool
    'avg'
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

from zslbench.config import MODEL_PRESETS, PRESET_PATCHES, ModelConfig, register_model_config


# --------------------------------------------------------------------------- config sections
@register_model_config("transzero")
@dataclass
class TransZeroConfig(ModelConfig):
    """TransZero-style: a frozen backbone's cached region features, a geometry-aware encoder and an
    attribute-query decoder. Region features are extracted once into a float16 cache
    (:mod:`zslbench.data.feature_cache`), keyed by every field marked *extractor* below.
    """

    name: str = "transzero"
    backbone: str = "resnet101"  # extractor: any timm CNN (last map) or ViT (patch tokens)
    pretrained: str = ""  # extractor: "" random init (from backbone_seed) | weights file | "hub"
    backbone_seed: int = 0  # extractor: seed of a random-init backbone (not the run seed: caches are shared)
    img_size: int = 448  # extractor: Resize(s) → CenterCrop(s)
    output_stride: int = 0  # extractor: 0 native; 8/16 dilate the last CNN stages (more regions)
    extract_batch_size: int = 64  # images per extraction step (does not change the features)
    d_model: int = 300  # d: common width of regions and attribute queries
    d_ff: int = 512  # FFN width of encoder and decoder
    dropout: float = 0.4
    heads: int = 1  # attention heads of encoder and decoder (the paper: 1)
    geometry: bool = True  # the relative-geometry term in the encoder's attention logits
    attribute_self_attention: bool = True  # decoder self-attention among attribute queries (SUN: off)
    margin: bool = True  # the fixed self-calibration margin m_k (+size unseen, −size seen), kept at test time
    margin_size: float = 1.0
    self_calibration_weight: float = 0.3  # λ_SC
    attribute_regression_weight: float = 0.005  # λ_AR
    normalize_word_vectors: bool = False  # re-normalise the trainable word vectors V every forward (AWA2)
    w1_init_std: float = 1.0  # W₁ [d_w, d] ~ N(0, std²)


@register_model_config("apn")
@dataclass
class APNConfig(ModelConfig):
    """APN-style: a fine-tuned timm ResNet with a global attribute branch (predicts) and an
    attribute-prototype branch (training losses only). Loss weights keep the reference's names.
    """

    name: str = "apn"
    backbone: str = "resnet101"  # a timm ResNet (stem and layer1 frozen)
    pretrained: str = ""  # "" random init | weights file | "hub"
    img_size: int = 224
    output_stride: int = 0  # 0 native (7×7 at 224); 8/16 give larger maps
    pool: Literal["max", "avg"] = "max"  # pooling of the global branch's maps (CUB max; AWA2, SUN avg)
    use_groups: bool = True  # group-wise decorrelation over attribute groups (else a Frobenius norm)
    xe: float = 1.0  # CE of the global branch
    attri: float = 1e-2  # MSE(f, a_y) of the global branch
    l_xe: float = 1.0  # CE of the local (prototype) branch
    l_attri: float = 1e-1  # MSE of the local branch's attribute scores
    regular: float = 5e-6  # decorrelation of the global 1×1 conv's attribute rows
    l_regular: float = 4e-2  # decorrelation of the prototypes
    cpt: float = 1e-9  # compactness of the similarity maps
    double_softmax: bool = False  # True: the reference's CE on already-softmaxed class scores



# --------------------------------------------------------------------------- per-dataset presets
def _transzero_train(optimizer: str, lr: float, epochs: int, batch: int, momentum: float = 0.0,
                     balanced: bool = False) -> dict[str, Any]:
    # no warm-up (every parameter trains from the first step), no decay, no clipping, as the reference
    return {"train.optimizer": optimizer, "train.lr": lr, "train.weight_decay": 1e-4, "train.momentum": momentum,
            "train.betas": (0.9, 0.999), "train.epochs": epochs, "train.batch_size": batch,
            "train.balanced_batches": balanced, "train.warmup_epochs": 0, "train.lr_decay": 1.0,
            "train.grad_clip": 0.0, "train.drop_last": True}


_TRANSZERO: dict[str, dict[str, Any]] = {
    "CUB": {"model.d_model": 300, "model.d_ff": 512, "model.dropout": 0.4, "model.self_calibration_weight": 0.3,
            "model.attribute_regression_weight": 0.005, "model.attribute_self_attention": True,
            "model.normalize_word_vectors": False, **_transzero_train("adam", 1e-4, 200, 50)},
    # class-balanced batches: min(C_seen, 50) classes × max(50 // C_seen, 1) images = 40 images for AWA2's 40 classes
    "AWA2": {"model.d_model": 300, "model.d_ff": 512, "model.dropout": 0.5, "model.self_calibration_weight": 2.0,
             "model.attribute_regression_weight": 5e-4, "model.attribute_self_attention": True,
             "model.normalize_word_vectors": True, **_transzero_train("sgd", 1e-4, 200, 50, balanced=True)},
    "SUN": {"model.d_model": 128, "model.d_ff": 2048, "model.dropout": 0.3, "model.self_calibration_weight": 0.25,
            "model.attribute_regression_weight": 1e-3, "model.attribute_self_attention": False,
            "model.normalize_word_vectors": False,
            **_transzero_train("sgd", 1e-4, 400, 50, momentum=0.9, balanced=True)},
}

#: A CPU-sized TransZero on the 64 px synthetic benchmark. The frozen extractor is a randomly initialised
#: resnet18 (this machine has no ImageNet weights): random frozen features are a weak stand-in for
#: ImageNet features, so synth numbers test the pipeline rather than the method.
TRANSZERO_SYNTH_EXTRACTOR = {"model.backbone": "resnet18", "model.pretrained": "", "model.img_size": 64,
                             "model.output_stride": 16}  # 4×4 = 16 regions of 512 channels
_TRANSZERO["synth"] = {**TRANSZERO_SYNTH_EXTRACTOR, "model.d_model": 64, "model.d_ff": 128, "model.dropout": 0.1,
                       "model.self_calibration_weight": 0.3, "model.attribute_regression_weight": 0.005,
                       **_transzero_train("adam", 1e-3, 30, 32)}


def _apn_train(warmup_epochs: int, warmup_lr: float, lr: float) -> dict[str, Any]:
    # warm-up trains prototypes + global conv; then everything (but stem/layer1) at lr × 0.8^(epoch // 10)
    return {"train.optimizer": "adam", "train.epochs": 30, "train.warmup_epochs": warmup_epochs,
            "train.warmup_lr": warmup_lr, "train.lr": lr, "train.lr_decay": 0.8, "train.lr_decay_every": 10,
            "train.betas": (0.5, 0.999), "train.weight_decay": 0.0, "train.batch_size": 64, "train.grad_clip": 0.0,
            "train.drop_last": False, "train.balanced_batches": False}


# Warm-up: the reference trains heads only for epochs 0..pretrain_epoch (ZSL scripts: 4, 2, 4).
_APN: dict[str, dict[str, Any]] = {
    "CUB": {"model.xe": 1.0, "model.attri": 1e-2, "model.l_xe": 1.0, "model.l_attri": 1e-1, "model.regular": 5e-6,
            "model.l_regular": 4e-2, "model.cpt": 1e-9, "model.pool": "max", "model.use_groups": True,
            **_apn_train(5, 1e-4, 1e-6)},
    # the reference applies compactness only with groups, so AWA2 (no groups) has none
    "AWA2": {"model.xe": 1.0, "model.attri": 1e-4, "model.l_xe": 0.0, "model.l_attri": 1e-2, "model.regular": 5e-4,
             "model.l_regular": 5e-7, "model.cpt": 0.0, "model.pool": "avg", "model.use_groups": False,
             **_apn_train(3, 1e-4, 1e-7)},
    "SUN": {"model.xe": 1.0, "model.attri": 1e-4, "model.l_xe": 1.0, "model.l_attri": 5e-2, "model.regular": 1e-3,
            "model.l_regular": 5e-3, "model.cpt": 2e-7, "model.pool": "avg", "model.use_groups": True,
            **_apn_train(5, 1e-3, 1e-6)},
}
#: A CPU-sized APN on the 64 px synthetic benchmark: a random-init resnet18 (4×4 maps), higher learning rates.
APN_SYNTH_BACKBONE = {"model.backbone": "resnet18", "model.pretrained": "", "model.img_size": 64,
                      "model.output_stride": 16}
_APN["synth"] = {**_APN["CUB"], **APN_SYNTH_BACKBONE, **_apn_train(2, 1e-3, 3e-4), "train.epochs": 12}

for _dataset, _patch in _TRANSZERO.items():
    MODEL_PRESETS[("transzero", _dataset)] = dict(_patch)
for _dataset, _patch in _APN.items():
    MODEL_PRESETS[("apn", _dataset)] = dict(_patch)

# --------------------------------------------------------------------------- --preset patches
#: tiny: ``zslbench run --model transzero|apn --preset tiny`` in seconds on a CPU (resnet10t at 32 px, 4×4 maps).
_TINY_BACKBONE = {"model.backbone": "resnet10t", "model.pretrained": "", "model.img_size": 32, "model.output_stride": 8}
PRESET_PATCHES["tiny"]["transzero"] = {**_TINY_BACKBONE, "model.d_model": 32, "model.d_ff": 64, "model.dropout": 0.1,
                                       "train.warmup_epochs": 0, "train.lr": 1e-3, "train.optimizer": "adam",
                                       "train.balanced_batches": False}
PRESET_PATCHES["tiny"]["apn"] = {**_TINY_BACKBONE, "train.warmup_epochs": 1, "train.warmup_lr": 1e-3,
                                 "train.lr": 1e-3}
PRESET_PATCHES["quick"]["transzero"] = {**TRANSZERO_SYNTH_EXTRACTOR, "model.d_model": 64, "model.d_ff": 128,
                                        "train.warmup_epochs": 0}
PRESET_PATCHES["quick"]["apn"] = {**APN_SYNTH_BACKBONE}
PRESET_PATCHES["paper"]["transzero"] = {"model.backbone": "resnet101", "model.img_size": 448, "model.output_stride": 0}
PRESET_PATCHES["paper"]["apn"] = {"model.backbone": "resnet101", "model.img_size": 224, "model.output_stride": 0}
