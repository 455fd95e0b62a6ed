"""Downloading one file: in chunks with a progress bar, resumed with HTTP ``Range`` requests, retried
with backoff, and verified by size and checksums.

>>> filename_from_url("https://host/files/CUB_200_2011.tgz?download=1")
'CUB_200_2011.tgz'
"""

from __future__ import annotations

import errno
import hashlib
import http.client
import os
import posixpath
import re
import socket
import time
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path
from typing import Any

from zslbench.core.errors import UserError
from zslbench.data.fetch.sources import CHUNK_BYTES, USER_AGENT


class _Retryable(Exception):
    """A download attempt broke off; the next attempt resumes from the partial file."""


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
    with ByteProgress(console, f"downloading {destination.name}") as progress:
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


def _download_once(url: str, part: Path, expected_size: int | None, timeout_s: float,
                   progress: "ByteProgress") -> None:
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
        progress.start(total, offset)
        received = _receive(response, part, mode, offset, progress)
    if total is not None and received != total:  # Content-Length / Content-Range: the server's own size
        if received > total:
            part.unlink(missing_ok=True)
            raise UserError(f"{url} sent {received:,} bytes but announced {total:,}; the server is broken or the "
                            "file is not what it says: the partial file was deleted, download it from elsewhere")
        raise _Retryable(f"the connection closed at byte {received:,} of {total:,}")


def _receive(response: Any, part: Path, mode: str, offset: int, progress: "ByteProgress") -> int:
    """Append the body of ``response`` to ``part`` (from byte ``offset``); the bytes ``part`` then holds.

    A write the disk refuses — a chunk, or the buffered rest when the file is flushed and closed — deletes
    the partial file (a full disk keeps nothing worth resuming) and is one :class:`UserError` line.
    """
    received = offset
    try:
        handle = open(part, mode)
    except OSError as exc:
        raise _cannot_write(part, exc) from None
    try:
        with handle:
            while True:
                try:
                    chunk = response.read(CHUNK_BYTES)
                except (http.client.HTTPException, OSError) as exc:  # resets, timeouts, IncompleteRead
                    raise _Retryable(describe(exc)) from None
                if not chunk:
                    break
                handle.write(chunk)
                received += len(chunk)
                progress.update(received)
            handle.flush()
            os.fsync(handle.fileno())
    except OSError as exc:  # the write, the flush, the fsync or the close
        part.unlink(missing_ok=True)
        raise _cannot_write(part, exc) from None
    return received


def _cannot_write(part: Path, exc: OSError) -> UserError:
    return UserError(f"cannot write {part} ({exc.strerror or describe(exc)}); the partial download was deleted: "
                     "free disk space or fix the folder's permissions, then re-run")


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
            name = filename_from_url(url) or "the file"
            raise UserError(f"cannot reach {host} for {url} ({describe(exc.reason)}): this machine may have no "
                            f"route to the internet; download {name} elsewhere and pass --url "
                            f"file:///path/to/{name} (or its local path)") from None
        raise _Retryable(describe(exc.reason)) from None
    except (http.client.HTTPException, OSError) as exc:
        raise _Retryable(describe(exc)) from None


def _unreachable(reason: Any) -> bool:
    if isinstance(reason, (socket.gaierror, ConnectionRefusedError)):
        return True
    return isinstance(reason, OSError) and reason.errno in (errno.ENETUNREACH, errno.EHOSTUNREACH)


def describe(exc: Any) -> str:
    """An exception (or reason) as one line of at most 160 characters, for error messages."""
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
    """None when ``path`` has the given size and checksums (each None = not checked), else what differs.

    The sha256 is computed either way and kept (:func:`file_sha256` then costs nothing): a file without a
    published checksum is recorded by the one computed here.
    """
    actual_size = path.stat().st_size
    if size is not None and actual_size != size:
        return f"{actual_size:,} bytes, expected {size:,}"
    digests = _digests(path, console, md5=md5 is not None)
    for name, expected in (("sha256", sha256), ("md5", md5)):
        if expected is not None and digests[name] != expected.lower():
            return f"{name} {digests[name]}, expected {expected.lower()}"
    return None


def file_sha256(path: Path, console: Any = None) -> str:
    """The sha256 of ``path`` (remembered from :func:`verify_file` while the file is unchanged)."""
    return _digests(path, console)["sha256"]


_DIGESTS: dict[tuple[str, int, int, int], dict[str, str]] = {}


def _digests(path: Path, console: Any, md5: bool = False) -> dict[str, str]:
    status = path.stat()
    key = (os.path.realpath(path), status.st_size, status.st_mtime_ns, status.st_ino)
    known = _DIGESTS.get(key)
    if known is not None and (not md5 or "md5" in known):
        return known
    digests = {"sha256": hashlib.sha256()}
    if md5:
        digests["md5"] = hashlib.md5(usedforsecurity=False)
    with ByteProgress(console, f"verifying {path.name}") as progress, open(path, "rb") as handle:
        progress.start(status.st_size, 0)
        done = 0
        while chunk := handle.read(CHUNK_BYTES * 8):
            for digest in digests.values():
                digest.update(chunk)
            done += len(chunk)
            progress.update(done)
    _DIGESTS[key] = {name: digest.hexdigest() for name, digest in digests.items()}
    return _DIGESTS[key]


class ByteProgress:
    """A rich byte progress bar (size, speed, ETA) that survives retries; silent without a console."""

    def __init__(self, console: Any, description: str) -> None:
        self.console, self.description = console, description
        self.bar: Any = None
        self.task: Any = None

    def __enter__(self) -> "ByteProgress":
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


def filename_from_url(url: str) -> str | None:
    """The file name at the end of ``url``'s path (None when it has none)."""
    name = posixpath.basename(urllib.parse.urlparse(url).path)
    return name if name and name not in (".", "..") else None
