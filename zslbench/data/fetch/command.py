"""The ``zslbench data fetch`` command: one archive fetched, unpacked, installed and checked.

>>> _valid_sha256("AB" * 32) == "ab" * 32
True
"""

from __future__ import annotations

import datetime
import json
import re
import urllib.parse
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from zslbench.core.errors import UserError, unknown_name
from zslbench.core.files import atomic_write, require_inside
from zslbench.core.secrets import mask_credentials
from zslbench.data.fetch.archive import DamagedArchive, UnpackLimits, unpack
from zslbench.data.fetch.download import download, file_sha256, filename_from_url, verify_file
from zslbench.data.fetch.install import remove_if_empty, root_not_writable
from zslbench.data.fetch.sources import DOWNLOADS, SOURCES, Source

#: What a fetch records of each archive it installed, in the data root: where it came from, its sha256
#: (computed here when no checksum was published) and what verified it.
RECORD = ".fetched.json"
SHOWN = 20  # installed paths listed one by one


@dataclass
class FetchResult:
    """What a fetch did."""

    source: Source
    archive: Path
    installed: list[Path] = field(default_factory=list)
    unchanged: list[Path] = field(default_factory=list)  # identical files already in place
    reports: dict[str, Any] = field(default_factory=dict)  # dataset → CheckReport, or a note (str)
    check_failed: bool = False
    sha256: str = ""  # of the archive, always computed
    verified_by: str = ""  # "published md5", "published sha256", "--sha256", or "" (no checksum published)


# --------------------------------------------------------------------------- the command
def fetch(name: str, data_root: str | Path, *, url: str | None = None, sha256: str | None = None,
          force: bool = False, keep_archive: bool = False, check: bool = True, console: Any = None,
          retries: int = 3, backoff_s: float = 1.0, timeout_s: float = 60.0,
          limits: UnpackLimits | None = None) -> FetchResult:
    """Download (or take) the archive of ``name`` and install its dataset folders under ``data_root``.

    ``sha256`` replaces the table's size and checksums (for a different copy of the file); ``limits`` bound
    what the archive may unpack to. Raises :class:`UserError` with one line on any failure, after removing
    the folders this fetch created (a partial download stays for resuming); see the module docstring.
    """
    source = _source(name)
    size, sha, md5 = (None, _valid_sha256(sha256), None) if sha256 is not None else (source.size, source.sha256,
                                                                                   source.md5)
    root = Path(data_root).expanduser()
    created = _missing_folders(root)
    try:
        root.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        _remove_empty(created)
        raise root_not_writable(root, exc) from None
    try:
        result = _fetch_into(source, root, url, (size, sha, md5), force, keep_archive, console, retries, backoff_s,
                             timeout_s, limits)
    except BaseException:
        _remove_empty(created)
        raise
    result.verified_by = "--sha256" if sha256 is not None else \
        "published sha256" if sha else "published md5" if md5 else ""
    _print_install(result, root, console)
    _record(result, root, url or source.url, console)
    if check:
        result.reports, result.check_failed = check_fetched(source, root, result, console)
    return result


def _fetch_into(source: Source, root: Path, url: str | None, expected: tuple[int | None, str | None, str | None],
                force: bool, keep_archive: bool, console: Any, retries: int, backoff_s: float, timeout_s: float,
                limits: UnpackLimits | None) -> FetchResult:
    size, sha, md5 = expected
    location = url or source.url
    local = local_path(location)
    if local is not None:
        archive = _verified_local(local, source, size, sha, md5, console)
    else:
        downloads = require_inside(root, root / DOWNLOADS, "the downloads folder")
        try:
            downloads.mkdir(exist_ok=True)
        except OSError as exc:
            raise root_not_writable(root, exc) from None
        try:
            archive = download(location, downloads / (filename_from_url(location) or source.filename),
                               expected_size=size, sha256=sha, md5=md5, retries=retries, backoff_s=backoff_s,
                               timeout_s=timeout_s, console=console)
        finally:
            remove_if_empty(downloads)  # keeps a partial download for resuming, never an empty folder
    result = FetchResult(source=source, archive=archive, sha256=file_sha256(archive, console))
    result.installed, result.unchanged = _unpack_explained(archive, source, root, force, local is None, console,
                                                           limits)
    if local is None and not keep_archive:
        archive.unlink(missing_ok=True)
        remove_if_empty(root / DOWNLOADS)
    return result


def _missing_folders(root: Path) -> list[Path]:
    """``root`` and those of its parents that do not exist yet, deepest first (what ``mkdir -p`` creates)."""
    missing = []
    for folder in [root, *root.parents]:
        if folder.exists() or folder.is_symlink():
            break
        missing.append(folder)
    return missing


def _remove_empty(folders: list[Path]) -> None:
    """Remove the folders a failed fetch created, deepest first, where nothing (a partial download) is left."""
    for folder in folders:
        remove_if_empty(folder)


def _record(result: FetchResult, root: Path, location: str, console: Any) -> None:
    """Note the archive's sha256 and what verified it in ``<data root>/.fetched.json``."""
    if not result.verified_by:
        _say(console, f"[yellow]note:[/] {result.source.filename} has no published checksum: it was checked by its "
                      f"own structure only (sizes, CRCs, end of archive). Its sha256 is {result.sha256}, recorded in "
                      f"{root / RECORD}; pass --sha256 {result.sha256} to require exactly this file next time")
    path = root / RECORD
    try:
        records = json.loads(path.read_text(encoding="utf-8")) if path.is_file() else {}
    except (OSError, ValueError):
        records = {}
    if not isinstance(records, dict):
        records = {}
    records[result.source.name] = {
        "file": result.archive.name, "url": mask_credentials(location), "sha256": result.sha256,
        "bytes": result.archive.stat().st_size if result.archive.exists() else None,
        "verified_by": result.verified_by or "none published: checked by the archive's own structure",
        "fetched": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
    }
    try:
        atomic_write(path, json.dumps(records, indent=2) + "\n")
    except UserError as exc:  # the data is installed; only the note is missing
        _say(console, f"[yellow]warning:[/] {exc}")


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
                      console: Any, limits: UnpackLimits | None = None) -> tuple[list[Path], list[Path]]:
    """:func:`unpack`, with the fate of a downloaded archive added to the error message."""
    try:
        return unpack(archive, source, root, force=force, console=console, limits=limits)
    except DamagedArchive as exc:
        if not downloaded:
            raise UserError(f"{exc}; download it again") from None
        archive.unlink(missing_ok=True)  # useless: the next run must download it anew
        remove_if_empty(root / DOWNLOADS)
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


# --------------------------------------------------------------------------- reporting and checking
def _print_install(result: FetchResult, root: Path, console: Any) -> None:
    if console is None:
        return
    for path in result.installed[:SHOWN]:
        console.print(f"[green]installed[/] {path}", highlight=False)
    if len(result.installed) > SHOWN:
        console.print(f"... and {len(result.installed) - SHOWN:,} more path(s)")
    if result.unchanged and not result.installed:
        console.print(f"nothing to install: the {len(result.unchanged):,} file(s) of {result.archive.name} are "
                      f"already in place under {root}, identical")
    elif result.unchanged:
        console.print(f"{len(result.unchanged):,} identical file(s) already in place under {root}")


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
