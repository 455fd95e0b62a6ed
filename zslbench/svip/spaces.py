"""The search spaces of SVIP's sensitivity study (SVIP.md §5, §6, §9), registered in the catalogue.

Each space is one function of the resolved config (torch-free). Grids are what a paper-style sensitivity
figure shows and always contain the paper's best value (K = 40 of 49 super-patches for CUB,
λ1 = 1, λ2 per dataset, σ = 5); ranges are what TPE searches.

    >>> from zslbench.catalogue import params_for
    >>> from zslbench.config import resolve
    >>> params_for(["patch_number"], resolve(preset="tiny"))[0].grid   # a 4×4 grid → P = 4 super-patches
    (1, 2, 3, 4)
"""

from __future__ import annotations

import re

from zslbench.backbones.config import ViTBackbone
from zslbench.catalogue import SPACES, Param, register_space
from zslbench.config import Config
from zslbench.core.errors import UserError
from zslbench.svip.entry import SVIPConfig

#: The paper's patch numbers of 49 super-patches (ViT-B/16 at 224 px); scaled to other geometries.
PAPER_PATCH_NUMBERS = (10, 20, 30, 40, 45, 49)
PAPER_SUPER_PATCHES = 49
#: Best K of 49 per dataset (SVIP.md §7); the synthetic benchmark follows CUB.
PAPER_BEST_KEEP = {"CUB": 40, "AWA2": 45, "SUN": 45, "synth": 40}
#: Best λ2 per dataset (SVIP.md §6).
PAPER_BEST_PATCH_CLS = {"CUB": 3.0, "AWA2": 4.0, "SUN": 3.0, "synth": 3.0}


def super_patches(cfg: Config) -> int:
    """P = (G/2)² for the resolved ViT geometry (patch size 0 = the one in the backbone's name).

    >>> from zslbench.config import resolve
    >>> super_patches(resolve(dataset="CUB")), super_patches(resolve())
    (49, 16)
    """
    model = cfg.model
    if not isinstance(model, ViTBackbone):
        raise UserError(f"model {model.name!r} has no ViT patch grid to sweep; use --model svip")
    patch = model.patch_size
    if not patch:
        found = re.search(r"patch(\d+)", model.backbone)
        if not found:
            raise UserError(f"cannot tell the patch size of backbone {model.backbone!r}; set model.patch_size")
        patch = int(found.group(1))
    grid = model.img_size // patch
    return max(1, (grid // 2) ** 2)


def _scaled_keep(k_of_49: int, total: int) -> int:
    return min(total, max(1, round(k_of_49 * total / PAPER_SUPER_PATCHES)))


def _require_svip(cfg: Config, space: str) -> SVIPConfig:
    if not isinstance(cfg.model, SVIPConfig):
        raise UserError(f"search space {space!r} sweeps an SVIP hyperparameter; model {cfg.model.name!r} has none "
                        "(use --model svip, or sweep temperature)")
    return cfg.model


@register_space("patch_number", "K, the number of kept super-patches (model.keep), integer 1..P",
                key="model.keep", label="patch number K")
def patch_number(cfg: Config) -> list[Param]:
    _require_svip(cfg, "patch_number")
    total = super_patches(cfg)
    grid = tuple(sorted({_scaled_keep(k, total) for k in PAPER_PATCH_NUMBERS}))
    best = _scaled_keep(PAPER_BEST_KEEP.get(cfg.data.dataset, 40), total)
    return [Param("patch_number", "model.keep", 1, total, integer=True, grid=grid, paper_best=best,
                  help=f"kept super-patches K of P={total}")]


@register_space("js_weight", "λ1, the weight of the consistency (\"JS\") loss (model.js_weight), log scale",
                key="model.js_weight", label="λ1 (consistency weight)")
def js_weight(cfg: Config) -> list[Param]:
    _require_svip(cfg, "js_weight")
    return [Param("js_weight", "model.js_weight", 0.01, 10.0, log=True, grid=(0.1, 0.5, 1.0, 2.0, 5.0),
                  paper_best=1.0, help="λ1")]


@register_space("patch_cls_weight", "λ2, the weight of the patch-classifier loss (model.patch_cls_weight), log scale",
                key="model.patch_cls_weight", label="λ2 (PatchCls weight)")
def patch_cls_weight(cfg: Config) -> list[Param]:
    _require_svip(cfg, "patch_cls_weight")
    return [Param("patch_cls_weight", "model.patch_cls_weight", 0.1, 10.0, log=True,
                  grid=(0.5, 1.0, 2.0, 3.0, 4.0, 5.0), paper_best=PAPER_BEST_PATCH_CLS.get(cfg.data.dataset, 3.0),
                  help="λ2")]


@register_space("temperature", "σ, the logit scale of the class scores (model.logit_scale, SVIP.md §5), log scale",
                key="model.logit_scale", label="temperature σ")
def temperature(cfg: Config) -> list[Param]:
    if not isinstance(cfg.model, ViTBackbone):
        raise UserError(f"model {cfg.model.name!r} has no logit scale to sweep; use --model svip or vit")
    return [Param("temperature", "model.logit_scale", 0.5, 50.0, log=True, grid=(1.0, 2.0, 5.0, 10.0, 20.0),
                  paper_best=5.0, help="σ")]


@register_space("all", "the union of patch_number, js_weight, patch_cls_weight and temperature")
def all_spaces(cfg: Config) -> list[Param]:
    return [p for name in ("patch_number", "js_weight", "patch_cls_weight", "temperature")
            for p in SPACES.get(name).params(cfg)]
