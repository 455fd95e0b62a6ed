"""Atomic checkpoints: ``torch.save`` into a temporary file beside the target, fsynced, then renamed."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from zslbench.core.errors import UserError
from zslbench.core.files import atomic_write


def save_checkpoint(path: Path, state: dict[str, Any]) -> None:
    """Save a training state atomically (a full disk is a one-line error; the old checkpoint stays)."""
    atomic_write(path, lambda handle: torch.save(state, handle))


def load_checkpoint(path: Path) -> dict[str, Any]:
    """Load a checkpoint without unpickling arbitrary objects (``weights_only=True``)."""
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except FileNotFoundError:
        raise UserError(f"checkpoint {path} does not exist; nothing to resume") from None
    except Exception as exc:  # truncated / corrupt / not a checkpoint
        raise UserError(f"checkpoint {path} cannot be read ({exc.__class__.__name__}); "
                        "it is damaged: start the run again without --resume") from None
