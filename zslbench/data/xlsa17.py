"""The xlsa17 "Proposed Split v2" reader (PROTOCOL.md §1) — one reader for real and synthetic data.

A dataset directory ``<data_root>/<dataset>/`` holds

* ``att_splits.mat``: ``att`` / ``original_att`` [A, C], ``allclasses_names`` [C, 1] and the
  **1-based** split indices ``trainval_loc``, ``test_seen_loc``, ``test_unseen_loc`` (and usually
  ``train_loc`` / ``val_loc``; CUB copies that lack them are completed from ``sent_splits.mat``);
* the per-image list, either ``res101.mat`` (``labels`` [N, 1] 1-based, ``image_files`` [N, 1],
  optional ``features`` [2048, N]) or ``res101_meta.npz`` (0-based ``labels``, relative
  ``image_files``, 0-based locs);
* optionally attribute names (``attributes.txt``, ``predicates.txt`` or ``attributes.mat``) and
  ``attribute_groups.json``.

Everything is converted to 0-based int64 indices and global class ids. Image paths are cut at the
dataset's *anchor* (e.g. ``CUB_200_2011/images/``) and kept relative to an image root.

Example:
    >>> remap_image_path("/BS/xian/work/data/CUB_200_2011/images/001.Black_footed_Albatross/a.jpg", "CUB")
    'CUB_200_2011/images/001.Black_footed_Albatross/a.jpg'
    >>> remap_image_path("Animals_with_Attributes2//JPEGImages/antelope/antelope_10001.jpg", "AWA2")
    'Animals_with_Attributes2/JPEGImages/antelope/antelope_10001.jpg'
"""

from __future__ import annotations

import hashlib
import json
import math
import re
import struct
import zlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping, Sequence

import numpy as np

from zslbench.core.errors import DataError

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

#: Where each dataset's image paths start (relative to the image root). Tried in order.
ANCHORS: dict[str, tuple[str, ...]] = {
    "CUB": ("CUB_200_2011/images/",),
    "AWA2": ("Animals_with_Attributes2/JPEGImages/",),
    "AWA1": ("Animals_with_Attributes/JPEGImages/",),
    "SUN": ("images/",),
    "synth": ("images/",),
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


# --------------------------------------------------------------------------- the split object
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


# --------------------------------------------------------------------------- loading
def load_split(dataset: str, data_root: str | Path, image_root: str | Path | None = None) -> SplitInfo:
    """Read and validate ``<data_root>/<dataset>/`` (see the module docstring).

    Raises :class:`DataError` with one line saying what is wrong and how to fix it.
    """
    directory = dataset_directory(dataset, data_root)
    att_file = directory / ATT_SPLITS
    att_mat = _read_mat(att_file, dataset)
    for name in ("att", "original_att", "allclasses_names", *(f"{s}_loc" for s in REQUIRED_SPLITS)):
        _require_field(att_mat, name, att_file)

    class_names = _strings(att_mat["allclasses_names"])
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


def fetch_hint(dataset: str, data_root: str | Path = "DIR") -> str:
    """How to obtain ``dataset``'s files (one clause, for error messages)."""
    if is_synthetic(dataset):
        return f"generate it with `zslbench data synth --data-root {data_root}`"
    return (f"get the xlsa17 split files with `zslbench data fetch xlsa17 --data-root {data_root}` "
            "(or `zslbench data synth` for the synthetic benchmark)")


def _read_mat(path: Path, dataset: str, variable_names: Sequence[str] | None = None) -> dict[str, Any]:
    import scipy.io

    if not path.is_file():
        raise DataError(f"{path} is missing; {fetch_hint(dataset, path.parent.parent)}")
    check_mat_elements(path, variable_names)
    try:
        return scipy.io.loadmat(str(path), variable_names=variable_names)
    except NotImplementedError:  # scipy's answer to MATLAB v7.3 (HDF5) files
        raise DataError(f"{path} is a MATLAB v7.3 (HDF5) file, which cannot be read here; re-save it in MATLAB "
                        "with save(..., '-v7') or re-download the original") from None
    except Exception as exc:  # scipy raises ValueError/TypeError/MatReadError/... on damaged files
        raise DataError(f"{path} is unreadable or corrupt ({exc.__class__.__name__}: {_short(exc)}); "
                        "re-download it") from None


def _mat_variables(path: Path) -> set[str]:
    import scipy.io

    check_mat_elements(path, ())
    try:
        return {name for name, _shape, _kind in scipy.io.whosmat(str(path))}
    except Exception as exc:
        raise DataError(f"{path} is unreadable or corrupt ({exc.__class__.__name__}: {_short(exc)}); "
                        "re-download it") from None


# MAT-file v5 element types (MATLAB "MAT-File Format"): containers, and the data types scipy can read.
_MI_MATRIX, _MI_COMPRESSED = 14, 15
_MI_DATA = frozenset({1, 2, 3, 4, 5, 6, 7, 9, 12, 13, 16, 17, 18})  # int8..uint64, single, double, utf8/16/32
_MAX_ELEMENTS = 2**48  # more elements than any real array: a damaged dims field


class _Damaged(Exception):
    """A MAT v5 element tag that cannot be right (caught and turned into a DataError)."""


def check_mat_elements(path: Path, variable_names: Sequence[str] | None = None) -> None:
    """Walk the element tags of a MAT v5 file before scipy reads it; raise :class:`DataError` on a damaged one.

    scipy's C reader trusts each tag's type code and indexes a table with it, so a single damaged
    byte there crashes the process (SIGSEGV) instead of raising (scipy gh-25349). This walk checks
    every tag of the variables that will be read (``variable_names``; None = all, () = headers
    only): known type, size within its container, non-negative dims. Other formats (v4, v7.3) are
    left to scipy.
    """
    import mmap

    with open(path, "rb") as handle:
        header = handle.read(128)
        if len(header) < 128 or header[126:128] not in (b"IM", b"MI") or header[124:126] not in (b"\x00\x01", b"\x01\x00"):
            return
        if handle.seek(0, 2) <= 128:
            return
        order = "<" if header[126:128] == b"IM" else ">"
        wanted = None if variable_names is None else set(variable_names)
        with mmap.mmap(handle.fileno(), 0, access=mmap.ACCESS_READ) as mapped:
            try:
                _walk_file(mapped, order, wanted)
            except (_Damaged, zlib.error) as exc:
                raise DataError(f"{path} is unreadable or corrupt ({exc}); re-download it") from None


def _tag(buffer: Any, position: int, end: int, order: str) -> tuple[int, int, int, int]:
    """(type, byte count, data start, next element) of the element at ``position`` (small format included)."""
    if position + 8 > end:
        raise _Damaged(f"element tag at byte {position} cut short")
    first, count = struct.unpack_from(order + "II", buffer, position)
    if first >> 16:  # small data element: type and size share the first word, data in the second
        mdtype, count = first & 0xFFFF, first >> 16
        if count > 4:
            raise _Damaged(f"small element at byte {position} claims {count} bytes")
        return mdtype, count, position + 4, position + 8
    start = position + 8
    if start + count > end:
        raise _Damaged(f"element at byte {position} claims {count} bytes beyond its end")
    padding = 0 if first == _MI_COMPRESSED else -count % 8  # data is padded to 8 bytes, compressed data not
    return first, count, start, min(start + count + padding, end)


def _walk_file(buffer: Any, order: str, wanted: set[str] | None) -> None:
    position, end = 128, len(buffer)
    while position < end:
        mdtype, count, start, position = _tag(buffer, position, end, order)
        if mdtype == _MI_COMPRESSED:
            compressed = buffer[start:start + count]
            head = zlib.decompressobj().decompress(compressed, 4096)  # enough for the variable's name
            if wanted is not None and _matrix_name(head, order) not in wanted:
                continue
            content = zlib.decompress(compressed)
            inner, size, inner_start, _ = _tag(content, 0, len(content), order)
            if inner != _MI_MATRIX:
                raise _Damaged(f"compressed element holds type {inner}, not a matrix")
            _walk_matrix(content, inner_start, inner_start + size, order, wanted)
        elif mdtype == _MI_MATRIX:
            _walk_matrix(buffer, start, start + count, order, wanted)
        else:
            raise _Damaged(f"top-level element of type {mdtype} is not a variable")


def _matrix_name(buffer: bytes, order: str) -> str | None:
    """The variable name in a (possibly partial) miMATRIX element, None if it cannot be read."""
    try:
        position = _tag(buffer, 0, len(buffer), order)[2]
        for _ in range(2):  # array flags, dims
            position = _tag(buffer, position, len(buffer), order)[3]
        _, count, start, _ = _tag(buffer, position, len(buffer), order)
        return bytes(buffer[start:start + count]).decode("latin-1")
    except (_Damaged, struct.error):
        return None


def _walk_matrix(buffer: Any, position: int, end: int, order: str, wanted: set[str] | None, top: bool = True) -> None:
    """Check one miMATRIX: flags, dims and name, then as many data elements and nested matrices as its
    class needs (scipy reads that many, past the end of a damaged matrix)."""
    elements: list[tuple[int, int, int]] = []  # (type, byte count, data start)
    while position < end:
        mdtype, count, start, position = _tag(buffer, position, end, order)
        if mdtype != _MI_MATRIX and mdtype not in _MI_DATA:
            raise _Damaged(f"element of unknown type {mdtype}")
        elements.append((mdtype, count, start))
        if len(elements) == 3 and top and wanted is not None:  # the name: skip variables nobody reads
            if bytes(buffer[start:start + count]).decode("latin-1") not in wanted:
                return
    if not elements:
        return  # an empty element (some writers use it for an empty cell entry)
    if len(elements) < 3 or any(mdtype == _MI_MATRIX or count < 4 for mdtype, count, _ in elements[:2]):
        raise _Damaged("a matrix lacks its array flags, dimensions or name")
    (_, _, flags_start), (_, dims_count, dims_start) = elements[:2]
    flags = struct.unpack_from(order + "I", buffer, flags_start)[0]
    matrix_class, is_complex = flags & 0xFF, bool(flags >> 11 & 1)
    if dims_count % 4 or dims_count < 8:
        raise _Damaged(f"dimensions element of {dims_count} bytes")
    dims = struct.unpack_from(f"{order}{dims_count // 4}i", buffer, dims_start)
    if any(d < 0 for d in dims) or math.prod(dims) > _MAX_ELEMENTS:
        raise _Damaged(f"impossible array dimensions {dims}")
    rest = elements[3:]
    data = [e for e in rest if e[0] != _MI_MATRIX]
    nested = [e for e in rest if e[0] == _MI_MATRIX]
    expected = _expected_parts(matrix_class, is_complex, math.prod(dims), data, buffer, order)
    if expected is not None and (len(data), len(nested)) != expected:
        raise _Damaged(f"a matrix of class {matrix_class} with dims {dims} holds {len(data)} data elements and "
                       f"{len(nested)} nested matrices, not {expected[0]} and {expected[1]}")
    for _, count, start in nested:
        _walk_matrix(buffer, start, start + count, order, None, top=False)


def _expected_parts(matrix_class: int, is_complex: bool, size: int, data: list[tuple[int, int, int]], buffer: Any,
                    order: str) -> tuple[int, int] | None:
    """(data elements, nested matrices) a matrix of ``matrix_class`` holds after its name (None: not checked)."""
    if 6 <= matrix_class <= 15:  # numeric: real part, imaginary part when complex
        return 1 + is_complex, 0
    if matrix_class == 4:  # char
        return 1, 0
    if matrix_class == 5:  # sparse: row indices, column starts, real (and imaginary) values
        return 3 + is_complex, 0
    if matrix_class == 1:  # cell: one matrix per entry
        return 0, size
    if matrix_class in (2, 3):  # struct (object: a class name first): field name length, names, then the values
        skip = 1 if matrix_class == 3 else 0
        if len(data) < 2 + skip or data[skip][1] < 4:
            raise _Damaged("a struct lacks its field names")
        name_length = struct.unpack_from(order + "i", buffer, data[skip][2])[0]
        fields = data[skip + 1][1] // name_length if name_length > 0 else 0
        return 2 + skip, size * fields
    return None  # function handles and opaque objects: their layout is scipy's business


def _short(exc: BaseException) -> str:
    text = " ".join(str(exc).split())
    return text[:120] or "no detail"


def _require_field(mat: Mapping[str, Any], name: str, path: Path) -> None:
    if name not in mat:
        raise DataError(f"{path} lacks the field {name!r}; it is not an xlsa17 v2 file, re-download it")


def _strings(value: Any) -> list[str]:
    """A MATLAB cell / char array of strings → Python strings (one per row/cell)."""
    array = np.asarray(value)
    if array.dtype.kind in "US":  # a char matrix: loadmat already joined each row into one string
        return [str(s).rstrip() for s in array.ravel()]
    out = []
    for item in array.ravel():
        inner = np.asarray(item)
        while inner.dtype == object and inner.size == 1:
            inner = np.asarray(inner.ravel()[0])
        out.append(str(inner.ravel()[0]).rstrip() if inner.size else "")
    return out


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
    mat = _read_mat(path, dataset, variable_names=["trainval_loc", "train_loc", "val_loc"])
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
        variables = _mat_variables(res101)
        for name in ("labels", "image_files"):
            if name not in variables:
                raise DataError(f"{res101} lacks the field {name!r}; re-download xlsa17 (res101.mat)")
        mat = _read_mat(res101, dataset, variable_names=["labels", "image_files"])
        labels = _labels(mat["labels"], res101, one_based=True)
        files = _strings(mat["image_files"])
        has_features = "features" in variables
        source, meta_locs = RES101, {}
    elif (directory / RES101_META).is_file():
        path = directory / RES101_META
        try:
            with np.load(path, allow_pickle=False) as npz:
                content = {key: npz[key] for key in npz.files}
        except Exception as exc:
            raise DataError(f"{path} is unreadable or corrupt ({exc.__class__.__name__}: {_short(exc)}); "
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


# --------------------------------------------------------------------------- image paths
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


# --------------------------------------------------------------------------- attribute names and groups
NAME_FILES = ("attributes.txt", "predicates.txt", "attributes.mat")


def read_attribute_names(directory: Path, num_attributes: int) -> tuple[list[str], str | None]:
    """Attribute names from the first of :data:`NAME_FILES` present, or ``attr_0..`` when none is.

    Text files hold ``idx name`` (space or tab separated) lines; ``attributes.mat`` a cell ``attributes``.
    """
    for file_name in NAME_FILES:
        path = directory / file_name
        if not path.is_file():
            continue
        if path.suffix == ".mat":
            mat = _read_mat(path, directory.name, variable_names=["attributes"])
            _require_field(mat, "attributes", path)
            names = _strings(mat["attributes"])
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


# --------------------------------------------------------------------------- writing (tests, generators)
def write_split_files(
    directory: str | Path,
    original_att: np.ndarray,
    class_names: Sequence[str],
    labels: np.ndarray,
    image_files: Sequence[str],
    locs: Mapping[str, np.ndarray],
    attribute_names: Sequence[str] | None = None,
    attribute_groups: Mapping[str, Sequence[int]] | None = None,
) -> Path:
    """Write an xlsa17-layout directory that :func:`load_split` reads.

    ``original_att`` is [C, A]; ``labels`` and ``locs`` are 0-based (written 1-based, as xlsa17 does);
    ``image_files`` are relative to the directory. ``att`` is ``original_att`` with L2-normalised
    class columns. Returns the directory.
    """
    import scipy.io

    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    raw = np.asarray(original_att, dtype=np.float64).T  # [A, C]
    att = raw / np.maximum(np.linalg.norm(raw, axis=0, keepdims=True), 1e-12)
    content: dict[str, Any] = {"att": att, "original_att": raw, "allclasses_names": _cell(class_names)}
    for name, index in locs.items():
        content[f"{name}_loc"] = (np.asarray(index, dtype=np.float64) + 1).reshape(-1, 1)
    scipy.io.savemat(str(directory / ATT_SPLITS), content)
    scipy.io.savemat(str(directory / RES101), {
        "labels": (np.asarray(labels, dtype=np.float64) + 1).reshape(-1, 1),
        "image_files": _cell(image_files)})
    if attribute_names is not None:
        lines = [f"{i + 1} {name}" for i, name in enumerate(attribute_names)]
        (directory / "attributes.txt").write_text("\n".join(lines) + "\n", encoding="utf-8")
    if attribute_groups is not None:
        groups = {k: [int(i) for i in v] for k, v in attribute_groups.items()}
        (directory / GROUPS_FILE).write_text(json.dumps({"source": "zslbench", "groups": groups}, indent=1))
    return directory


def _cell(strings: Sequence[str]) -> np.ndarray:
    """A [n, 1] MATLAB cell array of strings (as xlsa17 stores names and paths)."""
    cell = np.empty((len(strings), 1), dtype=object)
    for i, text in enumerate(strings):
        cell[i, 0] = str(text)
    return cell
