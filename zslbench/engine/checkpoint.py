"""Atomic checkpoints: written to a temporary name in the same folder, fsynced, then renamed."""

from __future__ import annotations

import contextlib
import os
import tempfile
from pathlib import Path
from typing import Any, BinaryIO, Callable

import torch

from zslbench.engine.faults import fault_point
from zslbench.errors import UserError


def _atomic_write(path: Path, write: Callable[[BinaryIO], None]) -> None:
    """Call ``write(handle)`` on a temp file beside ``path``, fsync, then rename it over ``path``:
    readers see the old file or the new one, never a torn one.

    A write the disk refuses (full disk, read-only folder) is a one-line :class:`UserError`; the
    temp file is removed and ``path`` keeps its old content.
    """
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    except OSError as exc:
        raise _write_failed(path, exc) from exc
    try:
        with os.fdopen(fd, "wb") as handle:
            write(handle)
            handle.flush()
            os.fsync(handle.fileno())
        fault_point("atomic_write")
        os.replace(tmp, path)
    except BaseException as exc:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        failure = _disk_failure(exc)
        if failure is not None:
            raise _write_failed(path, failure) from exc
        raise


def _disk_failure(exc: BaseException) -> OSError | None:
    """The ``OSError`` behind a failed write: ``exc`` itself, or the one on its context chain when
    ``torch.save``'s zip writer turned it into a ``RuntimeError`` ("unexpected pos"); else None."""
    seen: BaseException | None = exc
    while seen is not None:
        if isinstance(seen, OSError):
            return seen
        if not isinstance(seen, RuntimeError):  # only the zip writer's wrapper hides a write error
            return None
        seen = seen.__cause__ or seen.__context__
    return None


def _write_failed(path: Path, exc: OSError) -> UserError:
    reason = exc.strerror or str(exc) or type(exc).__name__
    return UserError(f"cannot write {path} ({reason}); free disk space or fix the folder's permissions, "
                     "then try again")


def atomic_write_bytes(path: Path, data: bytes) -> None:
    _atomic_write(path, lambda handle: handle.write(data))


def atomic_write_text(path: Path, text: str) -> None:
    atomic_write_bytes(path, text.encode())


def save_checkpoint(path: Path, state: dict[str, Any]) -> None:
    """Save a training state atomically (``torch.save`` into a temp file, then rename)."""
    _atomic_write(path, lambda handle: torch.save(state, handle))


def load_checkpoint(path: Path) -> dict[str, Any]:
    """Load a checkpoint without unpickling arbitrary objects (``weights_only=True``)."""
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except FileNotFoundError:
        raise UserError(f"checkpoint {path} does not exist; nothing to resume") from None
    except Exception as exc:  # truncated / corrupt / not a checkpoint
        raise UserError(f"checkpoint {path} cannot be read ({exc.__class__.__name__}); "
                        "it is damaged: start the run again without --resume") from None

