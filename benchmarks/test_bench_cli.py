"""How long a user waits for ``zslbench --help`` (the CLI must not import torch or mlflow to print it).

A subprocess of the installed entry point (``.venv/bin/zslbench``); the figure is its median wall
time, the child's CPU time is reported beside it (wall time on a loaded machine includes waiting
for a core).
"""

from __future__ import annotations

import statistics
import sys
from pathlib import Path

import pytest

from bench_timing import run_child, wall_seconds

pytestmark = pytest.mark.benchmark(group="cli", timer=wall_seconds)


def test_help_seconds(benchmark, recorder, quick):
    executable = Path(sys.executable).parent / "zslbench"
    if not executable.exists():
        pytest.skip(f"{executable} is not installed; run `make setup`")
    runs = []

    def help_once() -> None:
        done = run_child([str(executable), "--help"])
        assert done.returncode == 0, done.stderr[-2000:]
        assert "Usage" in done.stdout
        runs.append(done)

    help_once()  # warm-up: the first start reads the files from disk
    runs.clear()
    benchmark.pedantic(help_once, rounds=2 if quick else 7, iterations=1)
    probe = run_child([sys.executable, "-c", "import sys, zslbench.cli; "
                       "print(sorted(m for m in ('torch', 'mlflow', 'timm', 'optuna') if m in sys.modules))"])
    recorder.record("help_seconds", statistics.median(r.wall_s for r in runs), rounds=len(runs),
                    clock="wall", wall_s=[round(r.wall_s, 4) for r in runs],
                    child_cpu_median_s=round(statistics.median(r.cpu_s for r in runs), 4),
                    child_peak_rss_mib=round(max(r.max_rss_bytes for r in runs) / 2**20, 1),
                    heavy_modules_imported_by_cli=probe.stdout.strip())
