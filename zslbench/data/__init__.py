"""Datasets: the xlsa17 reader, image and feature datasets, word vectors, inspection.

Names are re-exported lazily so that ``import zslbench.data.inspect`` (used by the CLI) does not
pull in torch through :mod:`zslbench.data.images`.

>>> from zslbench.data import SPLITS
>>> SPLITS[0]
'trainval'
"""

from __future__ import annotations

import importlib
from typing import Any

_EXPORTS = {
    "SPLITS": "xlsa17", "EXPECTED_COUNTS": "xlsa17", "SplitInfo": "xlsa17", "load_split": "xlsa17",
    "remap_image_path": "xlsa17", "write_split_files": "xlsa17",
    "build_transform": "images", "ImageDataset": "images",
    "FeatureDataset": "features",
    "load_word_vectors": "wordvec",
    "dataset_summary": "inspect", "check_dataset": "inspect", "CheckReport": "inspect",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    if name in _EXPORTS:
        return getattr(importlib.import_module(f"zslbench.data.{_EXPORTS[name]}"), name)
    raise AttributeError(f"module 'zslbench.data' has no attribute {name!r}")
