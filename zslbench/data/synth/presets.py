"""What a synthetic benchmark is made of: the creatures' vocabulary (parts, colours, shapes, patterns,
sizes), its attribute groups, and the size presets.

>>> PRESETS["tiny"].image_size, synth_dir_name("default"), synth_dir_name("tiny")
(32, 'synth', 'synth-tiny')
>>> attribute_phrases()[:2]
['head colour red', 'head colour green']
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any, Sequence

import numpy as np

from zslbench.core.errors import unknown_name

#: Bump when the output for a given (preset, seed) changes; existing directories are then regenerated.
GENERATOR_VERSION = 1
META_FILE = "synth_meta.json"
DEFAULT_PRESET = "default"

# --------------------------------------------------------------------------- vocabulary
#: Mask value k (1-based) = PARTS[k - 1].
PARTS: tuple[str, ...] = ("head", "body", "wing", "tail")
#: Part colours (RGB). The background is a low-saturation grey, never one of these.
COLOURS: dict[str, tuple[int, int, int]] = {
    "red": (215, 35, 35),
    "green": (40, 165, 55),
    "blue": (40, 80, 215),
    "yellow": (235, 210, 35),
    "purple": (145, 55, 185),
    "orange": (245, 135, 25),
}
SHAPES: tuple[str, ...] = ("round", "square", "triangle")
PATTERNS: tuple[str, ...] = ("plain", "striped", "spotted")
SIZES: tuple[str, ...] = ("small", "large")
#: Which properties each part has (the body sets the scale, so it has no size).
PART_PROPERTIES: dict[str, tuple[str, ...]] = {
    "head": ("colour", "shape", "pattern", "size"),
    "body": ("colour", "shape", "pattern"),
    "wing": ("colour", "shape", "pattern", "size"),
    "tail": ("colour", "shape", "pattern", "size"),
}
PROPERTY_VALUES: dict[str, tuple[str, ...]] = {
    "colour": tuple(COLOURS), "shape": SHAPES, "pattern": PATTERNS, "size": SIZES,
}


@dataclass(frozen=True)
class AttributeGroup:
    """One (part, property) pair, e.g. head colour; its values are mutually exclusive per instance."""

    part: str
    prop: str
    values: tuple[str, ...]

    @property
    def name(self) -> str:
        return f"{self.part} {self.prop}"

    def phrases(self) -> list[str]:
        return [f"{self.name} {value}" for value in self.values]


def attribute_groups() -> list[AttributeGroup]:
    """The attribute groups in attribute order (part by part, property by property)."""
    return [AttributeGroup(part, prop, PROPERTY_VALUES[prop]) for part in PARTS for prop in PART_PROPERTIES[part]]


def attribute_phrases() -> list[str]:
    """The A attribute names: plain English phrases, e.g. ``"wing pattern striped"``."""
    return [phrase for group in attribute_groups() for phrase in group.phrases()]


def group_offsets(groups: Sequence[AttributeGroup]) -> np.ndarray:
    """Index of each group's first attribute (attributes are the groups' values, concatenated)."""
    sizes = [len(g.values) for g in groups]
    return np.concatenate([[0], np.cumsum(sizes)[:-1]]).astype(np.int64)


# --------------------------------------------------------------------------- presets
@dataclass(frozen=True)
class SynthPreset:
    """Size and difficulty of a generated benchmark (see :data:`PRESETS`)."""

    name: str
    image_size: int
    num_classes: int
    num_unseen: int
    num_val: int  # seen classes that act as unseen in the `val` protocol (val_loc)
    images_per_class: tuple[int, int]  # inclusive range, drawn per class
    family_size: int = 4  # classes are drawn in families sharing most values (like bird genera)
    family_variation: int = 5  # groups re-drawn per family member
    min_distance: int = 3  # any two classes differ in at least this many groups
    min_support: int = 3  # every attribute value occurs in at least this many seen classes (where possible)
    deviation: float = 0.08  # per instance and group: probability of a value other than the class's
    creature_width: tuple[float, float] = (0.5, 0.8)  # creature width as a fraction of the image
    clutter: tuple[int, int] = (3, 6)  # distractor shapes per image (inclusive range)
    clutter_size: tuple[float, float] = (0.05, 0.11)  # distractor half-size as a fraction of the image
    test_seen_fraction: float = 0.2  # of each seen class's images, held out as test_seen

    @property
    def has_clutter(self) -> bool:
        return self.clutter[1] > 0

    def without_clutter(self) -> "SynthPreset":
        """The same benchmark with no distractors (its own directory: ``<name>-noclutter``)."""
        return dataclasses.replace(self, name=f"{self.name}-noclutter", clutter=(0, 0))

    def params(self) -> dict[str, Any]:
        return {k: list(v) if isinstance(v, tuple) else v for k, v in dataclasses.asdict(self).items()}


#: Named presets: ``tiny`` for tests (seconds), ``default`` for ``zslbench run`` on a CPU (minutes),
#: ``paper`` for GPU-scale runs at 224 px.
PRESETS: dict[str, SynthPreset] = {
    "tiny": SynthPreset("tiny", image_size=32, num_classes=10, num_unseen=3, num_val=2,
                        images_per_class=(20, 30), family_size=2, clutter=(2, 3), clutter_size=(0.06, 0.12)),
    "default": SynthPreset("default", image_size=64, num_classes=40, num_unseen=10, num_val=8,
                           images_per_class=(65, 85)),
    "paper": SynthPreset("paper", image_size=224, num_classes=100, num_unseen=25, num_val=20,
                         images_per_class=(80, 120), clutter=(4, 8), clutter_size=(0.04, 0.09)),
}


def get_preset(preset: str | SynthPreset) -> SynthPreset:
    """A preset by name (or the preset itself); unknown names raise a one-line UserError."""
    if isinstance(preset, SynthPreset):
        return preset
    if preset not in PRESETS:
        raise unknown_name("synth preset", str(preset), PRESETS)
    return PRESETS[preset]


def synth_dir_name(preset: str | SynthPreset = DEFAULT_PRESET) -> str:
    """Dataset directory name: ``synth`` for ``default``, ``synth-<preset>`` otherwise.

    >>> synth_dir_name("paper"), synth_dir_name(PRESETS["default"].without_clutter())
    ('synth-paper', 'synth-default-noclutter')
    """
    name = get_preset(preset).name
    return "synth" if name == DEFAULT_PRESET else f"synth-{name}"
