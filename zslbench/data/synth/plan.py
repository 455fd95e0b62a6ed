"""The plan of a synthetic benchmark — everything but the pixels: classes (drawn in families), the
seen/unseen/val split that covers every attribute value with seen classes, per-image attribute values,
and the xlsa17 split indices.

>>> plan = plan_dataset("tiny", seed=0)
>>> plan.counts["classes"], plan.counts["unseen"]
(10, 3)
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Sequence

import numpy as np

from zslbench.core.errors import DataError
from zslbench.data.synth.presets import (DEFAULT_PRESET, AttributeGroup, SynthPreset, attribute_groups, get_preset,
                                         group_offsets)


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
