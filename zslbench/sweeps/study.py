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

Modules: :mod:`.options` (what was asked), :mod:`.storage` (Optuna storages), :mod:`.coordination` (attributes,
grid claims, heartbeats), :mod:`.worker` (opening the study, the loop); this one: the entry points (this machine,
or ``--launcher slurm``: one SLURM job per worker) and status.
"""

from __future__ import annotations

import dataclasses
import logging
import os
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Optional

from zslbench.core.errors import UserError, unknown_name
from zslbench.launch import ClusterJob, Launch, LaunchRequest, Watcher, finish_parent, follow, results, submit
from zslbench.sweeps import params_for
from zslbench.sweeps.coordination import IDENTITY_ATTR, PARENT_ATTR, RUN_ATTR, SKIPPED_ATTR, TEST_METRICS_ATTR
from zslbench.sweeps.options import (METRICS, PRUNERS, SELECT_ON, SweepOptions, base_config, default_study_name,
                                     objective_label, test_line)
from zslbench.sweeps.storage import DEFAULT_JOURNAL, DEFAULT_SQLITE, STORAGE_ENV, StorageSpec, parse_storage
from zslbench.sweeps.worker import Worker

log = logging.getLogger(__name__)


# --------------------------------------------------------------------------- entry points
def validate_options(opts: SweepOptions) -> None:
    if opts.metric not in METRICS:
        raise unknown_name("metric", opts.metric, METRICS)
    if opts.pruner not in PRUNERS:
        raise unknown_name("pruner", opts.pruner, PRUNERS)
    if opts.select_on not in SELECT_ON:
        raise unknown_name("--select-on", opts.select_on, SELECT_ON)
    if opts.trials is not None and opts.trials < 1:
        raise UserError(f"--trials must be at least 1, got {opts.trials}")
    if opts.workers < 1:
        raise UserError(f"--workers must be at least 1, got {opts.workers}")
    if opts.heartbeat < 1:
        raise UserError(f"--heartbeat must be at least 1 second, got {opts.heartbeat}")


def run_sweep(opts: SweepOptions, console, request=None) -> None:
    """``zslbench sweep``: run (or continue) the study; ``--workers N`` starts N worker processes, or N SLURM
    jobs when ``request`` (a :class:`~zslbench.launch.LaunchRequest`) says ``--launcher slurm``."""
    slurm = request is not None and request.on_slurm
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
    if slurm:  # SLURM takes the jobs (sbatch --test-only) before the study or its parent run exists
        from zslbench.launch import prepare

        settings = prepare(cfg, request.options, "zslbench-sweep")
    if opts.worker_index is None:  # data, word vectors and weights settled before the study or a run exists
        from zslbench.engine.preflight import prepare_run

        prepare_run(cfg, console)
    data = _validation_ready(cfg, console) if opts.select_on == "val" else None  # before any study or run exists
    study_name = opts.study or default_study_name(opts)
    worker = Worker(opts, cfg, params, spec, console)
    worker.data = data
    study = worker.open(study_name)
    where = ("on the validation protocol (train_loc/val_loc: no test image)" if opts.select_on == "val"
             else "on the TEST set (†: the chosen configuration is test-selected)")
    console.print(f"{worker.tag}study [bold]{study_name}[/bold] in {spec.display}: {worker.target} trials of "
                  f"{', '.join(f'{p.name} ({p.key})' for p in params)}, maximising "
                  f"{objective_label(opts.metric, opts.select_on)} {where}"
                  + (f" over a grid of {len(worker.points)} points" if opts.grid else ""), highlight=False)
    if slurm:
        if launch_workers(opts, spec, study_name, worker, request, settings, console) is None:
            return  # detached: `zslbench jobs ID --collect` shows the study once its workers are done
    elif opts.workers > 1:
        _launch_workers(opts, spec, study_name, worker, console)
    else:
        worker.run()
    if opts.worker_index is None:
        print_status(study, console, opts.metric, opts.select_on)


def _validation_ready(cfg, console):
    """The run data, after checking it has the validation protocol's splits (train_loc and val_loc)."""
    from zslbench.engine.run_data import load_run_data

    data = load_run_data(cfg, console)
    if not (data.split.has_split("train") and data.split.has_split("val")):
        raise UserError(f"sweeps select on the validation protocol, which needs train_loc and val_loc; "
                        f"{cfg.data.dataset} lacks them — add them to its att_splits.mat, or pass --select-on test "
                        "(the chosen configuration is then test-selected, marked †)")
    return data


def _launch_workers(opts: SweepOptions, spec: StorageSpec, study_name: str, worker: Worker, console) -> None:
    """Start N copies of this command as workers of one study, wait, and close the parent run.

    On a machine with GPUs, worker i trains on GPU i mod G (each sees only its own), unless the
    config names one device (``cuda:N``) or the CPU.
    """
    from zslbench.engine.device import worker_device_env

    env = {**os.environ, STORAGE_ENV: spec.cli_value}
    procs = [subprocess.Popen([sys.executable, "-m", "zslbench.cli", *opts.worker_argv(spec, i, study_name)],
                              env={**env, **worker_device_env(i, worker.cfg.train.device)})
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


# --------------------------------------------------------------------------- SLURM (--launcher slurm)
# N array tasks, each one worker of the shared study (task i runs worker i against the same storage: the journal
# file on a filesystem the nodes share, or PostgreSQL). The storage URL reaches the jobs through the environment
# ($ZSLBENCH_OPTUNA_STORAGE, exported by sbatch), never through the job files. A preempted worker stops like a
# killed one: its trial is failed (its MLflow run KILLED) and the requeued worker goes on with the study.
@dataclass
class SweepWorkerJob(ClusterJob):
    """Worker ``options.worker_index`` of the study ``options.study`` (storage from ``$ZSLBENCH_OPTUNA_STORAGE``)."""

    options: SweepOptions = field(default_factory=SweepOptions)
    next_start = "its next start rejoins the study (the interrupted trial was failed; the study samples again)"

    def work(self) -> int:
        from rich.console import Console

        run_sweep(self._options(), Console())
        return int(self.options.worker_index or 0)

    def made_progress(self, since: float) -> bool:
        """Whether this worker finished a trial (complete or pruned) since ``since``."""
        import socket

        import optuna
        from optuna.trial import TrialState

        from zslbench.sweeps.coordination import WORKER_ATTR

        opts = self._options()
        storage = parse_storage(opts.storage).open(opts.heartbeat, opts.max_retry)
        study = optuna.load_study(study_name=opts.study, storage=storage)
        me = f"{socket.gethostname()}:{os.getpid()}"
        return any(t.state in (TrialState.COMPLETE, TrialState.PRUNED) and t.user_attrs.get(WORKER_ATTR) == me
                   and t.datetime_complete is not None and t.datetime_complete.timestamp() >= since
                   for t in study.get_trials(deepcopy=False))

    def _options(self) -> SweepOptions:
        return dataclasses.replace(self.options, storage=os.environ.get(STORAGE_ENV) or self.options.storage)


def launch_workers(opts: SweepOptions, spec: StorageSpec, study_name: str, worker, request: LaunchRequest,
                   settings, console) -> Optional[bool]:
    """Submit the study's workers as one job array; wait (True when all finished) or detach (None)."""
    from zslbench.core.secrets import mask_credentials

    jobs = [SweepWorkerJob(label=f"worker {i}", options=dataclasses.replace(
        opts, workers=1, worker_index=i, study=study_name, storage=None)) for i in range(opts.workers)]
    os.environ[STORAGE_ENV] = spec.cli_value  # sbatch exports this process's environment to the jobs
    options = {k: v for k, v in vars(opts).items() if k not in ("storage", "worker_index")}
    track = worker.cfg.track
    try:
        launch = submit("sweep", jobs, settings, experiment=track.experiment, tracking_uri=track.uri,
                        parent_run_id=worker.parent.run_id,
                        details={"options": options, "study": study_name,
                                 "storage": mask_credentials(spec.cli_value)})
    except BaseException:
        worker.parent.finish("FAILED")
        raise
    followed = follow(launch, settings, request.wait, console, parent=worker.parent)
    if followed is None:  # detached: the parent run stays RUNNING until the sweep is collected
        return None
    finish_sweep(launch, *followed, console, worker=worker)
    return True


def finish_sweep(launch: Launch, watcher: Watcher, states, console, worker=None) -> None:
    """Check every worker finished (else one line naming each), close the parent run and show the study."""
    try:
        results(watcher, states)
    except BaseException:
        finish_parent(launch, ok=False, tracker=None if worker is None else worker.parent)
        raise
    if worker is not None:
        worker._log_best()
        finish_parent(launch, ok=True, tracker=worker.parent)
        return  # the submitting command prints the study's status
    finish_parent(launch, ok=True)
    _print_study(launch, console)


def _print_study(launch: Launch, console) -> None:
    """The study's trials, when its storage can be opened here (a masked URL needs $ZSLBENCH_OPTUNA_STORAGE)."""
    from zslbench.core.secrets import MASK
    details = launch.details
    storage = details["storage"]
    if MASK in storage:
        storage = os.environ.get(STORAGE_ENV, "")
        if not storage:
            console.print(f"set ${STORAGE_ENV} to the study's storage URL to see its trials "
                          f"(`zslbench sweep --status --study {details['study']}`)", highlight=False)
            return
    opts = SweepOptions(**details["options"])
    study, _ = load_for_status(details["study"], storage, opts)
    print_status(study, console, opts.metric, opts.select_on)


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
    print_status(study, console, identity.get("metric", opts.metric), identity.get("select_on", "test"))


def print_status(study, console, metric: str = "gzsl_h", select_on: str = "val") -> None:
    """A rich table of the study's trials (state, params, objective, test metrics, MLflow run) and the best
    trial — chosen by the objective (validation by default), its test metrics reported beside it, labelled.

    Percentages throughout; parameters by their sweep name with the config key beside it.
    """
    from rich.table import Table

    from zslbench.catalogue import swept_key

    trials = study.get_trials(deepcopy=False)
    names = list(dict.fromkeys(k for t in trials for k in t.params))
    label = objective_label(metric, select_on)
    test_header = "test H" if select_on == "val" else None
    table = Table(title=f"{study.study_name}: {len(trials)} trials")
    columns = ["trial", "state", *(f"{n} ({_key(swept_key, n)})" for n in names), label,
               *([test_header] if test_header else []), "MLflow run", "note"]
    for column in columns:
        table.add_column(column, justify="right" if column not in ("state", "MLflow run", "note") else "left")
    for t in trials:
        retried = t.system_attrs.get("failed_trial")
        note = t.user_attrs.get(SKIPPED_ATTR) or (f"retry of trial {retried}" if retried is not None else "")
        test_h = t.user_attrs.get(TEST_METRICS_ATTR, {}).get("gzsl_h")
        table.add_row(str(t.number), t.state.name, *(_fmt(t.params.get(n)) for n in names), _pct(t.value),
                      *([_pct(test_h)] if test_header else []), str(t.user_attrs.get(RUN_ATTR, "")), note)
    console.print(table)
    parent = study.user_attrs.get(PARENT_ATTR)
    try:
        best = study.best_trial
    except ValueError:
        console.print("no complete trial yet" + (f"; MLflow parent run {parent}" if parent else ""))
        return
    values = ", ".join(f"{k} = {_fmt(v)} ({_key(swept_key, k)})" for k, v in best.params.items())
    console.print(f"best trial by {label}: {best.number} ({values}) — {label} {_pct(best.value)}; "
                  f"{test_line(best.user_attrs.get(TEST_METRICS_ATTR, {}), select_on)}"
                  + (f"; MLflow parent run {parent}" if parent else ""), highlight=False)
    if select_on == "test":
        console.print("† chosen on the test set (--select-on test): its test metrics are optimistic", highlight=False)


def _key(swept_key, name: str) -> str:
    try:
        return swept_key(name)
    except UserError:
        return name


def _pct(value: Any) -> str:
    return "–" if value is None else f"{100 * float(value):.1f}"


def _fmt(value: Any) -> str:
    if value is None:
        return "–"
    if isinstance(value, float):
        return f"{value:.4g}"
    return str(value)


__all__ = ["SweepWorkerJob", "finish_sweep", "launch_workers", "load_for_status", "print_status", "run_sweep",
           "show_status", "validate_options"]
