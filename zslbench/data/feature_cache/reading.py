"""Reading a complete feature cache: ``features.npy`` [N, R, C] float16 and its ``meta.json``.

Memory: a read never maps the whole file. It takes just the requested rows (sorted, contiguous
runs coalesced) with positional reads into a float16 buffer and converts them, so reading batches
from a 9 GiB cache stays far below the cache's size in resident memory — the operating system's
page cache, not the process, holds whatever fits.

Example (a tiny cache of 3 images × 4 regions × 2 channels):
    >>> import tempfile
    >>> folder = Path(tempfile.mkdtemp())
    >>> array = np.lib.format.open_memmap(folder / FEATURES_FILE, mode="w+", dtype=np.float16, shape=(3, 4, 2))
    >>> array[:] = np.arange(24).reshape(3, 4, 2); array.flush(); del array
    >>> cache = FeatureCache(folder, {"grid": [2, 2]})
    >>> cache.read(np.array([2, 0])).shape, float(cache.read(np.array([2]))[0, 0, 0])
    ((2, 4, 2), 16.0)
"""

from __future__ import annotations

import json
import os
import threading
from pathlib import Path
from typing import Any

import numpy as np

from zslbench.core.errors import DataError
from zslbench.data.feature_cache.key import FEATURES_FILE, META_FILE


class FeatureCache:
    """A complete cache folder: ``features.npy`` [N, R, C] float16 and its ``meta.json``."""

    def __init__(self, directory: str | Path, meta: dict[str, Any]):
        self.directory = Path(directory)
        self.meta = meta
        self.path = self.directory / FEATURES_FILE
        with open(self.path, "rb") as handle:
            version = np.lib.format.read_magic(handle)
            reader = np.lib.format.read_array_header_1_0 if version == (1, 0) else np.lib.format.read_array_header_2_0
            shape, fortran, dtype = reader(handle)
            self.offset = handle.tell()
        if len(shape) != 3 or fortran or np.dtype(dtype) != np.float16:
            raise DataError(f"{self.path} is not a C-ordered float16 [N, R, C] array; delete {self.directory}")
        self.shape: tuple[int, int, int] = tuple(int(s) for s in shape)  # type: ignore[assignment]
        self.row_bytes = self.shape[1] * self.shape[2] * 2
        if self.path.stat().st_size < self.offset + self.shape[0] * self.row_bytes:
            raise DataError(f"{self.path} is truncated; delete {self.directory} to rebuild it")
        self._lock = threading.Lock()
        self._file = open(self.path, "rb", buffering=0)

    @property
    def grid(self) -> tuple[int, int]:
        """(h, w) of the feature map the regions come from."""
        h, w = self.meta.get("grid", (0, 0))
        return int(h), int(w)

    def memmap(self) -> np.memmap:
        """The whole array, memory-mapped read-only (for inspection; training uses :meth:`read`)."""
        return np.load(self.path, mmap_mode="r")

    def read(self, indices: np.ndarray, dtype: Any = np.float32, out: np.ndarray | None = None) -> np.ndarray:
        """Rows ``indices`` (any order, repeats allowed) as a ``[len, R, C]`` array of ``dtype``.

        Reads each distinct row once, in file order, merging consecutive rows into one read. ``out`` (a
        C-contiguous float16 array of that shape, e.g. the numpy view of pinned memory) receives the rows and
        is returned — read straight into it, without an intermediate copy, when the indices are sorted and distinct.
        """
        indices = np.asarray(indices, dtype=np.int64).ravel()
        if indices.size and (indices.min() < 0 or indices.max() >= self.shape[0]):
            raise IndexError(f"feature rows must lie in 0..{self.shape[0] - 1}")
        unique, inverse = np.unique(indices, return_inverse=True)
        in_order = np.array_equal(unique, indices)
        shape = (len(unique), *self.shape[1:])
        direct = out is not None and in_order and out.dtype == np.float16 and out.shape == shape \
            and out.flags.c_contiguous
        buffer = out if direct else np.empty(shape, dtype=np.float16)
        flat = buffer.reshape(len(unique), -1).view(np.uint8)
        if len(unique):
            breaks = np.flatnonzero(np.diff(unique) != 1) + 1
            for start, stop in zip(np.r_[0, breaks], np.r_[breaks, len(unique)]):
                self._read_into(flat[start:stop], int(unique[start]))
        ordered = buffer if in_order else buffer[inverse.ravel()]
        if out is not None:
            if not direct:
                out[...] = ordered
            return out
        return ordered.astype(dtype, copy=False)

    def _read_into(self, target: np.ndarray, first_row: int) -> None:
        view = memoryview(target).cast("B")
        position, done = self.offset + first_row * self.row_bytes, 0
        while done < len(view):
            if hasattr(os, "preadv"):  # positional reads: thread-safe, no shared file offset
                got = os.preadv(self._file.fileno(), [view[done:]], position + done)
            else:
                with self._lock:
                    self._file.seek(position + done)
                    got = self._file.readinto(view[done:])
            if not got:
                raise DataError(f"{self.path} ended early; delete {self.directory} to rebuild it")
            done += got

    def close(self) -> None:
        self._file.close()

    def __del__(self) -> None:  # pragma: no cover - best effort
        try:
            self._file.close()
        except Exception:
            pass


def open_cache(directory: Path, fields: dict[str, Any]) -> FeatureCache | None:
    """The cache in ``directory`` when it is complete and was built for exactly ``fields`` (else None)."""
    try:
        meta = json.loads((directory / META_FILE).read_text())
    except (OSError, ValueError):
        return None
    if not isinstance(meta, dict) or meta.get("complete") is not True or meta.get("fields") != fields:
        return None
    try:
        cache = FeatureCache(directory, meta)
    except (OSError, ValueError, DataError):
        return None
    if list(cache.shape) != list(meta.get("shape", [])):
        return None
    return cache


def is_complete(directory: Path, fields: dict[str, Any]) -> bool:
    """Whether ``directory`` holds a complete cache built for exactly ``fields`` (nothing stays open)."""
    cache = open_cache(directory, fields)
    if cache is None:
        return False
    cache.close()
    return True
