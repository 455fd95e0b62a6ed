"""Device and precision selection."""

from __future__ import annotations

import contextlib

import torch

from zslbench.core.errors import UserError


def pick_device(spec: str) -> torch.device:
    """``auto`` → CUDA when available, else CPU; ``cuda[:i]`` must exist."""
    if spec == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if spec.startswith("cuda"):
        if not torch.cuda.is_available():
            raise UserError(f"--device {spec} was asked for but CUDA is not available here; use --device cpu or auto")
        index = torch.device(spec).index or 0
        if index >= torch.cuda.device_count():
            raise UserError(f"--device {spec}: only {torch.cuda.device_count()} CUDA device(s) exist")
    if spec == "mps" and not torch.backends.mps.is_available():
        raise UserError("--device mps was asked for but MPS is not available here; use --device cpu or auto")
    return torch.device(spec)


def autocast(device: torch.device, amp: str):
    """bf16 autocast on CUDA (``amp=auto|bf16``); full precision on CPU unless ``amp=bf16``."""
    use_bf16 = amp == "bf16" or (amp == "auto" and device.type == "cuda")
    if not use_bf16:
        return contextlib.nullcontext()
    return torch.autocast(device_type=device.type, dtype=torch.bfloat16)
