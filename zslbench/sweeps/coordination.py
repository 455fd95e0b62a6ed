"""How the workers of one study coordinate through the study itself: the trial and study attributes they
write, grid points claimed by one trial at a time, and heartbeats that fail (and retry) the trials of a worker
that died. Nothing here trains.
"""

from __future__ import annotations

import itertools
import logging
import random
import threading
import time
import warnings
from typing import Any, Optional, Sequence

from zslbench.catalogue import Param
from zslbench.sweeps.storage import StorageSpec

PARENT_ATTR = "mlflow_parent_run_id"
RUN_ATTR = "mlflow_run_id"
IDENTITY_ATTR = "zslbench.sweep"
GRID_ATTR = "zslbench.grid_point"
SKIPPED_ATTR = "zslbench.skipped"
WORKER_ATTR = "zslbench.worker"
HEARTBEAT_ATTR = "zslbench.heartbeat"
#: A finished trial's test metrics (fractions): reported beside the objective, never read by the sampler.
TEST_METRICS_ATTR = "zslbench.test_metrics"

log = logging.getLogger(__name__)


# --------------------------------------------------------------------------- grid claims
def point_sampler():
    """A sampler returning, for each trial, the values of the grid point its worker claimed
    (``sampler.assigned[trial.number]``); optuna is imported here, on use only."""
    from optuna.samplers import BaseSampler

    class PointSampler(BaseSampler):
        def __init__(self) -> None:
            self.assigned: dict[int, dict[str, Any]] = {}

        def infer_relative_search_space(self, study, trial):
            return {}

        def sample_relative(self, study, trial, search_space):
            return {}

        def sample_independent(self, study, trial, param_name, param_distribution):
            point = self.assigned.get(trial.number)
            if point is None or param_name not in point:
                raise RuntimeError(f"trial {trial.number} has no claimed grid point for {param_name!r}")
            return point[param_name]

    return PointSampler()


def grid_points(params: Sequence[Param]) -> list[dict[str, Any]]:
    """The product of the parameters' grids, in a fixed order."""
    return [dict(zip([p.name for p in params], values)) for values in itertools.product(*(p.grid for p in params))]


def _holds_point(trial) -> bool:
    from optuna.trial import TrialState

    if trial.state in (TrialState.COMPLETE, TrialState.PRUNED, TrialState.WAITING):
        return True
    return trial.state == TrialState.RUNNING and SKIPPED_ATTR not in trial.user_attrs


def held_points(study, exclude_number: int) -> set[int]:
    return {int(t.system_attrs[GRID_ATTR]) for t in study.get_trials(deepcopy=False)
            if t.number != exclude_number and GRID_ATTR in t.system_attrs and _holds_point(t)}


def claim_grid_point(study, trial, n_points: int, rng: random.Random) -> Optional[int]:
    """Claim a free grid point for ``trial`` (write, then re-read: yield if someone else holds it)."""
    frozen = study._storage.get_trial(trial._trial_id)
    if GRID_ATTR in frozen.system_attrs:  # a retried trial keeps its point
        return int(frozen.system_attrs[GRID_ATTR])
    yielded: set[int] = set()
    while True:
        free = [i for i in range(n_points) if i not in held_points(study, trial.number) and i not in yielded]
        if not free:
            return None
        choice = free[0] if not yielded else rng.choice(free)  # after a collision, spread out
        study._storage.set_trial_system_attr(trial._trial_id, GRID_ATTR, choice)
        if choice not in held_points(study, trial.number):
            return choice
        yielded.add(choice)


# --------------------------------------------------------------------------- heartbeats
class Heartbeat:
    """Beats for one running trial in a background thread until stopped."""

    def __init__(self, storage, trial_id: int, interval: float, native: bool) -> None:
        self._storage, self._trial_id, self._interval, self._native = storage, trial_id, interval, native
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name=f"heartbeat-{trial_id}", daemon=True)
        self.beat()
        self._thread.start()

    def beat(self) -> None:
        if self._native:
            self._storage.record_heartbeat(self._trial_id)
        else:
            self._storage.set_trial_system_attr(self._trial_id, HEARTBEAT_ATTR, time.time())

    def _run(self) -> None:
        while not self._stop.wait(self._interval):
            try:
                self.beat()
            except Exception as exc:  # a missed beat is retried; the trial must go on
                log.warning("heartbeat of trial id %s failed: %s", self._trial_id, exc)

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=5)


def fail_stale_trials(study, spec: StorageSpec, heartbeat: int, max_retry: int) -> list[int]:
    """Fail (and retry) RUNNING trials whose worker stopped beating; the numbers of those failed."""
    import optuna
    from optuna.trial import TrialState

    if spec.has_native_heartbeat:
        running = {t.number for t in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,))}
        optuna.storages.fail_stale_trials(study)
        return sorted(t.number for t in study.get_trials(deepcopy=False, states=(TrialState.FAIL,))
                      if t.number in running)
    failed_numbers = []
    from optuna.storages import RetryHeartbeatStaleTrialCallback

    now, grace = time.time(), 2 * heartbeat
    for trial in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):
        last = trial.system_attrs.get(HEARTBEAT_ATTR)
        if last is None:
            last = trial.datetime_start.timestamp() if trial.datetime_start else now
        if now - float(last) <= grace:
            continue
        try:
            failed = study._storage.set_trial_state_values(trial._trial_id, TrialState.FAIL)
        except optuna.exceptions.UpdateFinishedTrialError:
            continue  # another worker failed it first
        if failed:
            failed_numbers.append(trial.number)
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
                retry = RetryHeartbeatStaleTrialCallback(max_retry=max_retry)
            retry(study, study._storage.get_trial(trial._trial_id))
    return failed_numbers
