"""``zslbench sweep``: an Optuna study of named search spaces, one MLflow child run per trial.

One worker is a loop of Optuna's ask/tell: ask a trial, build its config (``--set key=value`` of
the sampled values on top of the resolved config), train it with :func:`~zslbench.engine.runner.run_one`
(reporting the per-epoch metric to the pruner; a pruned trial raises ``RunStopped``), and tell
the final metric. Every worker of one study — the N processes of ``--workers N``, or the same
command started on many machines against one PostgreSQL storage — runs this loop.

Decisions (documented in ``zslbench sweep --help``):

- **Storage.** ``sqlite:///optuna.db`` by default; ``--workers N`` defaults to the journal file
  ``optuna-journal.log`` (``journal:PATH`` names another); any SQLAlchemy URL
  (``postgresql+psycopg://…``) makes the command one worker of a study shared by many machines.
- **Trial budget.** ``--trials N`` is the study's total of *finished* trials, COMPLETE plus PRUNED
  (a pruned trial is an evaluated configuration). Re-running the same command continues the study
  until N are finished. Workers never overshoot: a new trial counts the finished trials and the
  in-flight trials with a lower number (created earlier); if that already reaches N it is not
  run but closed as FAIL with user attr ``zslbench.skipped`` (this only happens when workers race).
- **Grid.** ``--grid`` enumerates the product of the spaces' paper grids. Each trial claims a grid
  point by writing it on itself, then re-reads the study: if another live trial holds the same
  point it yields and claims another. Whichever of two racing trials reads second sees the other,
  so no point is ever trained twice; a trial that finds no free point is skipped.
- **Dead workers.** RDB storages use Optuna's heartbeat (``heartbeat_interval``, grace = 2×) with
  ``RetryHeartbeatStaleTrialCallback``; the journal backend has no heartbeat in Optuna, so workers
  beat a ``zslbench.heartbeat`` trial attr and fail (and retry) trials whose beat is older than the
  grace period. A retried trial keeps its parameters (and grid point).
- **MLflow.** The worker that creates the study creates the parent run and stores its id as study
  user attr ``mlflow_parent_run_id``; the others (and every re-run) wait for it and reuse it.
  Children carry tags ``optuna.study`` and ``optuna.trial_number``; trials carry ``mlflow_run_id``.
- **Sampler seed.** TPE is seeded with ``--seed`` (+ the worker index under ``--workers``), so a
  single-worker study is reproducible; concurrent workers are not, by nature.
"""

from __future__ import annotations

import itertools
import json
import logging
import os
import random
import re
import socket
import subprocess
import sys
import threading
import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Optional, Sequence

from zslbench.config import Config, Request, resolve, resolve_request
from zslbench.core.errors import RunStopped, UserError, unknown_name
from zslbench.sweeps import Param, params_for

log = logging.getLogger(__name__)

DEFAULT_SQLITE = "sqlite:///optuna.db"
DEFAULT_JOURNAL = "optuna-journal.log"
METRICS = ("gzsl_h", "zsl_t1", "ausuc")
PRUNERS = ("median", "hyperband", "none")
DEFAULT_TRIALS = 20
#: Environment variable read by ``--storage`` (keeps a database password out of argv and shell history).
STORAGE_ENV = "ZSLBENCH_OPTUNA_STORAGE"

PARENT_ATTR = "mlflow_parent_run_id"
RUN_ATTR = "mlflow_run_id"
IDENTITY_ATTR = "zslbench.sweep"
GRID_ATTR = "zslbench.grid_point"
SKIPPED_ATTR = "zslbench.skipped"
WORKER_ATTR = "zslbench.worker"
HEARTBEAT_ATTR = "zslbench.heartbeat"
#: How long a worker that did not create the study waits for the creator's parent run id.
PARENT_WAIT_SECONDS = 60.0
_RDB_DIALECTS = ("sqlite", "postgresql", "mysql", "mariadb", "oracle", "mssql")


# --------------------------------------------------------------------------- options
@dataclass
class SweepOptions:
    """Everything ``zslbench sweep`` was asked to do (the CLI's options, parsed)."""

    spaces: list[str] = field(default_factory=list)
    trials: Optional[int] = None
    grid: bool = False
    study: Optional[str] = None
    storage: Optional[str] = None
    workers: int = 1
    pruner: str = "median"
    metric: str = "gzsl_h"
    model: str = "svip"
    dataset: str = "synth"
    preset: Optional[str] = None
    overrides: list[str] = field(default_factory=list)
    seed: int = 0
    experiment: Optional[str] = None
    tracking_uri: Optional[str] = None
    heartbeat: int = 60
    max_retry: int = 2
    worker_index: Optional[int] = None

    def worker_argv(self, storage: "StorageSpec", index: int, study_name: str) -> list[str]:
        """The ``zslbench sweep`` command line of worker ``index`` (same study, same storage)."""
        # The storage URL (maybe with a password) goes by environment (STORAGE_ENV), not argv: `ps` shows argv.
        argv = ["sweep", *self.spaces, "--study", study_name, "--workers", "1",
                "--worker-index", str(index), "--pruner", self.pruner, "--metric", self.metric,
                "--model", self.model, "--dataset", self.dataset, "--seed", str(self.seed),
                "--heartbeat", str(self.heartbeat), "--max-retry", str(self.max_retry)]
        if self.trials is not None:
            argv += ["--trials", str(self.trials)]
        if self.grid:
            argv.append("--grid")
        if self.preset:
            argv += ["--preset", self.preset]
        for item in self.overrides:
            argv += ["--set", item]
        if self.experiment:
            argv += ["--experiment", self.experiment]
        if self.tracking_uri:
            argv += ["--tracking-uri", self.tracking_uri]
        return argv


def base_config(opts: SweepOptions) -> Config:
    """The resolved config every trial starts from (trial values are ``--set`` on top)."""
    return resolve_request(Request(model=opts.model, dataset=opts.dataset, preset=opts.preset,
                                   overrides=tuple(opts.overrides), seed=opts.seed, experiment=opts.experiment,
                                   tracking_uri=opts.tracking_uri))


def default_study_name(opts: SweepOptions) -> str:
    """``<model>-<dataset>-<spaces>[-grid][-<preset>]``, e.g. ``svip-CUB-temperature``."""
    name = f"{opts.model}-{opts.dataset}-{'+'.join(dict.fromkeys(opts.spaces))}"
    return name + ("-grid" if opts.grid else "") + (f"-{opts.preset}" if opts.preset else "")


# --------------------------------------------------------------------------- storage
def shown(url: str) -> str:
    """``url`` with its credentials masked, even when it is too malformed for a URL parser."""
    from zslbench.tracking import MASK, mask_credentials

    return re.sub(r"(?P<user>[^\s/:@]+):(?P<pw>[^\s@/]+)@", lambda m: f"{m['user']}:{MASK}@"
                  if m["pw"] != MASK else m[0], mask_credentials(url))


@dataclass(frozen=True)
class StorageSpec:
    """Where a study lives: an RDB URL (sqlite, postgresql…) or a journal file."""

    kind: str  # "rdb" | "journal"
    location: str

    @property
    def cli_value(self) -> str:
        return self.location if self.kind == "rdb" else f"journal:{self.location}"

    @property
    def display(self) -> str:
        return shown(self.cli_value)

    @property
    def has_native_heartbeat(self) -> bool:
        return self.kind == "rdb"

    def open(self, heartbeat: int = 60, max_retry: int = 2):
        """The Optuna storage object (heartbeat and retry of dead workers' trials configured)."""
        import optuna
        from optuna.storages import RetryHeartbeatStaleTrialCallback

        warnings.filterwarnings("ignore", category=optuna.exceptions.ExperimentalWarning)
        # Workers beat and fail stale trials themselves (see Heartbeat), so ask/tell is fine here.
        warnings.filterwarnings("ignore", message="Heartbeat of storage is supposed to be used with Study.optimize")
        if self.kind == "journal":
            from optuna.storages.journal import JournalFileBackend, JournalStorage

            path = Path(self.location)
            if not path.parent.is_dir():
                raise UserError(f"journal storage {self.display}: folder {str(path.parent)!r} does not exist; "
                                "create it or pick another journal:PATH")
            return JournalStorage(JournalFileBackend(str(path)))
        engine_kwargs: dict[str, Any] = {"pool_pre_ping": True}
        if self.location.startswith("sqlite"):
            engine_kwargs = {"connect_args": {"timeout": 60}}
        for attempt in range(6):
            try:
                return optuna.storages.RDBStorage(
                    self.location, engine_kwargs=engine_kwargs, heartbeat_interval=heartbeat,
                    grace_period=2 * heartbeat,
                    heartbeat_stale_trial_callback=RetryHeartbeatStaleTrialCallback(max_retry=max_retry))
            except Exception as exc:  # sqlalchemy/driver errors: unreachable server, bad credentials, bad path
                if _lost_schema_race(exc) and attempt < 5:
                    time.sleep(0.2 + random.random())  # another worker is creating the tables right now
                    continue
                reason = shown(f"{type(exc).__name__}: {exc}".splitlines()[0])[:300]
                raise UserError(f"cannot open the Optuna storage {self.display} ({reason}); check that the "
                                "database is running and reachable and the URL is right") from None


def _lost_schema_race(exc: BaseException) -> bool:
    """Whether creating Optuna's tables failed because a concurrent worker was creating them too."""
    text = f"{type(exc).__name__}: {exc}"
    return any(marker in text for marker in ("IntegrityError", "UniqueViolation", "DuplicateTable",
                                              "already exists"))


def parse_storage(value: Optional[str], workers: int = 1) -> StorageSpec:
    """Validate ``--storage``: ``None`` → the default for the worker count; ``journal:PATH``; an RDB URL.

    >>> parse_storage(None)
    StorageSpec(kind='rdb', location='sqlite:///optuna.db')
    >>> parse_storage(None, workers=2).cli_value
    'journal:optuna-journal.log'
    >>> parse_storage("postgresql://u:pw@db/optuna").location
    'postgresql+psycopg://u:pw@db/optuna'
    """
    if value is None or not value.strip():
        return StorageSpec("journal", DEFAULT_JOURNAL) if workers > 1 else StorageSpec("rdb", DEFAULT_SQLITE)
    value = value.strip()
    if value.startswith("journal:"):
        path = value[len("journal:"):]
        if not path:
            raise UserError("--storage journal: needs a file, e.g. --storage journal:optuna-journal.log")
        return StorageSpec("journal", path)
    match = re.fullmatch(r"(?P<dialect>[a-z][a-z0-9]*)(?:\+(?P<driver>[a-z0-9_]+))?://(?P<rest>.*)", value)
    if match is None or match["dialect"] not in _RDB_DIALECTS:
        raise UserError(f"--storage {shown(value)!r} is not a storage URL Optuna can use; pass e.g. "
                        "sqlite:///optuna.db, postgresql+psycopg://USER:PASSWORD@HOST:5432/DB or journal:FILE")
    if match["dialect"] == "sqlite":
        if not match["rest"].startswith("/"):
            raise UserError(f"--storage {shown(value)!r}: a sqlite URL has three slashes (sqlite:///optuna.db) "
                            "or four for an absolute path (sqlite:////data/optuna.db)")
    elif not re.match(r"[^/@\s]+/\w", match["rest"].rsplit("@", 1)[-1]):
        raise UserError(f"--storage {shown(value)!r} names no host and database; use "
                        f"{match['dialect']}://USER:PASSWORD@HOST:PORT/DATABASE")
    if match["dialect"] == "postgresql" and match["driver"] is None:
        value = "postgresql+psycopg://" + match["rest"]  # psycopg 3, the driver zslbench installs
    if (match["dialect"] == "postgresql" and (match["driver"] in (None, "psycopg"))):
        try:
            import psycopg  # noqa: F401
        except ImportError:
            raise UserError("PostgreSQL storage needs the psycopg driver; pip install 'psycopg[binary]'") from None
    return StorageSpec("rdb", value)


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


# --------------------------------------------------------------------------- study
def sweep_identity(cfg: Config, opts: SweepOptions, params: Sequence[Param]) -> dict[str, Any]:
    """What must match for a re-run to continue a study (not the trial budget or worker count)."""
    from zslbench.config import config_hash

    return {"config_hash": config_hash(cfg), "seed": opts.seed, "metric": opts.metric,
            "params": [p.name for p in params], "grid": opts.grid}


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
    from zslbench.config import config_hash
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
            "zslbench.config_hash": config_hash(cfg), "model": cfg.model.name, "dataset": cfg.data.dataset}
    sweep_params = {"sweep.spaces": ",".join(opts.spaces), "sweep.params": ",".join(p.name for p in params),
                    "sweep.metric": opts.metric, "sweep.grid": opts.grid, "sweep.pruner": opts.pruner,
                    "sweep.seed": opts.seed}
    tracker = open_tracker(cfg.track, run_name=f"sweep-{study.study_name}", tags=tags,
                           params={**cfg.flat(), **sweep_params})
    study.set_user_attr(PARENT_ATTR, tracker.run_id)
    return tracker


# --------------------------------------------------------------------------- the worker
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
        tags = {"optuna.study": self.study.study_name, "optuna.trial_number": str(trial.number),
                "zslbench.config_hash": _hash(cfg), "zslbench.role": "sweep-trial"}
        shown_values = ", ".join(f"{k}={v:g}" for k, v in values.items())
        self._say(f"trial {trial.number}: {shown_values}")

        def report(epoch: int, metrics: dict[str, float]) -> None:
            if self.opts.metric in metrics:
                trial.report(float(metrics[self.opts.metric]), epoch)
                if trial.should_prune():
                    raise RunStopped(f"pruned by optuna's {self.opts.pruner} pruner after epoch {epoch}")

        try:
            result = run_one(cfg, self.console, parent_run_id=self.parent.run_id, quiet=True, data=self.data,
                             epoch_callback=report, tags=tags)
        except RunStopped:
            self._cross_reference(trial, None)
            self.study.tell(trial, state=TrialState.PRUNED)
            self._say(f"trial {trial.number}: PRUNED")
            return
        except BaseException:
            self._cross_reference(trial, None)
            self.study.tell(trial, state=TrialState.FAIL)
            raise
        value = float(result.final[self.opts.metric])
        self._cross_reference(trial, result.run_id)
        self.study.tell(trial, value)
        self._say(f"trial {trial.number}: {self.opts.metric} = {value:.4f} (MLflow run {result.run_id})")

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
        self.parent.log_metrics({f"best_{self.opts.metric}": float(best.value)}, step=best.number)
        self.parent.set_tags({"optuna.best_trial": str(best.number),
                              "optuna.best_params": json.dumps(best.params, sort_keys=True)})


def _hash(cfg: Config) -> str:
    from zslbench.config import config_hash

    return config_hash(cfg)


def _find_trial_run(cfg: Config, study_name: str, number: int) -> Optional[str]:
    from zslbench.tracking import find_runs

    if "'" in study_name:
        return None
    runs = find_runs(cfg.track.experiment, f"tags.`optuna.study` = '{study_name}' and "
                     f"tags.`optuna.trial_number` = '{number}'", tracking_uri=cfg.track.uri, max_results=1)
    return runs[0].info.run_id if runs else None


# --------------------------------------------------------------------------- entry points
def validate_options(opts: SweepOptions) -> None:
    if opts.metric not in METRICS:
        raise unknown_name("metric", opts.metric, METRICS)
    if opts.pruner not in PRUNERS:
        raise unknown_name("pruner", opts.pruner, PRUNERS)
    if opts.trials is not None and opts.trials < 1:
        raise UserError(f"--trials must be at least 1, got {opts.trials}")
    if opts.workers < 1:
        raise UserError(f"--workers must be at least 1, got {opts.workers}")
    if opts.heartbeat < 1:
        raise UserError(f"--heartbeat must be at least 1 second, got {opts.heartbeat}")


def run_sweep(opts: SweepOptions, console) -> None:
    """``zslbench sweep``: run (or continue) the study; ``--workers N`` starts N worker processes."""
    validate_options(opts)
    if not opts.spaces:
        from zslbench.sweeps import SPACES

        raise UserError(f"name the search space(s) to sweep, e.g. `zslbench sweep temperature`; valid choices: "
                        f"{', '.join(SPACES.names())}")
    cfg = base_config(opts)
    params = params_for(opts.spaces, cfg)
    spec = parse_storage(opts.storage, opts.workers)
    if opts.workers > 1 and spec.location.startswith("sqlite"):
        raise UserError("--workers N needs a storage that several processes can share: drop --storage (a journal "
                        "file is used) or pass journal:FILE or a postgresql+psycopg:// URL")
    if cfg.track.enabled:
        from zslbench.tracking import check_reachable, resolve_tracking_uri

        check_reachable(resolve_tracking_uri(cfg.track.uri))
    study_name = opts.study or default_study_name(opts)
    worker = Worker(opts, cfg, params, spec, console)
    study = worker.open(study_name)
    console.print(f"{worker.tag}study [bold]{study_name}[/bold] in {spec.display}: {worker.target} trials of "
                  f"{', '.join(p.name for p in params)}, maximising {opts.metric}"
                  + (f" over a grid of {len(worker.points)} points" if opts.grid else ""), highlight=False)
    if opts.workers > 1:
        _launch_workers(opts, spec, study_name, worker, console)
    else:
        worker.run()
    if opts.worker_index is None:
        print_status(study, console, opts.metric)


def _launch_workers(opts: SweepOptions, spec: StorageSpec, study_name: str, worker: Worker, console) -> None:
    """Start N copies of this command as workers of one study, wait, and close the parent run."""
    env = {**os.environ, STORAGE_ENV: spec.cli_value}
    procs = [subprocess.Popen([sys.executable, "-m", "zslbench.cli", *opts.worker_argv(spec, i, study_name)], env=env)
             for i in range(opts.workers)]
    status = "KILLED"
    try:
        codes = [p.wait() for p in procs]
        status = "FINISHED" if not any(codes) else "FAILED"
    finally:
        for p in procs:
            if p.poll() is None:
                p.terminate()
        worker._log_best()
        worker.parent.finish(status)
    if any(codes):
        bad = ", ".join(f"worker {i} (exit {c})" for i, c in enumerate(codes) if c)
        raise UserError(f"{bad} stopped with an error (shown above); fix it and re-run the same command to "
                        "continue the study")


# --------------------------------------------------------------------------- status
def load_for_status(study_name: Optional[str], storage: Optional[str], opts: SweepOptions):
    """Find the study for ``--status`` (default storages: optuna.db, then optuna-journal.log)."""
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    specs = [parse_storage(storage)] if storage else [
        s for s in (StorageSpec("rdb", DEFAULT_SQLITE), StorageSpec("journal", DEFAULT_JOURNAL))
        if Path(s.location.replace("sqlite:///", "")).exists()]
    if not specs:
        raise UserError("no study storage here (optuna.db or optuna-journal.log); pass --storage URL "
                        "or run `zslbench sweep PARAM` first")
    wanted = study_name or (default_study_name(opts) if opts.spaces else None)
    available: list[str] = []
    for spec in specs:
        store = spec.open(opts.heartbeat, opts.max_retry)
        names = [s.study_name for s in optuna.get_all_study_summaries(store, include_best_trial=False)]
        available += names
        if wanted is None and len(names) == 1:
            wanted = names[0]
        if wanted in names:
            return optuna.load_study(study_name=wanted, storage=store), spec
    where = " and ".join(s.display for s in specs)
    if wanted is None:
        raise UserError(f"several studies in {where}: {', '.join(available)}; pick one with --study NAME")
    raise UserError(f"no study {wanted!r} in {where}; studies there: {', '.join(available) or 'none'} "
                    "(pick one with --study NAME)")


def show_status(opts: SweepOptions, console) -> None:
    study, spec = load_for_status(opts.study, opts.storage, opts)
    console.print(f"study [bold]{study.study_name}[/bold] in {spec.display}", highlight=False)
    identity = study.user_attrs.get(IDENTITY_ATTR, {})
    print_status(study, console, identity.get("metric", opts.metric))


def print_status(study, console, metric: str = "value") -> None:
    """A rich table of the study's trials (state, params, value, MLflow run) and the best value."""
    from rich.table import Table

    trials = study.get_trials(deepcopy=False)
    names = list(dict.fromkeys(k for t in trials for k in t.params))
    table = Table(title=f"{study.study_name}: {len(trials)} trials")
    for column in ("trial", "state", *names, metric, "MLflow run", "note"):
        table.add_column(column, justify="right" if column not in ("state", "MLflow run", "note") else "left")
    for t in trials:
        retried = t.system_attrs.get("failed_trial")
        note = t.user_attrs.get(SKIPPED_ATTR) or (f"retry of trial {retried}" if retried is not None else "")
        table.add_row(str(t.number), t.state.name, *(_fmt(t.params.get(n)) for n in names),
                      _fmt(t.value), str(t.user_attrs.get(RUN_ATTR, "")), note)
    console.print(table)
    parent = study.user_attrs.get(PARENT_ATTR)
    try:
        best = study.best_trial
        console.print(f"best {metric} = {best.value:.4f} at trial {best.number} "
                      f"({', '.join(f'{k}={_fmt(v)}' for k, v in best.params.items())})"
                      + (f"; MLflow parent run {parent}" if parent else ""), highlight=False)
    except ValueError:
        console.print("no complete trial yet" + (f"; MLflow parent run {parent}" if parent else ""))


def _fmt(value: Any) -> str:
    if value is None:
        return "–"
    if isinstance(value, float):
        return f"{value:.4g}"
    return str(value)


__all__ = ["SweepOptions", "StorageSpec", "parse_storage", "run_sweep", "show_status", "print_status",
           "grid_points", "claim_grid_point", "fail_stale_trials", "default_study_name", "base_config"]
