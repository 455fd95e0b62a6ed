"""What runs inside a SLURM job: a picklable callable that survives preemption and time limits.

SLURM warns a job ``signal_seconds`` before its time limit (``--signal``; sites that set
``PreemptParameters=send_user_signal`` also send it at preemption). On that warning the job stops at once:
the run is marked KILLED in MLflow, its last epoch checkpoint is kept, and the job requeues itself
(``scontrol requeue``). The requeued job starts from the same job file, finds its run again by the tag
:data:`TASK_TAG` and resumes it under the same MLflow run id: the interrupted epoch is repeated exactly
(every epoch reseeds from the run's seed), so the final metrics equal those of an uninterrupted run.

SIGTERM (``scancel``, or a preemption that SLURM requeues itself) stops the job the same way without a
requeue of its own. A job warned of its time limit that has finished no epoch since it started is not
requeued (it would never finish): it fails with a line saying to raise ``--time``.
"""

from __future__ import annotations

import os
import signal
import sys
import time
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any, Iterator, Optional

#: MLflow tag naming the launch task that owns a run: ``<launch id>/<task index>`` (stable across requeues).
TASK_TAG = "zslbench.slurm_task"
#: MLflow tag with the SLURM job id of the task (for people: ``sacct -j``, the logs).
JOB_ID_TAG = "slurm.job_id"
#: Seconds of slack when deciding whether a warning came with the time limit or with a preemption.
TIME_LIMIT_SLACK = 60


class JobInterrupted(KeyboardInterrupt):
    """SLURM asked this job to stop (its warning signal, or SIGTERM).

    A :class:`KeyboardInterrupt`, so everything that already cleans up after Ctrl-C does so here too: a run
    is marked KILLED and keeps its checkpoint, a sweep's trial is failed."""

    def __init__(self, signal_name: str, requeue: bool) -> None:
        super().__init__(f"stopped by SLURM ({signal_name})")
        self.signal_name, self.requeue = signal_name, requeue


class JobGaveUp(Exception):
    """A job that will not requeue itself, and why (its submitter reports this line)."""


def warning_signal() -> signal.Signals:
    """The signal SLURM sends before the time limit: submitit's (``USR2`` unless ``$SUBMITIT_PREEMPT_SIGNAL``)."""
    import submitit

    return signal.Signals["SIG" + submitit.JobEnvironment.USR_SIG]


@contextmanager
def interruptions() -> Iterator[None]:
    """Turn SLURM's warning signal and SIGTERM into :class:`JobInterrupted` (raised once) inside the block."""
    warning = warning_signal()
    raised = []

    def handler(signum: int, frame: Any) -> None:
        if raised:  # already stopping: let the clean-up finish
            return
        raised.append(signum)
        raise JobInterrupted(signal.Signals(signum).name, requeue=signum == warning)

    previous = {s: signal.signal(s, handler) for s in (warning, signal.SIGTERM)}
    try:
        yield
    finally:
        for s, old in previous.items():
            signal.signal(s, old)


def current_job_id() -> str:
    """This job's id as SLURM's commands take it (``<array id>_<task>`` for an array task)."""
    array, task = os.environ.get("SLURM_ARRAY_JOB_ID"), os.environ.get("SLURM_ARRAY_TASK_ID")
    return f"{array}_{task}" if array and task else os.environ.get("SLURM_JOB_ID", "")


@dataclass
class ClusterJob:
    """Base of every job zslbench submits: ``work()`` runs inside :func:`interruptions`; a warning requeues
    the job when that can help (see the module's docstring). The launcher fills ``launch_id``, ``index``,
    ``time_minutes`` and ``signal_seconds`` before submitting."""

    label: str = ""
    launch_id: str = ""
    index: int = 0
    time_minutes: int = 0
    signal_seconds: int = 0

    #: What the requeued job does (for its log).
    next_start = "its next start continues the work"

    @property
    def task_key(self) -> str:
        return f"{self.launch_id}/{self.index}"

    def work(self) -> Any:  # pragma: no cover - every job defines it
        raise NotImplementedError

    def made_progress(self, since: float) -> bool:
        """Whether this attempt saved anything a requeued attempt starts from (default: assume it did)."""
        return True

    def move_secrets(self, environ: dict) -> None:
        """Move credentials out of this job (its file is kept on disk) into ``environ``, which sbatch exports."""

    def __call__(self) -> Any:
        started = time.time()
        try:
            with interruptions():
                return self.work()
        except JobInterrupted as stop:
            self._stop(stop, started)

    def _stop(self, stop: JobInterrupted, started: float) -> None:
        job_id = current_job_id()
        if not stop.requeue:
            _say(f"{stop}: ending without a requeue of its own (cancelled, or requeued by SLURM)")
            raise SystemExit(1)
        elapsed = time.time() - started
        at_time_limit = bool(self.time_minutes) and \
            elapsed >= self.time_minutes * 60 - self.signal_seconds - TIME_LIMIT_SLACK
        if at_time_limit and not self.made_progress(started):
            raise JobGaveUp(f"reached its time limit ({self.time_minutes} min) without finishing an epoch since it "
                            "started; not requeued: raise --time") from None
        from zslbench.launch.cluster import requeue

        if not requeue(job_id):
            raise JobGaveUp(f"{stop} and `scontrol requeue {job_id}` failed; re-run the command to continue "
                            "(finished work is kept)") from None
        why = "time limit near" if at_time_limit else "preempted"
        _say(f"{stop} ({why}): requeued job {job_id}; {self.next_start}")
        raise SystemExit(0)


def _say(text: str) -> None:
    sys.stderr.write(f"zslbench: {text}\n")
    sys.stderr.flush()


@dataclass
class RunJob(ClusterJob):
    """One training run (a seed of ``run``, a cell of ``ablate``): ``cfg`` holds its seed; the run is a child
    of ``parent_run_id`` when given and carries ``tags``. Returns the engine's ``RunResult``."""

    cfg: Any = None
    parent_run_id: Optional[str] = None
    tags: dict[str, str] = field(default_factory=dict)
    next_start = "its next start resumes the run from its last epoch checkpoint"

    def work(self) -> Any:
        import json

        from zslbench.engine.runner import FINAL, RESOLVED, RunResult, run_seeds

        tags = {**self.tags, TASK_TAG: self.task_key, JOB_ID_TAG: current_job_id()}
        found = self._own_run()
        if found is not None:
            run_id, status = found
            folder = self._folder(run_id)
            if status == "FINISHED" and (folder / FINAL).exists():  # warned after it finished: nothing to redo
                return RunResult(run_id, folder, json.loads((folder / FINAL).read_text()), [])
            if (folder / RESOLVED).exists():
                _say(f"resuming MLflow run {run_id} ({status}) from {folder}")
                return run_seeds(self.cfg, [], resume=run_id, parent_run_id=self.parent_run_id, tags=tags)[0]
        return run_seeds(self.cfg, [self.cfg.train.seed], parent_run_id=self.parent_run_id, tags=tags)[0]

    def move_secrets(self, environ: dict) -> None:
        """A tracking URI with credentials travels as ``$MLFLOW_TRACKING_URI``; the job's config names none."""
        from zslbench.core.secrets import mask_credentials

        uri = self.cfg.track.uri
        if uri and mask_credentials(uri) != uri:
            environ["MLFLOW_TRACKING_URI"] = uri
            self.cfg.track.uri = ""  # "" = $MLFLOW_TRACKING_URI

    def made_progress(self, since: float) -> bool:
        from zslbench.engine.trainer import CHECKPOINT

        found = self._own_run()
        checkpoint = self._folder(found[0]) / CHECKPOINT if found else None
        return checkpoint is not None and checkpoint.exists() and checkpoint.stat().st_mtime >= since

    def _own_run(self) -> tuple[str, str] | None:
        """(run id, status) of the newest run this task started, if any."""
        from zslbench.tracking import find_runs

        runs = find_runs(self.cfg.track.experiment, f"tags.`{TASK_TAG}` = '{self.task_key}'",
                         tracking_uri=self.cfg.track.uri, max_results=1)
        return (runs[0].info.run_id, runs[0].info.status) if runs else None

    def _folder(self, run_id: str):
        from pathlib import Path

        return Path(self.cfg.track.output_dir) / run_id


__all__ = ["ClusterJob", "JOB_ID_TAG", "JobGaveUp", "JobInterrupted", "RunJob", "TASK_TAG", "current_job_id",
           "interruptions", "warning_signal"]
