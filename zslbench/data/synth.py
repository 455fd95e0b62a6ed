"""The synthetic attribute-ZSL benchmark ("synth", PROTOCOL.md §4): a seeded generator.

Every image shows one *creature* built from four parts (head, body, wing, tail). Each part has
attribute groups — colour, shape, pattern and (head, wing, tail) size relative to the body — and a
class is a fixed choice of one value per group. Instances deviate from their class's value with a
small probability per group (like CUB's per-image labels), so the class attribute vector is the
percentage of the class's images that show each attribute value. The creature sits at a random
position and scale on a plain background among *distractor* shapes drawn from the same colour,
shape and pattern vocabulary: a model that pools over every patch sees colours and patterns that
belong to no part of the creature.

The output is an xlsa17 directory (PROTOCOL.md §1) so the real-data reader is what reads it::

    <data_root>/synth/                 (synth-tiny/, synth-paper/ for the other presets)
      att_splits.mat                   att, original_att [A, C]; *_loc 1-based; allclasses_names
      res101.mat                       labels [N, 1] 1-based; image_files [N, 1] (no features)
      attributes.txt                   "1 head colour red" ...
      attribute_groups.json            {"source": ..., "groups": {"head colour": [0, 1, ...], ...}}
      images/<class>/<NNNNN>.png       RGB
      masks/<class>/<NNNNN>.png        uint8: 0 background and clutter, k = part k (1-based, see PARTS)
      synth_meta.json                  version, preset, seed, counts, parts, classes, ...

Generation is deterministic: every image is drawn from its own seed derived from ``(seed, index)``,
so the bytes on disk do not depend on the number of worker processes. It writes into a hidden
sibling directory and renames it into place, so an interrupted run never leaves a partial dataset
under the final name.

Example:
    >>> PRESETS["tiny"].image_size, synth_dir_name("default"), synth_dir_name("tiny")
    (32, 'synth', 'synth-tiny')
    >>> attribute_phrases()[:2]
    ['head colour red', 'head colour green']
"""

from __future__ import annotations

import dataclasses
import io
import json
import os
import shutil
import time
import uuid
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from zslbench.core.faults import fault_point
from zslbench.core.liveness import is_alive
from zslbench.core.errors import DataError, unknown_name

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


# --------------------------------------------------------------------------- the plan
@dataclass
class SynthPlan:
    """Everything about a dataset except the pixels: classes, instances, splits, attributes."""

    preset: SynthPreset
    seed: int
    groups: list[AttributeGroup]
    class_values: np.ndarray  # [C, G] value index per group
    class_names: list[str]
    class_role: list[str]  # "train" | "val" | "unseen"
    labels: np.ndarray  # [N] 0-based class ids (images are ordered class by class)
    instance_values: np.ndarray  # [N, G]
    image_files: list[str]
    locs: dict[str, np.ndarray]  # 0-based, sorted
    original_att: np.ndarray = field(init=False)  # [C, A] percentage of instances with each value

    def __post_init__(self) -> None:
        offsets = group_offsets(self.groups)
        num_attributes = sum(len(g.values) for g in self.groups)
        one_hot = np.zeros((len(self.labels), num_attributes))
        rows = np.arange(len(self.labels))[:, None]
        one_hot[rows, offsets[None, :] + self.instance_values] = 1.0
        counts = np.zeros((len(self.class_names), num_attributes))
        np.add.at(counts, self.labels, one_hot)
        self.original_att = 100.0 * counts / np.bincount(self.labels, minlength=len(self.class_names))[:, None]

    @property
    def counts(self) -> dict[str, int]:
        roles = np.asarray(self.class_role)
        return {
            "classes": len(self.class_names), "seen": int((roles != "unseen").sum()),
            "unseen": int((roles == "unseen").sum()), "attributes": int(self.original_att.shape[1]),
            "images": len(self.labels), **{name: int(len(self.locs[name])) for name in
                                           ("trainval", "train", "val", "test_seen", "test_unseen")},
        }


def plan_dataset(preset: str | SynthPreset = DEFAULT_PRESET, seed: int = 0) -> SynthPlan:
    """Draw classes, the seen/unseen/val split, per-image attribute values and the split indices."""
    preset = get_preset(preset)
    groups = attribute_groups()
    rng = np.random.default_rng(np.random.SeedSequence([seed, 0x5EED]))
    for _attempt in range(100):
        class_values = _draw_classes(preset, groups, rng)
        roles = _assign_roles(preset, groups, class_values, rng)
        if roles is not None:
            break
    else:  # pragma: no cover - only reachable with presets far outside the documented ranges
        raise DataError(f"synth preset {preset.name!r} cannot cover every attribute value with its seen classes; "
                        "use more classes or fewer unseen classes")
    counts = rng.integers(preset.images_per_class[0], preset.images_per_class[1] + 1, size=preset.num_classes)
    labels = np.repeat(np.arange(preset.num_classes), counts)
    instance_values = _draw_instances(class_values[labels], groups, preset.deviation, rng)
    names = [_class_name(i, groups, class_values[i]) for i in range(preset.num_classes)]
    files = [f"images/{names[c]}/{i + 1:05d}.png" for i, c in enumerate(labels)]
    locs = _split_images(labels, roles, preset.test_seen_fraction, rng)
    return SynthPlan(preset, seed, groups, class_values, names, roles, labels, instance_values, files, locs)


def _draw_classes(preset: SynthPreset, groups: Sequence[AttributeGroup], rng: np.random.Generator) -> np.ndarray:
    """Classes in families: a random base combination, each member re-drawing a few groups.

    Families make unseen classes resemble seen ones in most groups (as bird species of one genus
    do), so telling them apart needs the finer attributes, not just the dominant colours.
    """
    sizes = np.array([len(g.values) for g in groups])
    classes: list[np.ndarray] = []
    for _family in range(preset.num_classes * 50):
        if len(classes) == preset.num_classes:
            break
        base = rng.integers(0, sizes)
        members = 0
        for _try in range(preset.family_size * 20):
            if members == preset.family_size or len(classes) == preset.num_classes:
                break
            candidate = base.copy()
            changed = rng.choice(len(groups), size=min(preset.family_variation, len(groups)), replace=False)
            candidate[changed] = rng.integers(0, sizes[changed])
            if all(int((candidate != other).sum()) >= preset.min_distance for other in classes):
                classes.append(candidate)
                members += 1
    if len(classes) < preset.num_classes:  # pragma: no cover - presets far outside the documented ranges
        raise DataError(f"synth preset {preset.name!r} asks for more distinct classes than its attribute groups "
                        "allow; lower num_classes or min_distance")
    return np.stack(classes)


def _support_needed(groups: Sequence[AttributeGroup], num_members: int, min_support: int) -> np.ndarray:
    """Per group: how many member classes each value needs (never more than the members allow)."""
    return np.array([max(1, min(min_support, num_members // len(g.values))) for g in groups])


def _covers(groups: Sequence[AttributeGroup], class_values: np.ndarray, min_support: int = 1) -> bool:
    """Whether every value of every group occurs in (at least ``min_support`` of) ``class_values`` [C, G]."""
    needed = _support_needed(groups, len(class_values), min_support)
    return all(np.bincount(class_values[:, g], minlength=len(group.values)).min() >= needed[g]
               for g, group in enumerate(groups))


def _assign_roles(preset: SynthPreset, groups: Sequence[AttributeGroup], class_values: np.ndarray,
                  rng: np.random.Generator) -> list[str] | None:
    """unseen / val / train per class, so that every attribute value occurs in seen classes.

    Seen classes must show every value at least ``min_support`` times (fewer when there are too
    few seen classes): a value seen in a single class is inseparable from that class's other
    values. Classes leave the train role only while that holds; when too few can (small presets),
    random classes are taken and the remaining combinations repaired. Train-class coverage (for
    the ``val`` protocol) is kept where the class count allows, best effort.
    """
    roles = np.array(["train"] * len(class_values), dtype=object)
    for role, wanted, support, required in (("unseen", preset.num_unseen, preset.min_support, True),
                                            ("val", preset.num_val, 1, False)):
        members = np.flatnonzero(roles == "train")
        needed = _support_needed(groups, len(members) - wanted, support)
        counts = [np.bincount(class_values[members, g], minlength=len(group.values)) for g, group in enumerate(groups)]
        for c in rng.permutation(members):
            if (roles == role).sum() == wanted:
                break
            if all(counts[g][class_values[c, g]] > needed[g] for g in range(len(groups))):
                roles[c] = role
                for g in range(len(groups)):
                    counts[g][class_values[c, g]] -= 1
        missing = wanted - int((roles == role).sum())
        if missing > 0:
            roles[rng.choice(np.flatnonzero(roles == "train"), size=missing, replace=False)] = role
        keep = np.flatnonzero(roles == "train") if not required else np.flatnonzero(roles != "unseen")
        if not _repair_support(class_values, keep, groups, support, preset.min_distance, rng) and required:
            return None
    return list(roles)


def _repair_support(class_values: np.ndarray, members: np.ndarray, groups: Sequence[AttributeGroup],
                    min_support: int, min_distance: int, rng: np.random.Generator) -> bool:
    """Raise rare values among ``members`` to the needed support by changing members whose value is common.

    Changes are made in place and only where every pair of classes stays ``min_distance`` apart.
    """
    needed = _support_needed(groups, len(members), min_support)
    for g, group in enumerate(groups):
        for value in range(len(group.values)):
            while (counts := np.bincount(class_values[members, g], minlength=len(group.values)))[value] < needed[g]:
                for m in rng.permutation(members):
                    if counts[class_values[m, g]] <= needed[g]:
                        continue  # its own value would become rare
                    candidate = class_values[m].copy()
                    candidate[g] = value
                    others = np.delete(class_values, m, axis=0)
                    if (others != candidate).sum(axis=1).min(initial=min_distance) >= min_distance:
                        class_values[m] = candidate
                        break
                else:
                    return False
    return _covers(groups, class_values[members], min_support)


def _draw_instances(values: np.ndarray, groups: Sequence[AttributeGroup], deviation: float,
                    rng: np.random.Generator) -> np.ndarray:
    """Per-image values: the class's, except with probability ``deviation`` per group another one."""
    sizes = np.array([len(g.values) for g in groups])
    deviate = rng.random(values.shape) < deviation
    # adding 1..size-1 (mod size) picks a uniformly random *other* value
    shift = 1 + np.floor(rng.random(values.shape) * (sizes - 1)).astype(np.int64)
    return np.where(deviate, (values + shift) % sizes, values).astype(np.int64)


def _split_images(labels: np.ndarray, roles: Sequence[str], test_seen_fraction: float,
                  rng: np.random.Generator) -> dict[str, np.ndarray]:
    """xlsa17-style locs: per seen class ~80/20 trainval/test_seen; train/val = all images of those classes."""
    trainval, test_seen, test_unseen, train, val = [], [], [], [], []
    for c, role in enumerate(roles):
        images = np.flatnonzero(labels == c)
        if role == "unseen":
            test_unseen.append(images)
            continue
        (train if role == "train" else val).append(images)
        held = int(round(test_seen_fraction * len(images)))
        shuffled = rng.permutation(images)
        test_seen.append(shuffled[:held])
        trainval.append(shuffled[held:])
    def join(parts: list[np.ndarray]) -> np.ndarray:
        return np.sort(np.concatenate(parts)).astype(np.int64) if parts else np.zeros(0, np.int64)

    return {"trainval": join(trainval), "train": join(train), "val": join(val),
            "test_seen": join(test_seen), "test_unseen": join(test_unseen)}


def _class_name(index: int, groups: Sequence[AttributeGroup], values: np.ndarray) -> str:
    """CUB-like folder name, e.g. ``007.red_head_blue_body``."""
    chosen = {g.name: g.values[v] for g, v in zip(groups, values)}
    return f"{index + 1:03d}.{chosen['head colour']}_head_{chosen['body colour']}_body"


# --------------------------------------------------------------------------- drawing
@dataclass(frozen=True)
class Shape:
    """A filled shape in image pixels: centre, half extents, and where a triangle points."""

    kind: str  # round | square | triangle
    cx: float
    cy: float
    rx: float
    ry: float
    point: str = "up"  # triangle apex: up | left | right


#: Part geometry in units of the body's half-width: (side, centre y, half-size small, half-size large).
#: side +1 attaches the part to the front edge of the body, -1 to the back, 0 puts it on top.
_PART_GEOMETRY: dict[str, tuple[int, float, float, float]] = {
    "head": (1, -0.55, 0.40, 0.66),
    "tail": (-1, -0.15, 0.32, 0.58),
    "wing": (0, -0.60, 0.40, 0.68),
}
_BODY_ASPECT = 0.68  # body half-height / half-width
_CREATURE_UNITS = 3.6  # typical creature width in body half-widths
_DRAW_ORDER = ("tail", "body", "wing", "head")  # later parts cover earlier ones


def render_instance(values: Sequence[int], preset: SynthPreset,
                    rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Draw one image: (RGB uint8 [S, S, 3], part mask uint8 [S, S]).

    ``values`` are the instance's value indices, one per attribute group (see :func:`attribute_groups`).
    """
    size = preset.image_size
    image = _background(size, rng)
    for _ in range(int(rng.integers(preset.clutter[0], preset.clutter[1] + 1))):
        _draw_distractor(image, preset, rng)
    mask = np.zeros((size, size), dtype=np.uint8)
    chosen = {g.name: g.values[v] for g, v in zip(attribute_groups(), values)}
    for part, shape in _creature_layout(chosen, preset, rng):
        window, covered = _rasterise(shape, size)
        _paint(image, window, covered, chosen[f"{part} colour"], chosen[f"{part} pattern"], shape, rng)
        mask[window][covered] = PARTS.index(part) + 1
    return image, mask


def _background(size: int, rng: np.random.Generator) -> np.ndarray:
    """A low-saturation grey with a gentle linear gradient."""
    level = rng.uniform(70, 190)
    tint = rng.uniform(-10, 10, size=3)
    ramp = np.linspace(-1, 1, size, dtype=np.float32)
    direction = rng.uniform(-14, 14, size=2)
    gradient = np.float32(direction[0]) * ramp[None, :] + np.float32(direction[1]) * ramp[:, None]
    image = gradient[:, :, None] + (level + tint).astype(np.float32)[None, None, :]
    return np.clip(image, 0, 255).astype(np.uint8)


def _creature_layout(chosen: dict[str, str], preset: SynthPreset, rng: np.random.Generator) -> list[tuple[str, Shape]]:
    """The creature's parts in drawing order, at a random position, scale and facing."""
    size = preset.image_size
    unit = rng.uniform(*preset.creature_width) * size / _CREATURE_UNITS
    facing = 1.0 if rng.random() < 0.5 else -1.0
    local: dict[str, tuple[float, float, float, float]] = {"body": (0.0, 0.0, unit, unit * _BODY_ASPECT)}
    for part, (side, y, small, large) in _PART_GEOMETRY.items():
        half = (large if chosen[f"{part} size"] == "large" else small) * unit
        if side == 0:  # the wing: wider than tall, over the body's upper half
            local[part] = (-0.1 * unit * facing, y * unit, half * 1.25, half * 0.8)
        else:  # head and tail overlap the body's edge by about half their size
            local[part] = (facing * side * (unit + 0.55 * half), y * unit, half, half)
    left = min(x - rx for x, _, rx, _ in local.values())
    right = max(x + rx for x, _, rx, _ in local.values())
    top = min(y - ry for _, y, _, ry in local.values())
    bottom = max(y + ry for _, y, _, ry in local.values())
    margin = 1.0
    cx = rng.uniform(margin - left, max(margin - left, size - 1 - margin - right))
    cy = rng.uniform(margin - top, max(margin - top, size - 1 - margin - bottom))
    points = {"head": "right" if facing > 0 else "left", "tail": "left" if facing > 0 else "right",
              "wing": "up", "body": "up"}
    return [(part, Shape(chosen[f"{part} shape"], cx + local[part][0], cy + local[part][1],
                         local[part][2], local[part][3], points[part])) for part in _DRAW_ORDER]


def _draw_distractor(image: np.ndarray, preset: SynthPreset, rng: np.random.Generator) -> None:
    """One clutter shape with a colour, shape and pattern from the creatures' vocabulary."""
    size = preset.image_size
    half = rng.uniform(*preset.clutter_size) * size
    aspect = rng.uniform(0.7, 1.3)
    shape = Shape(SHAPES[rng.integers(len(SHAPES))], rng.uniform(0, size), rng.uniform(0, size),
                  half * aspect, half / aspect, ("up", "left", "right")[rng.integers(3)])
    colour = tuple(COLOURS)[rng.integers(len(COLOURS))]
    window, covered = _rasterise(shape, size)
    _paint(image, window, covered, colour, PATTERNS[rng.integers(len(PATTERNS))], shape, rng)


Window = tuple[slice, slice]


def _rasterise(shape: Shape, size: int) -> tuple[Window, np.ndarray]:
    """Where ``shape`` lies: (row and column slices of the image, bool coverage inside that window).

    PIL's rasteriser (no anti-aliasing) draws into a canvas the size of the shape's bounding box,
    clipped to the image, so the cost does not grow with the image.
    """
    from PIL import Image, ImageDraw

    left, top = max(0, int(np.floor(shape.cx - shape.rx)) - 1), max(0, int(np.floor(shape.cy - shape.ry)) - 1)
    right = min(size, int(np.ceil(shape.cx + shape.rx)) + 2)
    bottom = min(size, int(np.ceil(shape.cy + shape.ry)) + 2)
    window = (slice(top, max(top, bottom)), slice(left, max(left, right)))
    if right <= left or bottom <= top:
        return window, np.zeros((max(0, bottom - top), max(0, right - left)), dtype=bool)
    canvas = Image.new("L", (right - left, bottom - top), 0)
    draw = ImageDraw.Draw(canvas)
    cx, cy = shape.cx - left, shape.cy - top
    x0, y0, x1, y1 = cx - shape.rx, cy - shape.ry, cx + shape.rx, cy + shape.ry
    if shape.kind == "round":
        draw.ellipse((x0, y0, x1, y1), fill=1)
    elif shape.kind == "square":
        draw.rectangle((x0, y0, x1, y1), fill=1)
    else:
        apex = {"up": [(cx, y0), (x1, y1), (x0, y1)],
                "right": [(x1, cy), (x0, y1), (x0, y0)],
                "left": [(x0, cy), (x1, y0), (x1, y1)]}[shape.point]
        draw.polygon(apex, fill=1)
    return window, np.asarray(canvas, dtype=bool)


def _paint(image: np.ndarray, window: Window, covered: np.ndarray, colour: str, pattern: str, shape: Shape,
           rng: np.random.Generator) -> None:
    """Fill ``covered`` (inside ``window``) with a jittered ``colour``; stripes/spots in a darker shade."""
    base = np.clip(np.asarray(COLOURS[colour], dtype=np.float64) + rng.normal(0, 8, size=3), 0, 255)
    region = image[window]  # a view: writes go to the image
    if pattern == "plain":
        region[covered] = base.astype(np.uint8)
        return
    period = max(2, int(round(min(shape.rx, shape.ry) * 0.55)))
    # pattern phase is anchored at the shape's centre, so it moves with the shape
    dx = np.arange(window[1].start, window[1].stop)[None, :] - int(shape.cx)
    dy = np.arange(window[0].start, window[0].stop)[:, None] - int(shape.cy)
    if pattern == "striped":
        marked = np.broadcast_to((np.floor_divide(dx, period) % 2) == 1, covered.shape)
    else:  # spotted: a grid of square dots one period wide, two periods apart
        marked = ((dx % (2 * period)) < period) & ((dy % (2 * period)) < period)
    colours = np.where(marked[..., None], (base * 0.45).astype(np.uint8), base.astype(np.uint8))
    region[covered] = colours[covered]


def instance_rng(seed: int, index: int) -> np.random.Generator:
    """The random stream of image ``index`` (independent of how images are split among workers)."""
    return np.random.default_rng(np.random.SeedSequence([seed, index, 0xD2A3]))


# --------------------------------------------------------------------------- writing
def _save_png(array: np.ndarray, path: Path) -> None:
    from PIL import Image

    # fixed options and no metadata: the same array always gives the same bytes
    Image.fromarray(array).save(path, format="PNG", optimize=False, compress_level=6)


def _render_chunk(job: tuple[str, dict[str, Any], int, list[tuple[int, str, list[int]]]]) -> int:
    """Render and write a batch of images and masks (runs in a worker process)."""
    directory, preset_params, seed, items = job
    preset = SynthPreset(**{k: tuple(v) if isinstance(v, list) else v for k, v in preset_params.items()})
    root = Path(directory)
    for index, relative, values in items:
        image, mask = render_instance(values, preset, instance_rng(seed, index))
        _save_png(image, root / relative)
        _save_png(mask, root / "masks" / Path(*Path(relative).parts[1:]))
    return len(items)


def savemat_deterministic(path: Path, content: dict[str, Any]) -> None:
    """``scipy.io.savemat`` with a fixed header text (scipy writes the creation time into it)."""
    import scipy.io

    buffer = io.BytesIO()
    scipy.io.savemat(buffer, content, do_compression=True, oned_as="column")
    data = bytearray(buffer.getvalue())
    header = b"MATLAB 5.0 MAT-file, written by the zslbench synthetic benchmark generator"
    data[:116] = header.ljust(116, b" ")  # the 116-byte description field of the MAT v5 header
    path.write_bytes(bytes(data))


def _cell(strings: Sequence[str]) -> np.ndarray:
    cell = np.empty((len(strings), 1), dtype=object)
    for i, text in enumerate(strings):
        cell[i, 0] = text
    return cell


def write_tables(plan: SynthPlan, directory: Path) -> None:
    """Split files, attribute names/groups and the meta file (everything but the pixels)."""
    original = plan.original_att.T  # [A, C]
    norms = np.linalg.norm(original, axis=0, keepdims=True)
    content: dict[str, Any] = {"att": original / np.maximum(norms, 1e-12), "original_att": original,
                               "allclasses_names": _cell(plan.class_names)}
    for name in ("trainval", "train", "val", "test_seen", "test_unseen"):
        content[f"{name}_loc"] = (plan.locs[name] + 1).astype(np.float64).reshape(-1, 1)
    savemat_deterministic(directory / "att_splits.mat", content)
    savemat_deterministic(directory / "res101.mat", {
        "labels": (plan.labels + 1).astype(np.float64).reshape(-1, 1), "image_files": _cell(plan.image_files)})
    phrases = [p for g in plan.groups for p in g.phrases()]
    (directory / "attributes.txt").write_text("".join(f"{i + 1} {p}\n" for i, p in enumerate(phrases)),
                                              encoding="utf-8")
    offsets = group_offsets(plan.groups)
    groups = {g.name: list(range(int(o), int(o) + len(g.values))) for g, o in zip(plan.groups, offsets)}
    source = f"zslbench synthetic benchmark generator v{GENERATOR_VERSION}: one group per (part, property)"
    (directory / "attribute_groups.json").write_text(json.dumps({"source": source, "groups": groups}, indent=1) + "\n",
                                                     encoding="utf-8")
    (directory / META_FILE).write_text(json.dumps(_meta(plan), indent=1) + "\n", encoding="utf-8")


def _meta(plan: SynthPlan) -> dict[str, Any]:
    return {
        "generator": "zslbench.data.synth",
        "version": GENERATOR_VERSION,
        "preset": plan.preset.name,
        "seed": plan.seed,
        "params": plan.preset.params(),
        "image_size": plan.preset.image_size,
        "clutter": plan.preset.has_clutter,
        "parts": list(PARTS),
        "mask_values": {"0": "background or clutter", **{str(i + 1): p for i, p in enumerate(PARTS)}},
        "groups": {g.name: list(g.values) for g in plan.groups},
        "counts": plan.counts,
        "classes": [{"name": name, "role": role, "images": int((plan.labels == c).sum()),
                     "attributes": {g.name: g.values[v] for g, v in zip(plan.groups, plan.class_values[c])}}
                    for c, (name, role) in enumerate(zip(plan.class_names, plan.class_role))],
    }


def default_workers(num_images: int) -> int:
    """Worker processes: one per core, but no pool for small sets (start-up would dominate)."""
    return max(1, min(os.cpu_count() or 1, 8, num_images // 400))


def _render_all(plan: SynthPlan, directory: Path, workers: int) -> None:
    for name in plan.class_names:
        (directory / "images" / name).mkdir(parents=True, exist_ok=True)
        (directory / "masks" / name).mkdir(parents=True, exist_ok=True)
    items = [(i, plan.image_files[i], [int(v) for v in plan.instance_values[i]]) for i in range(len(plan.labels))]
    chunk = 64
    jobs = [(str(directory), plan.preset.params(), plan.seed, items[s:s + chunk]) for s in range(0, len(items), chunk)]
    if workers <= 1:
        for job in jobs:
            _render_chunk(job)
            fault_point("synth_image")
        return
    pool = ProcessPoolExecutor(max_workers=workers)
    try:
        for _done in pool.map(_render_chunk, jobs):
            fault_point("synth_image")
    except BaseException:
        pool.shutdown(wait=True, cancel_futures=True)  # stop queued chunks before the caller cleans up
        raise
    pool.shutdown(wait=True)


# --------------------------------------------------------------------------- generate / ensure
@dataclass(frozen=True)
class SynthResult:
    """Where a dataset was written, its counts, and whether it was generated now or reused."""

    directory: Path
    counts: dict[str, int]
    generated: bool
    seconds: float


def generate_synth(data_root: str | Path, preset: str | SynthPreset = DEFAULT_PRESET, seed: int = 0,
                   workers: int | None = None, force: bool = False, console: Any = None) -> SynthResult:
    """Write ``<data_root>/<synth_dir_name(preset)>/``; reuse a complete matching one unless ``force``."""
    preset = get_preset(preset)
    root = Path(data_root).expanduser()
    final = root / synth_dir_name(preset)
    start = time.perf_counter()
    meta = read_meta(final)
    if not force and meta is not None and meta_matches(meta, preset, seed) and is_complete(final, meta):
        return SynthResult(final, dict(meta["counts"]), False, time.perf_counter() - start)
    try:
        root.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise DataError(f"cannot create the data root {str(root)!r} ({exc.strerror or exc}); "
                        "pass a writable directory with --out (or set $ZSLBENCH_DATA)") from None
    _remove_abandoned(root, final.name)
    plan = plan_dataset(preset, seed)
    if console is not None:
        console.print(f"generating the synthetic benchmark (preset {preset.name}, seed {seed}, "
                      f"{len(plan.labels):,} images) into {final}", soft_wrap=True, highlight=False)
    temporary = root / f".{final.name}.tmp-{os.getpid()}-{uuid.uuid4().hex[:8]}"
    try:
        temporary.mkdir()
        _render_all(plan, temporary, workers or default_workers(len(plan.labels)))
        write_tables(plan, temporary)  # the meta file last: its presence marks a complete directory
        meta = read_meta(final)
        if not force and meta is not None and meta_matches(meta, preset, seed) and is_complete(final, meta):
            shutil.rmtree(temporary)  # another process finished the same dataset meanwhile: keep its files
        else:
            _move_into_place(temporary, final)
    except OSError as exc:  # disk full, permissions, ...: the user can fix these
        shutil.rmtree(temporary, ignore_errors=True)
        raise DataError(f"writing the synthetic benchmark under {str(root)!r} failed ({exc.strerror or exc}); "
                        "free disk space or pass a writable directory with --out") from None
    except BaseException:
        shutil.rmtree(temporary, ignore_errors=True)
        raise
    return SynthResult(final, plan.counts, True, time.perf_counter() - start)


def _remove_abandoned(root: Path, name: str) -> None:
    """Delete temporary folders of generations whose process died (killed mid-way)."""
    for leftover in root.glob(f".{name}.tmp-*-*"):
        pid = leftover.name[len(f".{name}.tmp-"):].split("-")[0]
        if pid.isdigit() and not is_alive(int(pid)):
            shutil.rmtree(leftover, ignore_errors=True)


def _move_into_place(temporary: Path, final: Path) -> None:
    """Rename ``temporary`` to ``final``; an existing ``final`` is renamed away first, then deleted."""
    old = None
    if final.exists():
        old = final.with_name(f".{final.name}.old-{os.getpid()}-{uuid.uuid4().hex[:8]}")
        final.rename(old)
    temporary.rename(final)
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)


def ensure_synth(data_root: str | Path, preset: str | SynthPreset = DEFAULT_PRESET, seed: int = 0,
                 console: Any = None) -> Path:
    """The directory of the synthetic benchmark, generated on first use (or when its meta differs)."""
    result = generate_synth(data_root, preset, seed, console=console)
    if console is not None and result.generated:
        console.print(f"generated {result.counts['images']:,} images in {result.seconds:.1f} s")
    return result.directory


def read_meta(directory: str | Path) -> dict[str, Any] | None:
    """The parsed ``synth_meta.json`` of ``directory`` (None when absent or unreadable)."""
    path = Path(directory) / META_FILE
    try:
        meta = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return meta if isinstance(meta, dict) else None


def meta_matches(meta: dict[str, Any], preset: SynthPreset, seed: int) -> bool:
    """Whether ``meta`` describes exactly this generator version, preset (all parameters) and seed."""
    return (meta.get("version") == GENERATOR_VERSION and meta.get("preset") == preset.name
            and meta.get("seed") == seed and meta.get("params") == preset.params())


def is_complete(directory: Path, meta: dict[str, Any]) -> bool:
    """The split files exist and every class folder holds its images and masks (cheap: no decoding)."""
    if not all((directory / name).is_file() for name in ("att_splits.mat", "res101.mat", "attributes.txt")):
        return False
    for entry in meta.get("classes", []):
        for kind in ("images", "masks"):
            folder = directory / kind / str(entry.get("name", ""))
            try:
                if len(os.listdir(folder)) != entry.get("images"):
                    return False
            except OSError:
                return False
    return True


def print_synth_summary(result: SynthResult, console: Any) -> None:
    """A short rich summary: where, what (counts), and how long it took."""
    from rich.table import Table

    meta = read_meta(result.directory) or {}
    action = "generated" if result.generated else "already present (same preset, seed and version; --force regenerates)"
    console.print(f"[bold]synth[/bold] preset {meta.get('preset', '?')}, seed {meta.get('seed', '?')}: {action}",
                  soft_wrap=True)
    console.print(f"path: {result.directory}", soft_wrap=True, highlight=False)
    c = result.counts
    table = Table("", "count", box=None)
    table.add_row("classes (seen / unseen)", f"{c.get('classes', 0):,} ({c.get('seen', 0)} / {c.get('unseen', 0)})")
    for key in ("attributes", "images", "trainval", "train", "val", "test_seen", "test_unseen"):
        table.add_row(key, f"{c.get(key, 0):,}")
    console.print(table)
    console.print(f"image size {meta.get('image_size', '?')} px, parts {', '.join(meta.get('parts', []))}, "
                  f"clutter {'on' if meta.get('clutter') else 'off'}; {result.seconds:.1f} s", soft_wrap=True)
