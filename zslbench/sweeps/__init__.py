"""Named search spaces for ``zslbench sweep``: each one a decorated function of the resolved config.

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

import importlib
from dataclasses import dataclass
from typing import Any, Callable, Sequence

from zslbench.config import Config
from zslbench.core.errors import UserError, unknown_name
from zslbench.core.registry import Registry


@dataclass(frozen=True)
class Param:
    """One swept hyperparameter: Optuna name, config key, TPE range and sensitivity grid."""

    name: str
    key: str
    low: float
    high: float
    log: bool = False
    integer: bool = False
    grid: tuple[Any, ...] = ()
    paper_best: Any = None
    help: str = ""

    def distribution(self, grid: bool = False):
        """The Optuna distribution: categorical over the grid, else the continuous/integer range."""
        from optuna.distributions import CategoricalDistribution, FloatDistribution, IntDistribution

        if grid:
            return CategoricalDistribution(list(self.grid))
        if self.integer:
            return IntDistribution(int(self.low), int(self.high), log=self.log)
        return FloatDistribution(float(self.low), float(self.high), log=self.log)

    def override(self, value: Any) -> str:
        """The ``--set`` form of a sampled value (e.g. ``model.logit_scale=5.0``)."""
        return f"{self.key}={int(value) if self.integer else float(value)!r}"


SpaceFn = Callable[[Config], list[Param]]


def _load_spaces() -> None:
    importlib.import_module("zslbench.sweeps.spaces")


SPACES: Registry[SpaceFn] = Registry("search space", loader=_load_spaces)


def register_space(name: str, help: str = ""):
    """Register ``fn(cfg) -> [Param, ...]`` as search space ``name``."""
    return SPACES.register(name, help=help)


def params_for(names: Sequence[str], cfg: Config) -> list[Param]:
    """The parameters of the named spaces for ``cfg`` (``all`` expands; duplicates dropped, order kept)."""
    if not names:
        raise UserError(f"name at least one search space; valid choices: {', '.join(SPACES.names())}")
    params: dict[str, Param] = {}
    for name in names:
        if name not in SPACES:
            raise unknown_name("search space", name, SPACES.names())
        for param in SPACES.get(name)(cfg):
            params.setdefault(param.name, param)
    return list(params.values())


def describe(cfg: Config | None = None) -> list[dict[str, Any]]:
    """Rows for ``zslbench sweeps``: space, config key, range, scale, grid, paper's best."""
    from zslbench.config import resolve

    cfg = cfg or resolve()
    rows = []
    entries = sorted(SPACES.entries(), key=lambda e: e.name == "all")  # the union last
    for entry in entries:
        try:
            params = entry.obj(cfg)
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
