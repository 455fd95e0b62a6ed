"""One worker of a study: opening the study and its MLflow parent run, then the ask → train → tell loop
(see :mod:`zslbench.sweeps.study` for the decisions)."""

from __future__ import annotations

import json
import os
import random
import socket
import time
from dataclasses import dataclass
from typing import Any, Optional, Sequence

from zslbench.catalogue import Param
from zslbench.config import Config, config_hash, resolve
from zslbench.core.errors import RunStopped, UserError
from zslbench.sweeps.coordination import (IDENTITY_ATTR, PARENT_ATTR, RUN_ATTR, SKIPPED_ATTR, TEST_METRICS_ATTR,
                                          WORKER_ATTR, Heartbeat, claim_grid_point, fail_stale_trials, grid_points,
                                          point_sampler)
from zslbench.sweeps.options import DEFAULT_TRIALS, SweepOptions, objective_label, test_line
from zslbench.sweeps.storage import StorageSpec

#: How long a worker that did not create the study waits for the creator's parent run id.
PARENT_WAIT_SECONDS = 60.0
#: The test metrics a trial reports beside its objective (fractions).
TEST_METRICS = ("zsl_t1", "gzsl_u", "gzsl_s", "gzsl_h", "ausuc")


# --------------------------------------------------------------------------- opening the study
def sweep_identity(cfg: Config, opts: SweepOptions, params: Sequence[Param]) -> dict[str, Any]:
    """What must match for a re-run to continue a study (not the trial budget or worker count)."""

    return {"config_hash": config_hash(cfg), "seed": opts.seed, "metric": opts.metric,
            "params": [p.name for p in params], "grid": opts.grid, "select_on": opts.select_on}


def open_study(study_name: str, storage, spec: StorageSpec, sampler, pruner, identity: dict[str, Any]):
    """Create the study, or load it when it exists; returns ``(study, created)``."""
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    try:
        study = optuna.create_study(study_name=study_name, storage=storage, sampler=sampler, pruner=pruner,
                                    direction="maximize", load_if_exists=False)
        study.set_user_attr(IDENTITY_ATTR, identity)
        return study, True
    except optuna.exceptions.DuplicatedStudyError:
        study = optuna.load_study(study_name=study_name, storage=storage, sampler=sampler, pruner=pruner)
    stored = study.user_attrs.get(IDENTITY_ATTR)
    if stored is not None and stored != identity:
        differing = ", ".join(k for k in identity if stored.get(k) != identity[k])
        raise UserError(f"study {study_name!r} in {spec.display} was started by a different sweep ({differing} "
                        "differ); repeat its original options or pass --study NEW_NAME")
    if study.direction != optuna.study.StudyDirection.MAXIMIZE:
        raise UserError(f"study {study_name!r} in {spec.display} minimises; zslbench sweeps maximise a metric — "
                        "pass --study NEW_NAME")
    return study, False


def _pruner(name: str, epochs: int):
    import optuna

    if name == "median":
        return optuna.pruners.MedianPruner(n_startup_trials=5, n_warmup_steps=1)
    if name == "hyperband":
        return optuna.pruners.HyperbandPruner(min_resource=1, max_resource=max(epochs, 1))
    return optuna.pruners.NopPruner()


def parent_tracker(study, created: bool, cfg: Config, opts: SweepOptions, spec: StorageSpec, params):
    """Create (study creator) or re-open (everyone else) the study's MLflow parent run."""
    from zslbench.tracking import NullTracker, open_tracker

    if not cfg.track.enabled:
        return NullTracker()
    run_id = study.user_attrs.get(PARENT_ATTR)
    deadline = time.monotonic() + (0.0 if created else PARENT_WAIT_SECONDS)
    while run_id is None and time.monotonic() < deadline:  # the creator is writing it
        time.sleep(0.5)
        run_id = study.user_attrs.get(PARENT_ATTR)
    if run_id is not None:
        return open_tracker(cfg.track, resume_run_id=run_id)
    tags = {"zslbench.role": "sweep", "optuna.study": study.study_name, "optuna.storage": spec.display,
            "zslbench.config_hash": config_hash(cfg), "model": cfg.model.name, "dataset": cfg.data.dataset,
            "zslbench.sweep_objective": opts.objective, "zslbench.test_selected": str(opts.select_on == "test").lower()}
    sweep_params = {"sweep.spaces": ",".join(opts.spaces), "sweep.params": ",".join(p.name for p in params),
                    "sweep.metric": opts.metric, "sweep.select_on": opts.select_on, "sweep.grid": opts.grid,
                    "sweep.pruner": opts.pruner, "sweep.seed": opts.seed}
    tracker = open_tracker(cfg.track, run_name=f"sweep-{study.study_name}", tags=tags,
                           params={**cfg.flat(), **sweep_params})
    study.set_user_attr(PARENT_ATTR, tracker.run_id)
    return tracker


def suggest(trial, param: Param, grid: bool = False) -> Any:
    """Ask ``trial`` for a value of ``param``: categorical over its grid, else its continuous/integer range."""
    if grid:
        return trial.suggest_categorical(param.name, list(param.grid))
    if param.integer:
        return trial.suggest_int(param.name, int(param.low), int(param.high), log=param.log)
    return trial.suggest_float(param.name, float(param.low), float(param.high), log=param.log)


@dataclass
class Counts:
    finished: int
    running: int
    waiting: int


def count_trials(study) -> Counts:
    from optuna.trial import TrialState

    trials = study.get_trials(deepcopy=False)
    return Counts(
        finished=sum(t.state in (TrialState.COMPLETE, TrialState.PRUNED) for t in trials),
        running=sum(t.state == TrialState.RUNNING and SKIPPED_ATTR not in t.user_attrs for t in trials),
        waiting=sum(t.state == TrialState.WAITING for t in trials))


def is_surplus(study, trial_number: int, target: int) -> bool:
    """Whether the finished trials plus the in-flight trials created before this one reach the target."""
    from optuna.trial import TrialState

    trials = study.get_trials(deepcopy=False)
    finished = sum(t.state in (TrialState.COMPLETE, TrialState.PRUNED) for t in trials)
    ahead = sum(t.number < trial_number and (t.state == TrialState.WAITING or (
        t.state == TrialState.RUNNING and SKIPPED_ATTR not in t.user_attrs)) for t in trials)
    return finished + ahead >= target


class Worker:
    """One worker process of a study: the ask → train → tell loop."""

    def __init__(self, opts: SweepOptions, cfg: Config, params: list[Param], spec: StorageSpec, console) -> None:
        self.opts, self.cfg, self.params, self.spec, self.console = opts, cfg, params, spec, console
        self.points = grid_points(params) if opts.grid else []
        default = len(self.points) if opts.grid else DEFAULT_TRIALS
        self.target = min(opts.trials or default, len(self.points)) if opts.grid else (opts.trials or default)
        self.sampler_seed = opts.seed + (opts.worker_index or 0)
        self.rng = random.Random(f"{self.sampler_seed}-{os.getpid()}")
        self.name = f"{socket.gethostname()}:{os.getpid()}"
        self.tag = f"\\[worker {opts.worker_index}] " if opts.worker_index is not None else ""  # escaped markup
        self.data = None
        self.poll = max(0.2, min(1.0, opts.heartbeat / 2))

    # ----------------------------------------------------------------- setup
    def open(self, study_name: str):
        import optuna

        self.storage = self.spec.open(self.opts.heartbeat, self.opts.max_retry)
        if self.opts.grid:
            self.sampler = point_sampler()
        else:
            self.sampler = optuna.samplers.TPESampler(seed=self.sampler_seed, constant_liar=True)
        identity = sweep_identity(self.cfg, self.opts, self.params)
        self.study, created = open_study(study_name, self.storage, self.spec, self.sampler,
                                         _pruner(self.opts.pruner, self.cfg.train.epochs), identity)
        self.parent = parent_tracker(self.study, created, self.cfg, self.opts, self.spec, self.params)
        return self.study

    def _say(self, text: str) -> None:
        self.console.print(f"{self.tag}{text}", highlight=False)

    # ----------------------------------------------------------------- loop
    def run(self) -> int:
        """Run trials until the study has ``target`` finished trials; returns how many this worker ran."""
        ran = 0
        status = "KILLED"
        try:
            while True:
                for number in fail_stale_trials(self.study, self.spec, self.opts.heartbeat, self.opts.max_retry):
                    self._close_trial_run(number)
                counts = count_trials(self.study)
                if counts.finished >= self.target:
                    break
                if counts.waiting == 0 and counts.finished + counts.running >= self.target:
                    time.sleep(self.poll)  # in-flight trials may still fail or be pruned
                    continue
                if self.run_next_trial():
                    ran += 1
            status = "FINISHED"
        finally:
            self._log_best()
            self.parent.finish(status)
        return ran

    def run_next_trial(self) -> bool:
        """Ask one trial and run it; False when it was skipped (surplus or no free grid point)."""
        from optuna.trial import TrialState

        trial = self.study.ask()
        trial.set_user_attr(WORKER_ATTR, self.name)
        beat = Heartbeat(self.study._storage, trial._trial_id, self.opts.heartbeat, self.spec.has_native_heartbeat)
        try:
            reason = None
            if is_surplus(self.study, trial.number, self.target):
                reason = f"the study already has {self.target} finished or running trials"
            elif self.opts.grid:
                point = claim_grid_point(self.study, trial, len(self.points), self.rng)
                if point is None:
                    reason = "every grid point is taken"
                else:
                    self.sampler.assigned[trial.number] = self.points[point]
            if reason is not None:
                trial.set_user_attr(SKIPPED_ATTR, reason)
                self.study.tell(trial, state=TrialState.FAIL)
                time.sleep(self.poll * self.rng.random())
                return False
            self._train(trial)
            return True
        finally:
            beat.stop()

    def _train(self, trial) -> None:
        from optuna.trial import TrialState

        from zslbench.engine.runner import run_one

        values = {p.name: suggest(trial, p, self.opts.grid) for p in self.params}
        overrides = [p.override(values[p.name]) for p in self.params]
        cfg = resolve(base=self.cfg, overrides=overrides)
        if self.data is None:
            from zslbench.engine.run_data import load_run_data

            self.data = load_run_data(cfg, self.console)
        objective = self.opts.objective
        tags = {"optuna.study": self.study.study_name, "optuna.trial_number": str(trial.number),
                "zslbench.config_hash": _hash(cfg), "zslbench.role": "sweep-trial",
                "zslbench.sweep_objective": objective}
        shown_values = ", ".join(f"{p.name}={values[p.name]:g} ({p.key})" for p in self.params)
        self._say(f"trial {trial.number}: {shown_values}")

        def report(epoch: int, metrics: dict[str, float]) -> None:
            if objective in metrics:
                trial.report(float(metrics[objective]), epoch)
                if trial.should_prune():
                    raise RunStopped(f"pruned by optuna's {self.opts.pruner} pruner after epoch {epoch}")

        # the objective's epochs: the validation protocol's (default), or the test evaluations' when asked (†)
        callbacks = {"validation_callback": report} if self.opts.select_on == "val" else {"epoch_callback": report}
        try:
            result = run_one(cfg, self.console, parent_run_id=self.parent.run_id, quiet=True, data=self.data,
                             tags=tags, **callbacks)
        except RunStopped:
            self._cross_reference(trial, None)
            self.study.tell(trial, state=TrialState.PRUNED)
            self._say(f"trial {trial.number}: PRUNED")
            return
        except BaseException:
            self._cross_reference(trial, None)
            self.study.tell(trial, state=TrialState.FAIL)
            raise
        value = float(result.final[objective])
        test = {k: float(result.final[k]) for k in TEST_METRICS if isinstance(result.final.get(k), (int, float))}
        trial.set_user_attr(TEST_METRICS_ATTR, test)
        self._cross_reference(trial, result.run_id)
        self.study.tell(trial, value)
        self._say(f"trial {trial.number}: {objective_label(self.opts.metric, self.opts.select_on)} = {100 * value:.1f}"
                  f" · {test_line(test, self.opts.select_on)} (MLflow run {result.run_id})")

    def _close_trial_run(self, number: int) -> None:
        """The MLflow run of a trial whose worker died is marked KILLED (Optuna retries the trial)."""
        if not self.cfg.track.enabled:
            return
        from zslbench.tracking import close_run

        run_id = _find_trial_run(self.cfg, self.study.study_name, number)
        if run_id and close_run(run_id, f"its sweep worker stopped (no heartbeat); trial {number} was failed and "
                                "retried", tracking_uri=self.cfg.track.uri):
            self._say(f"trial {number}: its worker died; MLflow run {run_id} marked KILLED")

    def _cross_reference(self, trial, run_id: Optional[str]) -> None:
        if run_id is None and self.cfg.track.enabled:
            run_id = _find_trial_run(self.cfg, self.study.study_name, trial.number)
        if run_id:
            trial.set_user_attr(RUN_ATTR, run_id)

    def _log_best(self) -> None:
        try:
            best = self.study.best_trial
        except ValueError:  # no complete trial yet
            return
        test = best.user_attrs.get(TEST_METRICS_ATTR, {})
        self.parent.log_metrics({f"best_{self.opts.objective}": float(best.value),
                                 **{f"best_trial_test_{k}": float(v) for k, v in test.items()}}, step=best.number)
        self.parent.set_tags({"optuna.best_trial": str(best.number),
                              "optuna.best_params": json.dumps(best.params, sort_keys=True)})


def _hash(cfg: Config) -> str:

    return config_hash(cfg)


def _find_trial_run(cfg: Config, study_name: str, number: int) -> Optional[str]:
    from zslbench.tracking import find_runs

    if "'" in study_name:
        return None
    runs = find_runs(cfg.track.experiment, f"tags.`optuna.study` = '{study_name}' and "
                     f"tags.`optuna.trial_number` = '{number}'", tracking_uri=cfg.track.uri, max_results=1)
    return runs[0].info.run_id if runs else None
