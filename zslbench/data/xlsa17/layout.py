"""The xlsa17 layout (PROTOCOL.md §1): file names, split names, expected counts, dataset names.

>>> is_synthetic("synth-tiny"), layout_name("synth-paper"), ATT_SPLITS
(True, 'synth', 'att_splits.mat')
"""

from __future__ import annotations

from pathlib import Path

SPLITS = ("trainval", "train", "val", "test_seen", "test_unseen")
#: Splits every dataset must have; ``train`` / ``val`` are optional.
REQUIRED_SPLITS = ("trainval", "test_seen", "test_unseen")

#: PROTOCOL.md §1 (train/val: the xlsa17 v2 ``train_loc`` / ``val_loc`` sizes).
EXPECTED_COUNTS: dict[str, dict[str, int]] = {
    "CUB": {"classes": 200, "seen": 150, "unseen": 50, "attributes": 312, "images": 11788,
            "trainval": 7057, "test_seen": 1764, "test_unseen": 2967, "train": 5875, "val": 2946},
    "AWA2": {"classes": 50, "seen": 40, "unseen": 10, "attributes": 85, "images": 37322,
             "trainval": 23527, "test_seen": 5882, "test_unseen": 7913, "train": 20218, "val": 9191},
    "SUN": {"classes": 717, "seen": 645, "unseen": 72, "attributes": 102, "images": 14340,
            "trainval": 10320, "test_seen": 2580, "test_unseen": 1440, "train": 11600, "val": 1300},
}

#: Names with a known layout; any other directory under the data root is read as a generic xlsa17 dir.
KNOWN_DATASETS = ("CUB", "AWA2", "SUN", "AWA1", "synth")


def is_synthetic(dataset: str) -> bool:
    """Whether ``dataset`` names a generated benchmark directory (``synth``, ``synth-tiny``, ``synth-paper``...).

    >>> is_synthetic("synth-tiny"), is_synthetic("SUN")
    (True, False)
    """
    return dataset == "synth" or dataset.startswith("synth-")


def layout_name(dataset: str) -> str:
    """The layout a dataset directory follows: ``synth`` for every synthetic variant, else the name itself."""
    return "synth" if is_synthetic(dataset) else dataset


ATT_SPLITS = "att_splits.mat"
SENT_SPLITS = "sent_splits.mat"
RES101 = "res101.mat"
RES101_META = "res101_meta.npz"
GROUPS_FILE = "attribute_groups.json"
NORM_EPS = 1e-5  # s / (||s|| + eps), as SVIP and the ViT baselines normalise class attributes
#: Attribute-name files, tried in order.
NAME_FILES = ("attributes.txt", "predicates.txt", "attributes.mat")


def fetch_hint(dataset: str, data_root: str | Path = "DIR") -> str:
    """How to obtain ``dataset``'s files (one clause, for error messages)."""
    if is_synthetic(dataset):
        return f"generate it with `zslbench data synth --data-root {data_root}`"
    return (f"get the xlsa17 split files with `zslbench data fetch xlsa17 --data-root {data_root}` "
            "(or `zslbench data synth` for the synthetic benchmark)")
