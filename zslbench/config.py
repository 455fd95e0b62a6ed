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

This module imports neither torch nor mlflow.
"""

from __future__ import annotations

import dataclasses
import os
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, Mapping, Sequence

import yaml

from zslbench.catalogue import MODELS
from zslbench.core.errors import ConfigError

DATASETS = ("synth", "CUB", "AWA2", "SUN")
PRESETS = ("paper", "quick", "tiny")
DEFAULT_MODEL = "svip"
Dataset = Literal["synth", "CUB", "AWA2", "SUN"]


# --------------------------------------------------------------------------- sections
@dataclass
class DataConfig:
    dataset: Dataset = "synth"
    root: str = ""  # "" → $ZSLBENCH_DATA or ./data
    image_root: str = ""  # "" → <root>/<dataset>; xlsa17 image paths are remapped below it
    synth_preset: Literal["tiny", "default", "paper"] = "default"
    synth_seed: int = 0
    image_size: int = 0  # 0 → the model's input size
    word_vectors: str = "auto"  # auto | w2v | glove | random | path to an [A, D] .npy/.pkl
    num_workers: int = 0
    cache_images: bool = True  # keep decoded, resized images in memory (synth, small sets)


@dataclass
class ModelConfig:
    """Fields shared by every model; each model's package declares a subclass in its catalogue entry."""

    name: str = DEFAULT_MODEL
    img_size: int = 224  # input image side (of the feature extractor, for models on cached features)

    def validate(self) -> None:
        """Model-specific checks of the resolved values (raise ConfigError naming the key)."""
        if self.img_size <= 0:
            raise ConfigError(f"model.img_size must be positive, got {self.img_size}")


@dataclass
class TrainConfig:
    epochs: int = 30
    warmup_epochs: int = 4  # epochs 0..warmup_epochs-1 train the heads only
    warmup_lr: float = 5e-5
    lr: float = 3e-5
    optimizer: Literal["adam", "sgd"] = "adam"
    betas: tuple[float, float] = (0.5, 0.999)
    momentum: float = 0.0
    weight_decay: float = 0.0
    lr_decay: float = 0.8
    lr_decay_every: int = 5
    grad_clip: float = 1.0
    batch_size: int = 64
    drop_last: bool = True
    balanced_batches: bool = False
    seed: int = 0
    device: str = "auto"  # auto | cpu | cuda | cuda:N
    quirks: Literal["clean", "reference"] = "clean"
    amp: Literal["auto", "off", "bf16"] = "auto"  # auto = bf16 on CUDA, off on CPU
    eval_every: int = 1
    max_steps_per_epoch: int = 0  # 0 = the whole epoch
    threads: int = 0  # torch intra-op threads; 0 = library default


@dataclass
class EvalConfig:
    gamma_policy: Literal["none", "fixed", "val", "oracle"] = "none"
    gamma: float = 0.0  # used by gamma_policy=fixed
    gamma_space: Literal["logit", "prob"] = "logit"
    selection: Literal["final", "val", "oracle"] = "final"
    mode: Literal["standard", "official"] = "standard"
    batch_size: int = 128


@dataclass
class TrackConfig:
    enabled: bool = True
    uri: str = ""  # "" → $MLFLOW_TRACKING_URI or sqlite:///mlflow.db
    experiment: str = "zslbench"
    output_dir: str = "runs"  # checkpoints and local results, one folder per run
    log_scores: bool = True


@dataclass
class Config:
    data: DataConfig = field(default_factory=DataConfig)
    model: ModelConfig = field(default_factory=lambda: model_config_class(DEFAULT_MODEL)())
    train: TrainConfig = field(default_factory=TrainConfig)
    eval: EvalConfig = field(default_factory=EvalConfig)
    track: TrackConfig = field(default_factory=TrackConfig)
    preset: str = ""
    ablations: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return _to_plain(dataclasses.asdict(self))

    def flat(self) -> dict[str, Any]:
        """Dotted keys → values (for MLflow params and fingerprints)."""
        out: dict[str, Any] = {}
        for section, values in self.to_dict().items():
            if isinstance(values, dict):
                out.update({f"{section}.{k}": v for k, v in values.items()})
            else:
                out[section] = values
        return out

    def to_yaml(self) -> str:
        return yaml.safe_dump(self.to_dict(), sort_keys=False)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> "Config":
        if not isinstance(data, Mapping):
            raise ConfigError("a config file must hold a mapping of sections (data, model, train, eval, track)")
        model_section = data.get("model") or {}
        if not isinstance(model_section, Mapping):
            raise ConfigError(f"config section 'model' must be a mapping of keys to values, got {model_section!r}")
        model_name = model_section.get("name", DEFAULT_MODEL)
        cfg = Config(model=model_config_class(model_name)())
        for key, value in _flatten(data):
            set_value(cfg, key, value)
        return cfg

    @classmethod
    def from_yaml(cls, path: str | Path) -> "Config":
        path = Path(path)
        if not path.is_file():
            raise ConfigError(f"config file {str(path)!r} does not exist; pass a YAML file saved by a run (resolved.yaml)")
        try:
            data = yaml.safe_load(path.read_text(encoding="utf-8"))
        except (yaml.YAMLError, UnicodeDecodeError, RecursionError) as exc:  # RecursionError: nested too deeply
            raise ConfigError(f"config file {str(path)!r} is not valid YAML ({exc.__class__.__name__}); fix or re-save it") from None
        except OSError as exc:
            raise ConfigError(f"config file {str(path)!r} cannot be read ({exc.strerror or exc}); "
                              "check its permissions") from None
        return cls.from_dict(data or {})


SECTIONS = ("data", "model", "train", "eval", "track")


# --------------------------------------------------------------------------- models and presets
def model_config_class(name: str) -> type[ModelConfig]:
    """The config section class of a catalogued model."""
    if not isinstance(name, str) or name not in MODELS:
        raise ConfigError(f"unknown model {name!r}; valid choices: {', '.join(MODELS.names())}")
    return MODELS.get(name).config


#: The part of each ``--preset`` that every model shares (the model's catalogue entry adds its own part).
GENERIC_PRESETS: dict[str, dict[str, Any]] = {
    "paper": {"data.synth_preset": "paper"},
    "quick": {"train.epochs": 6, "train.warmup_epochs": 1},
    # one thread: tiny models gain nothing from more, and lose a lot on a busy machine
    "tiny": {"data.synth_preset": "tiny", "train.epochs": 2, "train.warmup_epochs": 1, "train.batch_size": 16,
             "eval.batch_size": 64, "train.threads": 1},
}


def preset_patch(preset: str, model: str) -> dict[str, Any]:
    """The ``--preset`` patch for ``model``: the shared part, then the model's own part."""
    if preset not in GENERIC_PRESETS:
        raise ConfigError(f"unknown preset {preset!r}; valid choices: {', '.join(PRESETS)}")
    return {**GENERIC_PRESETS[preset], **MODELS.get(model).preset_patches.get(preset, {})}


def model_preset(model: str, dataset: str) -> dict[str, Any]:
    """The model's preset for ``dataset`` (the paper's settings; empty for a dataset it has none for)."""
    return dict(MODELS.get(model).presets.get(dataset, {}))


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
        apply_patch(cfg, preset_patch(preset, cfg.model.name), source=f"preset {preset}")
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


def parse_override(item: str) -> tuple[str, Any]:
    if "=" not in item:
        raise ConfigError(f"override {item!r} is not of the form key=value (e.g. train.lr=1e-4)")
    key, raw = item.split("=", 1)
    key = key.strip()
    try:
        value = yaml.safe_load(raw) if raw.strip() else ""
    except (yaml.YAMLError, RecursionError):  # not YAML (or nested too deeply): the text itself
        value = raw
    return key, value


def apply_patch(cfg: Config, patch: Mapping[str, Any], source: str = "") -> None:
    for key, value in patch.items():
        set_value(cfg, key, value)


def set_value(cfg: Config, key: str, value: Any) -> None:
    """Set a dotted key with type checking; errors name the key and the valid choices."""
    parts = key.split(".")
    if len(parts) == 1:
        if parts[0] not in ("preset", "ablations"):
            sections = [f.name for f in dataclasses.fields(Config)]
            raise ConfigError(f"unknown config key {key!r}; use section.key with a section of: {', '.join(sections)}")
        setattr(cfg, parts[0], _coerce(key, value, _hints(Config)[parts[0]]))
        return
    if len(parts) != 2:
        raise ConfigError(f"unknown config key {key!r}; keys have the form section.name (e.g. train.lr)")
    section_name, name = parts
    if section_name not in {f.name for f in dataclasses.fields(Config)}:
        valid = ", ".join(SECTIONS)
        raise ConfigError(f"unknown config section {section_name!r} in {key!r}; valid sections: {valid}")
    section = getattr(cfg, section_name)
    if section_name == "model" and name == "name":
        if value != section.name:
            cfg.model = _switch_model(section, str(value))
        return
    hints = _hints(type(section))
    if name not in hints:
        raise ConfigError(f"unknown config key {key!r}; valid keys in {section_name!r}: {', '.join(hints)}")
    setattr(section, name, _coerce(key, value, hints[name]))


def _switch_model(current: ModelConfig, name: str) -> ModelConfig:
    """A new model section that keeps the values of the fields both models share (e.g. the backbone)."""
    new = model_config_class(name)()
    shared = {f.name for f in dataclasses.fields(new)} & {f.name for f in dataclasses.fields(current)}
    for field_name in shared - {"name"}:
        setattr(new, field_name, getattr(current, field_name))
    return new


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
    for name in ("lr", "warmup_lr", "weight_decay", "momentum", "max_steps_per_epoch", "threads"):
        if getattr(t, name) < 0:
            raise ConfigError(f"train.{name} must be non-negative, got {getattr(t, name)}")
    if not all(0.0 <= beta < 1.0 for beta in t.betas):
        raise ConfigError(f"train.betas must both lie in [0, 1), got {list(t.betas)}; e.g. train.betas=[0.9,0.999]")
    for name in ("image_size", "num_workers"):
        if getattr(cfg.data, name) < 0:
            raise ConfigError(f"data.{name} must be non-negative, got {getattr(cfg.data, name)}")
    if not (t.device in ("auto", "cpu", "cuda", "mps") or t.device.startswith("cuda:")):
        raise ConfigError(f"train.device {t.device!r} is not one of auto, cpu, cuda, cuda:N")
    if cfg.eval.batch_size < 1:
        raise ConfigError(f"eval.batch_size must be at least 1, got {cfg.eval.batch_size}")


# --------------------------------------------------------------------------- helpers
def _hints(cls: type) -> dict[str, Any]:
    return typing.get_type_hints(cls)


def _coerce(key: str, value: Any, tp: Any) -> Any:
    origin = typing.get_origin(tp)
    args = typing.get_args(tp)
    if origin is Literal:
        if value not in args:
            raise ConfigError(f"{key}={_shown(value)} is not valid; valid choices: {', '.join(map(str, args))}")
        return value
    if origin in (typing.Union, types.UnionType):
        if value is None and type(None) in args:
            return None
        for arg in args:
            if arg is type(None):
                continue
            try:
                return _coerce(key, value, arg)
            except ConfigError:
                continue
        raise ConfigError(f"{key}={_shown(value)} has the wrong type; expected {tp}")
    if origin is tuple:
        given = value
        if isinstance(value, str):
            value = [v for v in value.replace("(", "").replace(")", "").split(",") if v.strip()]
        if not isinstance(value, (list, tuple)) or (args and args[-1] is not Ellipsis and len(value) != len(args)):
            raise ConfigError(f"{key}={_shown(given)} must be a list of {len(args)} values, e.g. {key}=[0.9,0.999]")
        elem = [args[0]] * len(value) if args and args[-1] is Ellipsis else list(args)
        return tuple(_coerce(key, v, t) for v, t in zip(value, elem))
    if origin is list:
        if isinstance(value, str):
            value = [v for v in value.split(",") if v]
        if not isinstance(value, (list, tuple)):
            raise ConfigError(f"{key}={_shown(value)} must be a list")
        return [_coerce(key, v, args[0] if args else str) for v in value]
    if tp is bool:
        if isinstance(value, bool):
            return value
        if isinstance(value, str) and value.lower() in ("true", "false", "yes", "no", "on", "off", "1", "0"):
            return value.lower() in ("true", "yes", "on", "1")
        raise ConfigError(f"{key}={_shown(value)} must be true or false")
    if tp is int:
        if isinstance(value, bool) or not isinstance(value, (int, float, str)):
            raise ConfigError(f"{key}={_shown(value)} must be an integer")
        try:
            as_float = float(value)
        except ValueError:
            raise ConfigError(f"{key}={_shown(value)} must be an integer") from None
        except OverflowError:  # an int too large for a float
            raise ConfigError(f"{key}={_shown(value)} is out of range (at most {_INT_LIMIT - 1})") from None
        if not as_float.is_integer():
            raise ConfigError(f"{key}={_shown(value)} must be an integer")
        result = int(value) if isinstance(value, int) else int(as_float)
        if not -_INT_LIMIT < result < _INT_LIMIT:  # numpy/torch seeds and sizes are 64-bit
            raise ConfigError(f"{key}={_shown(value)} is out of range (at most {_INT_LIMIT - 1})")
        return result
    if tp is float:
        if isinstance(value, bool):
            raise ConfigError(f"{key}={_shown(value)} must be a number")
        try:
            result = float(value)
        except (TypeError, ValueError):
            raise ConfigError(f"{key}={_shown(value)} must be a number") from None
        except OverflowError:
            raise ConfigError(f"{key}={_shown(value)} must be a finite number") from None
        if result != result or result in (float("inf"), float("-inf")):
            raise ConfigError(f"{key}={_shown(value)} must be a finite number")
        return result
    if tp is str:
        if isinstance(value, (dict, list)):
            raise ConfigError(f"{key}={_shown(value)} must be a string")
        return "" if value is None else str(value)
    return value


def _flatten(data: Mapping[str, Any]) -> list[tuple[str, Any]]:
    out: list[tuple[str, Any]] = []
    for section, values in data.items():
        if isinstance(values, Mapping):
            out.extend((f"{section}.{k}", v) for k, v in values.items() if not (section == "model" and k == "name"))
        else:
            out.append((str(section), values))  # YAML keys may be numbers or null: named in the error
    return out


_INT_LIMIT = 2**63


def _shown(value: Any, limit: int = 60) -> str:
    """``repr(value)`` cut to ``limit`` characters (an error line must stay one readable line)."""
    text = repr(value)
    return text if len(text) <= limit else text[:limit] + "…"


def _to_plain(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _to_plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_to_plain(v) for v in value]
    return value
