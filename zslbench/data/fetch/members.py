"""What an archive's members are allowed to be: their names, where their links really lead, and how much they
may expand — the checks :mod:`~zslbench.data.fetch.archive` applies to zip and tar alike.

>>> member_name(Path("x.zip"), "./CUB_200_2011//images/a.jpg")
'CUB_200_2011/images/a.jpg'
"""

from __future__ import annotations

import posixpath
import re
from dataclasses import dataclass
from pathlib import Path

from zslbench.core.errors import UserError

GIB = 1 << 30
#: Links are followed at most this many times while one path is resolved (Linux's own bound).
MAX_LINK_HOPS = 40


class DamagedArchive(Exception):
    """The archive is corrupt, truncated, unsafe or not the expected one."""


@dataclass(frozen=True)
class UnpackLimits:
    """How much an archive may expand: at most ``max_gib`` GiB in all, and — past ``ratio_floor_bytes`` — at
    most ``max_ratio`` times its own size (a 1 MB archive that expands to 1 GiB is a bomb, not a dataset).

    The official archives hold JPEG images and MATLAB files, which barely compress: they expand by a small
    factor, far below the default ratio, and to less than the default total (AWA2's, the largest, to about
    13 GB). ``zslbench data fetch --max-unpacked-gib/--max-ratio`` raise the limits.

    >>> UnpackLimits().allowed(1_000_000) // (1 << 20)
    95
    >>> UnpackLimits(max_gib=1).allowed(10 * GIB) == GIB
    True
    """

    max_gib: float = 64.0
    max_ratio: float = 100.0
    ratio_floor_bytes: int = 64 << 20

    def allowed(self, archive_bytes: int) -> int:
        """The most bytes an archive of ``archive_bytes`` may unpack to."""
        by_ratio = max(self.ratio_floor_bytes, int(self.max_ratio * archive_bytes))
        return min(int(self.max_gib * GIB), by_ratio)

    def refusal(self, archive: Path, size: int) -> UserError:
        return UserError(
            f"refusing to unpack {archive.name}: it expands to more than {_gib(self.allowed(size))} "
            f"({_gib(size)} compressed; limits: {self.max_gib:g} GiB and {self.max_ratio:g}× the archive's size), "
            "which a dataset archive does not; nothing was installed. If you trust it, raise the limits with "
            "--max-unpacked-gib and --max-ratio")


def _gib(size: int) -> str:
    return f"{size / GIB:.3g} GiB" if size >= GIB else f"{size / (1 << 20):.3g} MiB"


# --------------------------------------------------------------------------- names and links
def rule_for(name: str, layout: tuple[tuple[str, str], ...]) -> str | None:
    """The archive path of the first layout rule that covers member ``name`` (None: not unpacked)."""
    for archive_path, _ in layout:
        if archive_path.endswith("/"):
            if name == archive_path.rstrip("/") or name.startswith(archive_path):
                return archive_path
        elif name == archive_path:
            return archive_path
    return None


def folder_of(name: str, layout: tuple[tuple[str, str], ...]) -> str | None:
    """The folder rule (``"x/"``) that moves member ``name``, if any."""
    return next((path for path, _ in layout if path.endswith("/") and name.startswith(path)), None)


def unsafe(archive: Path, member: str, why: str) -> DamagedArchive:
    return DamagedArchive(f"refusing to unpack {archive.name}: member {member!r} {why}, so the archive is damaged "
                           "or malicious; nothing was installed")


def path_parts(path: str) -> list[str]:
    return [part for part in path.replace("\\", "/").split("/") if part not in ("", ".")]


def member_name(archive: Path, name: str) -> str:
    """The normalised relative POSIX name of a member, or an error for absolute / ``..`` names."""
    text = name.replace("\\", "/")
    if text.startswith("/") or re.match(r"^[A-Za-z]:", text):
        raise unsafe(archive, name, "has an absolute path")
    parts = path_parts(text)
    if ".." in parts:
        raise unsafe(archive, name, "has a '..' path component")
    return "/".join(parts)


def resolve_in_archive(path: str, links: dict[str, tuple[str, bool]]) -> str | None:
    """Where ``path`` leads inside an archive whose link members are ``links`` (name → (target, hard)),
    following every link on the way as the operating system would once they were unpacked; None when it
    leads outside the archive (or into a loop of links).

    A link's ``..`` applies to where the link leads, not to its text: ``d/up2 → up/..`` normalises to
    ``d`` but, with ``d/up → ..``, really leads one level above the archive.

    >>> links = {"d/up": ("..", False), "d/up2": ("up/..", False), "d/pic": ("../img/a.jpg", False)}
    >>> resolve_in_archive("d/up2", links) is None, resolve_in_archive("d/pic", links)
    (True, 'img/a.jpg')
    >>> resolve_in_archive("x/hard", {"x/hard": ("d/pic", True), "d/pic": ("../img/a.jpg", False)})
    'img/a.jpg'
    """
    pending, done, hops = path_parts(path), [], 0
    while pending:
        part = pending.pop(0)
        if part == "..":
            if not done:
                return None
            done.pop()
            continue
        candidate = "/".join([*done, part])
        if candidate not in links:
            done.append(part)
            continue
        hops += 1
        target, hard = links[candidate]
        if hops > MAX_LINK_HOPS or target.startswith("/") or re.match(r"^[A-Za-z]:", target):
            return None
        pending = path_parts(target) + pending
        if hard:  # a hard link names an archive path
            done = []
    return "/".join(done)


def check_link_text(archive: Path, member: str, name: str, target: str, hard: bool,
                     layout: tuple[tuple[str, str], ...]) -> None:
    """The checks a link's own text allows, before anything is written (where it really leads is checked
    once the whole archive is known, by the unpacker of :mod:`~zslbench.data.fetch.archive`)."""
    if target.startswith("/") or re.match(r"^[A-Za-z]:", target):
        raise unsafe(archive, member, f"is a link to the absolute path {target!r}")
    base = "" if hard else posixpath.dirname(name)  # hard-link targets are archive paths
    resolved = posixpath.normpath(posixpath.join(base, target.replace("\\", "/")))
    if resolved == ".." or resolved.startswith("../"):
        raise unsafe(archive, member, f"is a link to {target!r}, outside the archive")
    folder = folder_of(name, layout)
    if folder is not None and not resolved.startswith(folder):
        raise unsafe(archive, member, f"is a link to {target!r}, outside its folder {folder!r}")
