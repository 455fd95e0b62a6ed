"""The one writer of xlsa17 split files, used by the synthetic generator and by tests.

The MAT files are written deterministically — with a fixed header text instead of the creation time
scipy puts there — so the same content always gives the same bytes.

Example (two classes, four images):
    >>> import tempfile
    >>> directory = write_split_files(Path(tempfile.mkdtemp()) / "toy", np.array([[1.0, 0.0], [0.0, 2.0]]),
    ...                               ["a", "b"], np.array([0, 0, 1, 1]), [f"images/{i}.png" for i in range(4)],
    ...                               {"trainval": np.array([0]), "test_seen": np.array([1]),
    ...                                "test_unseen": np.array([2, 3])}, attribute_names=["red", "blue"])
    >>> sorted(p.name for p in directory.iterdir())
    ['att_splits.mat', 'attributes.txt', 'res101.mat']
"""

from __future__ import annotations

import io
import json
from pathlib import Path
from typing import Any, Mapping, Sequence

import numpy as np

from zslbench.data.xlsa17.layout import ATT_SPLITS, GROUPS_FILE, RES101

#: What the 116-byte description field of a MAT v5 header says after "MATLAB 5.0 MAT-file, written by ".
DEFAULT_WRITER = "zslbench"


def write_split_files(
    directory: str | Path,
    original_att: np.ndarray,
    class_names: Sequence[str],
    labels: np.ndarray,
    image_files: Sequence[str],
    locs: Mapping[str, np.ndarray],
    attribute_names: Sequence[str] | None = None,
    attribute_groups: Mapping[str, Sequence[int]] | None = None,
    groups_source: str = "zslbench",
    writer: str = DEFAULT_WRITER,
    compress: bool = False,
) -> Path:
    """Write an xlsa17-layout directory that :func:`~zslbench.data.xlsa17.load_split` reads.

    ``original_att`` is [C, A]; ``labels`` and ``locs`` are 0-based (written 1-based, as xlsa17 does),
    the locs in the order given; ``image_files`` are relative to the directory. ``att`` is
    ``original_att`` with L2-normalised class columns. ``attributes.txt`` and ``attribute_groups.json``
    (its ``"source"`` is ``groups_source``) are written when names or groups are given. ``writer`` names
    the program in the MAT headers; ``compress`` zlib-compresses their variables. Returns the directory.
    """
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    raw = np.asarray(original_att, dtype=np.float64).T  # [A, C]
    att = raw / np.maximum(np.linalg.norm(raw, axis=0, keepdims=True), 1e-12)
    content: dict[str, Any] = {"att": att, "original_att": raw, "allclasses_names": _cell(class_names)}
    for name, index in locs.items():
        content[f"{name}_loc"] = (np.asarray(index, dtype=np.float64) + 1).reshape(-1, 1)
    savemat_deterministic(directory / ATT_SPLITS, content, writer, compress)
    savemat_deterministic(directory / RES101, {
        "labels": (np.asarray(labels, dtype=np.float64) + 1).reshape(-1, 1),
        "image_files": _cell(image_files)}, writer, compress)
    if attribute_names is not None:
        lines = "".join(f"{i + 1} {name}\n" for i, name in enumerate(attribute_names))
        (directory / "attributes.txt").write_text(lines, encoding="utf-8")
    if attribute_groups is not None:
        groups = {k: [int(i) for i in v] for k, v in attribute_groups.items()}
        text = json.dumps({"source": groups_source, "groups": groups}, indent=1) + "\n"
        (directory / GROUPS_FILE).write_text(text, encoding="utf-8")
    return directory


def savemat_deterministic(path: Path, content: dict[str, Any], writer: str = DEFAULT_WRITER,
                          compress: bool = False) -> None:
    """``scipy.io.savemat`` with a fixed header text: scipy writes the creation time into it."""
    import scipy.io

    buffer = io.BytesIO()
    scipy.io.savemat(buffer, content, do_compression=compress, oned_as="column")
    data = bytearray(buffer.getvalue())
    header = f"MATLAB 5.0 MAT-file, written by {writer}".encode()
    data[:116] = header.ljust(116, b" ")[:116]  # the 116-byte description field of the MAT v5 header
    path.write_bytes(bytes(data))


def _cell(strings: Sequence[str]) -> np.ndarray:
    """A [n, 1] MATLAB cell array of strings (as xlsa17 stores names and paths)."""
    cell = np.empty((len(strings), 1), dtype=object)
    for i, text in enumerate(strings):
        cell[i, 0] = str(text)
    return cell
