"""``zslbench data fetch``: download the official archives and unpack them safely (PROTOCOL.md §1).

What each archive holds and where it goes is data (:data:`SOURCES`). A fetch

1. downloads to ``<data root>/.downloads/<file>.part`` in chunks with a progress bar, resuming a
   partial file with an HTTP ``Range`` request (a server that ignores it answers 200 and the
   download restarts from byte 0; ``416`` means nothing is left, so the file is verified as is),
   retrying broken connections a bounded number of times with backoff;
2. verifies the size and checksums that are known (or the ``--sha256`` given); a mismatch deletes
   the download;
3. unpacks into a temporary folder *inside* the data root, refusing members with absolute paths,
   ``..`` components, links that point outside their folder, and device or other special files;
4. moves the dataset folders into place with renames (atomic on one file system). Nothing is
   replaced unless ``force``: existing identical files are left alone, and any other existing path
   makes the whole fetch stop before anything moves. A failed fetch leaves no half-unpacked
   dataset behind; the temporary folder is always removed;
5. deletes the downloaded archive (kept with ``keep_archive``, and kept when the install was refused,
   so that the re-run with ``--force`` does not download it again);
6. runs ``data check`` on the datasets it touched (existence of images only, no decoding).

With ``force``, only the entries the archive brings are replaced; other files in a dataset folder
(e.g. images next to re-fetched split files) stay.

``--url`` may be ``http(s)://``, ``file://`` or a plain local path (used in place, never deleted),
which is the way to go on a machine without internet access.

Example (not run here: it downloads):
    fetch("xlsa17", Path("~/zsl").expanduser())  # → ~/zsl/CUB/att_splits.mat, ~/zsl/AWA2/..., ~/zsl/SUN/...
"""

from __future__ import annotations

import errno
import gzip
import hashlib
import http.client
import os
import posixpath
import re
import shutil
import socket
import stat
import tarfile
import tempfile
import time
import urllib.error
import urllib.parse
import urllib.request
import zipfile
import zlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator

from zslbench.core.errors import DataError, UserError, unknown_name


@dataclass(frozen=True)
class Source:
    """One official archive and where its members go under the data root.

    ``layout`` rules are ``(path in the archive, path under the data root)``. A path ending in
    ``/`` is a folder (moved whole); otherwise a single file (copied, so that a file may also stay
    inside a moved folder). Members under no rule are not unpacked. When two rules fill the same
    destination, the first one present in the archive wins.
    """

    name: str
    url: str
    filename: str
    archive: str  # "zip" | "tar" (gzip-compressed here; any compression tarfile reads works)
    size: int | None  # bytes; None = unknown
    sha256: str | None
    md5: str | None
    layout: tuple[tuple[str, str], ...]
    datasets: tuple[str, ...]  # dataset folders to check afterwards
    holds: str  # "splits" | "images": what a later `data check` can still miss


#: The official sources (PROTOCOL.md §1). Sizes and checksums are listed only where known.
SOURCES: dict[str, Source] = {
    "xlsa17": Source(
        name="xlsa17", url="https://datasets.d2.mpi-inf.mpg.de/xian/xlsa17.zip", filename="xlsa17.zip",
        archive="zip", size=None, sha256=None, md5=None,
        layout=(("xlsa17/data/CUB/", "CUB/"), ("xlsa17/data/AWA1/", "AWA1/"), ("xlsa17/data/AWA2/", "AWA2/"),
                ("xlsa17/data/SUN/", "SUN/"), ("xlsa17/data/APY/", "APY/")),
        datasets=("CUB", "AWA2", "SUN"), holds="splits"),
    "CUB": Source(
        name="CUB", url="https://data.caltech.edu/records/65de6-vp158/files/CUB_200_2011.tgz",
        filename="CUB_200_2011.tgz", archive="tar", size=1_150_585_339, sha256=None,
        md5="97eceeb196236b17998738112f37df78",
        # the tgz also carries the attribute names at its top level: the file `data embed` reads
        layout=(("CUB_200_2011/", "CUB/CUB_200_2011/"), ("attributes.txt", "CUB/attributes.txt")),
        datasets=("CUB",), holds="images"),
    "AWA2": Source(
        name="AWA2", url="https://cvml.ista.ac.at/AwA2/AwA2-data.zip", filename="AwA2-data.zip",
        archive="zip", size=None, sha256=None, md5=None,
        layout=(("Animals_with_Attributes2/predicates.txt", "AWA2/predicates.txt"),
                ("Animals_with_Attributes2/", "AWA2/Animals_with_Attributes2/")),
        datasets=("AWA2",), holds="images"),
    "SUN": Source(
        name="SUN", url="https://cs.brown.edu/~gmpatter/Attributes/SUNAttributeDB_Images.tar.gz",
        filename="SUNAttributeDB_Images.tar.gz", archive="tar", size=None, sha256=None, md5=None,
        layout=(("SUNAttributeDB_Images/images/", "SUN/images/"), ("images/", "SUN/images/")),
        datasets=("SUN",), holds="images"),
}

CHUNK_BYTES = 1 << 20
DOWNLOADS = ".downloads"
STAGING_PREFIX = ".fetch-"
USER_AGENT = "zslbench-fetch/1 (python urllib)"


@dataclass
class FetchResult:
    """What a fetch did."""

    source: Source
    archive: Path
    installed: list[Path] = field(default_factory=list)
    unchanged: list[Path] = field(default_factory=list)  # identical files already in place
    reports: dict[str, Any] = field(default_factory=dict)  # dataset → CheckReport, or a note (str)
    check_failed: bool = False


class _Retryable(Exception):
    """A download attempt broke off; the next attempt resumes from the partial file."""


# --------------------------------------------------------------------------- the command
def fetch(name: str, data_root: str | Path, *, url: str | None = None, sha256: str | None = None,
          force: bool = False, keep_archive: bool = False, check: bool = True, console: Any = None,
          retries: int = 3, backoff_s: float = 1.0, timeout_s: float = 60.0) -> FetchResult:
    """Download (or take) the archive of ``name`` and install its dataset folders under ``data_root``.

    ``sha256`` replaces the table's size and checksums (for a different copy of the file).
    Raises :class:`UserError` with one line on any failure; see the module docstring.
    """
    source = _source(name)
    size, sha, md5 = (None, _valid_sha256(sha256), None) if sha256 is not None else (source.size, source.sha256,
                                                                                   source.md5)
    root = Path(data_root).expanduser()
    try:
        root.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise _root_not_writable(root, exc) from None
    location = url or source.url
    local = local_path(location)
    if local is not None:
        archive = _verified_local(local, source, size, sha, md5, console)
    else:
        downloads = root / DOWNLOADS
        try:
            downloads.mkdir(exist_ok=True)
        except OSError as exc:
            raise _root_not_writable(root, exc) from None
        try:
            archive = download(location, downloads / (_filename_from_url(location) or source.filename),
                               expected_size=size, sha256=sha, md5=md5, retries=retries, backoff_s=backoff_s,
                               timeout_s=timeout_s, console=console)
        finally:
            _remove_if_empty(downloads)  # keeps a partial download for resuming, never an empty folder
    result = FetchResult(source=source, archive=archive)
    result.installed, result.unchanged = _unpack_explained(archive, source, root, force, local is None, console)
    if local is None and not keep_archive:
        archive.unlink(missing_ok=True)
        _remove_if_empty(root / DOWNLOADS)
    _print_install(result, root, console)
    if check:
        result.reports, result.check_failed = check_fetched(source, root, result, console)
    return result


def _verified_local(path: Path, source: Source, size: int | None, sha: str | None, md5: str | None,
                    console: Any) -> Path:
    if not path.is_file():
        raise UserError(f"{path} does not exist; pass --url with the path (or file:// URL) of the downloaded "
                        f"{source.filename}")
    problem = verify_file(path, size, sha, md5, console)
    if problem:
        raise UserError(f"{path} is not the expected {source.filename}: {problem}; download it again "
                        "(or pass --sha256 of this copy if it is a newer release)")
    return path


def _unpack_explained(archive: Path, source: Source, root: Path, force: bool, downloaded: bool,
                      console: Any) -> tuple[list[Path], list[Path]]:
    """:func:`unpack`, with the fate of a downloaded archive added to the error message."""
    try:
        return unpack(archive, source, root, force=force, console=console)
    except _DamagedArchive as exc:
        if not downloaded:
            raise UserError(f"{exc}; download it again") from None
        archive.unlink(missing_ok=True)  # useless: the next run must download it anew
        _remove_if_empty(root / DOWNLOADS)
        raise UserError(f"{exc}; it was deleted, re-run to download it again") from None
    except UserError as exc:  # e.g. existing files: keep the verified download for the re-run
        if downloaded:
            raise UserError(f"{exc} (the downloaded archive stays in {archive} for that re-run)") from None
        raise


def _source(name: str) -> Source:
    by_lower = {key.lower(): key for key in SOURCES}
    key = by_lower.get(str(name).lower())
    if key is None:
        raise unknown_name("archive", str(name), SOURCES)
    return SOURCES[key]


def _valid_sha256(text: str) -> str:
    value = text.strip().lower()
    if not re.fullmatch(r"[0-9a-f]{64}", value):
        raise UserError(f"--sha256 must be 64 hexadecimal digits, got {text!r}; copy the checksum exactly")
    return value


def local_path(location: str) -> Path | None:
    """The local file a ``--url`` names (``file://`` or a plain path), or None for a network URL.

    >>> local_path("file:///tmp/x.zip"), local_path("https://host/x.zip")
    (PosixPath('/tmp/x.zip'), None)
    """
    parsed = urllib.parse.urlparse(location)
    if parsed.scheme == "file":
        return Path(urllib.request.url2pathname(parsed.path))
    if parsed.scheme in ("http", "https", "ftp"):
        return None
    if parsed.scheme and len(parsed.scheme) > 1:  # "s3://..." and the like; one letter = a Windows drive
        raise UserError(f"unsupported URL scheme {parsed.scheme!r} in {location!r}; use http(s)://, file:// "
                        "or a local path")
    return Path(location).expanduser()


def _filename_from_url(url: str) -> str | None:
    name = posixpath.basename(urllib.parse.urlparse(url).path)
    return name if name and name not in (".", "..") else None


# --------------------------------------------------------------------------- downloading
def download(url: str, destination: Path, *, expected_size: int | None = None, sha256: str | None = None,
             md5: str | None = None, retries: int = 3, backoff_s: float = 1.0, timeout_s: float = 60.0,
             console: Any = None) -> Path:
    """Download ``url`` to ``destination`` via ``destination.part``, resuming and verifying.

    An already complete ``destination`` (an earlier run) is verified and reused.
    """
    if destination.is_file():
        if not verify_file(destination, expected_size, sha256, md5, console):
            return destination
        destination.unlink()
    part = destination.with_name(destination.name + ".part")
    with _Progress(console, f"downloading {destination.name}") as progress:
        for attempt in range(1, retries + 1):
            try:
                _download_once(url, part, expected_size, timeout_s, progress)
                break
            except _Retryable as exc:
                if attempt == retries:
                    have = part.stat().st_size if part.exists() else 0
                    raise UserError(
                        f"the download of {url} broke off ({exc}) after {retries} tries, with {have:,} bytes in "
                        f"{part}; re-run the same command to resume from there") from None
                time.sleep(backoff_s * 2 ** (attempt - 1))
    problem = verify_file(part, expected_size, sha256, md5, console)
    if problem:
        part.unlink(missing_ok=True)
        raise UserError(f"the file downloaded from {url} is corrupt: {problem}; it was deleted, re-run to "
                        "download it again (or pass --sha256 if the file changed upstream)")
    os.replace(part, destination)
    return destination


def _download_once(url: str, part: Path, expected_size: int | None, timeout_s: float, progress: "_Progress") -> None:
    offset = part.stat().st_size if part.exists() else 0
    if expected_size is not None and offset > expected_size:  # not a prefix of the right file
        part.unlink()
        offset = 0
    if expected_size is not None and 0 < offset == expected_size:
        return  # already complete: verify
    headers = {"User-Agent": USER_AGENT}
    if offset:
        headers["Range"] = f"bytes={offset}-"
    response = _open(url, headers, timeout_s, offset)
    if response is None:
        return  # 416: nothing left to send, the partial file is complete
    with response:
        if offset and response.status == 206:
            start, total = _content_range(response.headers.get("Content-Range", ""))
            if start != offset:
                part.unlink(missing_ok=True)
                raise _Retryable(f"the server resumed at byte {start} instead of {offset}; restarting")
            mode = "ab"
        elif response.status == 200:  # a first request, or a server that ignored Range: start at 0
            offset, mode = 0, "wb"
            length = response.headers.get("Content-Length")
            total = int(length) if length and length.isdigit() else None
        else:
            raise _Retryable(f"unexpected HTTP status {response.status}")
        if total is not None and expected_size is not None and total != expected_size:
            part.unlink(missing_ok=True)
            raise UserError(f"{url} is {total:,} bytes but the expected file has {expected_size:,}; the file changed "
                            "upstream or the URL is wrong: pass --sha256 of the new file to accept it")
        received = offset
        progress.start(total, received)
        with open(part, mode) as handle:
            while True:
                try:
                    chunk = response.read(CHUNK_BYTES)
                except (http.client.HTTPException, OSError) as exc:  # resets, timeouts, IncompleteRead
                    raise _Retryable(_describe(exc)) from None
                if not chunk:
                    break
                try:
                    handle.write(chunk)
                except OSError as exc:
                    raise UserError(f"cannot write {part} ({_describe(exc)}); free disk space or fix the folder's "
                                    "permissions, then re-run to resume") from None
                received += len(chunk)
                progress.update(received)
    if total is not None and received < total:
        raise _Retryable(f"the connection closed at byte {received:,} of {total:,}")


def _open(url: str, headers: dict[str, str], timeout_s: float, offset: int):
    """urlopen with errors sorted into retryable ones and one-line UserErrors; None for a 416."""
    request = urllib.request.Request(url, headers=headers)
    try:
        return urllib.request.urlopen(request, timeout=timeout_s)
    except urllib.error.HTTPError as exc:
        exc.close()
        if exc.code == 416 and offset:
            return None
        if exc.code in (408, 429) or exc.code >= 500:
            raise _Retryable(f"HTTP {exc.code} {exc.reason}") from None
        raise UserError(f"cannot download {url}: HTTP {exc.code} {exc.reason}; check the URL, or download the "
                        "file elsewhere and pass --url file:///path/to/it") from None
    except urllib.error.URLError as exc:
        if _unreachable(exc.reason):
            host = urllib.parse.urlparse(url).hostname
            name = _filename_from_url(url) or "the file"
            raise UserError(f"cannot reach {host} for {url} ({_describe(exc.reason)}): this machine may have no "
                            f"route to the internet; download {name} elsewhere and pass --url "
                            f"file:///path/to/{name} (or its local path)") from None
        raise _Retryable(_describe(exc.reason)) from None
    except (http.client.HTTPException, OSError) as exc:
        raise _Retryable(_describe(exc)) from None


def _unreachable(reason: Any) -> bool:
    if isinstance(reason, (socket.gaierror, ConnectionRefusedError)):
        return True
    return isinstance(reason, OSError) and reason.errno in (errno.ENETUNREACH, errno.EHOSTUNREACH)


def _describe(exc: Any) -> str:
    text = " ".join(str(exc).split()) or exc.__class__.__name__
    return text[:160]


def _content_range(value: str) -> tuple[int, int | None]:
    """``bytes START-END/TOTAL`` → (START, TOTAL or None).

    >>> _content_range("bytes 100-199/200"), _content_range("bytes 5-9/*")
    ((100, 200), (5, None))
    """
    match = re.fullmatch(r"\s*bytes\s+(\d+)-\d+/(\d+|\*)\s*", value)
    if not match:
        return -1, None
    return int(match.group(1)), (int(match.group(2)) if match.group(2) != "*" else None)


def verify_file(path: Path, size: int | None, sha256: str | None, md5: str | None, console: Any = None) -> str | None:
    """None when ``path`` has the given size and checksums (each None = not checked), else what differs."""
    actual_size = path.stat().st_size
    if size is not None and actual_size != size:
        return f"{actual_size:,} bytes, expected {size:,}"
    if sha256 is None and md5 is None:
        return None
    digests = {"sha256": hashlib.sha256(), "md5": hashlib.md5(usedforsecurity=False)}
    with _Progress(console, f"verifying {path.name}") as progress, open(path, "rb") as handle:
        progress.start(actual_size, 0)
        done = 0
        while chunk := handle.read(CHUNK_BYTES * 8):
            for digest in digests.values():
                digest.update(chunk)
            done += len(chunk)
            progress.update(done)
    for name, expected in (("sha256", sha256), ("md5", md5)):
        if expected is not None and digests[name].hexdigest() != expected.lower():
            return f"{name} {digests[name].hexdigest()}, expected {expected.lower()}"
    return None


class _Progress:
    """A rich byte progress bar (size, speed, ETA) that survives retries; silent without a console."""

    def __init__(self, console: Any, description: str) -> None:
        self.console, self.description = console, description
        self.bar: Any = None
        self.task: Any = None

    def __enter__(self) -> "_Progress":
        if self.console is not None:
            from rich.progress import BarColumn, DownloadColumn, Progress, TimeRemainingColumn, TransferSpeedColumn

            self.bar = Progress("[progress.description]{task.description}", BarColumn(), DownloadColumn(),
                                TransferSpeedColumn(), TimeRemainingColumn(), console=self.console, transient=True)
            self.bar.start()
        return self

    def start(self, total: int | None, completed: int) -> None:
        if self.bar is None:
            return
        if self.task is None:
            self.task = self.bar.add_task(self.description, total=total, completed=completed)
        else:
            self.bar.reset(self.task, total=total, completed=completed)

    def update(self, completed: int) -> None:
        if self.bar is not None and self.task is not None:
            self.bar.update(self.task, completed=completed)

    def __exit__(self, *exc_info: Any) -> None:
        if self.bar is not None:
            self.bar.stop()


# --------------------------------------------------------------------------- unpacking
class _DamagedArchive(Exception):
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
        raise _root_not_writable(data_root, exc) from None
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
                raise _DamagedArchive(f"{archive.name} is neither a zip nor a tar archive (corrupt or truncated)")
        except (zipfile.BadZipFile, tarfile.TarError, EOFError, zlib.error, gzip.BadGzipFile) as exc:
            raise _DamagedArchive(f"{archive.name} is corrupt or truncated ({_describe(exc)})") from None
        except OSError as exc:  # disk full, permissions: the archive itself may be fine
            raise UserError(f"unpacking {archive.name} into {data_root} failed ({_describe(exc)}); free disk "
                            "space or fix the folder's permissions, then re-run") from None
        _arrange(raw, arranged, source.layout)
        if not any(arranged.iterdir()):
            wanted = ", ".join(path for path, _ in source.layout)
            raise _DamagedArchive(f"{archive.name} holds none of the expected paths ({wanted}); "
                                  f"it is not the {source.name} archive")
        return install(arranged, data_root, force=force, trash=staging / "trash")
    except OSError as exc:  # arranging or moving into place: a full disk, a read-only dataset folder
        raise _root_not_writable(data_root, exc) from None
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def _root_not_writable(root: Path, exc: OSError) -> DataError:
    return DataError(f"cannot write into the data root {root} ({exc.strerror or _describe(exc)}); fix its "
                     "permissions or free disk space, or pass another --data-root")


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


def _unsafe(archive: Path, member: str, why: str) -> _DamagedArchive:
    return _DamagedArchive(f"refusing to unpack {archive.name}: member {member!r} {why}, so the archive is damaged "
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
        with _Progress(console, f"unpacking {archive.name}") as progress:
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
            _Progress(console, f"unpacking {archive.name}") as progress:
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


def install(arranged: Path, data_root: Path, force: bool = False,
            trash: Path | None = None) -> tuple[list[Path], list[Path]]:
    """Move each ``arranged/<dataset>/<entry>`` to ``data_root/<dataset>/<entry>`` by renames.

    A dataset folder that does not exist yet moves in whole. Inside an existing one, identical
    files are left as they are; any other existing entry is a conflict: without ``force`` the
    install stops before moving anything, with ``force`` the old entry is replaced.
    Returns (installed paths, unchanged paths).
    """
    plan: list[tuple[Path, Path, str]] = []
    conflicts: list[Path] = []
    for folder in sorted(arranged.iterdir()):
        destination = data_root / folder.name
        if not destination.exists():
            plan.append((folder, destination, "move"))
            continue
        if not destination.is_dir():
            conflicts.append(destination)
            continue
        for entry in sorted(folder.iterdir()):
            target = destination / entry.name
            if not (target.exists() or target.is_symlink()):
                plan.append((entry, target, "move"))
            elif entry.is_file() and target.is_file() and _same_file(entry, target):
                plan.append((entry, target, "same"))
            elif force:
                plan.append((entry, target, "replace"))
            else:
                conflicts.append(target)
    if conflicts:
        shown = ", ".join(str(p) for p in conflicts[:3]) + (" ..." if len(conflicts) > 3 else "")
        raise UserError(f"{len(conflicts)} path(s) already exist and differ from the archive ({shown}); nothing was "
                        "changed: pass --force to replace them, or move them away first")
    trash = trash or arranged.parent / "trash"
    installed, unchanged = [], []
    for number, (entry, target, action) in enumerate(plan):
        if action == "same":
            unchanged.append(target)
            continue
        if action == "replace":
            trash.mkdir(exist_ok=True)
            os.replace(target, trash / f"{number}-{target.name}")
        os.replace(entry, target)
        installed.append(target)
    return installed, unchanged


def _same_file(first: Path, second: Path) -> bool:
    if first.stat().st_size != second.stat().st_size:
        return False
    return _sha256(first) == _sha256(second)


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while chunk := handle.read(CHUNK_BYTES * 8):
            digest.update(chunk)
    return digest.hexdigest()


def _remove_if_empty(folder: Path) -> None:
    try:
        folder.rmdir()
    except OSError:
        pass


# --------------------------------------------------------------------------- reporting and checking
def _print_install(result: FetchResult, root: Path, console: Any) -> None:
    if console is None:
        return
    for path in result.installed:
        console.print(f"[green]installed[/] {path}")
    if result.unchanged:
        console.print(f"{len(result.unchanged)} identical file(s) already in place under {root}")


def check_fetched(source: Source, root: Path, result: FetchResult, console: Any) -> tuple[dict[str, Any], bool]:
    """``data check`` (no decoding) of the datasets the fetch touched; (reports, whether one failed).

    After fetching the split files only, missing images are expected (they come from each
    dataset's own archive) and do not count as a failure; neither do split files that are still
    missing after fetching images. Unreadable split files right after fetching them do.
    """
    from zslbench.data.inspect import check_dataset

    touched = {p.relative_to(root).parts[0] for p in [*result.installed, *result.unchanged]}
    reports: dict[str, Any] = {}
    failed = False
    for dataset in [d for d in source.datasets if d in touched]:
        try:
            report = check_dataset(dataset, root, decode=False)
        except UserError as exc:  # unreadable split files: a failure if they are what was just fetched
            note = f"{dataset}: not checked ({exc})"
            reports[dataset] = note
            _say(console, f"[{'red' if source.holds == 'splits' else 'yellow'}]{note}[/]")
            failed = failed or source.holds == "splits"
            continue
        reports[dataset] = report
        problems = list(report.problems)
        if source.holds == "splits" and report.missing:
            problems = [p for p in problems if "images missing" not in p]
            _say(console, f"{dataset}: split files in place; {len(report.missing):,} images not present yet — images "
                          f"come from the dataset's own archive: `zslbench data fetch {dataset} --data-root {root}`")
        elif report.ok:
            _say(console, f"[green]{dataset}: OK[/] ({report.checked:,} images present)")
        for problem in problems:
            _say(console, f"[red]{dataset}: {problem}[/]")
        failed = failed or bool(problems)
    return reports, failed


def _say(console: Any, text: str) -> None:
    if console is not None:
        console.print(text, highlight=False)
