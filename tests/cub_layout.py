"""A CUB data root for tests: the real class-level CUB files (all 200 classes, 312 attributes, real word
vectors and attribute groups) restricted to a few images per class, each image a small stand-in JPEG written
at its real relative path (``CUB_200_2011/images/<class>/<file>.jpg``)."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np


def subset(indices: np.ndarray, labels: np.ndarray, per_class: int) -> np.ndarray:
    picked = [indices[labels[indices] == c][:per_class] for c in np.unique(labels[indices])]
    return np.concatenate(picked)


def build_cub_root(shared_data: Path, root: Path, word_vectors: bool = True) -> Path:
    """``root/CUB`` with split files of 2 trainval images per seen class, 30 test-seen and 2 test-unseen images
    per unseen class (430 images), attribute groups and — unless ``word_vectors`` is false — the word2vec
    attribute vectors. Returns ``root``."""
    from PIL import Image

    from zslbench.data.xlsa17 import load_split, write_split_files

    real = load_split("CUB", shared_data)
    labels = np.asarray(real.labels)
    chosen = {"trainval": subset(real.split("trainval"), labels, 2),
              "test_seen": subset(real.split("test_seen"), labels, 1)[:30],
              "test_unseen": subset(real.split("test_unseen"), labels, 2)}
    order = np.concatenate(list(chosen.values()))
    position = {int(old): new for new, old in enumerate(order)}
    directory = root / "CUB"
    write_split_files(directory, real.original_att, real.class_names, labels[order],
                      [real.image_files[i] for i in order],
                      {name: np.array([position[int(i)] for i in idx]) for name, idx in chosen.items()},
                      attribute_names=real.attribute_names, attribute_groups=real.attribute_groups)
    shutil.copy(shared_data / "CUB" / "attribute_groups.json", directory / "attribute_groups.json")
    if word_vectors:
        shutil.copy(shared_data / "CUB" / "attribute_w2v.npy", directory / "attribute_w2v.npy")
    rng = np.random.default_rng(0)
    for i in order:
        path = directory / real.image_files[i]
        path.parent.mkdir(parents=True, exist_ok=True)
        shade = rng.integers(0, 256, size=3)  # one colour per image plus noise: decodable, CUB-like JPEG
        pixels = np.clip(shade + rng.normal(0, 25, (48, 64, 3)), 0, 255).astype(np.uint8)
        Image.fromarray(pixels).save(path, format="JPEG", quality=80)
    return root


#: The real CUB files a data root needs besides the word vectors (split files, image list, attributes).
CUB_SPLIT_FILES = ("att_splits.mat", "sent_splits.mat", "res101_meta.npz", "attributes.txt", "attribute_groups.json")


def build_full_cub_root(shared_data: Path, root: Path, size: tuple[int, int] = (40, 30)) -> Path:
    """``root/CUB`` with the real split files of ../shared/data as they are (no word vectors) and one stand-in
    JPEG of ``size`` at the real relative path of every one of CUB's 11,788 images. Returns ``root``."""
    from PIL import Image

    directory = root / "CUB"
    directory.mkdir(parents=True)
    for name in CUB_SPLIT_FILES:
        shutil.copy(shared_data / "CUB" / name, directory / name)
    with np.load(directory / "res101_meta.npz", allow_pickle=False) as meta:
        files, labels = [str(f) for f in meta["image_files"]], meta["labels"]
    shades = np.random.default_rng(0).integers(0, 256, size=(int(labels.max()) + 1, 3))
    for relative, label in zip(files, labels):
        path = directory / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        # one colour per class: what a model can learn from these images is the class
        Image.new("RGB", size, tuple(int(c) for c in shades[label])).save(path, format="JPEG", quality=85)
    return root
