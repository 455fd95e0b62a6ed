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

from dataclasses import dataclass, field
from typing import Any

import numpy as np

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


@dataclass
class DatasetInfo:
    """What a model needs to know about its dataset, independent of images.

    ``class_attributes`` rows are L2-normalised (``s / (||s|| + 1e-5)`` from ``original_att``).
    Class ids are global (0..C-1); ``seen_classes`` / ``unseen_classes`` are sorted id arrays.
    """

    name: str
    class_attributes: np.ndarray  # [C, A] float32
    seen_classes: np.ndarray  # [C_s] int64
    unseen_classes: np.ndarray  # [C_u] int64
    word_vectors: np.ndarray  # [A, D] float32
    attribute_names: list[str] = field(default_factory=list)
    attribute_groups: list[list[int]] = field(default_factory=list)

    @property
    def num_attributes(self) -> int:
        return int(self.class_attributes.shape[1])

    @property
    def num_classes(self) -> int:
        return int(self.class_attributes.shape[0])


def build_model(cfg: Any, info: DatasetInfo):
    """Build the registered model named by ``cfg.model.name`` from its config section."""
    cls = MODELS.get(cfg.model.name)
    return cls(cfg.model, info)
