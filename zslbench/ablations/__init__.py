"""Named ablations: each one a documented config patch, registered in the catalogue by the model it
ablates (SVIP's rows and variants in :mod:`zslbench.svip.entry`; ``reference_quirks`` for every model).

This package composes them for ``--ablate`` and runs the paper's ablation grid (:mod:`.grid`):

    >>> from zslbench.ablations import ABLATIONS, patches_for
    >>> "no_replacement" in ABLATIONS.names()
    True
    >>> patches_for(["no_js"], model="svip")
    [('no_js', {'model.consistency': 'none'})]

Ablations compose (``--ablate a --ablate b``, applied in order); two that set the same key to
different values, or an exclusive one (``baseline``) combined with another, are a user error.
This module imports neither torch nor mlflow.
"""

from __future__ import annotations

from typing import Any, Sequence

from zslbench.catalogue import ABLATIONS, ALL_MODELS, paper_ablations
from zslbench.core.errors import UserError

Patch = dict[str, Any]


def patches_for(names: Sequence[str], model: str) -> list[tuple[str, Patch]]:
    """Validate ``names`` for ``model`` and return their ``(name, patch)`` pairs in order."""
    ablations = [ABLATIONS.get(n) for n in names]
    for ablation in ablations:
        if not ablation.applies_to(model):
            raise UserError(f"ablation {ablation.name!r} applies to model(s) {', '.join(ablation.models)}, "
                            f"not {model!r}; drop it or pick --model {ablation.models[0]}")
    exclusive = [a.name for a in ablations if a.exclusive]
    if exclusive and len(set(names)) > 1:
        raise UserError(f"ablation {exclusive[0]!r} replaces the model and cannot be combined with "
                        f"{', '.join(n for n in names if n != exclusive[0])}; run it on its own")
    pairs = [(a.name, dict(a.patch)) for a in ablations]
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


def paper_rows(model: str) -> list[str]:
    """The rows of ``model``'s paper ablation table, in order (empty for a model without one)."""
    return [a.name for a in paper_ablations(model)]


def describe() -> list[tuple[str, str, str]]:
    """(name, models, one-line help) for ``zslbench ablations``."""
    rows = []
    for ablation in ABLATIONS.entries():
        models = "all" if ALL_MODELS in ablation.models else ",".join(ablation.models)
        rows.append((ablation.name, models + (" [paper]" if ablation.paper_row is not None else ""), ablation.help))
    return rows
