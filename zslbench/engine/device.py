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


def uses_bf16(device: torch.device, amp: str) -> bool:
    """Whether ``train.amp`` means bf16 autocast on ``device``: ``bf16`` always, ``auto`` on CUDA, ``off`` never.

    The paper configuration (a model's preset on CUB, AWA2 or SUN, and ``--preset paper``) sets ``off``, as the
    reference code runs in fp32.
    """
    return amp == "bf16" or (amp == "auto" and device.type == "cuda")


def precision_name(device: torch.device, amp: str) -> str:
    """How a run records its precision: ``fp32`` or ``bf16 autocast``."""
    return "bf16 autocast" if uses_bf16(device, amp) else "fp32"


def set_matmul_precision(device: torch.device, amp: str) -> None:
    """fp32 means fp32: TF32 matmuls and convolutions off on CUDA when no autocast is used (PyTorch lets
    cuDNN convolutions use TF32 by default), on for bf16 runs where they cost no fidelity beyond bf16's."""
    if device.type != "cuda":
        return
    tf32 = uses_bf16(device, amp)
    torch.backends.cuda.matmul.allow_tf32 = tf32
    torch.backends.cudnn.allow_tf32 = tf32


def autocast(device: torch.device, amp: str):
    """bf16 autocast when :func:`uses_bf16`; otherwise full precision."""
    if not uses_bf16(device, amp):
        return contextlib.nullcontext()
    return torch.autocast(device_type=device.type, dtype=torch.bfloat16)
