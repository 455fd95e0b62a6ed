"""The APN-style baseline (``apn``; BASELINES.md §3) in the catalogue: config section, presets, reference loop.

Torch-free; the model is :class:`zslbench.baselines.apn.model.APN`. Each dataset's preset is the reference's
GZSL script (``script/<DS>_GZSL.sh``: its U/S/H); ``--preset paper-zsl`` patches in what its ZSL script
(its T1) changes. docs/BASELINES.md lists both and every remaining difference.

>>> from zslbench.config import resolve
>>> resolve(model="apn", dataset="AWA2").model.pool
'avg'
>>> gzsl, zsl = resolve(model="apn", dataset="CUB"), resolve(model="apn", dataset="CUB", preset="paper-zsl")
>>> (gzsl.model.regular, gzsl.train.warmup_epochs, gzsl.train.sampling), (zsl.model.regular, zsl.train.warmup_epochs, zsl.train.sampling)
((5e-05, 6, 'shuffle'), (5e-06, 5, 'balanced'))
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

from zslbench.backbones.config import SYNTH_CNN, TINY_CNN, CNNBackbone
from zslbench.catalogue import ModelEntry, ReferenceLoop, register_model


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
    use_groups: bool = True  # decorrelation over attribute groups (the reference's --use_group; else ‖V‖_F)
    # reference: Σ_g ‖V_g‖_F over the reference's groups (CUB: 7 body parts, belly twice); l21: the paper's
    # group-wise L2,1 over the dataset's attribute groups (CUB: 28 attribute types)
    decorrelation: Literal["reference", "l21"] = "reference"
    xe: float = 1.0  # CE of the global branch
    attri: float = 1e-2  # MSE(f, a_y) of the global branch
    l_xe: float = 1.0  # CE of the local (prototype) branch
    l_attri: float = 1e-1  # MSE of the local branch's attribute scores
    regular: float = 5e-6  # decorrelation of the global 1×1 conv's attribute rows
    l_regular: float = 4e-2  # decorrelation of the prototypes
    cpt: float = 1e-9  # compactness of the similarity maps
    compactness_in_warmup: bool = False  # the reference adds compactness only after warm-up
    double_softmax: bool = True  # the reference's CE on already-softmaxed class scores (False: CE on logits)


# --------------------------------------------------------------------------- per-dataset presets
def _apn_train(warmup_epochs: int, warmup_lr: float, lr: float) -> dict[str, Any]:
    # warm-up trains prototypes + global conv; then everything (but stem/layer1) at lr × 0.8^(epoch // 10); the
    # reference's loop: a new Adam every epoch of both phases (train.quirks=reference, APN_REFERENCE_LOOP)
    return {"train.optimizer": "adam", "train.epochs": 30, "train.warmup_epochs": warmup_epochs,
            "train.warmup_lr": warmup_lr, "train.lr": lr, "train.lr_decay": 0.8, "train.lr_decay_every": 10,
            "train.betas": (0.5, 0.999), "train.weight_decay": 0.0, "train.batch_size": 64, "train.grad_clip": 0.0,
            "train.drop_last": False, "train.sampling": "shuffle", "train.quirks": "reference"}


#: APN's reference loop (main.py): a new Adam at every epoch, in warm-up (prototypes and the global conv only)
#: and after it; every gradient zeroed each step; a shuffled loader.
APN_REFERENCE_LOOP = ReferenceLoop(recreate_optimizer="every_epoch")

# The GZSL scripts. Warm-up: the reference trains heads only while epoch <= pretrain_epoch, i.e. for
# pretrain_epoch + 1 epochs (GZSL: 5, 2, 4 → 6, 3, 5). Seeds: each script's --manualSeed.
_APN: dict[str, dict[str, Any]] = {
    "CUB": {"model.xe": 1.0, "model.attri": 1e-2, "model.l_xe": 1.0, "model.l_attri": 1e-1, "model.regular": 5e-5,
            "model.l_regular": 4e-2, "model.cpt": 1e-9, "model.pool": "max", "model.use_groups": True,
            **_apn_train(6, 1e-4, 1e-6), "train.seed": 3131},
    # the reference passes --cpt 2e-9 but applies compactness only with --use_group, which AWA2's scripts lack
    "AWA2": {"model.xe": 1.0, "model.attri": 1e-4, "model.l_xe": 1.0, "model.l_attri": 1e-2, "model.regular": 5e-4,
             "model.l_regular": 5e-7, "model.cpt": 0.0, "model.pool": "avg", "model.use_groups": False,
             **_apn_train(3, 1e-4, 1e-7), "train.seed": 7048},
    "SUN": {"model.xe": 1.0, "model.attri": 1e-4, "model.l_xe": 1.0, "model.l_attri": 5e-2, "model.regular": 1e-3,
            "model.l_regular": 5e-3, "model.cpt": 2e-7, "model.pool": "avg", "model.use_groups": True,
            **_apn_train(5, 1e-3, 1e-6), "train.seed": 2347},
}
#: What each ZSL script changes (``--preset paper-zsl``): CUB's regular, warm-up (pretrain_epoch 4) and its
#: class-balanced episodes (--train_mode distributed: 300 batches of 8 classes × 3 images); AWA2's l_xe 0.
_APN_ZSL: dict[str, dict[str, Any]] = {
    "CUB": {"model.regular": 5e-6, "train.warmup_epochs": 5, "train.sampling": "balanced", "train.batch_size": 24,
            "train.ways": 8, "train.batches_per_epoch": 300, "train.seed": 4896},
    "AWA2": {"model.l_xe": 0.0, "train.seed": 8275},
    "SUN": {"train.seed": 6585},
}
#: A CPU-sized APN on the 64 px synthetic benchmark (a random-init resnet18, 4×4 maps), higher learning rates.
_APN["synth"] = {**_APN["CUB"], **SYNTH_CNN, **_apn_train(2, 1e-3, 3e-4), "train.epochs": 12, "train.seed": 0}

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
    reference_loop=APN_REFERENCE_LOOP,
    zsl_presets=_APN_ZSL,
    paper_mode="apn",
))
