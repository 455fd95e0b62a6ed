"""Tracking switched off (``track.enabled=false``): every call accepted, nothing stored, nothing asked.

>>> with NullTracker() as tracker:
...     tracker.log_metrics({"loss": 1.0}, step=0)
...     tracker.resend_missing({0: {"loss": 1.0}}, probe="loss")
[]
>>> tracker.run_id, tracker.status
(None, 'DISABLED')
"""

from __future__ import annotations

import os
from typing import Any, Mapping

from zslbench.tracking.base import Tracker, check_final_status


class NullTracker(Tracker):
    """The :class:`~zslbench.tracking.base.Tracker` that records nothing; it has no run id and never ends."""

    @property
    def run_id(self) -> str | None:
        return None

    @property
    def status(self) -> str:
        return "DISABLED"

    def log_metrics(self, metrics: Mapping[str, float], step: int) -> None:
        pass

    def flush(self) -> None:
        pass

    def resend_missing(self, metrics_by_step: Mapping[int, Mapping[str, float]], probe: str) -> list[int]:
        return []

    def log_params(self, params: Mapping[str, Any]) -> None:
        pass

    def set_tags(self, tags: Mapping[str, Any]) -> None:
        pass

    def log_artifact(self, path: str | os.PathLike[str], artifact_path: str | None = None) -> None:
        pass

    def log_dict(self, obj: Mapping[str, Any], name: str) -> None:
        pass

    def log_text(self, text: str, name: str) -> None:
        pass

    def log_scores(self, name: str, **arrays: Any) -> None:
        pass

    def log_figure(self, fig: Any, name: str) -> None:
        pass

    def finish(self, status: str = "FINISHED") -> None:
        check_final_status(status)  # the same contract as a tracked run: a bad status is a bug either way

    def __repr__(self) -> str:
        return "NullTracker()"


__all__ = ["NullTracker"]
