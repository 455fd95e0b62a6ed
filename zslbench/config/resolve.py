"""Resolving a config: the documented order of defaults, model preset, ``--preset``, ablations and
overrides; the checks of the result; a run request of the command line; a config's identity hash.

>>> cfg = resolve_request(Request(model="vit", dataset="CUB", epochs=8, seed=7))
>>> cfg.model.name, cfg.train.epochs, cfg.train.seed
('vit', 8, 7)
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any, Mapping, Sequence

import yaml

from zslbench.catalogue import MODELS, ablation_patches
from zslbench.config.sections import (DATASETS, DEFAULT_MODEL, PRESETS, Config, apply_patch, model_config_class,
                                      set_value)
from zslbench.config.values import parse_override
from zslbench.core.errors import ConfigError


#: The part of each ``--preset`` that every model shares (the model's catalogue entry adds its own part).
#: ``paper`` runs in fp32, as the reference code does. (``quick`` and ``tiny`` shrink each backbone to CPU size,
#: which no published weights fit: the backbones' own preset patches start them from random init.)
GENERIC_PRESETS: dict[str, dict[str, Any]] = {
    "paper": {"data.synth_preset": "paper", "train.amp": "off"},
    "paper-zsl": {"data.synth_preset": "paper", "train.amp": "off"},
    "quick": {"train.epochs": 6, "train.warmup_epochs": 1},
    # one thread: tiny models gain nothing from more, and lose a lot on a busy machine
    "tiny": {"data.synth_preset": "tiny", "train.epochs": 2, "train.warmup_epochs": 1, "train.batch_size": 16,
             "eval.batch_size": 64, "train.threads": 1},
}
#: The real benchmarks (their images are natural photographs; the reference code trains on them).
REAL_DATASETS = ("CUB", "AWA2", "SUN")


def preset_patch(preset: str, model: str, dataset: str = "synth") -> dict[str, Any]:
    """The ``--preset`` patch for ``model``: the shared part, then the model's own part.

    ``paper-zsl`` is ``paper`` plus the reference's separate ZSL configuration for ``dataset``, where the model
    has one (its catalogue entry's ``zsl_presets``: the run its published T1 came from).

    >>> import zslbench
    >>> preset_patch("paper-zsl", "apn", "AWA2")["model.l_xe"], preset_patch("paper", "apn", "AWA2").get("model.l_xe")
    (0.0, None)
    """
    if preset not in GENERIC_PRESETS:
        raise ConfigError(f"unknown preset {preset!r}; valid choices: {', '.join(PRESETS)}")
    entry = MODELS.get(model)
    if preset == "paper-zsl":
        return {**GENERIC_PRESETS[preset], **entry.preset_patches.get("paper", {}), **entry.zsl_presets.get(dataset, {})}
    return {**GENERIC_PRESETS[preset], **entry.preset_patches.get(preset, {})}


def model_preset(model: str, dataset: str) -> dict[str, Any]:
    """The model's preset for ``dataset``: the paper's settings. On the real benchmarks it starts from the
    weights its reference implementation loads (when its config names them) and runs in fp32, as the
    reference code does; the synthetic benchmark keeps random init and the default precision.

    >>> import zslbench
    >>> {k: v for k, v in model_preset("svip", "CUB").items() if k in ("model.pretrained", "train.amp")}
    {'train.amp': 'off', 'model.pretrained': 'paper'}
    >>> "model.pretrained" in model_preset("svip", "synth")
    False
    """
    fidelity: dict[str, Any] = {}
    if dataset in REAL_DATASETS:
        fidelity["train.amp"] = "off"
        if MODELS.get(model).config.paper_weights:
            fidelity["model.pretrained"] = "paper"
    return {**fidelity, **MODELS.get(model).presets.get(dataset, {})}


# --------------------------------------------------------------------------- resolution


def default_data_root() -> str:
    return os.environ.get("ZSLBENCH_DATA") or "data"


def resolve(
    model: str = DEFAULT_MODEL,
    dataset: str = "synth",
    preset: str | None = None,
    ablations: Sequence[tuple[str, Mapping[str, Any]]] = (),
    overrides: Sequence[str] = (),
    base: Config | None = None,
) -> Config:
    """Build a config by the documented resolution order.

    ``ablations`` are ``(name, patch)`` pairs from :mod:`zslbench.ablations`;
    ``overrides`` are ``key=value`` strings. ``base`` (a loaded ``resolved.yaml``) replaces
    steps 1–2 when given.
    """
    if dataset not in DATASETS:
        raise ConfigError(f"unknown dataset {dataset!r}; valid choices: {', '.join(DATASETS)}")
    if base is not None:
        cfg = Config.from_dict(base.to_dict())
    else:
        cfg = Config(model=model_config_class(model)())
        cfg.data.dataset = dataset  # type: ignore[assignment]
        apply_patch(cfg, model_preset(model, dataset), source=f"{model} preset for {dataset}")
    if preset:
        apply_patch(cfg, preset_patch(preset, cfg.model.name, cfg.data.dataset), source=f"preset {preset}")
        cfg.preset = preset
    for name, patch in ablations:
        apply_patch(cfg, patch, source=f"ablation {name}")
        if name not in cfg.ablations:
            cfg.ablations.append(name)
    for item in overrides:
        key, value = parse_override(item)
        set_value(cfg, key, value)
    validate(cfg)
    return cfg


#: Where things are, not what is computed: left out of the hash so machines with other paths agree.
LOCATION_KEYS = (("data", "root"), ("data", "image_root"))


def config_hash(cfg: Config) -> str:
    """sha256 of the resolved config's YAML without ``train.seed``, the ``track`` section and the
    data locations: the identity of an experiment cell, shared by every seed, tracking store and
    machine (the data's content is identified by the runs' ``data.fingerprint`` tag).

    >>> a, b = resolve(overrides=["train.seed=0"]), resolve(overrides=["train.seed=1", "track.experiment=x"])
    >>> config_hash(a) == config_hash(b), config_hash(a) == config_hash(resolve(overrides=["train.lr=1"]))
    (True, False)
    """
    import hashlib

    data = cfg.to_dict()
    data.pop("track", None)
    data.get("train", {}).pop("seed", None)
    for section, key in LOCATION_KEYS:
        data.get(section, {}).pop(key, None)
    return hashlib.sha256(yaml.safe_dump(data, sort_keys=True).encode()).hexdigest()


#: The largest image side a config may ask for (the models use 224 or 448): one image of a larger
#: side takes gigabytes, and building the backbone for it fails deep inside timm.
MAX_IMAGE_SIZE = 4096


def validate(cfg: Config) -> None:
    for key, size in (("model.img_size", cfg.model.img_size), ("data.image_size", cfg.data.image_size)):
        if size > MAX_IMAGE_SIZE:
            raise ConfigError(f"{key} must be at most {MAX_IMAGE_SIZE} pixels, got {size}; "
                              "the models are built for 224 (or 448)")
    cfg.model.validate()
    t = cfg.train
    for name in ("epochs", "batch_size", "eval_every"):
        if getattr(t, name) < 1:
            raise ConfigError(f"train.{name} must be at least 1, got {getattr(t, name)}")
    if t.warmup_epochs < 0 or t.warmup_epochs > t.epochs:
        raise ConfigError(f"train.warmup_epochs must be between 0 and train.epochs ({t.epochs}), got {t.warmup_epochs}")
    for name in ("lr", "warmup_lr", "weight_decay", "momentum", "max_steps_per_epoch", "threads", "ways",
                 "batches_per_epoch"):
        if getattr(t, name) < 0:
            raise ConfigError(f"train.{name} must be non-negative, got {getattr(t, name)}")
    if t.ways and t.sampling != "balanced":
        raise ConfigError(f"train.ways={t.ways} sets the classes of a balanced batch; add train.sampling=balanced "
                          "or drop train.ways")
    if t.batches_per_epoch and t.sampling == "shuffle":
        raise ConfigError(f"train.batches_per_epoch={t.batches_per_epoch} applies to train.sampling=balanced or "
                          "random (a shuffled epoch is every image once); use train.max_steps_per_epoch to cut it")
    if t.ways > t.batch_size:
        raise ConfigError(f"train.ways={t.ways} is more classes than train.batch_size={t.batch_size} images; "
                          "lower train.ways or raise train.batch_size")
    if not all(0.0 <= beta < 1.0 for beta in t.betas):
        raise ConfigError(f"train.betas must both lie in [0, 1), got {list(t.betas)}; e.g. train.betas=[0.9,0.999]")
    if cfg.data.image_size < 0:
        raise ConfigError(f"data.image_size must be non-negative, got {cfg.data.image_size}")
    if cfg.data.num_workers < -1:
        raise ConfigError(f"data.num_workers must be -1 (one per CPU core), 0 (none) or a positive count, "
                          f"got {cfg.data.num_workers}")
    if not t.dist_timeout > 0:
        raise ConfigError(f"train.dist_timeout must be a positive number of minutes, got {t.dist_timeout}")
    if not (t.device in ("auto", "cpu", "cuda", "mps") or t.device.startswith("cuda:")):
        raise ConfigError(f"train.device {t.device!r} is not one of auto, cpu, cuda, cuda:N")
    if cfg.eval.batch_size < 1:
        raise ConfigError(f"eval.batch_size must be at least 1, got {cfg.eval.batch_size}")
    if cfg.eval.mode != "standard" and (cfg.eval.gamma_policy, cfg.eval.selection) != ("none", "final"):
        raise ConfigError(f"eval.mode={cfg.eval.mode} reports as that paper did, with its own γ and epoch choice; "
                          "drop eval.gamma_policy and eval.selection (or use eval.mode=standard)")


# --------------------------------------------------------------------------- requests
@dataclass(frozen=True)
class Request:
    """A run as a command asks for it, before resolution: what ``run``, ``ablate`` (per cell) and ``sweep``
    (per trial) share. The shortcut options (``epochs``, ``device``, ``experiment``, ``tracking_uri``,
    ``seed``) win over ``--set`` overrides of the same keys; ``config_file`` (a saved ``resolved.yaml``)
    replaces the defaults and the model preset."""

    model: str = DEFAULT_MODEL
    dataset: str = "synth"
    preset: str | None = None
    ablations: tuple[str, ...] = ()
    overrides: tuple[str, ...] = ()
    data_root: str | None = None
    seed: int | None = None
    epochs: int | None = None
    device: str | None = None
    experiment: str | None = None
    tracking_uri: str | None = None
    config_file: str | None = None


def resolve_request(request: Request) -> Config:
    """The resolved config of ``request`` (the documented resolution order)."""
    base = Config.from_yaml(request.config_file) if request.config_file else None
    model = base.model.name if base is not None and request.model == DEFAULT_MODEL else request.model
    extra = ([f"data.root={request.data_root}"] if request.data_root is not None else []) + list(request.overrides)
    shortcuts = (("train.epochs", request.epochs), ("train.device", request.device),
                 ("track.experiment", request.experiment), ("track.uri", request.tracking_uri),
                 ("train.seed", request.seed))
    extra += [f"{key}={value}" for key, value in shortcuts if value is not None]
    ablations = ablation_patches(list(request.ablations), model)
    if base is not None:
        return resolve(base=base, preset=request.preset, ablations=ablations, overrides=extra)
    return resolve(model=model, dataset=request.dataset, preset=request.preset, ablations=ablations, overrides=extra)
