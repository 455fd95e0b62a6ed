"""Tar data read forward once, through its decompressor, to the very end: every byte is counted against the
unpacking limit, and the end-of-archive marker and the decompressor's CRC are checked.

A tar's members carry no checksum of their data, and tarfile stops quietly at the first block that is not a
header; so a download cut at a member boundary, or a damaged header, would look complete. Only the
compressed stream's own CRC and length (checked when it is read to its end) and the two zero blocks that end
a tar tell a complete archive from a cut one.
"""

from __future__ import annotations

import bz2
import contextlib
import gzip
import lzma
import os
import tarfile
import zlib
from pathlib import Path
from typing import Any, BinaryIO

from zslbench.core.errors import UserError
from zslbench.data.fetch.sources import CHUNK_BYTES

BLOCK = tarfile.BLOCKSIZE


_MAGIC = {b"\x1f\x8b": "gz", b"\xfd7zXZ\x00": "xz", b"BZh": "bz2"}


def tar_stream_kind(path: Path) -> str | None:
    """``"gz"``, ``"xz"``, ``"bz2"`` or ``""`` (plain) for a file that looks like a tar; None otherwise."""
    try:
        with open(path, "rb") as handle:
            head = handle.read(BLOCK)
            kind = next((k for magic, k in _MAGIC.items() if head.startswith(magic)), "")
            if kind:
                return kind
            return "" if len(head) == BLOCK and tarfile.is_tarfile(path) else None
    except (OSError, EOFError, zlib.error, tarfile.TarError):
        return None


def decompressed(handle: BinaryIO) -> Any:
    """The tar data of an open archive file: through its decompressor, or the file itself (closing the
    returned object then closes nothing that its owner still needs)."""
    head = handle.read(6)
    handle.seek(0)
    kind = next((k for magic, k in _MAGIC.items() if head.startswith(magic)), "")
    if kind == "gz":
        return gzip.GzipFile(fileobj=handle, mode="rb")
    if kind == "xz":
        return lzma.LZMAFile(handle)
    if kind == "bz2":
        return bz2.BZ2File(handle)
    return contextlib.nullcontext(handle)


class BlockStream:
    """The decompressed tar data, read forward only, counting bytes (bounded by ``allowed``) and remembering
    the last block-sized read: the header read where tarfile stopped."""

    def __init__(self, stream: BinaryIO, allowed: int, refusal: UserError) -> None:
        self.stream, self.allowed, self.refusal = stream, allowed, refusal
        self.position = 0
        self.last_block: tuple[int, bytes] = (-1, b"")

    def read(self, size: int | None = -1) -> bytes:
        if size is None or size < 0:
            return b"".join(iter(lambda: self.read(CHUNK_BYTES), b""))
        start = self.position
        data = self.stream.read(size)
        self.position += len(data)
        if self.position > self.allowed:  # decompressing a bomb costs time even where nothing is written
            raise self.refusal
        if size == BLOCK:
            self.last_block = (start, data)
        return data

    def tell(self) -> int:
        return self.position

    def seek(self, offset: int, whence: int = os.SEEK_SET) -> int:
        target = offset if whence == os.SEEK_SET else self.position + offset
        if target < self.position:
            raise OSError(f"a tar member points back to byte {target:,}, before byte {self.position:,}")
        while self.position < target:
            if not self.read(min(CHUNK_BYTES, target - self.position)):
                break
        return self.position

    def ended_with_zero_block(self, offset: int) -> bool:
        start, data = self.last_block
        return start == offset and len(data) == BLOCK and not data.strip(b"\0")

    def read_to_end(self) -> None:
        while self.read(CHUNK_BYTES):
            pass
