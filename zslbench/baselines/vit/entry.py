"""The ViT baseline (``vit``) in the catalogue: config section and presets (torch-free).

It shares SVIP's data, schedule and evaluation (BASELINES.md §1): its per-dataset presets are the
ViT schedules of SVIP's paper (and, on synth, the CPU-sized ViT), without SVIP's own model keys.

>>> from zslbench.config import resolve
>>> cfg = resolve(model="vit", dataset="CUB")
>>> cfg.train.epochs, cfg.train.lr, cfg.model.head
(30, 3e-05, 'patches')
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from zslbench.backbones.config import VIT_PRESET_PATCHES, VIT_REFERENCE_LOOP, VIT_SCHEDULES, ViTBackbone
from zslbench.catalogue import ModelEntry, register_model


@dataclass
class ViTConfig(ViTBackbone):
    name: str = "vit"
    head: Literal["patches", "cls"] = "patches"


def load_model() -> type:
    """The model class (imports torch and timm): the catalogue's lazy entry point."""
    from zslbench.baselines.vit.model import ViTBaseline

    return ViTBaseline


register_model(ModelEntry(
    name="vit",
    config=ViTConfig,
    load=load_model,
    display_name="ViT",
    help="ViT + attribute head: SVIP's baseline (one pass, no selection or contextualisation)",
    presets=VIT_SCHEDULES,
    preset_patches=VIT_PRESET_PATCHES,
    table_rank=10,
    reference_loop=VIT_REFERENCE_LOOP,  # SVIP's code trains its baseline row
    paper_mode="svip",
))
