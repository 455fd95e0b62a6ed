"""The model catalogue: every model, ablation and search space, each registered by the package it belongs to.

A model is one package (``zslbench/svip/``, ``zslbench/baselines/<name>/``) whose ``__init__`` registers,
in one torch-free place, everything about it (timm's pattern):

* a :class:`ModelEntry` — its config class, per-dataset presets and ``--preset`` patches (as data), its
  display name and place in tables, what its batches hold, and a lazy entry point to the ``nn.Module``;
* its named :class:`Ablation` s (config patches; the rows of its paper's ablation table and their labels);
* its search spaces (:func:`register_space`: functions of the resolved config returning :class:`Param` s).

Importing ``zslbench`` imports the model packages (``zslbench/__init__.py``), so the registries are full
wherever they are read, and no registry holds a list of plugin modules. This module imports nothing of
zslbench but the ground floor, and neither torch nor numpy.

Example:
    >>> import zslbench
    >>> entry = MODELS.get("svip")
    >>> entry.display_name, entry.input_kind, entry.config.__name__
    ('SVIP', 'image', 'SVIPConfig')
    >>> [a.name for a in paper_ablations("svip")]
    ['baseline', 'no_patch_selection', 'no_replacement', 'no_js', 'no_word_init']
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Callable, Literal, Mapping, Sequence

from zslbench.core.errors import UserError, unknown_name
from zslbench.core.registry import Registry

if TYPE_CHECKING:  # pragma: no cover - typing only
    import numpy as np

Patch = Mapping[str, Any]
ALL_MODELS = "*"


# --------------------------------------------------------------------------- what a model is built from
@dataclass
class DatasetInfo:
    """What a model needs to know about its dataset, independent of images.

    ``class_attributes`` rows are L2-normalised (``s / (||s|| + 1e-5)`` from ``original_att``).
    Class ids are global (0..C-1); ``seen_classes`` / ``unseen_classes`` are sorted id arrays.
    """

    name: str
    class_attributes: "np.ndarray"  # [C, A] float32
    seen_classes: "np.ndarray"  # [C_s] int64
    unseen_classes: "np.ndarray"  # [C_u] int64
    word_vectors: "np.ndarray"  # [A, D] float32
    attribute_names: list[str] = field(default_factory=list)
    attribute_groups: list[list[int]] = field(default_factory=list)

    @property
    def num_attributes(self) -> int:
        return int(self.class_attributes.shape[1])

    @property
    def num_classes(self) -> int:
        return int(self.class_attributes.shape[0])

    def seen_index(self) -> "np.ndarray":
        """Global class id → index into the seen classes (−1 for unseen classes)."""
        import numpy as np

        lookup = np.full(self.num_classes, -1, dtype=np.int64)
        lookup[self.seen_classes] = np.arange(len(self.seen_classes))
        return lookup


# --------------------------------------------------------------------------- models
@dataclass(frozen=True)
class ReferenceLoop:
    """How a model's reference code runs its training loop: what ``train.quirks=reference`` switches on for
    that model (``train.quirks=clean``, the default loop, is :data:`CLEAN_LOOP`).

    ``recreate_optimizer``: ``phase`` — a new optimizer when the phase changes (warm-up → full), kept across
    epochs (clean); ``full`` — also a new one at every epoch of the full phase; ``every_epoch`` — a new one at
    every epoch of both phases (its moment estimates start from zero each epoch). ``warmup_gradient_buildup``:
    during warm-up only the heads' gradients are zeroed, so the backbone's gradients accumulate over the
    warm-up and pour into the first full step (clean: the backbone is frozen and every gradient is zeroed each
    step). ``shuffle``: the training order is shuffled each epoch. ``anomaly_detection``: autograd anomaly
    detection on (slow; the loss is checked every step).

    >>> CLEAN_LOOP.recreates("full", new_phase=False), ReferenceLoop(recreate_optimizer="full").recreates("full", False)
    (False, True)
    """

    recreate_optimizer: Literal["phase", "full", "every_epoch"] = "phase"
    warmup_gradient_buildup: bool = False
    shuffle: bool = True
    anomaly_detection: bool = False

    def recreates(self, phase: str, new_phase: bool) -> bool:
        """Whether an epoch of ``phase`` starts with a new optimizer (``new_phase``: the phase just began)."""
        if new_phase or self.recreate_optimizer == "every_epoch":
            return True
        return self.recreate_optimizer == "full" and phase == "full"

    def describe(self) -> str:
        """One line: what differs from the clean loop (``--dry-run``, ``zslbench models``)."""
        parts = {"phase": [], "full": ["a new Adam at every full-phase epoch"],
                 "every_epoch": ["a new optimizer at every epoch of both phases"]}[self.recreate_optimizer]
        if self.warmup_gradient_buildup:
            parts.append("warm-up zeroes only the heads' gradients (the backbone's accumulate)")
        if not self.shuffle:
            parts.append("training order not shuffled")
        if self.anomaly_detection:
            parts.append("autograd anomaly detection")
        return "; ".join(parts) or "the clean loop"


#: zslbench's own loop (``train.quirks=clean``).
CLEAN_LOOP = ReferenceLoop()


@dataclass(frozen=True)
class ModelEntry:
    """Everything zslbench needs to know about a model before building it (no torch).

    ``load`` is the lazy entry point: a function of the model's package that imports the model's module (and
    torch) only when called, and returns the ``nn.Module`` class. The class implements the common interface
    (BASELINES.md §4): ``Class(model_cfg, info)``, ``forward(batch)``, ``losses(output, batch)``,
    ``class_scores(output, class_attributes)``, ``param_groups(phase)``.
    """

    name: str
    config: type  # the model's config section: a dataclass derived from zslbench.config.ModelConfig
    load: Callable[[], type]
    display_name: str
    help: str = ""
    #: dataset → config patch: the paper's settings for that dataset (step 2 of the resolution order)
    presets: Mapping[str, Patch] = field(default_factory=dict)
    #: ``--preset`` name → this model's part of that preset (after the generic part)
    preset_patches: Mapping[str, Patch] = field(default_factory=dict)
    #: what a batch holds: decoded images, or region features from the frozen-backbone cache
    input_kind: Literal["image", "features"] = "image"
    #: image geometry: "dataset" = each dataset's transforms (SVIP.md §7), "resize_crop" = Resize→CenterCrop
    image_recipe: Literal["dataset", "resize_crop"] = "dataset"
    #: order of methods in tables (lower first; the proposed method last)
    table_rank: int = 0
    #: how the model's reference code trains (``train.quirks=reference``)
    reference_loop: ReferenceLoop = CLEAN_LOOP
    #: dataset → patch: the reference's separate ZSL configuration (``--preset paper-zsl``), where its published
    #: T1 came from another run than its U/S/H
    zsl_presets: Mapping[str, Patch] = field(default_factory=dict)
    #: the ``eval.mode`` its published numbers were reported in ("" when none)
    paper_mode: str = ""

    def model_class(self) -> type:
        """The ``nn.Module`` class (imports torch and the model's modules)."""
        return self.load()

    def build(self, model_cfg: Any, info: DatasetInfo) -> Any:
        """The model, built from its config section and the dataset."""
        return self.model_class()(model_cfg, info)


MODELS: Registry[ModelEntry] = Registry("model")


def register_model(entry: ModelEntry) -> ModelEntry:
    """Add a model to the catalogue (called by its package's ``__init__``)."""
    MODELS.register(entry.name, help=entry.help)(entry)
    return entry


def model_entry(name: str) -> ModelEntry:
    """The catalogue entry of ``name``; an unknown name is a one-line error listing the models."""
    if not isinstance(name, str) or name not in MODELS:
        raise unknown_name("model", str(name), MODELS.names())
    return MODELS.get(name)


def build_model(cfg: Any, info: DatasetInfo) -> Any:
    """Build the model named by ``cfg.model.name`` from its config section."""
    return model_entry(cfg.model.name).build(cfg.model, info)


# --------------------------------------------------------------------------- ablations
@dataclass(frozen=True)
class Ablation:
    """A named config patch that switches off or replaces one component of a model.

    ``models``: the models it applies to (``("*",)``: every model). ``paper_row``: its position in the
    ablation table of the paper of ``models[0]`` (``None``: a variant, not a paper row); ``label`` is its
    row label there. ``exclusive``: it replaces the model, so it cannot be combined with another ablation.
    """

    name: str
    patch: Patch
    help: str
    models: tuple[str, ...] = (ALL_MODELS,)
    label: str = ""
    paper_row: int | None = None
    exclusive: bool = False

    def applies_to(self, model: str) -> bool:
        return ALL_MODELS in self.models or model in self.models


ABLATIONS: Registry[Ablation] = Registry("ablation")


def register_ablation(ablation: Ablation) -> Ablation:
    """Add an ablation to the catalogue (called by the package of the model it ablates)."""
    ABLATIONS.register(ablation.name, help=ablation.help)(ablation)
    return ablation


def paper_ablations(model: str) -> list[Ablation]:
    """The rows of ``model``'s paper ablation table (without the full model), in the paper's order."""
    rows = [a for a in ABLATIONS.registered() if a.paper_row is not None and a.models and a.models[0] == model]
    return sorted(rows, key=lambda a: a.paper_row)


def ablation_families() -> list[str]:
    """The models that have a paper ablation table, in catalogue order."""
    return [name for name in MODELS.names() if paper_ablations(name)]


def ablation_label(name: str) -> str:
    """The paper-style label of an ablation (its name when it has none)."""
    return ABLATIONS.get(name).label if name in ABLATIONS and ABLATIONS.get(name).label else name


def ablation_patches(names: Sequence[str], model: str) -> list[tuple[str, dict[str, Any]]]:
    """Validate ``--ablate`` names for ``model`` and return their ``(name, patch)`` pairs in order.

    Ablations compose (applied in order); two that set the same key to different values, or an
    exclusive one (it replaces the model) combined with another, are a user error.

    >>> import zslbench
    >>> ablation_patches(["no_js"], model="svip")
    [('no_js', {'model.consistency': 'none'})]
    """
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
    owner: dict[str, tuple[str, Any]] = {}
    for name, patch in pairs:
        for key, value in patch.items():
            if key in owner and owner[key][1] != value:
                raise UserError(f"ablations {owner[key][0]!r} and {name!r} conflict: both set {key} "
                                f"({owner[key][1]!r} vs {value!r}); choose one")
            owner[key] = (name, value)
    return pairs


def display_name(model: str) -> str:
    """How tables name a model (its name when it is not in the catalogue, e.g. an old run's)."""
    return MODELS.get(model).display_name if model in MODELS else model


register_ablation(Ablation(
    "reference_quirks", {"train.quirks": "reference"},
    "train with the model's reference training loop (its catalogue entry's reference_loop: optimizer "
    "re-creation, gradient zeroing, shuffling, anomaly detection as its reference code does)"))


# --------------------------------------------------------------------------- search spaces
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
    label: str = ""  # how tables and plots name it (e.g. "temperature σ")

    def override(self, value: Any) -> str:
        """The ``--set`` form of a sampled value (e.g. ``model.logit_scale=5.0``)."""
        return f"{self.key}={int(value) if self.integer else float(value)!r}"


SpaceFn = Callable[[Any], list[Param]]


@dataclass(frozen=True)
class SearchSpace:
    """A named search space: ``params(cfg)`` for a resolved config; ``key`` is the config key it sweeps
    (empty for unions such as ``all``) and ``label`` how tables name it."""

    name: str
    params: SpaceFn
    help: str
    key: str = ""
    label: str = ""


SPACES: Registry[SearchSpace] = Registry("search space")


def register_space(name: str, help: str, key: str = "", label: str = "") -> Callable[[SpaceFn], SpaceFn]:
    """Decorator: register ``fn(cfg) -> [Param, ...]`` as search space ``name`` (sweeping ``key``)."""

    def decorator(fn: SpaceFn) -> SpaceFn:
        SPACES.register(name, help=help)(SearchSpace(name, fn, help, key, label))
        return fn

    return decorator


def params_for(names: Sequence[str], cfg: Any) -> list[Param]:
    """The parameters of the named spaces for ``cfg`` (duplicates dropped, order kept)."""
    if not names:
        raise UserError(f"name at least one search space; valid choices: {', '.join(SPACES.names())}")
    params: dict[str, Param] = {}
    for name in names:
        if name not in SPACES:
            raise unknown_name("search space", name, SPACES.names())
        for param in SPACES.get(name).params(cfg):
            params.setdefault(param.name, param)
    return list(params.values())


def swept_key(name: str) -> str:
    """The config key a named space sweeps (``temperature`` → ``model.logit_scale``); dotted keys pass."""
    if name in SPACES and SPACES.get(name).key:
        return SPACES.get(name).key
    if "." in name:
        return name
    raise unknown_name("sensitivity parameter", name, [s.name for s in sensitivity_spaces()])


def sensitivity_spaces() -> list[SearchSpace]:
    """The spaces that sweep one config key (not unions), in registration order."""
    return [space for space in SPACES.registered() if space.key]


def key_label(key: str) -> str:
    """How tables name a swept config key (``model.logit_scale`` → ``temperature σ``)."""
    return next((s.label for s in SPACES.registered() if s.key == key and s.label), key)
