"""Named ablations: each one a documented config patch (SVIP.md §9 and the variant switches).

An ablation is one decorated function returning its patch, so adding one is one function:

    >>> from zslbench.ablations import ABLATIONS, patches_for
    >>> "no_replacement" in ABLATIONS.names()
    True
    >>> patches_for(["no_js"], model="svip")
    [('no_js', {'model.consistency': 'none'})]

Ablations compose (``--ablate a --ablate b``, applied in order); two that set the same key to
different values, or an exclusive one (``baseline``) combined with another, are a user error.
This package imports neither torch nor mlflow.
"""

from __future__ import annotations

from typing import Any, Callable, Sequence

from zslbench.core.errors import UserError
from zslbench.core.registry import Registry

Patch = dict[str, Any]
ABLATIONS: Registry[Callable[[], Patch]] = Registry("ablation")

#: The paper's ablation table rows (SVIP.md §9), in order; "full" is the unablated model.
PAPER_ABLATION_SET = ("baseline", "no_patch_selection", "no_replacement", "no_js", "no_word_init")


def register_ablation(name: str, help: str, models: Sequence[str] = ("svip",), paper: bool = False,
                      exclusive: bool = False):
    """Register ``fn() -> patch`` as ablation ``name`` applicable to ``models``."""
    return ABLATIONS.register(name, help=help, models=tuple(models), paper=paper, exclusive=exclusive)


# ------------------------------------------------------------------ the paper's ablation rows
@register_ablation("baseline", "ViT + attribute head: no SSPS, no PSC, no consistency (the paper's baseline row)",
                   paper=True, exclusive=True)
def _baseline() -> Patch:
    return {"model.name": "vit"}


@register_ablation("no_patch_selection", "w/o SSPS: no patch classifier or its loss; K uniformly random "
                   "super-patches are kept (the rest contextualised) at training and test", paper=True)
def _no_patch_selection() -> Patch:
    return {"model.patch_selection": False}


@register_ablation("no_replacement", "w/o PSC: non-kept super-patches are dropped from the token sequence "
                   "instead of contextualised", paper=True)
def _no_replacement() -> Patch:
    return {"model.contextualize": "drop"}


@register_ablation("no_js", "w/o JSD: no consistency loss between the source and contextualised passes", paper=True)
def _no_js() -> Patch:
    return {"model.consistency": "none"}


@register_ablation("no_word_init", "w/o W2P: the contextualising vector is a free random-init parameter, "
                   "not built from attribute word vectors", paper=True)
def _no_word_init() -> Patch:
    return {"model.word_init": False}


# ------------------------------------------------------------------ variants (paper text vs reference code)
@register_ablation("paper_rollout", "rollout as the paper's text: heads summed, W^l = W^(l-1) + W^(l-1)·T^l")
def _paper_rollout() -> Patch:
    return {"model.rollout": "paper"}


@register_ablation("block_grouping", "group patch scores by true 2x2 blocks (the reference averages 1x4 strips)")
def _block_grouping() -> Patch:
    return {"model.score_grouping": "block"}


@register_ablation("soft_targets", "patch-classifier targets are the normalised rollout scores, not hard 0/1 labels")
def _soft_targets() -> Patch:
    return {"model.patch_targets": "soft"}


@register_ablation("max_pool", "max-pool attribute scores over super-patches (the paper's text; reference: mean)",
                   models=("svip", "vit"))
def _max_pool() -> Patch:
    return {"model.pool": "max"}


@register_ablation("jsd", "true Jensen-Shannon consistency instead of the reference's scaled KL")
def _jsd() -> Patch:
    return {"model.consistency": "jsd"}


@register_ablation("replace", "non-kept super-patches are replaced by the semantic vector (abstract) "
                   "instead of having it added (reference)")
def _replace() -> Patch:
    return {"model.contextualize": "replace"}


@register_ablation("topk_inference", "pool only the top-K super-patches at inference (reference: all)")
def _topk_inference() -> Patch:
    return {"model.inference_pool": "topk"}


@register_ablation("reference_quirks", "train with every quirk of the reference implementation "
                   "(Adam re-created each epoch, warm-up gradient accumulation, no shuffle, anomaly detection)",
                   models=("svip", "vit", "transzero", "apn"))
def _reference_quirks() -> Patch:
    return {"train.quirks": "reference"}


# ------------------------------------------------------------------ composition
def patches_for(names: Sequence[str], model: str) -> list[tuple[str, Patch]]:
    """Validate ``names`` for ``model`` and return their ``(name, patch)`` pairs in order."""
    entries = [ABLATIONS.entry(n) for n in names]
    for entry in entries:
        if model not in entry.meta["models"]:
            raise UserError(f"ablation {entry.name!r} applies to model(s) {', '.join(entry.meta['models'])}, "
                            f"not {model!r}; drop it or pick --model {entry.meta['models'][0]}")
    exclusive = [e.name for e in entries if e.meta["exclusive"]]
    if exclusive and len(set(names)) > 1:
        raise UserError(f"ablation {exclusive[0]!r} replaces the model and cannot be combined with "
                        f"{', '.join(n for n in names if n != exclusive[0])}; run it on its own")
    pairs = [(e.name, e.obj()) for e in entries]
    _check_conflicts(pairs)
    return pairs


def _check_conflicts(pairs: list[tuple[str, Patch]]) -> None:
    seen: dict[str, tuple[str, Any]] = {}
    for name, patch in pairs:
        for key, value in patch.items():
            if key in seen and seen[key][1] != value:
                other = seen[key][0]
                raise UserError(f"ablations {other!r} and {name!r} conflict: both set {key} "
                                f"({seen[key][1]!r} vs {value!r}); choose one")
            seen[key] = (name, value)


def describe() -> list[tuple[str, str, str]]:
    """(name, models, one-line help) for ``zslbench ablations``."""
    return [(e.name, ",".join(e.meta["models"]) + (" [paper]" if e.meta["paper"] else ""), e.help)
            for e in ABLATIONS.entries()]
