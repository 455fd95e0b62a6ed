"""Writing files and folders so that a crash never leaves a torn one behind.

* :func:`atomic_write` — one file: written to a hidden temporary name beside it, fsynced, renamed
  over it. Readers see the old file or the new one. Bytes, text or a writer callback (e.g.
  ``torch.save`` or ``np.savez_compressed`` into the open handle).
* :func:`remove_torn_writes` — deletes the temporary files of writes whose process was killed.
* :func:`build_in_sibling` — one folder: built in a hidden sibling named after this process, then
  renamed into place; siblings left by builders that died are removed first, and a folder that
  another process finished meanwhile is kept.
* :func:`require_inside` — a folder zslbench writes into below a root (a data root's downloads, dataset
  folders, caches) is never followed through a link to somewhere outside that root.
* :func:`check_output_file`, :func:`check_output_folder`, :func:`check_utf8` — pre-flight checks of the
  paths a command will write, before it creates anything: writable (tried, not guessed: permissions do
  not stop root, a read-only mount or an immutable folder does), and text MLflow can store.

Files are created with the permissions the umask gives (like ``open(path, "w")``), not the 0600 of
:func:`tempfile.mkstemp`.

>>> import tempfile, pathlib
>>> folder = pathlib.Path(tempfile.mkdtemp())
>>> atomic_write(folder / "a.txt", "hello")
>>> (folder / "a.txt").read_text()
'hello'
>>> build_in_sibling(folder / "built", lambda tmp: (tmp / "x").write_text("1"))
True
>>> sorted(p.name for p in folder.iterdir())
['a.txt', 'built']
"""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
import uuid
from pathlib import Path
from typing import BinaryIO, Callable, Union

from zslbench.core.errors import UserError
from zslbench.core.faults import fault_point
from zslbench.core.liveness import is_alive, this_process

Content = Union[bytes, str, Callable[[BinaryIO], object]]
TEMP_SUFFIX = ".tmp"


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def atomic_write(path: str | os.PathLike[str], content: Content, hint: str = "") -> None:
    """Write ``content`` to ``path`` atomically: a temp file beside it, fsync, rename over it.

    ``content``: bytes, text (UTF-8) or ``write(handle)``. A write the disk refuses (full disk,
    read-only folder) is a one-line :class:`UserError` (``hint`` says what else to try); the temp file
    is removed and ``path`` keeps its old content. A path that exists and is no regular file (``/dev/null``,
    ``/dev/stdout``, a named pipe) is written in place: renaming over it would replace the device.
    """
    path = Path(path)
    if path.exists() and not path.is_file() and not path.is_dir():
        _write_in_place(path, content, hint)
        return
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=TEMP_SUFFIX)
    except OSError as exc:
        raise write_failed(path, exc, hint) from exc
    try:
        with os.fdopen(fd, "wb") as handle:
            _write_content(handle, content)
            handle.flush()
            os.fsync(handle.fileno())
        os.chmod(tmp, 0o666 & ~_umask())
        fault_point("atomic_write")
        os.replace(tmp, path)
    except BaseException as exc:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        failure = disk_failure(exc)
        if failure is not None:
            raise write_failed(path, failure, hint) from exc
        raise


def _write_in_place(path: Path, content: Content, hint: str) -> None:
    try:
        with open(path, "wb") as handle:
            _write_content(handle, content)
    except OSError as exc:
        raise write_failed(path, exc, hint) from exc


def _write_content(handle, content: Content) -> None:
    if isinstance(content, str):
        handle.write(content.encode("utf-8"))
    elif isinstance(content, bytes):
        handle.write(content)
    else:
        content(handle)


def disk_failure(exc: BaseException) -> OSError | None:
    """The ``OSError`` behind a failed write: ``exc`` itself, or the one on its context chain when a
    library turned it into a ``RuntimeError`` (``torch.save``'s zip writer: "unexpected pos"); else None."""
    seen: BaseException | None = exc
    while seen is not None:
        if isinstance(seen, OSError):
            return seen
        if not isinstance(seen, RuntimeError):  # only wrappers like the zip writer's hide a write error
            return None
        seen = seen.__cause__ or seen.__context__
    return None


def write_failed(path: Path, exc: OSError, hint: str = "") -> UserError:
    """The one-line error of a write the disk refused."""
    reason = exc.strerror or str(exc) or type(exc).__name__
    advice = hint or "free disk space or fix the folder's permissions, then try again"
    return UserError(f"cannot write {path} ({reason}); {advice}")


def remove_torn_writes(folder: str | os.PathLike[str]) -> None:
    """Delete the temporary files that :func:`atomic_write` calls killed mid-way left under ``folder``."""
    for leftover in Path(folder).rglob(f".*{TEMP_SUFFIX}"):
        if leftover.is_file():
            leftover.unlink(missing_ok=True)


# --------------------------------------------------------------------------- links
def escapes(root: str | os.PathLike[str], path: str | os.PathLike[str]) -> Path | None:
    """Where ``path`` really leads when that is outside ``root`` once the links on its way (``root``'s own
    included) are followed; None when it stays inside. Parts that do not exist yet count as plain names.

    >>> import tempfile, pathlib
    >>> root = pathlib.Path(tempfile.mkdtemp())
    >>> (root / "out").symlink_to("/")
    >>> escapes(root, root / "out" / "etc"), escapes(root, root / "CUB" / ".cache")
    (PosixPath('/etc'), None)
    """
    real_root, real = os.path.realpath(root), os.path.realpath(path)
    inside = real == real_root or real.startswith(real_root.rstrip(os.sep) + os.sep)
    return None if inside else Path(real)


def require_inside(root: str | os.PathLike[str], path: str | os.PathLike[str], what: str = "") -> Path:
    """``path``, when it stays inside ``root`` with every link on its way followed; else a one-line
    :class:`UserError` — a link planted there must not redirect zslbench's writes out of ``root``."""
    leads_to = escapes(root, path)
    if leads_to is not None:
        raise UserError(f"{what or path} ({path}) leads through a link to {leads_to}, outside {root}; zslbench does "
                        "not write through it: remove the link (or replace it with a real folder) and re-run")
    return Path(path)


# --------------------------------------------------------------------------- pre-flight checks of outputs
def _nearest_existing(path: Path) -> Path:
    for candidate in [path, *path.parents]:
        if candidate.exists():
            return candidate
    return Path(".")


def _can_create_in(folder: Path) -> OSError | None:
    """Whether a file can be created in ``folder``, found by creating (and removing) one: the only answer
    that holds for root, read-only mounts and immutable folders alike."""
    try:
        fd, probe = tempfile.mkstemp(dir=folder, prefix=".zslbench-write-probe-")
    except OSError as exc:
        return exc
    os.close(fd)
    os.unlink(probe)
    return None


def check_output_folder(folder: str | os.PathLike[str], what: str) -> None:
    """A one-line :class:`UserError` unless ``folder`` exists as a writable folder or can be created
    (its nearest existing parent is a writable folder). Nothing is left behind.

    >>> import tempfile, pathlib
    >>> check_output_folder(pathlib.Path(tempfile.mkdtemp()) / "runs" / "new", "track.output_dir")
    """
    folder = Path(folder)
    existing = _nearest_existing(folder)
    if not existing.is_dir():
        raise UserError(f"{what} {folder}: {existing} is a file, not a folder; choose another path")
    problem = _can_create_in(existing)
    if problem is not None:
        raise UserError(f"{what} {folder}: cannot write into {existing} ({problem.strerror or problem}); make it "
                        "writable or choose another path")


def check_output_file(path: str | os.PathLike[str], what: str) -> None:
    """A one-line :class:`UserError` unless ``path`` can be written (atomically: its folder must exist and
    take a new file; an existing ``path`` must be a file).

    >>> check_output_file("/no/such/folder/x.json", "--json")
    Traceback (most recent call last):
    ...
    zslbench.core.errors.UserError: --json /no/such/folder/x.json: folder /no/such/folder does not exist; create it or pick another path
    """
    path = Path(path)
    if not path.parent.is_dir():
        raise UserError(f"{what} {path}: folder {path.parent} does not exist; create it or pick another path")
    if path.is_dir():
        raise UserError(f"{what} {path} is a folder; give a file name")
    problem = _can_create_in(path.parent)
    if problem is not None:
        raise UserError(f"{what} {path}: cannot write into {path.parent} ({problem.strerror or problem}); make it "
                        "writable or pick another path")


def check_utf8(what: str, text: str) -> None:
    """A one-line :class:`UserError` when ``text`` (a path read from the command line or the file system) holds
    bytes that are not UTF-8: MLflow stores every param, tag and path as UTF-8 text.

    >>> check_utf8("data.root", "/data/zsl")
    >>> check_utf8("data.root", os.fsdecode(b"/data/caf\\xe9"))
    Traceback (most recent call last):
    ...
    zslbench.core.errors.UserError: data.root '/data/caf\\xe9' holds a byte that is not UTF-8 (0xe9); MLflow stores text as UTF-8: rename the path (or use another) so that it is valid UTF-8
    """
    try:
        text.encode("utf-8")
    except UnicodeEncodeError as exc:
        raw = os.fsencode(text)
        bad = raw[len(text[:exc.start].encode("utf-8", "surrogateescape"))]
        shown = raw.decode("utf-8", "backslashreplace")
        raise UserError(f"{what} '{shown}' holds a byte that is not UTF-8 (0x{bad:02x}); MLflow stores text as UTF-8: "
                        "rename the path (or use another) so that it is valid UTF-8") from None


# --------------------------------------------------------------------------- folders
def _builder_prefix(final: Path) -> str:
    return f".{final.name}.build-"


def build_in_sibling(final: str | os.PathLike[str], build: Callable[[Path], None],
                     keep_existing: Callable[[Path], bool] | None = None) -> bool:
    """Build the folder ``final`` with ``build(tmp)`` in a hidden sibling, then rename it into place.

    The sibling is named after this host and process (``.<name>.build-<host>-<pid>-<start>-<id>``), so
    the siblings of builders on this host whose process died are recognised and removed before the
    build. ``keep_existing(final)``: asked after the build when ``final`` exists — True keeps it (another
    process finished the same folder meanwhile) and discards this build; otherwise ``final`` is replaced
    (renamed away, then deleted). Returns whether this build was installed. On any error the sibling is
    removed and ``final`` is unchanged.
    """
    final = Path(final)
    remove_dead_builders(final)
    host, pid, started = this_process()
    temporary = final.with_name(f"{_builder_prefix(final)}{host}-{pid}-{started or 0}-{uuid.uuid4().hex[:8]}")
    try:
        temporary.mkdir()
        build(temporary)
        if final.exists() and keep_existing is not None and keep_existing(final):
            shutil.rmtree(temporary, ignore_errors=True)
            return False
        _replace_folder(temporary, final)
        return True
    except BaseException:
        shutil.rmtree(temporary, ignore_errors=True)
        raise


def _replace_folder(temporary: Path, final: Path) -> None:
    try:
        temporary.rename(final)
        return
    except OSError:
        if not final.exists():
            raise
    old = final.with_name(f".{final.name}.old-{uuid.uuid4().hex[:8]}")
    final.rename(old)
    temporary.rename(final)
    shutil.rmtree(old, ignore_errors=True)


def remove_dead_builders(final: str | os.PathLike[str]) -> list[Path]:
    """Delete the build siblings of ``final`` left by processes on this host that died; their paths."""
    final = Path(final)
    host = this_process()[0]
    removed = []
    for folder in final.parent.glob(f"{_builder_prefix(final)}*"):
        owner = folder.name[len(_builder_prefix(final)):].rsplit("-", 3)
        if len(owner) != 4 or owner[0] != host or not owner[1].isdigit():
            continue  # another host's builder may be alive
        if not is_alive(int(owner[1]), owner[2] if owner[2] != "0" else ""):
            shutil.rmtree(folder, ignore_errors=True)
            removed.append(folder)
    return removed
