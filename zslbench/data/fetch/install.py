"""Installing unpacked dataset folders under the data root: renames only, and nothing replaced unless
``force`` (identical files are left alone; any other existing path stops the install before anything moves).
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

from zslbench.core.errors import DataError, UserError
from zslbench.data.fetch.download import describe
from zslbench.data.fetch.sources import CHUNK_BYTES


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


def remove_if_empty(folder: Path) -> None:
    """Delete ``folder`` when it is empty (e.g. ``.downloads`` after the archive went); else leave it."""
    try:
        folder.rmdir()
    except OSError:
        pass


def root_not_writable(root: Path, exc: OSError) -> DataError:
    """The one-line error of a data root the disk refused to write into."""
    return DataError(f"cannot write into the data root {root} ({exc.strerror or describe(exc)}); fix its "
                     "permissions or free disk space, or pass another --data-root")
