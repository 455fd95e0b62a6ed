"""The suite's figures, their targets and verdicts, and the results JSON they are written to.

Benchmarks hand their figures to one session-wide :class:`Recorder` (``recorder`` fixture in
``conftest.py``); at the end of the session it is written atomically to
``benchmarks/results/latest.json`` (``quick.json`` in quick mode) and printed as a table. Targets
are never test failures: a figure that misses its target gets the verdict ``miss``.

JSON layout (``SCHEMA_VERSION`` 1)::

    {"schema": 1, "mode": "full" | "quick", "date": ISO-8601, "commit": sha, "dirty": bool,
     "machine": {...}, "suite_wall_s": float,
     "ratios":  {name: value, ...},                      # the figures, flat
     "results": {name: {"value", "unit", "target", "verdict", "description", "details"}, ...}}

Example:
    >>> TARGETS["svip_train_over_vit"].verdict(1.97)
    'pass'
    >>> TARGETS["metrics_speedup_over_loop"].verdict(12.0)
    'miss'
    >>> TARGETS["transzero_peak_rss_gib"].describe()
    'informational'
"""

from __future__ import annotations

import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

SCHEMA_VERSION = 1
RESULTS_DIR = Path(__file__).resolve().parent / "results"
REPO_ROOT = Path(__file__).resolve().parent.parent

PASS, MISS, INFO, NOT_MEASURED, NOT_JUDGED = "pass", "miss", "info", "not measured", "not judged (quick mode)"


@dataclass(frozen=True)
class Target:
    """What a figure means and the bound it should meet (``bound`` None: informational only)."""

    description: str
    unit: str
    op: str = ""  # "<=" | ">=" | ""
    bound: float | None = None

    def verdict(self, value: float | None) -> str:
        if value is None:
            return NOT_MEASURED
        if self.bound is None:
            return INFO
        met = value <= self.bound if self.op == "<=" else value >= self.bound
        return PASS if met else MISS

    def describe(self) -> str:
        return "informational" if self.bound is None else f"{self.op} {self.bound:g}{self.unit_suffix()}"

    def unit_suffix(self) -> str:
        return {"s": " s", "×": "×", "GiB": " GiB", "fraction": ""}.get(self.unit, "")

    def as_dict(self) -> dict[str, Any]:
        return {"op": self.op or None, "bound": self.bound, "text": self.describe()}


#: Every figure of the suite, in report order.
TARGETS: dict[str, Target] = {
    "svip_train_over_vit": Target("SVIP training step ÷ vit training step (ViT-B/16, 224 px, batch 4, CUB-like)",
                                  "×", "<=", 2.05),
    "svip_infer_over_vit": Target("SVIP inference step ÷ vit inference step (same geometry, eval, no_grad)",
                                  "×", "<=", 1.05),
    "metrics_seconds": Target("CPU seconds of ZSL + GZSL + 200-γ calibrated stacking + exact AUSUC, "
                              "20,000 samples × 717 classes", "s", "<=", 0.3),
    "metrics_speedup_over_loop": Target("per-γ Python loop reference ÷ zslbench.metrics (same outputs)",
                                        "×", ">=", 20.0),
    "tracking_overhead": Target("(run with MLflow sqlite tracking − run without) ÷ run without, existing store",
                                "fraction", "<=", 0.03),
    "help_seconds": Target("wall seconds of `zslbench --help` (subprocess, median)", "s", "<=", 0.5),
    "data_over_train": Target("images/s the synthetic image pipeline delivers ÷ images/s an SVIP training step "
                              "consumes (default synth config)", "×", ">=", 2.0),
    "jpeg_per_core_over_svip_step": Target("images/s one core decodes and transforms (stand-in 500×375 CUB JPEGs, "
                                           "CUB training transform) ÷ images/s an SVIP training step consumes at "
                                           "paper geometry on this machine's CPU", "×"),
    "transzero_cached_speedup": Target("TransZero epoch extracting features on the fly ÷ epoch over the feature "
                                       "cache", "×"),
    "transzero_peak_rss_gib": Target("peak RSS of TransZero training (CUB preset model) on a float16 feature cache, "
                                     "child process", "GiB"),
}


@dataclass
class Recorder:
    """Collects the figures of one session; :meth:`payload` is what gets written."""

    mode: str
    started: float = field(default_factory=time.time)
    values: dict[str, float] = field(default_factory=dict)
    details: dict[str, dict[str, Any]] = field(default_factory=dict)
    machine: dict[str, Any] = field(default_factory=dict)

    def record(self, name: str, value: float, **details: Any) -> None:
        """Store figure ``name`` (one of :data:`TARGETS`) with free-form JSON-able details."""
        if name not in TARGETS:
            raise KeyError(f"unknown benchmark figure {name!r}; add it to TARGETS in {Path(__file__).name}")
        self.values[name] = float(value)
        self.details.setdefault(name, {}).update(details)

    def verdict(self, name: str) -> str:
        if self.mode == "quick" and name in self.values:
            return NOT_JUDGED
        return TARGETS[name].verdict(self.values.get(name))

    def payload(self) -> dict[str, Any]:
        commit, dirty = git_commit()
        results = {}
        for name, target in TARGETS.items():
            results[name] = {"value": self.values.get(name), "unit": target.unit, "target": target.as_dict(),
                             "verdict": self.verdict(name), "description": target.description,
                             "details": self.details.get(name, {})}
        machine = dict(self.machine)
        machine["load_average_end"] = [round(x, 2) for x in os.getloadavg()]
        return {
            "schema": SCHEMA_VERSION,
            "mode": self.mode,
            "date": time.strftime("%Y-%m-%dT%H:%M:%S%z", time.localtime(self.started)),
            "commit": commit,
            "dirty": dirty,
            "machine": machine,
            "suite_wall_s": round(time.time() - self.started, 1),
            "ratios": {name: self.values[name] for name in TARGETS if name in self.values},
            "results": results,
        }


# --------------------------------------------------------------------------- environment
def git_commit() -> tuple[str, bool | None]:
    """(HEAD commit, whether the working tree has changes) — read-only git calls."""
    env = {**os.environ, "GIT_OPTIONAL_LOCKS": "0"}  # never take the index lock of a shared working tree
    try:
        commit = subprocess.run(["git", "-C", str(REPO_ROOT), "rev-parse", "HEAD"], capture_output=True, text=True,
                                check=True, timeout=10, env=env).stdout.strip()
        status = subprocess.run(["git", "-C", str(REPO_ROOT), "status", "--porcelain", "--untracked-files=no"],
                                capture_output=True, text=True, check=True, timeout=30, env=env).stdout
        return commit, bool(status.strip())
    except (OSError, subprocess.SubprocessError):
        return "unknown", None


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.lower().startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def machine_info(torch_threads: int) -> dict[str, Any]:
    """What the figures were measured on; the load average shows how busy the shared cores were."""
    import numpy
    import torch

    try:
        memory_gib = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30
    except (ValueError, OSError):
        memory_gib = None
    return {
        "cpu_model": cpu_model(),
        "cores": os.cpu_count(),
        "cores_usable": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count(),
        "memory_gib": round(memory_gib, 1) if memory_gib else None,
        "torch_version": torch.__version__,
        "torch_threads": torch_threads,
        "numpy_version": numpy.__version__,
        "python": platform.python_version(),
        "platform": platform.platform(),
        "load_average_start": [round(x, 2) for x in os.getloadavg()],
        "clock": "process CPU time (all threads + waited-for children) unless a figure says wall",
    }


def write_json_atomic(path: Path, payload: dict[str, Any]) -> None:
    """Write ``payload`` to ``path`` through a temporary sibling and a rename (never a half-written file)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(handle, "w", encoding="utf-8") as out:
            json.dump(payload, out, indent=2, sort_keys=False)
            out.write("\n")
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise


# --------------------------------------------------------------------------- summary
def format_value(value: float | None, unit: str) -> str:
    if value is None:
        return "–"
    if unit == "fraction":
        return f"{100 * value:+.2f} %"
    if unit == "×":
        return f"{value:.3f}×" if value < 100 else f"{value:.0f}×"
    if unit == "s":
        return f"{value:.3f} s"
    if unit == "GiB":
        return f"{value:.2f} GiB"
    return f"{value:g}"


def format_target(target: dict[str, Any], unit: str) -> str:
    if target.get("bound") is None:
        return "informational"
    bound = target["bound"]
    shown = f"{100 * bound:.0f} %" if unit == "fraction" else format_value(bound, unit).replace(".000", "")
    return f"{target['op']} {shown}"


def summary_lines(payload: dict[str, Any]) -> list[str]:
    """A plain-text table of every figure (for the end of the pytest run)."""
    rows = [("figure", "measured", "target", "verdict")]
    for name, result in payload["results"].items():
        rows.append((name, format_value(result["value"], result["unit"]),
                     format_target(result["target"], result["unit"]), result["verdict"]))
    widths = [max(len(row[i]) for row in rows) for i in range(4)]
    lines = ["  ".join(cell.ljust(width) for cell, width in zip(row, widths)).rstrip() for row in rows]
    lines.insert(1, "  ".join("-" * width for width in widths))
    machine = payload["machine"]
    lines.append("")
    lines.append(f"mode {payload['mode']} · commit {payload['commit'][:12]}{' (dirty)' if payload['dirty'] else ''} · "
                 f"{machine.get('cpu_model')} × {machine.get('cores')} · torch {machine.get('torch_version')} "
                 f"({machine.get('torch_threads')} thread(s)) · load average {machine.get('load_average_start')} → "
                 f"{machine.get('load_average_end')} · suite {payload['suite_wall_s']:.0f} s wall")
    return lines


if __name__ == "__main__":  # pragma: no cover - a manual look at the targets
    for name, target in TARGETS.items():
        print(f"{name:28s} {target.describe():14s} {target.description}", file=sys.stdout)
