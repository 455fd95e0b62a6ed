"""Named search spaces for ``zslbench sweep``: each one a function of the resolved config, registered in
the catalogue by the model it belongs to (SVIP's in :mod:`zslbench.svip.spaces`).

A space returns the :class:`Param` s it sweeps: the config key, a continuous range for TPE, and a
paper-style ``grid`` (the values a sensitivity figure shows, the paper's best included):

    >>> from zslbench.config import resolve
    >>> from zslbench.sweeps import params_for
    >>> [p.name for p in params_for(["temperature"], resolve())]
    ['temperature']
    >>> p = params_for(["patch_number"], resolve(dataset="CUB"))[0]
    >>> p.key, p.low, p.high, p.grid, p.paper_best
    ('model.keep', 1, 49, (10, 20, 30, 40, 45, 49), 40)

Bounds that depend on the geometry (the number of super-patches P) come from the resolved config,
so ``--preset tiny`` sweeps K in 1..4 while CUB's ViT-B/16 sweeps 1..49. ``all`` is the union.
This package's registry imports neither torch, mlflow nor optuna (the study runner does).
"""

from __future__ import annotations

from typing import Any

from zslbench.catalogue import SPACES, Param, params_for, register_space
from zslbench.config import Config
from zslbench.core.errors import UserError


def describe(cfg: Config | None = None) -> list[dict[str, Any]]:
    """Rows for ``zslbench sweeps``: space, config key, range, scale, grid, paper's best."""
    from zslbench.config import resolve

    cfg = cfg or resolve()
    rows = []
    entries = sorted(SPACES.entries(), key=lambda e: e.name == "all")  # the union last
    for entry in entries:
        try:
            params = entry.obj.params(cfg)
        except UserError as exc:  # e.g. a space that needs another model
            rows.append({"space": entry.name, "help": entry.help, "key": "", "range": str(exc), "scale": "",
                         "grid": "", "paper_best": ""})
            continue
        if entry.name == "all":
            rows.append({"space": "all", "help": entry.help, "key": ", ".join(p.key for p in params), "range": "",
                         "scale": "", "grid": "", "paper_best": ""})
            continue
        for param in params:
            rows.append({
                "space": entry.name, "help": entry.help, "key": param.key, "range": f"{param.low:g}..{param.high:g}",
                "scale": "log" if param.log else ("integer" if param.integer else "linear"),
                "grid": ", ".join(f"{v:g}" for v in param.grid), "paper_best": f"{param.paper_best:g}",
            })
    return rows


__all__ = ["Param", "SPACES", "describe", "params_for", "register_space"]
