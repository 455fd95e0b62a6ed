"""Unpacking an archive safely into a temporary folder inside the data root, then installing it.

Members with absolute paths, ``..`` components, links that point outside their folder, and device
or other special files are refused before anything is written; only the members a layout rule of
the :class:`~zslbench.data.fetch.sources.Source` names are unpacked.
"""

from __future__ import annotations

import gzip
import os
import posixpath
import re
import shutil
import stat
import tarfile
import tempfile
import zipfile
import zlib
from pathlib import Path
from typing import Any, Iterator

from zslbench.core.errors import UserError
from zslbench.data.fetch.download import ByteProgress, describe
from zslbench.data.fetch.install import install, root_not_writable
from zslbench.data.fetch.sources import CHUNK_BYTES, STAGING_PREFIX, Source


class DamagedArchive(Exception):
    """The archive is corrupt, truncated, unsafe or not the expected one."""


def unpack(archive: Path, source: Source, data_root: Path, force: bool = False,
           console: Any = None) -> tuple[list[Path], list[Path]]:
    """Unpack ``archive`` by ``source.layout`` into ``data_root``; returns (installed, unchanged) paths.

    Everything is unpacked into a temporary folder inside ``data_root`` first and moved into place
    only when the whole archive was read and checked; see :func:`install`.
    """
    try:
        staging = Path(tempfile.mkdtemp(prefix=STAGING_PREFIX, dir=data_root))
    except OSError as exc:  # a read-only data root: nothing was written
        raise root_not_writable(data_root, exc) from None
    try:
        raw, arranged = staging / "raw", staging / "out"
        raw.mkdir()
        arranged.mkdir()
        try:
            if zipfile.is_zipfile(archive):
                _unpack_zip(archive, raw, source.layout, console)
            elif _is_tar(archive):
                _unpack_tar(archive, raw, source.layout, console)
            else:
                raise DamagedArchive(f"{archive.name} is neither a zip nor a tar archive (corrupt or truncated)")
        except (zipfile.BadZipFile, tarfile.TarError, EOFError, zlib.error, gzip.BadGzipFile) as exc:
            raise DamagedArchive(f"{archive.name} is corrupt or truncated ({describe(exc)})") from None
        except OSError as exc:  # disk full, permissions: the archive itself may be fine
            raise UserError(f"unpacking {archive.name} into {data_root} failed ({describe(exc)}); free disk "
                            "space or fix the folder's permissions, then re-run") from None
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


def _is_tar(path: Path) -> bool:
    try:
        return tarfile.is_tarfile(path)
    except (OSError, EOFError, zlib.error):
        return False


def _rule_for(name: str, layout: tuple[tuple[str, str], ...]) -> str | None:
    """The archive path of the first layout rule that covers member ``name`` (None: not unpacked)."""
    for archive_path, _ in layout:
        if archive_path.endswith("/"):
            if name == archive_path.rstrip("/") or name.startswith(archive_path):
                return archive_path
        elif name == archive_path:
            return archive_path
    return None


def _unsafe(archive: Path, member: str, why: str) -> DamagedArchive:
    return DamagedArchive(f"refusing to unpack {archive.name}: member {member!r} {why}, so the archive is damaged "
                           "or malicious; nothing was installed")


def _member_name(archive: Path, name: str) -> str:
    """The normalised relative POSIX name of a member, or an error for absolute / ``..`` names."""
    text = name.replace("\\", "/")
    if text.startswith("/") or re.match(r"^[A-Za-z]:", text):
        raise _unsafe(archive, name, "has an absolute path")
    parts = [p for p in text.split("/") if p not in ("", ".")]
    if ".." in parts:
        raise _unsafe(archive, name, "has a '..' path component")
    return "/".join(parts)


def _check_link(archive: Path, member: str, name: str, target: str, hard: bool,
                layout: tuple[tuple[str, str], ...]) -> None:
    """A link must be relative and stay inside the folder a layout rule moves (so it moves with it).

    ``member`` is the name as stored (for messages), ``name`` its normalised form.
    """
    if target.startswith("/") or re.match(r"^[A-Za-z]:", target):
        raise _unsafe(archive, member, f"is a link to the absolute path {target!r}")
    base = "" if hard else posixpath.dirname(name)  # hard-link targets are archive paths
    resolved = posixpath.normpath(posixpath.join(base, target))
    if resolved == ".." or resolved.startswith("../"):
        raise _unsafe(archive, member, f"is a link to {target!r}, outside the archive")
    folder = next((path for path, _ in layout if path.endswith("/") and name.startswith(path)), None)
    if folder is not None and not resolved.startswith(folder):
        raise _unsafe(archive, member, f"is a link to {target!r}, outside its folder {folder!r}")


def _inside(root: Path, target: Path) -> bool:
    """Whether ``target`` stays inside ``root`` once existing symlinks on its way are followed."""
    real_root = os.path.realpath(root)
    real_parent = os.path.realpath(target.parent)
    return (real_parent == real_root or real_parent.startswith(real_root + os.sep)) and not target.is_symlink()


def _unpack_zip(archive: Path, raw: Path, layout: tuple[tuple[str, str], ...], console: Any) -> None:
    with zipfile.ZipFile(archive) as bundle:
        members = bundle.infolist()
        plan = []
        for info in members:  # check every member before writing any
            name = _member_name(archive, info.filename)
            mode = info.external_attr >> 16
            rule = _rule_for(name, layout)
            if stat.S_ISLNK(mode):
                target = bundle.read(info).decode("utf-8", errors="replace")
                _check_link(archive, info.filename, name, target, hard=False, layout=layout)
                kind = "link"
            elif stat.S_IFMT(mode) not in (0, stat.S_IFREG, stat.S_IFDIR):  # 0: no type recorded
                raise _unsafe(archive, info.filename, "is a device or other special file")
            else:
                kind = "dir" if info.is_dir() else "file"
            if name and rule is not None:
                plan.append((info, name, kind))
        total = sum(info.file_size for info, _, kind in plan if kind == "file")
        with ByteProgress(console, f"unpacking {archive.name}") as progress:
            progress.start(total, 0)
            done = 0
            for info, name, kind in plan:
                target = raw / name
                if not _inside(raw, target):
                    raise _unsafe(archive, info.filename, "would be written through a link")
                if kind == "dir":
                    target.mkdir(parents=True, exist_ok=True)
                    continue
                target.parent.mkdir(parents=True, exist_ok=True)
                if kind == "link":
                    os.symlink(bundle.read(info).decode("utf-8", errors="replace"), target)
                    continue
                with bundle.open(info) as reader, open(target, "wb") as writer:
                    shutil.copyfileobj(reader, writer, CHUNK_BYTES)
                done += info.file_size
                progress.update(done)


def _unpack_tar(archive: Path, raw: Path, layout: tuple[tuple[str, str], ...], console: Any) -> None:
    size = archive.stat().st_size
    with open(archive, "rb") as handle, tarfile.open(fileobj=handle, mode="r:*") as bundle, \
            ByteProgress(console, f"unpacking {archive.name}") as progress:
        progress.start(size, 0)
        for member in _tar_members(bundle):  # one pass: each member is checked before it is written
            name = _member_name(archive, member.name)
            rule = _rule_for(name, layout)
            if member.issym() or member.islnk():
                _check_link(archive, member.name, name, member.linkname, hard=member.islnk(), layout=layout)
            elif not (member.isreg() or member.isdir()):
                raise _unsafe(archive, member.name, "is a device or other special file")
            if not name or rule is None:
                continue
            if not _inside(raw, raw / name):
                raise _unsafe(archive, member.name, "would be written through a link")
            member.name = name
            if member.islnk():
                member.linkname = posixpath.normpath(member.linkname)
            _extract_member(bundle, member, raw)
            progress.update(handle.tell())


def _tar_members(bundle: tarfile.TarFile) -> Iterator[tarfile.TarInfo]:
    while (member := bundle.next()) is not None:
        yield member


def _extract_member(bundle: tarfile.TarFile, member: tarfile.TarInfo, raw: Path) -> None:
    if hasattr(tarfile, "data_filter"):  # Python ≥ 3.11.4: the standard library's own safety net as well
        bundle.extract(member, raw, set_attrs=False, filter="data")
    else:  # pragma: no cover - older Pythons; the checks above already ran
        bundle.extract(member, raw, set_attrs=False)


def _arrange(raw: Path, arranged: Path, layout: tuple[tuple[str, str], ...]) -> None:
    """Move/copy the unpacked members to their data-root-relative places under ``arranged``."""
    for archive_path, destination in sorted(layout, key=lambda rule: rule[0].endswith("/")):  # files first
        source = raw / archive_path.rstrip("/")
        target = arranged / destination.rstrip("/")
        if not (source.exists() or source.is_symlink()) or target.exists():
            continue
        target.parent.mkdir(parents=True, exist_ok=True)
        if archive_path.endswith("/"):
            if source.is_dir() and not source.is_symlink():
                os.replace(source, target)
        elif source.is_file() and not source.is_symlink():
            shutil.copyfile(source, target)
