"""The attribute groups of APN's decorrelation loss (torch-free).

The reference decorrelates over its own groups: on CUB the body parts of its ``attri_groups_8.json``, of which
its loss walks the first seven names of ``['head', 'belly', 'breast', 'belly', 'wing', 'tail', 'leg',
'others']`` — so *belly* counts twice, *back* (a part of the file) never and *others* is dropped; on SUN the
dataset's four attribute groups; on AWA2 none. :data:`CUB_BODY_PARTS` states each part as the CUB attribute
types (the name before ``::``) it holds: 97 head, 34 breast, 34 belly, 34 back, 24 wing, 40 tail, 15 leg and
34 other attributes of CUB's 312, as in the reference's file.

>>> names = ["has_bill_shape::dagger", "has_belly_color::red", "has_leg_color::grey", "has_size::small"]
>>> reference_groups(names)          # head, belly, (no breast), belly again, (no wing or tail), leg
[[0], [1], [1], [2]]
"""

from __future__ import annotations

from typing import Sequence

from zslbench.core.errors import DataError

#: CUB's attribute types per body part (APN's ``attri_groups_8.json``, written as attribute types).
CUB_BODY_PARTS: dict[str, tuple[str, ...]] = {
    "head": ("has_bill_shape", "has_head_pattern", "has_eye_color", "has_bill_length", "has_forehead_color",
             "has_nape_color", "has_bill_color", "has_crown_color"),
    "breast": ("has_breast_pattern", "has_breast_color", "has_throat_color"),
    "belly": ("has_underparts_color", "has_belly_color", "has_belly_pattern"),
    "back": ("has_upperparts_color", "has_back_color", "has_back_pattern"),
    "wing": ("has_wing_color", "has_wing_shape", "has_wing_pattern"),
    "tail": ("has_tail_shape", "has_upper_tail_color", "has_under_tail_color", "has_tail_pattern"),
    "leg": ("has_leg_color",),
    "others": ("has_size", "has_shape", "has_primary_color"),
}
#: The parts the reference's loss walks, in its order (``parts[:7]``: belly twice, no back, no others).
REFERENCE_PARTS = ("head", "belly", "breast", "belly", "wing", "tail", "leg")


def body_part(attribute_name: str) -> str:
    """The CUB body part of an attribute name such as ``has_bill_shape::dagger``."""
    kind = attribute_name.split("::", 1)[0]
    for part, kinds in CUB_BODY_PARTS.items():
        if kind in kinds:
            return part
    raise DataError(f"attribute {attribute_name!r} is not a CUB attribute type APN groups into body parts; "
                    "CUB's attributes.txt must name each attribute as has_<part>_<kind>::<value>")


def reference_groups(attribute_names: Sequence[str]) -> list[list[int]]:
    """The groups APN's reference loss walks on CUB, in its order: :data:`REFERENCE_PARTS` as attribute indices
    (a part without attributes is left out)."""
    members: dict[str, list[int]] = {part: [] for part in CUB_BODY_PARTS}
    for index, name in enumerate(attribute_names):
        members[body_part(name)].append(index)
    return [members[part] for part in REFERENCE_PARTS if members[part]]


def decorrelation_groups(dataset: str, attribute_names: Sequence[str], dataset_groups: Sequence[Sequence[int]],
                         form: str, use_groups: bool) -> list[list[int]]:
    """The groups APN decorrelates over: none without ``use_groups`` (then the loss is a Frobenius norm); the
    reference's body parts on CUB with ``form="reference"``; else the dataset's attribute groups.

    >>> decorrelation_groups("SUN", [], [[0, 1], [2]], "reference", True)
    [[0, 1], [2]]
    >>> decorrelation_groups("CUB", ["has_leg_color::red"], [[0]], "reference", False)
    []
    """
    if not use_groups:
        return []
    if form == "reference" and dataset == "CUB":
        return reference_groups(attribute_names)
    return [list(g) for g in dataset_groups if len(g)]
