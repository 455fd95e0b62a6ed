"""Named ablations: each one a documented config patch, registered in the catalogue by the model it
ablates (SVIP's rows and variants in :mod:`zslbench.svip.entry`; ``reference_quirks`` for every model).

This package composes them for ``--ablate`` and runs the paper's ablation grid (:mod:`.grid`):

    >>> from zslbench.ablations import ABLATIONS, patches_for
    >>> "no_replacement" in ABLATIONS.names()
    True
    >>> patches_for(["no_js"], model="svip")
    [('no_js', {'model.consistency': 'none'})]

Ablations compose (``--ablate a --ablate b``, applied in order; :func:`zslbench.catalogue.ablation_patches`);
two that set the same key to different values, or an exclusive one (``baseline``) combined with another, are a
user error. This module imports neither torch nor mlflow.
"""

from __future__ import annotations

from zslbench.catalogue import ABLATIONS, ALL_MODELS, paper_ablations
from zslbench.catalogue import ablation_patches as patches_for  # noqa: F401  (the public name here)


def paper_rows(model: str) -> list[str]:
    """The rows of ``model``'s paper ablation table, in order (empty for a model without one)."""
    return [a.name for a in paper_ablations(model)]


def describe() -> list[tuple[str, str, str]]:
    """(name, models, one-line help) for ``zslbench ablations``."""
    rows = []
    for ablation in sorted(ABLATIONS.registered(), key=lambda a: a.name):
        models = "all" if ALL_MODELS in ablation.models else ",".join(ablation.models)
        rows.append((ablation.name, models + (" [paper]" if ablation.paper_row is not None else ""), ablation.help))
    return rows
