"""One loaded xlsa17 dataset (:class:`SplitInfo`): class attributes, per-image labels and paths, 0-based splits."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from zslbench.core.errors import DataError
from zslbench.data.xlsa17.layout import ATT_SPLITS, SENT_SPLITS, SPLITS


@dataclass(frozen=True, eq=False)
class SplitInfo:
    """One loaded xlsa17 dataset: class attributes, per-image labels/paths and 0-based splits.

    Class ids are global (rows of ``allclasses_names``); ``locs[name]`` index ``labels`` and
    ``image_files``.
    """

    dataset: str
    directory: Path
    class_names: list[str]
    att: np.ndarray  # [C, A] float32, xlsa17 `att` transposed (L2-normalised per class)
    original_att: np.ndarray  # [C, A] float32, negative ("missing") values clipped to 0
    class_attributes: np.ndarray  # [C, A] float32, original_att rows / (norm + 1e-5)
    labels: np.ndarray  # [N] int64, 0-based global class ids
    image_files: list[str]  # [N] paths relative to the image root, starting at the anchor
    locs: dict[str, np.ndarray]  # split name → 0-based int64 image indices
    seen_classes: np.ndarray  # sorted int64: classes of trainval
    unseen_classes: np.ndarray  # sorted int64: classes of test_unseen
    attribute_names: list[str]
    attribute_groups: dict[str, list[int]]
    has_features: bool
    image_root: Path | None = None  # None → the dataset directory
    source_files: dict[str, str] = field(default_factory=dict)  # role → file name actually read

    # ---------------------------------------------------------------- sizes
    @property
    def num_classes(self) -> int:
        return int(self.att.shape[0])

    @property
    def num_attributes(self) -> int:
        return int(self.att.shape[1])

    @property
    def num_images(self) -> int:
        return int(self.labels.shape[0])

    # ---------------------------------------------------------------- splits
    def has_split(self, name: str) -> bool:
        """Whether split ``name`` exists for this dataset (``train``/``val`` may be absent)."""
        return name in self.locs

    def split(self, name: str) -> np.ndarray:
        """0-based image indices of split ``name`` (one of :data:`SPLITS`)."""
        if name not in SPLITS:
            raise DataError(f"unknown split {name!r}; valid splits: {', '.join(SPLITS)}")
        if name not in self.locs:
            raise DataError(
                f"dataset {self.dataset} has no {name!r} split ({name}_loc is absent from {ATT_SPLITS}"
                f"{' and ' + SENT_SPLITS if self.dataset == 'CUB' else ''}); use an xlsa17 v2 split file that has it")
        return self.locs[name]

    def split_labels(self, name: str) -> np.ndarray:
        """Global class ids of the images of split ``name``."""
        return self.labels[self.split(name)]

    # ---------------------------------------------------------------- images
    def image_path(self, i: int, image_root: str | Path | None = None) -> Path:
        """Where image ``i`` lives: ``<image root>/<image_files[i]>`` (default root: the dataset directory)."""
        root = Path(image_root) if image_root is not None else (self.image_root or self.directory)
        return root / self.image_files[int(i)]

    # ---------------------------------------------------------------- identity
    def fingerprint(self) -> str:
        """sha256 over split indices, labels, class attributes and class names (stable across loads)."""
        digest = hashlib.sha256()
        for name in SPLITS:
            if name in self.locs:
                digest.update(name.encode())
                digest.update(np.ascontiguousarray(self.locs[name], dtype="<i8").tobytes())
        digest.update(np.ascontiguousarray(self.labels, dtype="<i8").tobytes())
        digest.update(np.ascontiguousarray(self.class_attributes, dtype="<f4").tobytes())
        digest.update("\n".join(self.class_names).encode())
        return digest.hexdigest()

    # ---------------------------------------------------------------- validation protocol
    def val_protocol(self, seen_holdout: float = 0.0, seed: int = 0) -> dict[str, np.ndarray]:
        """Images and classes of the ``val`` calibration protocol (γ and epoch selection on val).

        ``train_classes`` = classes of ``train_loc``; ``val_classes`` = classes of ``val_loc``
        (they act as unseen). xlsa17 quirk: ``train_loc ∪ val_loc`` equals ``trainval ∪ test_seen``,
        i.e. it also covers the *test_seen* images, so both image sets are intersected with
        trainval here — no test image is ever used for validation.

        Returns ``train`` (trainval images of train classes), ``val_unseen`` (val_loc ∩ trainval)
        and ``val_seen``: when ``seen_holdout`` > 0, that fraction of each train class's images,
        drawn with ``seed``, is moved from ``train`` to ``val_seen`` (empty otherwise).
        """
        if not (self.has_split("train") and self.has_split("val")):
            raise DataError(
                f"dataset {self.dataset} has no train_loc/val_loc, so the 'val' protocol is unavailable; "
                "use eval.gamma_policy/selection other than 'val' or a split file with train_loc and val_loc")
        if not 0.0 <= seen_holdout < 1.0:
            raise DataError(f"seen_holdout must be in [0, 1), got {seen_holdout}")
        trainval = self.split("trainval")
        train_classes = np.unique(self.labels[self.split("train")])
        val_classes = np.unique(self.labels[self.split("val")])
        train = trainval[np.isin(self.labels[trainval], train_classes)]
        val_unseen = np.intersect1d(self.split("val"), trainval)
        val_seen = np.zeros(0, dtype=np.int64)
        if seen_holdout > 0:
            rng = np.random.default_rng(seed)
            held = [rng.permutation(members)[: int(round(seen_holdout * len(members)))]
                    for members in (train[self.labels[train] == c] for c in train_classes)]
            val_seen = np.sort(np.concatenate(held)).astype(np.int64)
            train = np.setdiff1d(train, val_seen)
        return {"train_classes": train_classes.astype(np.int64), "val_classes": val_classes.astype(np.int64),
                "train": train.astype(np.int64), "val_unseen": val_unseen.astype(np.int64), "val_seen": val_seen}

    def dataset_info(self, word_vectors: np.ndarray, name: str | None = None):
        """The model-facing :class:`zslbench.catalogue.DatasetInfo` of this split, with the attributes'
        ``word_vectors`` [A, D]; ``name`` replaces the directory's name (a run passes its config's)."""
        from zslbench.catalogue import DatasetInfo

        return DatasetInfo(name=name or self.dataset, class_attributes=self.class_attributes,
                           seen_classes=self.seen_classes, unseen_classes=self.unseen_classes,
                           word_vectors=np.asarray(word_vectors, dtype=np.float32),
                           attribute_names=list(self.attribute_names),
                           attribute_groups=[list(v) for v in self.attribute_groups.values()])
