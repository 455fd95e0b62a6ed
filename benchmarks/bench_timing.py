"""Clocks and side-by-side measurement for the benchmark suite.

The machine the suite runs on is shared and noisy, so no figure of the suite is one absolute timing
compared across runs: every comparison is a ratio of two things measured *side by side*, interleaved
in the same process, on the process CPU clock, and summarised by medians.

* :func:`cpu_seconds` — CPU time of this process (every thread) plus its waited-for children, so
  work done in threads (feature prefetching, image decoding) or worker processes (DataLoader
  workers, the synthetic generator's pool) is counted too. Another process hogging the cores slows
  the wall clock, not this one.
* :class:`SideBySide` — runs named pieces of work round by round, alternating their order
  (A B, B A, A B, ...) so a slow drift of the machine's state hits both sides alike.
* :func:`run_child` — a subprocess with its own wall time, CPU time and peak RSS (``os.wait4``).

Example:
    >>> pair = SideBySide({"short": lambda: sum(range(10)), "long": lambda: sum(range(100_000))})
    >>> for _ in range(3):
    ...     pair.round()
    >>> len(pair.samples["short"]), pair.ratio("long", "short") > 1
    (3, True)
"""

from __future__ import annotations

import os
import resource
import statistics
import subprocess
import tempfile
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any


def cpu_seconds() -> float:
    """CPU seconds (user + system) of this process's threads and of its children waited for so far."""
    children = resource.getrusage(resource.RUSAGE_CHILDREN)
    return time.process_time() + children.ru_utime + children.ru_stime


def wall_seconds() -> float:
    """A monotonic wall clock (for subprocess start-up, where the user waits on the wall)."""
    return time.perf_counter()


class SideBySide:
    """Named pieces of work measured round by round on the same clock, in alternating order.

    ``round()`` runs every piece once and appends its clock delta to ``samples[name]``; even rounds
    run the pieces in the given order, odd rounds in reverse. ``warm_up()`` runs each piece once
    without recording (first calls allocate, fill caches, import lazily).
    """

    def __init__(self, pieces: Mapping[str, Callable[[], Any]], clock: Callable[[], float] = cpu_seconds):
        if len(pieces) < 1:
            raise ValueError("SideBySide needs at least one piece of work")
        self.pieces = dict(pieces)
        self.clock = clock
        self.samples: dict[str, list[float]] = {name: [] for name in self.pieces}
        self.wall: dict[str, list[float]] = {name: [] for name in self.pieces}
        self.rounds = 0

    def warm_up(self) -> None:
        for work in self.pieces.values():
            work()

    def round(self) -> None:
        names = list(self.pieces)
        if self.rounds % 2:
            names.reverse()
        for name in names:
            wall_start, start = wall_seconds(), self.clock()
            self.pieces[name]()
            self.samples[name].append(self.clock() - start)
            self.wall[name].append(wall_seconds() - wall_start)
        self.rounds += 1

    def median(self, name: str) -> float:
        return statistics.median(self.samples[name])

    def ratio(self, numerator: str, denominator: str) -> float:
        """median(numerator) / median(denominator)."""
        return self.median(numerator) / self.median(denominator)

    def pairwise_ratios(self, numerator: str, denominator: str) -> list[float]:
        """The ratio within each round (a second view of the spread)."""
        return [a / b for a, b in zip(self.samples[numerator], self.samples[denominator])]

    def spread(self, numerator: str, denominator: str) -> dict[str, float]:
        """Median, quartiles and range of the per-round ratios: how far one figure can be trusted."""
        ratios = sorted(self.pairwise_ratios(numerator, denominator))
        quartiles = statistics.quantiles(ratios, n=4) if len(ratios) > 1 else [ratios[0]] * 3
        return {"median": round(statistics.median(ratios), 4), "q1": round(quartiles[0], 4),
                "q3": round(quartiles[2], 4), "min": round(ratios[0], 4), "max": round(ratios[-1], 4)}

    def summary(self) -> dict[str, Any]:
        """Per piece: median CPU seconds, all CPU samples, median wall seconds (for the JSON details)."""
        return {name: {"cpu_median_s": round(self.median(name), 6),
                       "cpu_s": [round(s, 6) for s in self.samples[name]],
                       "wall_median_s": round(statistics.median(self.wall[name]), 6)}
                for name in self.pieces if self.samples[name]}


@dataclass(frozen=True)
class ChildRun:
    """A finished subprocess: exit code, stdout text, wall and CPU seconds, peak RSS in bytes."""

    returncode: int
    stdout: str
    stderr: str
    wall_s: float
    cpu_s: float
    max_rss_bytes: int


def run_child(argv: Sequence[str], env: Mapping[str, str] | None = None, timeout: float = 600.0) -> ChildRun:
    """Run ``argv`` to completion; its rusage comes from ``os.wait4`` (this child only, not the others).

    Output goes through temporary files rather than pipes, so waiting with ``wait4`` cannot dead-lock
    on a full pipe.
    """
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        start = wall_seconds()
        process = subprocess.Popen(list(argv), stdout=out, stderr=err, env=dict(env) if env is not None else None)
        deadline = start + timeout
        while True:
            pid, status, usage = os.wait4(process.pid, os.WNOHANG)
            if pid:
                break
            if wall_seconds() > deadline:
                process.kill()
                pid, status, usage = os.wait4(process.pid, 0)
                break
            time.sleep(0.005)
        wall = wall_seconds() - start
        process.returncode = os.waitstatus_to_exitcode(status)  # reaped here: tell Popen not to wait again
        out.seek(0)
        err.seek(0)
        return ChildRun(process.returncode, out.read().decode(errors="replace"), err.read().decode(errors="replace"),
                        wall, usage.ru_utime + usage.ru_stime, usage.ru_maxrss * 1024)  # Linux: KiB
