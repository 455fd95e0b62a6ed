"""Reading and validating an xlsa17 dataset directory into a :class:`~zslbench.data.xlsa17.split.SplitInfo`.

Every inconsistency is a one-line :class:`DataError` saying what is wrong and how to fix it.

>>> [round(float(v), 4) for v in normalise_rows(np.array([[3.0, 4.0]]))[0]]
[0.6, 0.8]
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Mapping, Sequence

import numpy as np

from zslbench.core.errors import DataError
from zslbench.data.xlsa17.layout import (ATT_SPLITS, GROUPS_FILE, NAME_FILES, NORM_EPS, REQUIRED_SPLITS, RES101,
                                         RES101_META, SENT_SPLITS, SPLITS, fetch_hint)
from zslbench.data.xlsa17.matfile import mat_strings, mat_variables, read_mat, require_field, short_reason
from zslbench.data.xlsa17.paths import remap_image_path
from zslbench.data.xlsa17.split import SplitInfo


def load_split(dataset: str, data_root: str | Path, image_root: str | Path | None = None) -> SplitInfo:
    """Read and validate ``<data_root>/<dataset>/`` (see :mod:`zslbench.data.xlsa17` for the files).

    Raises :class:`DataError` with one line saying what is wrong and how to fix it.
    """
    directory = dataset_directory(dataset, data_root)
    att_file = directory / ATT_SPLITS
    att_mat = read_mat(att_file, dataset)
    for name in ("att", "original_att", "allclasses_names", *(f"{s}_loc" for s in REQUIRED_SPLITS)):
        require_field(att_mat, name, att_file)

    class_names = mat_strings(att_mat["allclasses_names"])
    att = _float_matrix(att_mat["att"], "att", att_file)
    original = _float_matrix(att_mat["original_att"], "original_att", att_file)
    num_attributes, num_classes = att.shape
    if num_classes != len(class_names):
        raise DataError(f"{att_file}: att has {num_classes} class columns but allclasses_names lists "
                        f"{len(class_names)} classes; the file is inconsistent, re-download it")
    if original.shape != att.shape:
        raise DataError(f"{att_file}: original_att has shape {original.shape} but att has {att.shape}; "
                        "the file is inconsistent, re-download it")

    sources = {"splits": ATT_SPLITS}
    raw_locs = {s: att_mat[f"{s}_loc"] for s in SPLITS if f"{s}_loc" in att_mat}
    loc_files = dict.fromkeys(raw_locs, att_file)
    if not ("train" in raw_locs and "val" in raw_locs):
        extra = _train_val_from_sent_splits(directory, raw_locs["trainval"], dataset)
        if extra:
            raw_locs.update(extra)
            loc_files.update(dict.fromkeys(extra, directory / SENT_SPLITS))
            sources["train_val"] = SENT_SPLITS

    labels, image_files, has_features, image_source, meta_locs = _read_image_list(directory, dataset)
    sources["images"] = image_source
    num_images = len(labels)
    locs = {name: _to_index(value, name, num_images, loc_files[name]) for name, value in raw_locs.items()}
    _check_meta_locs(meta_locs, locs, num_images, directory)
    _check_labels(labels, num_classes, directory / image_source)
    _check_disjoint(locs, att_file)

    seen = np.unique(labels[locs["trainval"]])
    unseen = np.unique(labels[locs["test_unseen"]])
    _check_classes(labels, locs, seen, unseen, class_names, att_file)
    _check_attribute_rows(np.clip(original.T, 0.0, None), class_names, att_file)

    names, names_file = read_attribute_names(directory, num_attributes)
    if names_file:
        sources["attribute_names"] = names_file
    groups = read_attribute_groups(directory, num_attributes)
    return SplitInfo(
        dataset=dataset, directory=directory, class_names=class_names,
        att=att.T.astype(np.float32), original_att=np.clip(original.T, 0.0, None).astype(np.float32),
        class_attributes=normalise_rows(np.clip(original.T, 0.0, None)),
        labels=labels, image_files=image_files, locs=locs,
        seen_classes=seen.astype(np.int64), unseen_classes=unseen.astype(np.int64),
        attribute_names=names, attribute_groups=groups, has_features=has_features,
        image_root=Path(image_root).expanduser() if image_root is not None else None,
        source_files=sources,
    )


def dataset_directory(dataset: str, data_root: str | Path) -> Path:
    """``<data_root>/<dataset>``, or a DataError listing what the data root holds and how to get data."""
    root = Path(data_root).expanduser()
    directory = root / dataset
    if directory.is_dir():
        return directory
    if not root.is_dir():
        raise DataError(f"data root {str(root)!r} does not exist; {fetch_hint(dataset, root)} "
                        "or pass --data-root (or set $ZSLBENCH_DATA)")
    present = sorted(p.name for p in root.iterdir() if p.is_dir() and not p.name.startswith("."))
    listing = ", ".join(present) if present else "nothing"
    raise DataError(f"no dataset directory {dataset!r} under {str(root)!r} (it holds: {listing}); "
                    f"{fetch_hint(dataset, root)}")


# --------------------------------------------------------------------------- values, indices and the image list
def _float_matrix(value: Any, name: str, path: Path) -> np.ndarray:
    array = np.asarray(value)
    if array.ndim != 2 or array.dtype.kind not in "fiub":
        raise DataError(f"{path}: {name} must be a numeric [attributes, classes] matrix, "
                        f"got {array.dtype} of shape {array.shape}; re-download the file")
    array = array.astype(np.float64)
    if not np.isfinite(array).all():
        bad = int((~np.isfinite(array)).sum())
        raise DataError(f"{path}: {name} holds {bad} NaN/inf values; re-download or regenerate the file")
    if np.abs(array).max(initial=0.0) > np.finfo(np.float32).max:  # would turn into inf in float32 / in norms
        raise DataError(f"{path}: {name} holds values beyond the float32 range; re-download or regenerate the file")
    return array


def normalise_rows(matrix: np.ndarray, eps: float = NORM_EPS) -> np.ndarray:
    """Rows scaled as ``s / (||s|| + eps)`` (float32).

    >>> [round(float(v), 4) for v in normalise_rows(np.array([[3.0, 4.0]]))[0]]
    [0.6, 0.8]
    """
    matrix = np.asarray(matrix, dtype=np.float64)
    norms = np.linalg.norm(matrix, axis=1, keepdims=True)
    return (matrix / (norms + eps)).astype(np.float32)


def _to_index(value: Any, name: str, num_images: int, path: Path, one_based: bool = True) -> np.ndarray:
    array = np.asarray(value).ravel()
    if array.dtype.kind not in "fiu" or (array.dtype.kind == "f" and not np.all(np.isfinite(array))):
        raise DataError(f"{path}: {name}_loc must hold integer image indices, got {array.dtype}; re-download it")
    if array.dtype.kind == "f" and not np.array_equal(np.trunc(array), array):
        raise DataError(f"{path}: {name}_loc holds non-integer indices; re-download it")
    index = _as_int64(array)
    if one_based:
        index = index - 1
    if index.size and (index.min() < 0 or index.max() >= num_images):
        worst = int(index.max()) if index.max() >= num_images else int(index.min())
        shown = worst + 1 if one_based else worst
        base = "1-based" if one_based else "0-based"
        raise DataError(f"{path}: split {name!r} has image index {shown} ({base}) out of range for the "
                        f"{num_images} images of the image list; the split file and image list do not match, "
                        "re-download both from the same xlsa17 release")
    return index


def _train_val_from_sent_splits(directory: Path, trainval_raw: Any, dataset: str) -> dict[str, Any]:
    """CUB's redistributed att_splits lacks train/val; sent_splits.mat (same split) has them."""
    path = directory / SENT_SPLITS
    if not path.is_file():
        return {}
    mat = read_mat(path, dataset, variable_names=["trainval_loc", "train_loc", "val_loc"])
    if "train_loc" not in mat or "val_loc" not in mat:
        return {}
    if "trainval_loc" in mat and not np.array_equal(np.asarray(mat["trainval_loc"]).ravel().astype(np.int64),
                                                     np.asarray(trainval_raw).ravel().astype(np.int64)):
        raise DataError(f"{path}: its trainval_loc differs from {ATT_SPLITS}, so its train_loc/val_loc belong "
                        "to another split; remove it or use the matching xlsa17 files")
    return {"train": mat["train_loc"], "val": mat["val_loc"]}


def _read_image_list(directory: Path, dataset: str):
    """(labels 0-based, anchored image paths, has_features, file name, 0-based locs from the npz or {})."""
    res101 = directory / RES101
    if res101.is_file():
        variables = mat_variables(res101)
        for name in ("labels", "image_files"):
            if name not in variables:
                raise DataError(f"{res101} lacks the field {name!r}; re-download xlsa17 (res101.mat)")
        mat = read_mat(res101, dataset, variable_names=["labels", "image_files"])
        labels = _labels(mat["labels"], res101, one_based=True)
        files = mat_strings(mat["image_files"])
        has_features = "features" in variables
        source, meta_locs = RES101, {}
    elif (directory / RES101_META).is_file():
        path = directory / RES101_META
        try:
            with np.load(path, allow_pickle=False) as npz:
                content = {key: npz[key] for key in npz.files}
        except Exception as exc:
            raise DataError(f"{path} is unreadable or corrupt ({exc.__class__.__name__}: {short_reason(exc)}); "
                            "re-create it or use res101.mat from xlsa17") from None
        for name in ("labels", "image_files"):
            if name not in content:
                raise DataError(f"{path} lacks the field {name!r}; re-create it or use res101.mat from xlsa17")
        labels = _labels(content["labels"], path, one_based=False)
        files = [str(s) for s in np.asarray(content["image_files"]).ravel()]
        has_features = False
        source = RES101_META
        meta_locs = {s: content[f"{s}_loc"] for s in SPLITS if f"{s}_loc" in content}
    else:
        raise DataError(f"{directory} has neither {RES101} nor {RES101_META} (the per-image labels and paths); "
                        f"{fetch_hint(dataset, directory.parent)}")
    if len(files) != len(labels):
        raise DataError(f"{directory / source}: {len(labels)} labels but {len(files)} image_files; re-download it")
    files = [remap_image_path(f, dataset) for f in files]
    return labels, files, has_features, source, meta_locs


def _labels(value: Any, path: Path, one_based: bool) -> np.ndarray:
    array = np.asarray(value).ravel()
    if array.dtype.kind not in "fiu" or (array.dtype.kind == "f" and not np.all(np.isfinite(array))):
        raise DataError(f"{path}: labels must be integer class ids, got {array.dtype}; re-download it")
    if array.dtype.kind == "f" and not np.array_equal(np.trunc(array), array):
        raise DataError(f"{path}: labels holds non-integer class ids; re-download it")
    labels = _as_int64(array)
    return labels - 1 if one_based else labels


def _as_int64(array: np.ndarray) -> np.ndarray:
    """Integral values as int64; magnitudes beyond 2**62 (never a valid index) are clipped there, not wrapped."""
    if array.dtype.kind == "f":
        array = np.clip(array, -(2**62), 2**62)
    elif array.dtype == np.uint64:
        array = np.minimum(array, np.uint64(2**62))
    return array.astype(np.int64)


# --------------------------------------------------------------------------- consistency checks
def _check_meta_locs(meta_locs: Mapping[str, Any], locs: Mapping[str, np.ndarray], num_images: int,
                     directory: Path) -> None:
    path = directory / RES101_META
    for name, value in meta_locs.items():
        if name in locs and not np.array_equal(_to_index(value, name, num_images, path, one_based=False), locs[name]):
            raise DataError(f"{directory / RES101_META}: {name}_loc differs from {ATT_SPLITS}; the files come from "
                            "different releases, re-create res101_meta.npz from the matching res101.mat")


def _check_labels(labels: np.ndarray, num_classes: int, path: Path) -> None:
    if labels.size and (labels.min() < 0 or labels.max() >= num_classes):
        raise DataError(f"{path}: labels span {int(labels.min())}..{int(labels.max())} (0-based) but there are "
                        f"{num_classes} classes in {ATT_SPLITS}; the image list and split file do not match")


def _check_disjoint(locs: Mapping[str, np.ndarray], path: Path) -> None:
    for i, first in enumerate(REQUIRED_SPLITS):
        for second in REQUIRED_SPLITS[i + 1:]:
            shared = np.intersect1d(locs[first], locs[second])
            if shared.size:
                raise DataError(f"{path}: splits {first!r} and {second!r} overlap in {shared.size} images "
                                f"(e.g. index {int(shared[0]) + 1}, 1-based); re-download or regenerate the split file")


def _check_classes(labels, locs, seen, unseen, class_names, path: Path) -> None:
    for name, classes in (("trainval", seen), ("test_unseen", unseen)):
        if not classes.size:
            kind = "seen" if name == "trainval" else "unseen"
            raise DataError(f"{path}: split {name!r} is empty, so there are no {kind} classes; "
                            "re-download or regenerate the split file")
    test_seen_classes = np.unique(labels[locs["test_seen"]])
    orphan = np.setdiff1d(test_seen_classes, seen)
    if orphan.size:
        raise DataError(f"{path}: seen class {class_names[int(orphan[0])]!r} (and {orphan.size - 1} more) has "
                        "test_seen images but no trainval image; the split is inconsistent, re-download it")
    both = np.intersect1d(seen, unseen)
    if both.size:
        raise DataError(f"{path}: class {class_names[int(both[0])]!r} (and {both.size - 1} more) has images in "
                        "both trainval and test_unseen; unseen classes must not be trained on, fix the split")
    # every class is seen or unseen: one without images would silently drop out of every metric
    orphan = np.setdiff1d(np.arange(len(class_names)), np.union1d(seen, unseen))
    if orphan.size:
        raise DataError(f"{path}: class {class_names[int(orphan[0])]!r} (and {orphan.size - 1} more) has no image in "
                        "trainval or test_unseen, so it is neither seen nor unseen; re-download or regenerate the "
                        "split files")


def _check_attribute_rows(class_attributes: np.ndarray, class_names: Sequence[str], path: Path) -> None:
    """Every class needs a non-zero attribute vector: an all-zero one has no direction to match images to."""
    empty = np.flatnonzero(~np.any(class_attributes > 0, axis=1))
    if empty.size:
        raise DataError(f"{path}: class {class_names[int(empty[0])]!r} (and {empty.size - 1} more) has an all-zero "
                        "attribute vector in original_att; re-download or regenerate the file")



# --------------------------------------------------------------------------- attribute names and groups
def read_attribute_names(directory: Path, num_attributes: int) -> tuple[list[str], str | None]:
    """Attribute names from the first of :data:`NAME_FILES` present, or ``attr_0..`` when none is.

    Text files hold ``idx name`` (space or tab separated) lines; ``attributes.mat`` a cell ``attributes``.
    """
    for file_name in NAME_FILES:
        path = directory / file_name
        if not path.is_file():
            continue
        if path.suffix == ".mat":
            mat = read_mat(path, directory.name, variable_names=["attributes"])
            require_field(mat, "attributes", path)
            names = mat_strings(mat["attributes"])
        else:
            names = [_strip_index(line) for line in path.read_text(encoding="utf-8", errors="replace").splitlines()
                     if line.strip()]
        if len(names) != num_attributes:
            raise DataError(f"{path} names {len(names)} attributes but {ATT_SPLITS} has {num_attributes}; "
                            "use the names file that belongs to this split file (or remove it)")
        return names, file_name
    return [f"attr_{i}" for i in range(num_attributes)], None


def _strip_index(line: str) -> str:
    parts = line.strip().split(None, 1)
    if len(parts) == 2 and parts[0].isdigit():
        return parts[1].strip()
    return line.strip()


def read_attribute_groups(directory: Path, num_attributes: int) -> dict[str, list[int]]:
    """Groups of 0-based attribute indices from ``attribute_groups.json`` ({} when absent)."""
    path = directory / GROUPS_FILE
    if not path.is_file():
        return {}
    try:
        content = json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise DataError(f"{path} is not valid JSON ({exc.__class__.__name__}); fix or remove it") from None
    groups = content.get("groups", content) if isinstance(content, dict) else None
    if not isinstance(groups, dict) or not all(isinstance(v, list) for v in groups.values()):
        raise DataError(f'{path} must hold {{"groups": {{name: [attribute indices]}}}}; fix or remove it')
    out: dict[str, list[int]] = {}
    for name, members in groups.items():
        if not all(isinstance(i, int) and not isinstance(i, bool) and 0 <= i < num_attributes for i in members):
            raise DataError(f"{path}: group {name!r} has indices outside 0..{num_attributes - 1} "
                            "(they must be 0-based attribute rows); fix or remove the file")
        out[str(name)] = [int(i) for i in members]
    return out
