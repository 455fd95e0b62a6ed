"""The tags zslbench puts on MLflow runs: provenance (version, code, data, model), the process that
trains a run (so a dead one can be told from a live one), and the names of zslbench's own notes.

>>> sorted(process_tags()) == sorted([HOST_TAG, PID_TAG, START_TAG])
True

Importing this module does not import mlflow.
"""

from __future__ import annotations

import functools
import getpass
import importlib.metadata
import os
import subprocess
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from zslbench.core.liveness import this_process
from zslbench.core.version import PROTOCOL_VERSION, __version__

if TYPE_CHECKING:  # pragma: no cover - typing only
    from zslbench.config import Config

UNKNOWN = "unknown"
PARENT_TAG = "mlflow.parentRunId"
#: The process training a run: host, pid and the kernel's start time of that pid.
HOST_TAG, PID_TAG, START_TAG = "zslbench.host", "zslbench.pid", "zslbench.process_start"
#: Why a run ended FAILED or KILLED (the exception's first line, or who closed it and how to go on).
ERROR_TAG = "zslbench.error"
#: Metric keys whose non-finite values were skipped.
NONFINITE_TAG = "zslbench.nonfinite_metrics"
#: Params logged again with another value (MLflow keeps the first one).
PARAMS_CHANGED_TAG = "zslbench.params_changed"
#: How many times the run was resumed.
RESUMED_TAG = "zslbench.resumed"
#: What a run is: ``ablation-grid`` and ``sweep`` runs are containers (parents of result runs, no results of
#: their own); ``sweep-trial`` marks a sweep's children (ablation cells carry their grid's row tag).
ROLE_TAG = "zslbench.role"
CONTAINER_ROLES = ("ablation-grid", "sweep")
#: A container's result runs, comma-separated (an ablation grid reuses finished cells of other parents).
CELL_RUNS_TAG = "zslbench.cell_runs"
#: "true" on a run whose reported numbers were chosen on the test set (oracle γ or epoch, a paper mode: †), and
#: on a sweep that selected on the test set.
TEST_SELECTED_TAG = "zslbench.test_selected"
#: The zslbench source checkout: the folder holding the ``zslbench`` package.
SOURCE_ROOT = Path(__file__).resolve().parents[2]


def _git(directory: Path, *args: str) -> str:
    env = {**os.environ, "GIT_OPTIONAL_LOCKS": "0"}  # `git status` must not take the index lock
    done = subprocess.run(["git", "-C", str(directory), *args], capture_output=True, text=True, timeout=5,
                          check=True, env=env)
    return done.stdout.strip()


@functools.lru_cache(maxsize=1)
def git_state() -> tuple[str, str]:
    """(commit, dirty) of the zslbench source checkout, or ("unknown", "unknown").

    Computed once per process: the code that runs is the code imported at start.
    """
    try:
        # An installed copy inside some other repository (a venv in a project) is not a checkout.
        if Path(_git(SOURCE_ROOT, "rev-parse", "--show-toplevel")).resolve() != SOURCE_ROOT:
            return UNKNOWN, UNKNOWN
        commit = _git(SOURCE_ROOT, "rev-parse", "HEAD")
        dirty = "true" if _git(SOURCE_ROOT, "status", "--porcelain") else "false"
        return commit, dirty
    except (OSError, subprocess.SubprocessError):
        return UNKNOWN, UNKNOWN


def package_version(name: str) -> str:
    """The version of an installed package (the imported module's own first), else "unknown".

    >>> package_version("no-such-package-zslbench")
    'unknown'
    """
    module = sys.modules.get(name)
    if module is not None and getattr(module, "__version__", None):
        return str(module.__version__)
    try:
        return importlib.metadata.version(name)
    except importlib.metadata.PackageNotFoundError:
        return UNKNOWN


def standard_tags(cfg: "Config", data_fingerprint: str, device: str) -> dict[str, str]:
    """The tags every zslbench run carries (DESIGN.md, Tracking); all values are strings."""
    commit, dirty = git_state()
    return {
        "zslbench.version": __version__,
        "zslbench.protocol": PROTOCOL_VERSION,
        "git.commit": commit,
        "git.dirty": dirty,
        "data.fingerprint": str(data_fingerprint),
        "model": cfg.model.name,
        "dataset": cfg.data.dataset,
        "ablations": ",".join(cfg.ablations) or "none",
        "seed": str(cfg.train.seed),
        "selection": cfg.eval.selection,
        "gamma_policy": cfg.eval.gamma_policy,
        "gamma_space": cfg.eval.gamma_space,
        "eval_mode": cfg.eval.mode,
        "device": str(device),
        "torch.version": package_version("torch"),
        "timm.version": package_version("timm"),
    }


def process_tags() -> dict[str, str]:
    """The tags naming the calling process (host, pid, start time), so a run it leaves RUNNING when it
    dies can be told from a live one (:func:`zslbench.tracking.queries.reap_dead_runs`)."""
    host, pid, started = this_process()
    return {HOST_TAG: host, PID_TAG: str(pid), START_TAG: started}


def current_user() -> str:
    """The login name MLflow would record (``mlflow.user``), else "unknown"."""
    try:
        return getpass.getuser()
    except (OSError, KeyError):
        return UNKNOWN


__all__ = [
    "CELL_RUNS_TAG", "CONTAINER_ROLES", "ERROR_TAG", "HOST_TAG", "NONFINITE_TAG", "PARAMS_CHANGED_TAG", "PARENT_TAG",
    "PID_TAG", "RESUMED_TAG", "ROLE_TAG", "TEST_SELECTED_TAG",
    "START_TAG", "UNKNOWN", "current_user", "git_state", "package_version", "process_tags", "standard_tags",
]
