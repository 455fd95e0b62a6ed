"""Precomputed xlsa17 ResNet-101 features (``res101.mat`` ``features`` [2048, N]) as a torch Dataset.

The features are optional: image models never need them, and the redistributed class-level files
(``res101_meta.npz``) do not carry them. Items are ``{"features": float32 [2048], "label": int64,
"index": int64}``. The matrix is read once per file and kept for the process.
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from typing import Sequence

import numpy as np
import torch
from torch.utils.data import Dataset

from zslbench.data.xlsa17 import RES101, SplitInfo, check_mat_elements
from zslbench.core.errors import DataError


@lru_cache(maxsize=2)
def _feature_matrix(path: str, num_images: int) -> torch.Tensor:
    import scipy.io

    check_mat_elements(Path(path), ["features"])  # a damaged element tag crashes scipy's reader (SIGSEGV)
    try:
        mat = scipy.io.loadmat(path, variable_names=["features"])
    except Exception as exc:
        raise DataError(f"{path} is unreadable or corrupt ({exc.__class__.__name__}); re-download xlsa17") from None
    if "features" not in mat:
        raise DataError(f"{path} lacks the field 'features'; re-download xlsa17 (res101.mat)")
    features = np.asarray(mat["features"])
    if features.ndim != 2 or num_images not in features.shape:
        raise DataError(f"{path}: features have shape {features.shape}, expected [D, {num_images}]; re-download it")
    if features.shape[1] != num_images:  # some copies store [N, D]
        features = features.T
    return torch.from_numpy(np.ascontiguousarray(features.T, dtype=np.float32))


class FeatureDataset(Dataset):
    """ResNet-101 features of ``split``'s images at ``indices`` (0-based positions in the image list)."""

    def __init__(self, split: SplitInfo, indices: Sequence[int] | np.ndarray) -> None:
        path = Path(split.directory) / RES101
        if not split.has_features or not path.is_file():
            raise DataError(
                f"dataset {split.dataset} has no ResNet-101 features ({path} with a 'features' field); they are "
                "optional and only needed for feature models: get res101.mat with "
                "`zslbench data fetch xlsa17 --data-root DIR`, or use an image model")
        self.split = split
        self.indices = np.asarray(indices, dtype=np.int64).ravel()
        self.features = _feature_matrix(str(path), split.num_images)
        self.labels = torch.from_numpy(split.labels[self.indices].copy())

    @property
    def dim(self) -> int:
        return int(self.features.shape[1])

    def __len__(self) -> int:
        return len(self.indices)

    def __getitem__(self, position: int) -> dict[str, torch.Tensor]:
        index = int(self.indices[position])
        return {"features": self.features[index], "label": self.labels[position],
                "index": torch.tensor(index, dtype=torch.int64)}
