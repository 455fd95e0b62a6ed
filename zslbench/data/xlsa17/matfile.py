"""Reading MATLAB files safely: scipy's reader behind a walk of the element tags, one-line errors.

>>> mat_strings(np.array([["a  "], ["b"]], dtype=object))
['a', 'b']
"""

from __future__ import annotations

import math
import struct
import zlib
from pathlib import Path
from typing import Any, Mapping, Sequence

import numpy as np

from zslbench.core.errors import DataError
from zslbench.data.xlsa17.layout import fetch_hint


def read_mat(path: Path, dataset: str, variable_names: Sequence[str] | None = None) -> dict[str, Any]:
    """``scipy.io.loadmat`` of ``variable_names`` (None: all) after :func:`check_mat_elements`; missing,
    damaged and MATLAB v7.3 files are one-line :class:`DataError` s."""
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
        raise DataError(f"{path} is unreadable or corrupt ({exc.__class__.__name__}: {short_reason(exc)}); "
                        "re-download it") from None


def mat_variables(path: Path) -> set[str]:
    """The names of the variables a MAT file holds (read from its headers)."""
    import scipy.io

    check_mat_elements(path, ())
    try:
        return {name for name, _shape, _kind in scipy.io.whosmat(str(path))}
    except Exception as exc:
        raise DataError(f"{path} is unreadable or corrupt ({exc.__class__.__name__}: {short_reason(exc)}); "
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


def short_reason(exc: BaseException) -> str:
    """An exception's message on one line, at most 120 characters (for error messages)."""
    text = " ".join(str(exc).split())
    return text[:120] or "no detail"


def require_field(mat: Mapping[str, Any], name: str, path: Path) -> None:
    """A :class:`DataError` unless the loaded MAT file ``mat`` has the variable ``name``."""
    if name not in mat:
        raise DataError(f"{path} lacks the field {name!r}; it is not an xlsa17 v2 file, re-download it")


def mat_strings(value: Any) -> list[str]:
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
