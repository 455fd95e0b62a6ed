"""The typed configuration tree, its presets and ``key=value`` overrides.

Resolution order (printed by ``zslbench run --dry-run``):

1. library defaults (the dataclasses below);
2. the model's preset for the dataset (the paper's settings, SVIP.md §7 / BASELINES.md);
3. ``--preset`` (``paper`` | ``quick`` | ``tiny``);
4. ``--ablate`` patches, in the order given;
5. ``--set key=value`` overrides, in the order given.

Example:
    >>> from zslbench.config import resolve
    >>> cfg = resolve(model="svip", dataset="CUB", overrides=["train.lr=1e-4"])
    >>> cfg.model.keep, cfg.train.epochs, cfg.train.lr
    (40, 30, 0.0001)
    >>> resolve(overrides=["train.lrr=1"])  # doctest: +IGNORE_EXCEPTION_DETAIL
    Traceback (most recent call last):
    ConfigError: unknown config key 'train.lrr'; valid keys in 'train': ...

Model sections and presets come from the model catalogue (:mod:`zslbench.catalogue`): each model
package registers its config class and its per-dataset and ``--preset`` patches there.

Modules: :mod:`.sections` (the tree), :mod:`.values` (typed values), :mod:`.resolve` (resolution,
requests, checks). This package imports neither torch nor mlflow.
"""

from zslbench.config.resolve import (GENERIC_PRESETS, LOCATION_KEYS, MAX_IMAGE_SIZE, Request, config_hash,
                                     default_data_root, model_preset, preset_patch, resolve, resolve_request,
                                     validate)
from zslbench.config.sections import (DATASETS, DEFAULT_MODEL, PRESETS, SECTIONS, Config, DataConfig, EvalConfig,
                                      ModelConfig, TrackConfig, TrainConfig, apply_patch, model_config_class,
                                      set_value)
from zslbench.config.values import parse_override

__all__ = [
    "DATASETS", "DEFAULT_MODEL", "GENERIC_PRESETS", "LOCATION_KEYS", "MAX_IMAGE_SIZE", "PRESETS", "SECTIONS",
    "Config", "DataConfig", "EvalConfig", "ModelConfig", "Request", "TrackConfig", "TrainConfig", "apply_patch",
    "config_hash", "default_data_root", "model_config_class", "model_preset", "parse_override", "preset_patch",
    "resolve", "resolve_request", "set_value", "validate",
]
