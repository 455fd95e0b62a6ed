"""The common model interface (BASELINES.md §4) and the model registry.

Every model — ``svip``, ``vit``, ``transzero``, ``apn`` — is one class registered by name,
so the engine, ablations, sweeps and tables never special-case a model:

* ``Model(cfg, info)`` builds it from its config section and the dataset's :class:`DatasetInfo`;
* ``forward(batch) -> dict`` returns attribute predictions (key ``"attributes"``, [B, A]) plus
  whatever its losses need;
* ``losses(output, batch) -> {name: tensor}`` returns *weighted* loss terms; the engine sums them
  and logs every term by name (weights of 0 may be omitted);
* ``class_scores(output, class_attributes) -> [B, C]`` scores against any class set;
* ``param_groups(phase)`` gives the optimiser groups for ``"warmup"`` (heads only) and ``"full"``.

Example (the registry is filled on first use):
    >>> from zslbench.models import MODELS
    >>> "svip" in MODELS.names() and "vit" in MODELS.names()
    True
"""

from __future__ import annotations

from typing import Any

from zslbench.catalogue import DatasetInfo  # noqa: F401
from zslbench.core.registry import Registry


def _import_models() -> None:
    import importlib

    for module in ("zslbench.svip.model", "zslbench.baselines.vit", "zslbench.baselines.transzero", "zslbench.baselines.apn"):
        try:
            importlib.import_module(module)
        except ModuleNotFoundError as exc:
            if exc.name != module:  # a missing dependency is a real error; a missing module is a model not yet built
                raise


MODELS: Registry[Any] = Registry("model", loader=_import_models)


def register_model(name: str, help: str = ""):
    """Class decorator: ``@register_model("svip")``."""
    return MODELS.register(name, help=help)


def build_model(cfg: Any, info: DatasetInfo):
    """Build the registered model named by ``cfg.model.name`` from its config section."""
    cls = MODELS.get(cfg.model.name)
    return cls(cfg.model, info)
