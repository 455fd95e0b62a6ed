"""Image paths of an xlsa17 image list, cut at the dataset's anchor and kept relative to an image root.

Example:
    >>> remap_image_path("/BS/xian/work/data/CUB_200_2011/images/001.Black_footed_Albatross/a.jpg", "CUB")
    'CUB_200_2011/images/001.Black_footed_Albatross/a.jpg'
    >>> remap_image_path("Animals_with_Attributes2//JPEGImages/antelope/antelope_10001.jpg", "AWA2")
    'Animals_with_Attributes2/JPEGImages/antelope/antelope_10001.jpg'
"""

from __future__ import annotations

import re

from zslbench.core.errors import DataError
from zslbench.data.xlsa17.layout import layout_name

#: Where each dataset's image paths start (relative to the image root). Tried in order.
ANCHORS: dict[str, tuple[str, ...]] = {
    "CUB": ("CUB_200_2011/images/",),
    "AWA2": ("Animals_with_Attributes2/JPEGImages/",),
    "AWA1": ("Animals_with_Attributes/JPEGImages/",),
    "SUN": ("images/",),
    "synth": ("images/",),
}


def remap_image_path(path: str, dataset: str) -> str:
    """Cut an xlsa17 image path at the dataset's anchor, keeping the anchor (see :data:`ANCHORS`).

    Slashes are normalised (``\\`` → ``/``, runs of ``/`` collapsed). Paths without an anchor
    stay as they are when relative; an absolute path without the anchor of a known dataset is an error.
    """
    text = re.sub(r"/{2,}", "/", str(path).strip().replace("\\", "/"))
    while text.startswith("./"):
        text = text[2:]
    layout = layout_name(dataset)
    anchors = ANCHORS.get(layout) or tuple(dict.fromkeys(a for group in ANCHORS.values() for a in group))
    bounded = "/" + text
    for anchor in anchors:
        # the last occurrence on a path-component boundary: robust to the same folder name higher up
        position = bounded.rfind("/" + anchor)
        if position >= 0:
            return text[position:]
    if text.startswith("/") and layout in ANCHORS:
        raise DataError(f"image path {path!r} does not contain {dataset}'s anchor {ANCHORS[layout][0]!r}; "
                        "the image list is not from this dataset, re-download res101.mat")
    return text
