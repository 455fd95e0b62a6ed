"""MLflow tracking: the only package of zslbench that talks to MLflow.

Modules, each with one concern (dependencies point down the list; none imports mlflow at import time,
so importing this package is cheap and ``zslbench --help`` stays fast):

* :mod:`~zslbench.tracking.store` — the tracking URI (sqlite paths pinned), MLflow's limits and HTTP
  settings, the sqlite schema lock, store failures as one-line errors;
* :mod:`~zslbench.tracking.reachability` — fail fast on a store that cannot be used; tell a lost
  server from a refusal;
* :mod:`~zslbench.tracking.tags` — provenance and process tags;
* :mod:`~zslbench.tracking.base` — the :class:`Tracker` contract every mode keeps;
* :mod:`~zslbench.tracking.null` — :class:`NullTracker` (tracking off);
* :mod:`~zslbench.tracking.journal`, :mod:`~zslbench.tracking.replay` — the offline journal a run
  writes while its server is away, and its upload;
* :mod:`~zslbench.tracking.online` — :class:`OnlineTracker` (an MLflow run, offline journal included);
* :mod:`~zslbench.tracking.opening` — :func:`open_tracker`, which picks the mode;
* :mod:`~zslbench.tracking.queries` — searches, experiment names, artifacts of existing runs,
  closing runs whose process died;
* :mod:`~zslbench.tracking.sync` — ``zslbench track sync``.

Secret masking lives in :mod:`zslbench.core.secrets` (re-exported here).

>>> from zslbench.config import TrackConfig
>>> with open_tracker(TrackConfig(enabled=False)) as run:
...     run.log_metrics({"loss": 0.5}, step=0)
>>> run.status
'DISABLED'
"""

from __future__ import annotations

from zslbench.core.secrets import MASK, is_secret_name, mask_credentials
from zslbench.tracking.base import FINAL_STATUSES, Tracker
from zslbench.tracking.journal import JOURNAL_DIR, SYNCED_DIR
from zslbench.tracking.null import NullTracker
from zslbench.tracking.online import FLUSH_THRESHOLD, OnlineTracker
from zslbench.tracking.opening import PARENT_RUN_ENV, open_tracker
from zslbench.tracking.queries import (
    ArtifactUnavailable,
    attach_artifact,
    close_run,
    download_run_artifact,
    experiment_names,
    find_finished_run,
    find_runs,
    reap_dead_runs,
)
from zslbench.tracking.reachability import UNREACHABLE_HINT, check_reachable, failure_reason, is_connection_error
from zslbench.tracking.store import (
    DEFAULT_TRACKING_URI,
    HTTP_POLICY,
    http_policy,
    mlflow_limits,
    resolve_tracking_uri,
    store_errors,
    store_lock,
)
from zslbench.tracking.sync import sync_command, sync_journals
from zslbench.tracking.tags import (
    HOST_TAG,
    PARENT_TAG,
    PID_TAG,
    START_TAG,
    git_state,
    process_tags,
    standard_tags,
)

__all__ = [
    "DEFAULT_TRACKING_URI", "FINAL_STATUSES", "FLUSH_THRESHOLD", "HOST_TAG", "HTTP_POLICY", "JOURNAL_DIR", "MASK",
    "PARENT_RUN_ENV", "PARENT_TAG", "PID_TAG", "START_TAG", "SYNCED_DIR", "UNREACHABLE_HINT", "ArtifactUnavailable",
    "NullTracker", "OnlineTracker", "Tracker", "attach_artifact", "check_reachable", "close_run",
    "download_run_artifact", "experiment_names", "failure_reason", "find_finished_run", "find_runs", "git_state",
    "http_policy", "is_connection_error", "is_secret_name", "mask_credentials", "mlflow_limits", "open_tracker",
    "process_tags", "reap_dead_runs", "resolve_tracking_uri", "standard_tags", "store_errors", "store_lock",
    "sync_command", "sync_journals",
]
