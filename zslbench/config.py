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

from zslbench.core.errors import ConfigError

DATASETS = ("synth", "CUB", "AWA2", "SUN")
PRESETS = ("paper", "quick", "tiny")
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
    """Fields shared by every model; each model registers a subclass."""

    name: str = "svip"


@dataclass
class ViTBackbone(ModelConfig):
    """A timm ViT of any even-grid geometry (0 = the named architecture's own value)."""

    backbone: str = "vit_base_patch16_224"
    pretrained: str = ""  # "" random init | path to a state dict / safetensors | "hub"
    img_size: int = 224
    patch_size: int = 0
    embed_dim: int = 0
    depth: int = 0
    num_heads: int = 0
    logit_scale: float = 5.0  # σ (SVIP.md §5); swept as `temperature`
    pool: Literal["mean", "max"] = "mean"


@dataclass
class ViTConfig(ViTBackbone):
    name: str = "vit"
    head: Literal["patches", "cls"] = "patches"


@dataclass
class SVIPConfig(ViTBackbone):
    name: str = "svip"
    keep: int = 40  # K kept super-patches (the paper's patch number M)
    patch_selection: bool = True  # False = "w/o SSPS": K uniformly random super-patches
    rollout: Literal["reference", "paper"] = "reference"
    score_grouping: Literal["strip4", "block"] = "strip4"
    patch_targets: Literal["hard", "soft"] = "hard"
    contextualize: Literal["add", "replace", "drop"] = "add"  # drop = "w/o PSC"
    word_init: bool = True  # False = "w/o W2P": e is a free random vector
    inference_pool: Literal["all", "topk"] = "all"
    consistency: Literal["kl", "jsd", "none"] = "kl"
    consistency_temperature: float = 20.0
    js_weight: float = 1.0  # λ1
    patch_cls_weight: float = 3.0  # λ2
    att_dec: float = 0.3  # attribute-group L2,1 weight (applied twice, as the reference)
    mse_weight: float = 0.0


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
    model: ModelConfig = field(default_factory=SVIPConfig)
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
        model_name = model_section.get("name", "svip")
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


# --------------------------------------------------------------------------- model configs
MODEL_CONFIGS: dict[str, type[ModelConfig]] = {"svip": SVIPConfig, "vit": ViTConfig}


def register_model_config(name: str):
    """Register the config dataclass of a model (used by the baselines)."""

    def decorator(cls: type[ModelConfig]) -> type[ModelConfig]:
        MODEL_CONFIGS[name] = cls
        return cls

    return decorator


def model_config_class(name: str) -> type[ModelConfig]:
    _load_model_configs()
    if not isinstance(name, str) or name not in MODEL_CONFIGS:
        raise ConfigError(f"unknown model {name!r}; valid choices: {', '.join(sorted(MODEL_CONFIGS))}")
    return MODEL_CONFIGS[name]


def _load_model_configs() -> None:
    # Baseline configs live next to their (torch-free) preset modules.
    import importlib

    for module in ("zslbench.baselines.configs",):
        try:
            importlib.import_module(module)
        except ModuleNotFoundError as exc:
            if exc.name != module:
                raise


# --------------------------------------------------------------------------- presets (data)
#: The CPU-sized ViT used on the synthetic benchmark (input 64 px, patch 8 → 8×8 grid, 16 super-patches).
SYNTH_VIT = {
    "model.backbone": "vit_tiny_patch16_224",
    "model.img_size": 64,
    "model.patch_size": 8,
    "model.embed_dim": 96,
    "model.depth": 4,
    "model.num_heads": 3,
}

_SVIP_PAPER: dict[str, dict[str, Any]] = {
    # SVIP.md §7: warm-up epochs 0..3 → 4 warm-up epochs; K of 49
    "CUB": {"train.epochs": 30, "train.warmup_epochs": 4, "train.warmup_lr": 5e-5, "train.lr": 3e-5,
            "train.betas": (0.5, 0.999), "model.keep": 40, "model.patch_cls_weight": 3.0, "model.att_dec": 0.3},
    "AWA2": {"train.epochs": 30, "train.warmup_epochs": 6, "train.warmup_lr": 1e-6, "train.lr": 3e-6,
             "train.betas": (0.8, 0.999), "model.keep": 45, "model.patch_cls_weight": 4.0, "model.att_dec": 1.0},
    "SUN": {"train.epochs": 50, "train.warmup_epochs": 4, "train.warmup_lr": 1e-4, "train.lr": 1e-5,
            "train.betas": (0.5, 0.999), "model.keep": 45, "model.patch_cls_weight": 3.0, "model.att_dec": 0.3},
    "synth": {**SYNTH_VIT, "train.epochs": 12, "train.warmup_epochs": 1, "train.warmup_lr": 1e-3,
              "train.lr": 5e-4, "train.lr_decay_every": 4, "train.betas": (0.9, 0.999), "train.batch_size": 64,
              "model.keep": 12, "model.patch_cls_weight": 3.0, "model.att_dec": 0.3},
}

#: (model, dataset) → the model's preset for that dataset. Baselines add theirs.
MODEL_PRESETS: dict[tuple[str, str], dict[str, Any]] = {}
for _ds, _patch in _SVIP_PAPER.items():
    MODEL_PRESETS[("svip", _ds)] = dict(_patch)
    # The ViT baseline shares SVIP's data, schedule and evaluation (BASELINES.md §1).
    MODEL_PRESETS[("vit", _ds)] = {k: v for k, v in _patch.items() if not k.startswith("model.") or k in SYNTH_VIT}

#: --preset patches, per model family ("*" = every model). Applied after the model preset.
PRESET_PATCHES: dict[str, dict[str, dict[str, Any]]] = {
    "paper": {
        "*": {"data.synth_preset": "paper"},
        "vit_backbone": {"model.backbone": "vit_base_patch16_224", "model.img_size": 224, "model.patch_size": 0,
                         "model.embed_dim": 0, "model.depth": 0, "model.num_heads": 0},
    },
    "quick": {
        "*": {"train.epochs": 6, "train.warmup_epochs": 1},
        "vit_backbone": {**SYNTH_VIT, "model.img_size": 64},
    },
    "tiny": {
        # one thread: tiny models gain nothing from more, and lose a lot on a busy machine
        "*": {"data.synth_preset": "tiny", "train.epochs": 2, "train.warmup_epochs": 1, "train.batch_size": 16,
              "eval.batch_size": 64, "train.threads": 1},
        "vit_backbone": {**SYNTH_VIT, "model.img_size": 32, "model.patch_size": 8, "model.embed_dim": 32,
                         "model.depth": 2, "model.num_heads": 2, "model.keep": 3,
                         "train.warmup_lr": 1e-3, "train.lr": 1e-3},
    },
}


def preset_patch(preset: str, model: str) -> dict[str, Any]:
    if preset not in PRESET_PATCHES:
        raise ConfigError(f"unknown preset {preset!r}; valid choices: {', '.join(PRESETS)}")
    families = PRESET_PATCHES[preset]
    patch = dict(families.get("*", {}))
    cls = model_config_class(model)
    if issubclass(cls, ViTBackbone):
        patch.update(families.get("vit_backbone", {}))
    patch.update(families.get(model, {}))
    fields = {f.name for f in dataclasses.fields(cls)}
    # keys of a family that the model lacks (e.g. keep for vit) are skipped, not errors
    return {k: v for k, v in patch.items() if not k.startswith("model.") or k.split(".", 1)[1] in fields}


# --------------------------------------------------------------------------- resolution
def default_data_root() -> str:
    return os.environ.get("ZSLBENCH_DATA") or "data"


def resolve(
    model: str = "svip",
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
        apply_patch(cfg, MODEL_PRESETS.get((model, dataset), {}), source=f"{model} preset for {dataset}")
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
    m = cfg.model
    for key, size in (("model.img_size", getattr(m, "img_size", 0)), ("data.image_size", cfg.data.image_size)):
        if size > MAX_IMAGE_SIZE:
            raise ConfigError(f"{key} must be at most {MAX_IMAGE_SIZE} pixels, got {size}; "
                              "the models are built for 224 (or 448)")
    if isinstance(m, ViTBackbone):
        if m.img_size <= 0:
            raise ConfigError(f"model.img_size must be positive, got {m.img_size}")
        if m.patch_size and (m.img_size // m.patch_size) % 2:
            raise ConfigError(
                f"model.img_size/model.patch_size = {m.img_size}/{m.patch_size} gives an odd patch grid; "
                "super-patches need an even grid (e.g. img_size 64, patch_size 8)")
        if m.logit_scale <= 0:
            raise ConfigError(f"model.logit_scale (temperature σ) must be positive, got {m.logit_scale}")
        for name in ("patch_size", "embed_dim", "depth", "num_heads"):  # 0 = the architecture's own value
            if getattr(m, name) < 0:
                raise ConfigError(f"model.{name} must be 0 (the backbone's own value) or positive, got {getattr(m, name)}")
    if isinstance(m, SVIPConfig):
        if m.keep < 1:
            raise ConfigError(f"model.keep must be at least 1, got {m.keep}")
        for name in ("js_weight", "patch_cls_weight", "att_dec", "mse_weight"):
            if getattr(m, name) < 0:
                raise ConfigError(f"model.{name} is a loss weight and must be non-negative, got {getattr(m, name)}")
        if m.consistency_temperature <= 0:
            raise ConfigError(f"model.consistency_temperature must be positive, got {m.consistency_temperature}")
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
