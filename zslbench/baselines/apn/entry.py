"""The APN-style baseline (``apn``; BASELINES.md §3) in the catalogue: config section and presets.

Torch-free; the model is :class:`zslbench.baselines.apn.model.APN`.

>>> from zslbench.config import resolve
>>> resolve(model="apn", dataset="AWA2").model.pool
'avg'
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

from zslbench.backbones.config import SYNTH_CNN, TINY_CNN, CNNBackbone
from zslbench.catalogue import ModelEntry, register_model


# --------------------------------------------------------------------------- config section
@dataclass
class APNConfig(CNNBackbone):
    """APN-style: a fine-tuned timm ResNet with a global attribute branch (predicts) and an
    attribute-prototype branch (training losses only). Loss weights keep the reference's names.
    """

    name: str = "apn"
    # backbone: a timm ResNet (stem and layer1 frozen); output_stride 0 = native (7×7 at 224), 8/16 larger maps
    img_size: int = 224
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
#: A CPU-sized APN on the 64 px synthetic benchmark (a random-init resnet18, 4×4 maps), higher learning rates.
_APN["synth"] = {**_APN["CUB"], **SYNTH_CNN, **_apn_train(2, 1e-3, 3e-4), "train.epochs": 12}

def load_model() -> type:
    """The model class (imports torch and timm): the catalogue's lazy entry point."""
    from zslbench.baselines.apn.model import APN

    return APN


register_model(ModelEntry(
    name="apn",
    config=APNConfig,
    load=load_model,
    display_name="APN",
    help="APN-style: fine-tuned ResNet, global attribute branch + attribute prototypes with decorrelation and "
         "compactness (NeurIPS 2020)",
    presets=_APN,
    preset_patches={
        "paper": {"model.backbone": "resnet101", "model.img_size": 224, "model.output_stride": 0},
        "quick": {**SYNTH_CNN},
        "tiny": {**TINY_CNN, "train.warmup_epochs": 1, "train.warmup_lr": 1e-3, "train.lr": 1e-3},
    },
    image_recipe="resize_crop",  # BASELINES.md §3: Resize(256) → CenterCrop(224), training and test alike
    table_rank=20,
))
