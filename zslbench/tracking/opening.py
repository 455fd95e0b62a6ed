"""Opening a tracked run: :func:`open_tracker` starts or resumes an MLflow run, or hands back a
:class:`~zslbench.tracking.null.NullTracker` when tracking is off.

Typical use (the engine)::

    check_reachable(resolve_tracking_uri(cfg.track.uri))      # before any training
    with open_tracker(cfg.track, run_name="svip-CUB-s0", params=cfg.flat(),
                      tags=standard_tags(cfg, fingerprint, "cuda:0")) as run:
        run.log_metrics({"train/loss": 0.7}, step=0)
        run.log_scores("test", seen=seen_scores, unseen=unseen_scores)

Importing this module does not import mlflow.
"""

from __future__ import annotations

import logging
import os
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any, Mapping

from zslbench.core.errors import UserError
from zslbench.core.secrets import mask_credentials, tag_value
from zslbench.tracking.base import Tracker
from zslbench.tracking.journal import JOURNAL_DIR
from zslbench.tracking.null import NullTracker
from zslbench.tracking.online import OnlineTracker, innermost_run_id, remember_open_tracker
from zslbench.tracking.reachability import check_reachable
from zslbench.tracking.replay import absorb_pending_journal
from zslbench.tracking.store import (
    default_artifact_location,
    http_policy,
    is_store_failure,
    mlflow_limits,
    resolve_tracking_uri,
    store_error,
    store_lock,
)
from zslbench.tracking.tags import PARENT_TAG, RESUMED_TAG, current_user

if TYPE_CHECKING:  # pragma: no cover - typing only
    from mlflow import MlflowClient
    from mlflow.entities import Run

    from zslbench.config import TrackConfig

log = logging.getLogger(__name__)

#: Environment variable that ``open_tracker(nested=True)`` reads for the parent run id when no
#: tracker of this process is open (set it for worker processes of a sweep or grid).
PARENT_RUN_ENV = "ZSLBENCH_PARENT_RUN_ID"


def open_tracker(
    cfg_track: "TrackConfig",
    run_name: str | None = None,
    tags: Mapping[str, Any] | None = None,
    params: Mapping[str, Any] | None = None,
    parent_run_id: str | None = None,
    resume_run_id: str | None = None,
    nested: bool = False,
    artifact_location: str | None = None,
    offline_dir: str | os.PathLike[str] | None = None,
) -> Tracker:
    """Start (or resume) a run in ``cfg_track.experiment`` at ``cfg_track.uri``.

    - ``resume_run_id``: continue that run (same id, status back to RUNNING); params it
      already has are not logged again.
    - ``parent_run_id``: make the run a child (tag ``mlflow.parentRunId``); works from any
      process given only the id. ``nested=True`` without it: the parent is the innermost
      open tracker of this process, else ``$ZSLBENCH_PARENT_RUN_ID``, else none.
    - ``artifact_location``: for a new experiment only; default for sqlite stores:
      ``<database dir>/mlruns/<experiment>``.
    - ``offline_dir``: where the run's writes are journaled if the server goes away mid-run;
      default ``<cfg_track.output_dir>/<run_id>/tracking-offline`` (next to the run's
      outputs). Resuming a run first uploads a journal left there by an offline session.

    The store is checked (:func:`~zslbench.tracking.reachability.check_reachable`) before anything is
    created. Returns a :class:`~zslbench.tracking.null.NullTracker` when ``cfg_track.enabled`` is false.
    """
    if not cfg_track.enabled:
        return NullTracker()
    uri = resolve_tracking_uri(cfg_track.uri)
    check_reachable(uri)
    if nested and not parent_run_id:
        parent_run_id = innermost_run_id() or os.environ.get(PARENT_RUN_ENV) or None

    from mlflow import MlflowClient

    _, tag_limit, _, _ = mlflow_limits()
    start_tags = {k: tag_value(v, tag_limit) for k, v in (tags or {}).items()}
    try:
        with http_policy(), store_lock(uri):  # first use creates the schema and the experiment
            client = MlflowClient(tracking_uri=uri)
            client.search_experiments(max_results=1)  # forces the store (and its schema) into existence
            if parent_run_id:
                _require_run(client, parent_run_id, "parent", uri)
                start_tags[PARENT_TAG] = parent_run_id
            if resume_run_id:
                run = _require_run(client, resume_run_id, "resumed", uri)
                client.update_run(run.info.run_id, status="RUNNING")
                journal_dir = _journal_dir(cfg_track, run.info.run_id, offline_dir)
                if absorb_pending_journal(client, journal_dir, run.info.run_id) is not None:
                    run = client.get_run(run.info.run_id)  # with the params and tags just uploaded
            else:
                experiment_id = _experiment_id(client, cfg_track.experiment,
                                               artifact_location or default_artifact_location(uri, cfg_track.experiment))
                start_tags.setdefault("mlflow.user", current_user())
                start_tags.setdefault("mlflow.source.name", tag_value(Path(sys.argv[0]).name or "python", tag_limit))
                run = client.create_run(experiment_id, tags=start_tags, run_name=run_name)
    except UserError:
        raise
    except Exception as exc:
        # MLflow's errors, OSError, and database stores' driver errors (sqlalchemy, psycopg), raised unwrapped.
        if isinstance(exc, OSError) or is_store_failure(exc):
            raise store_error(uri, exc) from exc
        raise

    tracker = OnlineTracker(client, run, uri, offline_dir=_journal_dir(cfg_track, run.info.run_id, offline_dir))
    remember_open_tracker(tracker)
    try:
        if resume_run_id and start_tags:
            tracker.set_tags(start_tags)
        if params:
            tracker.log_params(params)
        if resume_run_id:
            tracker.set_tags({RESUMED_TAG: str(_resume_count(run) + 1)})
    except BaseException:
        tracker.finish("FAILED")
        raise
    log.info("MLflow run %s in experiment %s at %s", tracker.run_id, tracker.experiment_id,
             mask_credentials(uri))
    return tracker


def _journal_dir(cfg_track: "TrackConfig", run_id: str, offline_dir: str | os.PathLike[str] | None) -> Path:
    """Where a run's offline journal lives: next to its outputs, ``<output_dir>/<run_id>/tracking-offline``
    (the engine's run folder), unless the caller chose a place."""
    if offline_dir is not None:
        return Path(offline_dir).absolute()
    return (Path(cfg_track.output_dir or "runs") / run_id / JOURNAL_DIR).absolute()


def _resume_count(run: "Run") -> int:
    try:
        return int(run.data.tags.get(RESUMED_TAG, "0"))
    except ValueError:
        return 0


def _require_run(client: "MlflowClient", run_id: str, role: str, uri: str) -> "Run":
    from mlflow.exceptions import MlflowException

    try:
        run = client.get_run(run_id)
    except MlflowException:
        run = None
    if run is None or run.info.lifecycle_stage == "deleted":
        raise UserError(f"the {role} MLflow run {run_id!r} does not exist in {mask_credentials(uri)}; "
                        "check the run id (zslbench results list them) and --tracking-uri")
    return run


def _experiment_id(client: "MlflowClient", name: str, artifact_location: str | None) -> str:
    from mlflow.exceptions import MlflowException

    experiment = client.get_experiment_by_name(name)
    if experiment is None:
        try:
            return client.create_experiment(name, artifact_location=artifact_location)
        except MlflowException:
            # Another worker created it between our lookup and create.
            experiment = client.get_experiment_by_name(name)
            if experiment is None:
                raise
    if experiment.lifecycle_stage == "deleted":
        raise UserError(f"MLflow experiment {name!r} was deleted; restore it with "
                        f"`mlflow experiments restore --experiment-id {experiment.experiment_id}` "
                        "or choose another --experiment")
    return experiment.experiment_id


__all__ = ["PARENT_RUN_ENV", "open_tracker"]
