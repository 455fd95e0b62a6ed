"""Installing unpacked dataset folders under the data root: renames only, and nothing replaced unless
``force`` (identical files are left alone; any other existing path stops the install before anything moves).

The archive's tree is merged into what exists, folder by folder: a path that does not exist moves in whole
(one rename), an identical file stays as it is, and only a path that really differs is a conflict. So
fetching the same archive again changes nothing and says so, and a folder that is half there is completed.
No path is written through a link that leads out of the data root.
"""

from __future__ import annotations

import filecmp
import os
from dataclasses import dataclass, field
from pathlib import Path

from zslbench.core.errors import DataError, UserError
from zslbench.core.files import require_inside
from zslbench.data.fetch.download import describe


@dataclass
class _Plan:
    moves: list[tuple[Path, Path, str]] = field(default_factory=list)  # (entry, target, "move" | "replace")
    same: list[Path] = field(default_factory=list)
    conflicts: list[Path] = field(default_factory=list)


def install(arranged: Path, data_root: Path, force: bool = False,
            trash: Path | None = None) -> tuple[list[Path], list[Path]]:
    """Move each ``arranged/<dataset>/...`` path to ``data_root/<dataset>/...`` by renames.

    A path that does not exist yet moves in whole; existing folders are merged into, identical files left
    as they are; any other existing path is a conflict: without ``force`` the install stops before moving
    anything, with ``force`` the old path is replaced. Returns (installed paths, unchanged files).
    """
    plan = _Plan()
    for folder in sorted(arranged.iterdir()):
        _plan(folder, data_root / folder.name, data_root, force, plan)
    if plan.conflicts:
        shown = ", ".join(str(p) for p in plan.conflicts[:3]) + (" ..." if len(plan.conflicts) > 3 else "")
        same = f" ({len(plan.same)} other file(s) are identical)" if plan.same else ""
        raise UserError(f"{len(plan.conflicts)} path(s) already exist and differ from the archive ({shown}){same}; "
                        "nothing was changed: pass --force to replace them, or move them away first")
    trash = trash or arranged.parent / "trash"
    installed = []
    for number, (entry, target, action) in enumerate(plan.moves):
        if action == "replace":
            trash.mkdir(exist_ok=True)
            os.replace(target, trash / f"{number}-{target.name}")
        os.replace(entry, target)
        installed.append(target)
    return installed, plan.same


def _plan(entry: Path, target: Path, data_root: Path, force: bool, plan: _Plan) -> None:
    """What to do with ``entry`` (unpacked) at ``target`` (under the data root), recursively."""
    require_inside(data_root, target, "a path of the data root")
    if not os.path.lexists(target):
        plan.moves.append((entry, target, "move"))
    elif entry.is_dir() and target.is_dir() and not target.is_symlink():
        for child in sorted(entry.iterdir()):
            _plan(child, target / child.name, data_root, force, plan)
    elif entry.is_file() and target.is_file() and not target.is_symlink() and _same_file(entry, target):
        plan.same.append(target)
    elif force:
        plan.moves.append((entry, target, "replace"))
    else:
        plan.conflicts.append(target)


def _same_file(first: Path, second: Path) -> bool:
    return filecmp.cmp(first, second, shallow=False)


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
