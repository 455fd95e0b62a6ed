"""The :class:`Tracker` contract: what the engine, sweeps and ablation grids log through.

Two implementations keep it: :class:`~zslbench.tracking.online.OnlineTracker` (an MLflow run, which
keeps its writes in a local journal while the server is away) and
:class:`~zslbench.tracking.null.NullTracker` (tracking off). :func:`zslbench.tracking.open_tracker`
picks one; callers never ask which they got. One test suite (``tests/test_tracker_modes.py``) runs
every behaviour against every mode.

Leaving a tracker's ``with`` block finishes its run: FINISHED, FAILED on an exception (its first
line kept in tag ``zslbench.error``), KILLED on ``KeyboardInterrupt``.
"""

from __future__ import annotations

import abc
import logging
import os
from types import TracebackType
from typing import Any, Mapping

from zslbench.core.secrets import truncate
from zslbench.tracking.tags import ERROR_TAG

log = logging.getLogger(__name__)

FINAL_STATUSES = ("FINISHED", "FAILED", "KILLED")


def check_final_status(status: str) -> None:
    """Refuse a status a run cannot end with.

    >>> check_final_status("DONE")
    Traceback (most recent call last):
    ...
    ValueError: status must be one of FINISHED, FAILED, KILLED, got 'DONE'
    """
    if status not in FINAL_STATUSES:
        raise ValueError(f"status must be one of {', '.join(FINAL_STATUSES)}, got {status!r}")


class Tracker(abc.ABC):
    """One tracked run: metrics, params, tags and artifacts in; a final status out. A context manager."""

    @property
    @abc.abstractmethod
    def run_id(self) -> str | None:
        """The run's id (``None`` when nothing is tracked)."""

    @property
    @abc.abstractmethod
    def status(self) -> str:
        """RUNNING until :meth:`finish`, then the final status (``DISABLED`` when nothing is tracked)."""

    # ----------------------------------------------------------------- metrics
    @abc.abstractmethod
    def log_metrics(self, metrics: Mapping[str, float], step: int) -> None:
        """Record ``metrics`` at ``step`` (buffered: written in batches, and by :meth:`flush`).

        Non-finite values are skipped and their keys listed in tag ``zslbench.nonfinite_metrics``."""

    @abc.abstractmethod
    def flush(self) -> None:
        """Write the buffered metrics now."""

    @abc.abstractmethod
    def resend_missing(self, metrics_by_step: Mapping[int, Mapping[str, float]], probe: str) -> list[int]:
        """Log the steps of ``metrics_by_step`` whose ``probe`` metric the store lacks (a run killed
        between its checkpoint and its metrics reaching the store), then flush; the steps sent.

        Where the store cannot be asked (offline), every step is kept, to be sent on sync only if
        the store lacks it then."""

    # ----------------------------------------------------------------- params and tags
    @abc.abstractmethod
    def log_params(self, params: Mapping[str, Any]) -> None:
        """Record params (values masked and truncated to MLflow's limit); a key already logged keeps
        its first value, and one logged again with another value is listed in tag
        ``zslbench.params_changed``."""

    @abc.abstractmethod
    def set_tags(self, tags: Mapping[str, Any]) -> None:
        """Set tags (values masked and truncated)."""

    # ----------------------------------------------------------------- artifacts
    @abc.abstractmethod
    def log_artifact(self, path: str | os.PathLike[str], artifact_path: str | None = None) -> None:
        """Store a file (or a directory's contents) among the run's artifacts, under ``artifact_path``."""

    @abc.abstractmethod
    def log_dict(self, obj: Mapping[str, Any], name: str) -> None:
        """Store ``obj`` as JSON or YAML (by the extension of ``name``), strings masked."""

    @abc.abstractmethod
    def log_text(self, text: str, name: str) -> None:
        """Store ``text`` (masked) as the artifact ``name``."""

    @abc.abstractmethod
    def log_scores(self, name: str, **arrays: Any) -> None:
        """Store arrays as ``scores/<name>.npz`` (e.g. test-set class scores and labels), so metrics
        can be recomputed under another policy without retraining."""

    @abc.abstractmethod
    def log_figure(self, fig: Any, name: str) -> None:
        """Store a matplotlib figure as the artifact ``name`` (format from its extension)."""

    # ----------------------------------------------------------------- ending
    @abc.abstractmethod
    def finish(self, status: str = "FINISHED") -> None:
        """Write what is buffered and end the run with ``status`` (one of :data:`FINAL_STATUSES`);
        idempotent."""

    def __enter__(self) -> "Tracker":
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 traceback: TracebackType | None) -> bool:
        if exc_type is None:
            self.finish("FINISHED")
            return False
        status = "KILLED" if issubclass(exc_type, KeyboardInterrupt) else "FAILED"
        try:
            summary = f"{exc_type.__name__}: {exc}".splitlines()[0]
            self.set_tags({ERROR_TAG: truncate(summary, 1000)})
        except Exception:  # the original exception matters more than a failed note
            log.warning("could not record the error on MLflow run %s", self.run_id)
        self.finish(status)
        return False


__all__ = ["FINAL_STATUSES", "Tracker", "check_final_status"]
