"""The sections of the config tree (``data``, ``model``, ``train``, ``eval``, ``track``) and typed access by
dotted key. A model's section is the config class its catalogue entry declares (a :class:`ModelConfig`).

>>> cfg = Config()
>>> set_value(cfg, "train.lr", "1e-4"); cfg.train.lr
0.0001
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar, Literal, Mapping

import yaml

from zslbench.catalogue import MODELS
from zslbench.config.values import coerce, flatten, hints, to_plain
from zslbench.core.errors import ConfigError

DATASETS = ("synth", "CUB", "AWA2", "SUN")
PRESETS = ("paper", "paper-zsl", "quick", "tiny")
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
    num_workers: int = -1  # image loader workers: -1 = one per CPU core (up to 8), 0 = none
    cache_images: bool = True  # keep decoded, resized images in memory (synth, small sets)


@dataclass
class ModelConfig:
    """Fields shared by every model; each model's package declares a subclass in its catalogue entry.

    ``paper_weights`` (a class attribute, not a config key): the timm tag of the weights the model's
    reference implementation loads, what ``model.pretrained=paper`` means (see :mod:`zslbench.backbones.weights`).
    """

    paper_weights: ClassVar[str] = ""

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
    # shuffle: each epoch a permutation cut into batches; balanced: each batch `ways` classes × batch_size // ways
    # images of each; random: each batch batch_size distinct images drawn afresh (batches may overlap)
    sampling: Literal["shuffle", "balanced", "random"] = "shuffle"
    ways: int = 0  # classes per balanced batch; 0 = min(seen classes, batch_size)
    batches_per_epoch: int = 0  # balanced/random batches per epoch; 0 = training images // batch_size
    seed: int = 0
    device: str = "auto"  # auto | cpu | cuda | cuda:N
    quirks: Literal["clean", "reference"] = "clean"
    amp: Literal["auto", "off", "bf16"] = "auto"  # auto = bf16 on a GPU with native bf16, else fp32
    deterministic: Literal["auto", "on", "off"] = "auto"  # auto = on for CPU, off on GPUs (docs/GPU.md)
    dist_timeout: float = 60.0  # minutes one rank may wait for another (e.g. rank 0 preparing data)
    eval_every: int = 1
    max_steps_per_epoch: int = 0  # 0 = the whole epoch
    threads: int = 0  # torch intra-op threads; 0 = library default


@dataclass
class EvalConfig:
    gamma_policy: Literal["none", "fixed", "val", "oracle"] = "none"
    gamma: float = 0.0  # used by gamma_policy=fixed
    gamma_space: Literal["logit", "prob"] = "logit"
    selection: Literal["final", "val", "oracle"] = "final"
    mode: Literal["standard", "svip", "transzero", "apn"] = "standard"  # a paper's reporting protocol (†)
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
        return to_plain(dataclasses.asdict(self))

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
        for key, value in flatten(data):
            for new_key, new_value in RENAMED_KEYS.get(key, lambda v: [(key, v)])(value):
                set_value(cfg, new_key, new_value)
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
#: Keys of earlier versions in a saved config → their current form (so an old resolved.yaml still loads).
RENAMED_KEYS = {
    "train.balanced_batches": lambda value: [
        ("train.sampling", "balanced" if coerce("train.balanced_batches", value, bool) else "shuffle")],
}


def model_config_class(name: str) -> type[ModelConfig]:
    """The config section class of a catalogued model."""
    if not isinstance(name, str) or name not in MODELS:
        raise ConfigError(f"unknown model {name!r}; valid choices: {', '.join(MODELS.names())}")
    return MODELS.get(name).config


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
        setattr(cfg, parts[0], coerce(key, value, hints(Config)[parts[0]]))
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
    field_types = hints(type(section))
    if name not in field_types:
        raise ConfigError(f"unknown config key {key!r}; valid keys in {section_name!r}: {', '.join(field_types)}")
    setattr(section, name, coerce(key, value, field_types[name]))


def _switch_model(current: ModelConfig, name: str) -> ModelConfig:
    """A new model section that keeps the values of the fields both models share (e.g. the backbone)."""
    new = model_config_class(name)()
    shared = {f.name for f in dataclasses.fields(new)} & {f.name for f in dataclasses.fields(current)}
    for field_name in shared - {"name"}:
        setattr(new, field_name, getattr(current, field_name))
    return new
