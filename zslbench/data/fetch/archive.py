"""Unpacking an archive safely into a temporary folder inside the data root, then installing it.

What an archive can do to the disk is decided here, for zip and tar alike:

* every member lands inside the staging folder: absolute names and ``..`` components are refused;
* no link is ever created. A symbolic or hard link member is resolved inside the archive — through the
  archive's other links, wherever they come in it (:func:`~zslbench.data.fetch.members.resolve_in_archive`)
  — and unpacked as a copy of the regular file it leads to, which must lie in the link's own layout folder;
  a link to a folder, to nothing, outside the archive, or one through which another member would be
  written, is refused. So the data root never holds a link an archive planted;
* devices, FIFOs, encrypted zip members and compression methods Python cannot read are refused;
* every compressed stream is read to its end, so the decompressor checks its CRC and length; a tar must end
  with its end-of-archive marker (a download cut at a member boundary does not,
  :mod:`~zslbench.data.fetch.streams`), and each member must hold the bytes the archive's own index says;
* the bytes unpacked are bounded (:class:`~zslbench.data.fetch.members.UnpackLimits`): an archive that
  expands past the limit, or by more than the ratio over its own size, is refused before the disk fills.

Only the members a layout rule of the :class:`~zslbench.data.fetch.sources.Source` names are written.
"""

from __future__ import annotations

import gzip
import lzma
import os
import shutil
import stat
import tarfile
import tempfile
import zipfile
import zlib
from pathlib import Path
from typing import Any, BinaryIO, Iterator

from zslbench.core.errors import UserError
from zslbench.data.fetch.download import ByteProgress, describe
from zslbench.data.fetch.install import install, root_not_writable
from zslbench.data.fetch.members import (
    DamagedArchive,
    UnpackLimits,
    check_link_text,
    folder_of,
    member_name,
    path_parts,
    resolve_in_archive,
    rule_for,
    unsafe,
)
from zslbench.data.fetch.sources import CHUNK_BYTES, STAGING_PREFIX, Source
from zslbench.data.fetch.streams import BlockStream, decompressed, tar_stream_kind

__all__ = ["DamagedArchive", "UnpackLimits", "resolve_in_archive", "unpack"]


class _DiskFailure(Exception):
    """Writing an unpacked member failed (a full disk, permissions): the archive itself may be fine."""

    def __init__(self, error: OSError) -> None:
        super().__init__(str(error))
        self.error = error


def unpack(archive: Path, source: Source, data_root: Path, force: bool = False, console: Any = None,
           limits: UnpackLimits | None = None) -> tuple[list[Path], list[Path]]:
    """Unpack ``archive`` by ``source.layout`` into ``data_root``; returns (installed, unchanged) paths.

    Everything is unpacked into a temporary folder inside ``data_root`` first and moved into place
    only when the whole archive was read and checked; see :func:`install`.
    """
    limits = limits or UnpackLimits()
    try:
        staging = Path(tempfile.mkdtemp(prefix=STAGING_PREFIX, dir=data_root))
    except OSError as exc:  # a read-only data root: nothing was written
        raise root_not_writable(data_root, exc) from None
    try:
        raw, arranged = staging / "raw", staging / "out"
        raw.mkdir()
        arranged.mkdir()
        unpacker = _Unpacker(archive, raw, source.layout, limits, console)
        try:
            if zipfile.is_zipfile(archive):
                unpacker.unpack_zip()
            elif tar_stream_kind(archive) is not None:
                unpacker.unpack_tar()
            else:
                raise DamagedArchive(f"{archive.name} is neither a zip nor a tar archive (corrupt or truncated)")
            unpacker.materialise_links()
        except _DiskFailure as exc:  # disk full, permissions: the archive itself may be fine
            raise UserError(f"unpacking {archive.name} into {data_root} failed ({describe(exc.error.strerror or exc)});"
                            " free disk space or fix the folder's permissions, then re-run") from None
        except (zipfile.BadZipFile, tarfile.TarError, EOFError, zlib.error, gzip.BadGzipFile, lzma.LZMAError,
                OSError) as exc:  # reading the archive failed (bz2 reports a damaged stream as OSError)
            raise DamagedArchive(f"{archive.name} is corrupt or truncated ({describe(exc)})") from None
        _arrange(raw, arranged, source.layout)
        if not any(arranged.iterdir()):
            wanted = ", ".join(path for path, _ in source.layout)
            raise DamagedArchive(f"{archive.name} holds none of the expected paths ({wanted}); "
                                  f"it is not the {source.name} archive")
        return install(arranged, data_root, force=force, trash=staging / "trash")
    except OSError as exc:  # arranging or moving into place: a full disk, a read-only dataset folder
        raise root_not_writable(data_root, exc) from None
    finally:
        shutil.rmtree(staging, ignore_errors=True)


# --------------------------------------------------------------------------- the unpacker
class _Unpacker:
    """Writes the members of one archive under ``raw`` (which never holds a link) and counts the bytes."""

    def __init__(self, archive: Path, raw: Path, layout: tuple[tuple[str, str], ...], limits: UnpackLimits,
                 console: Any) -> None:
        self.archive, self.raw, self.layout, self.console = archive, raw, layout, console
        self.size = archive.stat().st_size
        self.allowed = limits.allowed(self.size)
        self.limits = limits
        self.written = 0
        self.links: dict[str, tuple[str, bool]] = {}  # every link member, unpacked or not: paths resolve through them
        self.link_members: dict[str, str] = {}  # links to materialise: name → name as stored
        self.progress: ByteProgress | None = None

    # ------------------------------------------------------------ bookkeeping
    def _count(self, size: int) -> None:
        self.written += size
        if self.written > self.allowed:
            raise self.limits.refusal(self.archive, self.size)

    def _through_link(self, member: str, name: str) -> None:
        """A member may not be written below a link member (it would land where the link leads)."""
        parts = name.split("/")
        for depth in range(1, len(parts)):
            if "/".join(parts[:depth]) in self.links:
                raise unsafe(self.archive, member, f"would be written through the link {'/'.join(parts[:depth])!r}")

    def _link(self, member: str, name: str, target: str, hard: bool) -> None:
        check_link_text(self.archive, member, name, target, hard, self.layout)
        self._through_link(member, name)
        if name and os.path.lexists(self.raw / name):  # a tar's later member over what is unpacked already
            raise unsafe(self.archive, member, "is a link where other members are unpacked (a link replacing a "
                                               "file or folder, or with members below it)")
        self.links[name] = (target.replace("\\", "/"), hard)
        if name and rule_for(name, self.layout) is not None:
            self.link_members[name] = member
        else:
            self.link_members.pop(name, None)

    def _directory(self, member: str, name: str) -> None:
        self._through_link(member, name)
        try:
            (self.raw / name).mkdir(parents=True, exist_ok=True)
        except FileExistsError:
            raise unsafe(self.archive, member, "is a folder where an earlier member is a file") from None
        except OSError as exc:
            raise _DiskFailure(exc) from None

    def _file(self, member: str, name: str, reader: BinaryIO, declared: int) -> None:
        """Write one member's bytes to ``raw/name`` (never through a link: none exists under ``raw``)."""
        self._through_link(member, name)
        target = self.raw / name
        try:
            target.parent.mkdir(parents=True, exist_ok=True)
        except (FileExistsError, NotADirectoryError):
            raise unsafe(self.archive, member, "lies below an earlier member that is a file") from None
        except OSError as exc:
            raise _DiskFailure(exc) from None
        if target.is_dir():
            raise unsafe(self.archive, member, "is a file where an earlier member is a folder")
        target.unlink(missing_ok=True)  # a repeated member: the later one wins, as tar does
        try:
            descriptor = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o666)
        except OSError as exc:
            raise _DiskFailure(exc) from None
        size = 0
        with open(descriptor, "wb") as handle:
            while chunk := reader.read(CHUNK_BYTES):
                size += len(chunk)
                self._count(len(chunk))
                try:
                    handle.write(chunk)
                except OSError as exc:
                    raise _DiskFailure(exc) from None
            try:
                handle.flush()
            except OSError as exc:
                raise _DiskFailure(exc) from None
        if size != declared:
            raise DamagedArchive(f"{self.archive.name} is corrupt or truncated (member {member!r} holds {size:,} "
                                 f"bytes, its index says {declared:,})")

    # ------------------------------------------------------------ zip
    def unpack_zip(self) -> None:
        with zipfile.ZipFile(self.archive) as bundle:
            plan = [(info, *self._zip_kind(bundle, info)) for info in bundle.infolist()]  # all checked first
            total = sum(info.file_size for info, _, kind in plan if kind == "file")
            if total > self.allowed:
                raise self.limits.refusal(self.archive, self.size)
            with ByteProgress(self.console, f"unpacking {self.archive.name}") as progress:
                progress.start(total, 0)
                for info, name, kind in plan:
                    unpacked = bool(name) and rule_for(name, self.layout) is not None
                    if kind == "dir" and unpacked:
                        self._directory(info.filename, name)
                    elif kind == "file" and unpacked:
                        with bundle.open(info) as reader:
                            self._file(info.filename, name, reader, info.file_size)
                    elif kind == "file":  # not wanted, but read to its end: its CRC is checked too
                        with bundle.open(info) as reader:
                            while reader.read(CHUNK_BYTES):
                                pass
                    progress.update(self.written)

    def _zip_kind(self, bundle: zipfile.ZipFile, info: zipfile.ZipInfo) -> tuple[str, str]:
        name = member_name(self.archive, info.filename)
        if info.flag_bits & 0x1:
            raise DamagedArchive(f"refusing to unpack {self.archive.name}: member {info.filename!r} is encrypted, "
                                 "which the official archives never are")
        if info.compress_type not in _ZIP_METHODS:
            raise DamagedArchive(f"cannot unpack {self.archive.name}: member {info.filename!r} uses zip compression "
                                 f"method {info.compress_type}, which Python's zipfile cannot read (the official "
                                 "archives use deflate; `zip -r` re-packs a copy with it)")
        mode = info.external_attr >> 16
        if stat.S_ISLNK(mode):
            if info.file_size > 4096:
                raise unsafe(self.archive, info.filename, "is a link whose target is longer than a path can be")
            target = bundle.read(info).decode("utf-8", errors="replace")
            self._link(info.filename, name, target, hard=False)
            return name, "link"
        if stat.S_IFMT(mode) not in (0, stat.S_IFREG, stat.S_IFDIR):  # 0: no type recorded
            raise unsafe(self.archive, info.filename, "is a device or other special file")
        return name, ("dir" if info.is_dir() else "file")

    # ------------------------------------------------------------ tar
    def unpack_tar(self) -> None:
        with open(self.archive, "rb") as handle, decompressed(handle) as data, \
                ByteProgress(self.console, f"unpacking {self.archive.name}") as progress:
            stream = BlockStream(data, self.allowed, self.limits.refusal(self.archive, self.size))
            progress.start(self.size, 0)
            bundle = tarfile.open(fileobj=stream, mode="r:")  # type: ignore[call-overload]
            for member in _tar_members(bundle):  # one pass: each member is checked before it is written
                self._tar_member(bundle, member)
                progress.update(handle.tell())
            # tarfile stops at the first block that is not a header: only two zero blocks mean "complete"
            if not stream.ended_with_zero_block(bundle.offset):
                raise DamagedArchive(f"{self.archive.name} is truncated or damaged (no end-of-archive marker after "
                                     f"{bundle.offset:,} bytes of tar data)")
            stream.read_to_end()  # the decompressor checks its CRC and length only at the end
            progress.update(self.size)

    def _tar_member(self, bundle: tarfile.TarFile, member: tarfile.TarInfo) -> None:
        name = member_name(self.archive, member.name)
        wanted = bool(name) and rule_for(name, self.layout) is not None
        if member.issym() or member.islnk():
            linkname = member.linkname
            if member.islnk():
                linkname = "/".join(path_parts(linkname)) if not linkname.startswith("/") else linkname
            self._link(member.name, name, linkname, hard=member.islnk())
        elif member.isdir():
            if wanted:
                self._directory(member.name, name)
        elif member.isreg():
            if wanted:
                reader = bundle.extractfile(member)
                assert reader is not None  # a regular member always has a reader
                with reader:
                    self._file(member.name, name, reader, member.size)
        else:
            raise unsafe(self.archive, member.name, "is a device or other special file")

    # ------------------------------------------------------------ links, once everything is known
    def materialise_links(self) -> None:
        """Unpack each wanted link member as a copy of the regular file it really leads to."""
        for name, member in self.link_members.items():
            shown = self.links[name][0]
            if os.path.lexists(self.raw / name):
                raise unsafe(self.archive, member, "is a link where other members are unpacked (a link replacing "
                                                    "a file or folder, or with members below it)")
            resolved = resolve_in_archive(name, self.links)
            if resolved is None:
                raise unsafe(self.archive, member, f"is a link to {shown!r}, which leads outside the archive "
                                                    "through its other links (or loops)")
            folder = folder_of(name, self.layout)
            if folder is not None and not resolved.startswith(folder):
                raise unsafe(self.archive, member, f"is a link to {shown!r}, which really leads to {resolved!r}, "
                                                    f"outside its folder {folder!r}")
            source = self.raw / resolved
            try:
                kind = os.lstat(source).st_mode
            except FileNotFoundError:
                raise unsafe(self.archive, member, f"is a link to {shown!r}, which leads to {resolved!r}: no file "
                                                    "the archive unpacks") from None
            if not stat.S_ISREG(kind):
                raise unsafe(self.archive, member, f"is a link to the folder {resolved!r}; links to folders are "
                                                    "not unpacked")
            with open(source, "rb") as reader:
                self._file(member, name, reader, os.fstat(reader.fileno()).st_size)


#: Zip compression methods Python's zipfile reads here (bzip2 and lzma only where their modules exist).
_ZIP_METHODS = {zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED, zipfile.ZIP_BZIP2, zipfile.ZIP_LZMA}


def _tar_members(bundle: tarfile.TarFile) -> Iterator[tarfile.TarInfo]:
    while (member := bundle.next()) is not None:
        yield member


# --------------------------------------------------------------------------- arranging
def _arrange(raw: Path, arranged: Path, layout: tuple[tuple[str, str], ...]) -> None:
    """Move/copy the unpacked members to their data-root-relative places under ``arranged``."""
    for archive_path, destination in sorted(layout, key=lambda rule: rule[0].endswith("/")):  # files first
        source = raw / archive_path.rstrip("/")
        target = arranged / destination.rstrip("/")
        if not source.exists() or target.exists():
            continue
        target.parent.mkdir(parents=True, exist_ok=True)
        if archive_path.endswith("/"):
            if source.is_dir():
                os.replace(source, target)
        elif source.is_file():
            shutil.copyfile(source, target)
