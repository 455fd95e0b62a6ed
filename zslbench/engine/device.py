"""Device, precision and determinism of a run.

* :func:`pick_device` — ``--device auto|cpu|cuda[:i]|mps`` → a device that exists here;
* :func:`choose_precision` — ``train.amp`` on that device → bf16 autocast or fp32, with the reason;
  ``auto`` takes bf16 only where the hardware has it (a GPU that merely emulates bf16, e.g. a V100
  or T4, runs fp32: emulated bf16 is slower than fp32 there);
* :func:`uses_bf16`, :func:`precision_name` — the same rule as a yes/no and as recorded in tags;
* :func:`set_matmul_precision` — TF32 off on CUDA for fp32 runs;
* :func:`autocast` — the context the forward passes run in;
* :func:`configure_determinism` — ``train.deterministic`` → every switch CUDA determinism needs;
* :func:`worker_device_env` — the environment that gives worker ``i`` of several its own GPU.

Example (CPU: bf16 only when asked for):
    >>> choose_precision(torch.device("cpu"), "auto")
    PrecisionChoice(precision='fp32', reason='train.amp=auto on cpu')
    >>> choose_precision(torch.device("cpu"), "bf16").precision
    'bf16'
"""

from __future__ import annotations

import contextlib
import os
from dataclasses import dataclass
from typing import Literal, Mapping

import torch

from zslbench.core.errors import UserError

Precision = Literal["bf16", "fp32"]

#: cuBLAS's documented setting for reproducible results (a fixed workspace per stream).
CUBLAS_WORKSPACE = ":4096:8"


def pick_device(spec: str) -> torch.device:
    """``auto`` → CUDA when available, else CPU; ``cuda[:i]`` must exist."""
    if spec == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if spec.startswith("cuda"):
        if not torch.cuda.is_available():
            raise UserError(f"--device {spec} was asked for but CUDA is not available here; use --device cpu or auto "
                            "(a resumed run takes --device too)")
        index = torch.device(spec).index or 0
        if index >= torch.cuda.device_count():
            raise UserError(f"--device {spec}: only {torch.cuda.device_count()} CUDA device(s) exist; pass another "
                            "--device (a resumed run takes --device too)")
    if spec == "mps" and not torch.backends.mps.is_available():
        raise UserError("--device mps was asked for but MPS is not available here; use --device cpu or auto")
    return torch.device(spec)


# --------------------------------------------------------------------------- precision
@dataclass(frozen=True)
class PrecisionChoice:
    """The precision a run's forward passes use, and why (logged as MLflow tags, kept on resume)."""

    precision: Precision
    reason: str


def has_native_bf16(device: torch.device) -> bool:
    """Whether ``device`` computes bf16 in hardware (CUDA compute capability ≥ 8.0, or ROCm's equivalent).

    ``torch.cuda.is_bf16_supported()`` alone also counts emulation, which is slower than fp32.
    """
    if device.type != "cuda":
        return False
    with torch.cuda.device(device):
        return bool(torch.cuda.is_bf16_supported(including_emulation=False))


def choose_precision(device: torch.device, amp: str) -> PrecisionChoice:
    """``train.amp`` (``auto`` | ``off`` | ``bf16``) on ``device`` → bf16 autocast or fp32.

    ``auto``: bf16 on a GPU with native bf16, fp32 everywhere else. ``bf16`` is honoured anywhere
    (CPU autocast, or emulated on an older GPU — said in the reason).
    """
    if amp == "off":
        return PrecisionChoice("fp32", "train.amp=off")
    if amp == "bf16":
        if device.type == "cuda" and not has_native_bf16(device):
            return PrecisionChoice("bf16", f"train.amp=bf16 (emulated on {torch.cuda.get_device_name(device)}: "
                                           "slower than fp32 there)")
        return PrecisionChoice("bf16", "train.amp=bf16")
    if amp != "auto":
        raise ValueError(f"unknown train.amp {amp!r}; valid: auto, off, bf16")
    if device.type == "cuda":
        if has_native_bf16(device):
            return PrecisionChoice("bf16", "train.amp=auto on a GPU with native bf16")
        return PrecisionChoice("fp32", f"train.amp=auto: {torch.cuda.get_device_name(device)} has no native bf16 "
                                       "(compute capability < 8.0), so fp32")
    return PrecisionChoice("fp32", f"train.amp=auto on {device.type}")


def uses_bf16(device: torch.device, amp: str) -> bool:
    """Whether ``train.amp`` (or a precision already chosen: ``bf16`` | ``fp32``) means bf16 autocast on ``device``.

    ``bf16`` always, ``off``/``fp32`` never, ``auto`` where :func:`choose_precision` takes bf16. The paper
    configuration (a model's preset on CUB, AWA2 or SUN, and ``--preset paper``) sets ``off``, as the
    reference code runs in fp32.
    """
    if amp in ("bf16", "off", "fp32"):
        return amp == "bf16"
    return choose_precision(device, amp).precision == "bf16"


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
    """bf16 autocast when :func:`uses_bf16` (``amp``: a ``train.amp`` value or a chosen precision); else full
    precision."""
    if not uses_bf16(device, amp):
        return contextlib.nullcontext()
    return torch.autocast(device_type=device.type, dtype=torch.bfloat16)


# --------------------------------------------------------------------------- determinism
def determinism_on(device: torch.device, mode: str) -> bool:
    """``train.deterministic``: ``on``, ``off``, or ``auto`` (on for CPU, off for accelerators).

    >>> determinism_on(torch.device("cpu"), "auto"), determinism_on(torch.device("cuda"), "auto")
    (True, False)
    """
    if mode not in ("auto", "on", "off"):
        raise ValueError(f"unknown train.deterministic {mode!r}; valid: auto, on, off")
    return mode == "on" or (mode == "auto" and device.type == "cpu")


def configure_determinism(device: torch.device, mode: str) -> bool:
    """Set every switch reproducible kernels need on ``device`` (or release them); returns whether on.

    On: ``torch.use_deterministic_algorithms`` (an op without a deterministic kernel warns, naming
    itself), cuDNN deterministic with autotuning off, ``CUBLAS_WORKSPACE_CONFIG`` (cuBLAS reads it
    when it starts, so this runs before the run's first CUDA computation), and scaled-dot-product
    attention restricted to its math kernel (the flash, memory-efficient and cuDNN kernels
    accumulate their backward pass with atomics). Off restores PyTorch's defaults.
    """
    on = determinism_on(device, mode)
    torch.use_deterministic_algorithms(on, warn_only=True)
    if device.type == "cuda" or on:
        torch.backends.cudnn.deterministic = on
    if on:
        torch.backends.cudnn.benchmark = False  # autotuning may pick another algorithm on each run
    if on and device.type == "cuda":
        os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", CUBLAS_WORKSPACE)
    if device.type == "cuda":
        torch.backends.cuda.enable_flash_sdp(not on)
        torch.backends.cuda.enable_mem_efficient_sdp(not on)
        torch.backends.cuda.enable_cudnn_sdp(not on)
    return on


# --------------------------------------------------------------------------- several worker processes
def worker_device_env(index: int, spec: str, environ: Mapping[str, str] | None = None) -> dict[str, str]:
    """Environment additions that give worker ``index`` of several processes its own GPU.

    With ``--device auto`` or ``cuda`` (no index) on a machine with G visible GPUs, worker i sees
    only GPU ``i mod G`` (``CUDA_VISIBLE_DEVICES``, taken from the GPUs already visible); a named
    ``cuda:N``, ``cpu``, or a machine without CUDA changes nothing.

    >>> worker_device_env(1, "cpu")
    {}
    """
    if spec not in ("auto", "cuda") or not torch.cuda.is_available():
        return {}
    environ = os.environ if environ is None else environ
    visible = [d.strip() for d in environ.get("CUDA_VISIBLE_DEVICES", "").split(",") if d.strip()]
    if not visible:
        visible = [str(i) for i in range(torch.cuda.device_count())]
    if not visible:
        return {}
    return {"CUDA_VISIBLE_DEVICES": visible[index % len(visible)]}
