"""What a run shows while it trains: one line per epoch, and a live bar on a terminal.

* **Batch jobs** (the console is not a terminal: ``nohup … > log 2>&1``, a cluster job, CI): one plain line per
  epoch — epoch, loss terms, the evaluation's metrics when the epoch was evaluated, images/s, elapsed time and
  ETA — written and flushed as the epoch ends, so a log file shows the run as it goes. No bar.
* **A terminal**: the same line stays on screen above the live progress bar of the current epoch.
* **Quiet** (``--quiet``, sweep trials, non-zero ranks): nothing.

The validation protocol's epochs (γ/epoch selection ``val``, sweeps) get the same lines, prefixed
``validation``. Metrics are percentages; loss terms keep three decimals.

>>> line = epoch_line(2, 12, {"train/loss": 1.23456, "train/ce_src": 0.5, "train/images_per_s": 118.4,
...                           "zsl_t1": 0.352, "gzsl_u": 0.097, "gzsl_s": 0.176, "gzsl_h": 0.125}, 83.0, 166.0)
>>> line
'epoch 3/12 · loss 1.235 (ce_src 0.500) · T1 35.2 U 9.7 S 17.6 H 12.5 · 118 img/s · 1:23 elapsed · ETA 2:46'
"""

from __future__ import annotations

import time
from typing import Any, Mapping

#: Training-loop bookkeeping that is no loss term.
_NOT_LOSSES = ("loss", "lr", "images_per_s", "epoch_seconds")
#: Evaluation metrics shown per epoch, with their short names (percentages).
_SHOWN = (("zsl_t1", "T1"), ("gzsl_u", "U"), ("gzsl_s", "S"), ("gzsl_h", "H"), ("ausuc", "AUSUC"))


def clock(seconds: float) -> str:
    """``83`` → ``1:23``; ``3725`` → ``1:02:05``.

    >>> clock(83), clock(3725)
    ('1:23', '1:02:05')
    """
    seconds = int(max(seconds, 0) + 0.5)
    hours, rest = divmod(seconds, 3600)
    minutes, secs = divmod(rest, 60)
    return f"{hours}:{minutes:02d}:{secs:02d}" if hours else f"{minutes}:{secs:02d}"


def epoch_line(epoch: int, epochs: int, metrics: Mapping[str, Any], elapsed: float, eta: float | None,
               prefix: str = "") -> str:
    """One epoch as one line (``epoch`` 0-based; shown 1-based)."""
    parts = [f"{prefix}epoch {epoch + 1}/{epochs}"]
    if "train/loss" in metrics:
        terms = [f"{k.split('/', 1)[1]} {float(v):.3f}" for k, v in metrics.items()
                 if k.startswith("train/") and k.split("/", 1)[1] not in _NOT_LOSSES]
        parts.append(f"loss {float(metrics['train/loss']):.3f}" + (f" ({', '.join(terms)})" if terms else ""))
    shown = [f"{name} {100 * float(metrics[key]):.1f}" for key, name in _SHOWN if key in metrics]
    if shown:
        parts.append(" ".join(shown))
    if "train/images_per_s" in metrics:
        parts.append(f"{float(metrics['train/images_per_s']):.0f} img/s")
    parts.append(f"{clock(elapsed)} elapsed")
    if eta is not None:
        parts.append(f"ETA {clock(eta)}")
    return " · ".join(parts)


class RunLog:
    """A run's progress output on ``console`` (see the module docstring); a context manager around training."""

    def __init__(self, console, epochs: int, quiet: bool = False) -> None:
        self.console, self.epochs, self.quiet = console, epochs, quiet or console is None
        self.progress = None
        if not self.quiet and console.is_terminal:
            from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

            self.progress = Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                                     TimeElapsedColumn(), console=console, transient=True)
        self.started = time.monotonic()
        self._first: dict[str, tuple[int, float]] = {}

    def __enter__(self) -> RunLog:
        if self.progress is not None:
            self.progress.__enter__()
        return self

    def __exit__(self, *exc: Any) -> bool:
        if self.progress is not None:
            self.progress.__exit__(*exc)
        return False

    def epoch(self, epoch: int, metrics: Mapping[str, Any], phase: str = "") -> None:
        """Show the line of a finished ``epoch`` (``phase`` ``validation`` for the validation protocol's)."""
        if self.quiet:
            return
        now = time.monotonic()
        if phase not in self._first:  # a resumed run counts from the epoch it resumed at; a phase from its start
            self._first[phase] = (epoch, now - float(metrics.get("train/epoch_seconds", 0.0)))
        first, phase_start = self._first[phase]
        elapsed = now - self.started
        eta = (now - phase_start) / (epoch - first + 1) * (self.epochs - epoch - 1)
        self.console.print(epoch_line(epoch, self.epochs, metrics, elapsed, eta, prefix=f"{phase} " if phase else ""),
                           markup=False, highlight=False, soft_wrap=True)
        _flush(self.console)


def _flush(console) -> None:
    try:
        console.file.flush()  # a log file sees the line now, not when a buffer fills
    except (AttributeError, OSError, ValueError):
        pass


__all__ = ["RunLog", "clock", "epoch_line"]
