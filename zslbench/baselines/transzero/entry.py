"""The TransZero-style baseline (``transzero``; BASELINES.md §2) in the catalogue: config section and presets.

Torch-free; the model is :class:`zslbench.baselines.transzero.model.TransZero`. Each dataset's preset is the
reference's GZSL configuration (``wandb_config/<ds>_gzsl.yaml``, the one its training scripts load: U/S/H);
``--preset paper-zsl`` patches in its CZSL configuration (``<ds>_czsl.yaml``: its published T1 on AWA2 and SUN).

>>> from zslbench.config import resolve
>>> cfg = resolve(model="transzero", dataset="SUN")
>>> cfg.model.d_model, cfg.model.attribute_self_attention, cfg.train.optimizer, cfg.train.epochs
(128, False, 'sgd', 400)
>>> czsl = resolve(model="transzero", dataset="AWA2", preset="paper-zsl").model
>>> czsl.d_model, czsl.self_calibration_weight, czsl.attribute_regression_weight, czsl.dropout
(512, 1.2, 5e-05, 0.3)
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

from zslbench.backbones.config import SYNTH_CNN, TINY_CNN, CNNBackbone
from zslbench.catalogue import ModelEntry, register_model
from zslbench.core.errors import ConfigError


# --------------------------------------------------------------------------- config section
@dataclass
class TransZeroConfig(CNNBackbone):
    """TransZero-style: a frozen backbone's cached region features, a geometry-aware encoder and an
    attribute-query decoder. Region features are extracted once into a float16 cache
    (:mod:`zslbench.data.feature_cache`), keyed by every field marked *extractor* below.
    """

    name: str = "transzero"
    # extractor: backbone (any timm CNN: last map; or ViT: patch tokens), pretrained (none: random init from
    # backbone_seed), output_stride — inherited from CNNBackbone
    backbone_seed: int = 0  # extractor: seed of a random-init backbone (not the run seed: caches are shared)
    img_size: int = 448  # extractor: Resize(s) → CenterCrop(s)
    extract_batch_size: int = 64  # images per extraction step (does not change the features)
    d_model: int = 300  # d: common width of regions and attribute queries
    d_ff: int = 512  # FFN width of encoder and decoder
    dropout: float = 0.4
    heads: int = 1  # attention heads of encoder and decoder (the paper: 1)
    geometry: bool = True  # the relative-geometry term in the encoder's attention logits
    geometry_offsets: Literal["reference", "cells"] = "reference"  # offsets in units of G + 1 cells, or of cells
    double_residual: bool = True  # the reference applies the encoder attention's residual + LayerNorm twice
    encoder_attention_dropout: float = 0.1  # dropout of the encoder's attention weights (reference: 0.1 always)
    attention_init: Literal["xavier", "default"] = "xavier"  # encoder q/k/v/o: xavier + zero bias (reference)
    attribute_self_attention: bool = True  # decoder self-attention among attribute queries (SUN: off)
    margin: bool = True  # the fixed self-calibration margin m_k (+size unseen, −size seen), kept at test time
    margin_size: float = 1.0
    self_calibration_weight: float = 0.3  # λ_SC
    attribute_regression_weight: float = 0.005  # λ_AR
    normalize_word_vectors: bool = False  # re-normalise the trainable word vectors V every forward (AWA2)
    w1_init_std: float = 1.0  # W₁ [d_w, d] ~ N(0, std²)

    def validate(self) -> None:
        super().validate()
        for name in ("dropout", "encoder_attention_dropout"):
            if not 0.0 <= getattr(self, name) < 1.0:
                raise ConfigError(f"model.{name} must lie in [0, 1), got {getattr(self, name)}")


# --------------------------------------------------------------------------- per-dataset presets
def _transzero_train(optimizer: str, lr: float, epochs: int, batch: int, sampling: str,
                     momentum: float = 0.0) -> dict[str, Any]:
    # no warm-up (every parameter trains from the first step), no decay, no clipping, as the reference; its
    # training loop is zslbench's clean one (one optimizer for the run, every gradient zeroed each step)
    return {"train.optimizer": optimizer, "train.lr": lr, "train.weight_decay": 1e-4, "train.momentum": momentum,
            "train.betas": (0.9, 0.999), "train.epochs": epochs, "train.batch_size": batch,
            "train.sampling": sampling, "train.warmup_epochs": 0, "train.lr_decay": 1.0,
            "train.grad_clip": 0.0, "train.drop_last": True}


# The GZSL configurations (seeds: each configuration's random_seed).
_TRANSZERO: dict[str, dict[str, Any]] = {
    # next_batch without balancing: each iteration a fresh random batch of 50 distinct images
    "CUB": {"model.d_model": 300, "model.d_ff": 512, "model.dropout": 0.4, "model.self_calibration_weight": 0.3,
            "model.attribute_regression_weight": 0.005, "model.attribute_self_attention": True,
            "model.normalize_word_vectors": False, **_transzero_train("adam", 1e-4, 200, 50, "random"),
            "train.seed": 5},
    # class-balanced batches: min(C_seen, 50) classes × max(50 // C_seen, 1) images = 40 images for AWA2's 40 classes
    "AWA2": {"model.d_model": 300, "model.d_ff": 512, "model.dropout": 0.5, "model.self_calibration_weight": 2.0,
             "model.attribute_regression_weight": 5e-4, "model.attribute_self_attention": True,
             "model.normalize_word_vectors": True, **_transzero_train("sgd", 1e-4, 200, 50, "balanced"),
             "train.seed": 17},
    "SUN": {"model.d_model": 128, "model.d_ff": 2048, "model.dropout": 0.3, "model.self_calibration_weight": 0.25,
            "model.attribute_regression_weight": 1e-3, "model.attribute_self_attention": False,
            "model.normalize_word_vectors": False,
            **_transzero_train("sgd", 1e-4, 400, 50, "balanced", momentum=0.9), "train.seed": 6},
}
#: The CZSL configurations where they differ (``--preset paper-zsl``); CUB's is its GZSL configuration.
_TRANSZERO_ZSL: dict[str, dict[str, Any]] = {
    "AWA2": {"model.d_model": 512, "model.self_calibration_weight": 1.2, "model.attribute_regression_weight": 5e-5,
             "model.dropout": 0.3, "train.seed": 9093},
    "SUN": {"model.attribute_regression_weight": 0.005},
}

#: A CPU-sized TransZero on the 64 px synthetic benchmark (its extractor: SYNTH_CNN).
_TRANSZERO["synth"] = {**SYNTH_CNN, "model.d_model": 64, "model.d_ff": 128, "model.dropout": 0.1,
                       "model.self_calibration_weight": 0.3, "model.attribute_regression_weight": 0.005,
                       **_transzero_train("adam", 1e-3, 30, 32, "shuffle")}

def load_model() -> type:
    """The model class (imports torch and timm): the catalogue's lazy entry point."""
    from zslbench.baselines.transzero.model import TransZero

    return TransZero


register_model(ModelEntry(
    name="transzero",
    config=TransZeroConfig,
    load=load_model,
    display_name="TransZero",
    help="TransZero-style: cached frozen-backbone regions, geometry-aware encoder, attribute-query decoder, "
         "self-calibration margin (AAAI 2022)",
    presets=_TRANSZERO,
    preset_patches={
        "paper": {"model.backbone": "resnet101", "model.img_size": 448, "model.output_stride": 0},
        "quick": {**SYNTH_CNN, "model.d_model": 64, "model.d_ff": 128, "train.warmup_epochs": 0},
        "tiny": {**TINY_CNN, "model.d_model": 32, "model.d_ff": 64, "model.dropout": 0.1,
                 "train.warmup_epochs": 0, "train.lr": 1e-3, "train.optimizer": "adam",
                 "train.sampling": "shuffle"},
    },
    input_kind="features",
    table_rank=30,
    zsl_presets=_TRANSZERO_ZSL,
    paper_mode="transzero",
))
