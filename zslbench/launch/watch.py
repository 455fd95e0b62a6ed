"""Following a launch: the state of each task, waiting with progress, and its results or one line of failure.

A task is done when its result file exists (submitit writes it when the job's function returns or raises).
A task that left the queue without one — cancelled, failed outside Python, out of memory, timed out —
ended without a result: the launch fails with one line naming each such task, its SLURM state and its log,
and the MLflow runs those tasks left RUNNING are marked KILLED.

>>> counts([TaskState("seed 0", "1_0", "RUNNING"), TaskState("seed 1", "1_1", "DONE")])
'0 pending · 1 running · 1 done · 0 failed'
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

from zslbench.core.errors import JobsFailed
from zslbench.launch.cluster import ACTIVE, accounting_states, queue_states
from zslbench.launch.jobs import TASK_TAG
from zslbench.launch.launches import Launch

#: Polls a task may go unseen (not in the queue, no result, no accounting record) before it counts as gone.
UNSEEN_POLLS = 3


@dataclass
class TaskState:
    label: str
    job_id: str
    state: str  # a SLURM state, DONE (result file written) or GONE (left the queue, nothing says how)
    reason: str = ""
    log: str = ""  # the job's output (stdout); its errors are in the .err file beside it

    @property
    def error_log(self) -> str:
        return self.log[: -len(".out")] + ".err" if self.log.endswith(".out") else self.log

    @property
    def finished(self) -> bool:
        return self.state not in ACTIVE

    @property
    def ok(self) -> bool:
        return self.state == "DONE"

    @property
    def bucket(self) -> str:
        if self.state == "DONE":
            return "done"
        if self.state in ("RUNNING", "COMPLETING", "CONFIGURING", "SIGNALING", "STAGE_OUT"):
            return "running"
        return "pending" if self.state in ACTIVE else "failed"


def counts(states: list[TaskState]) -> str:
    buckets = [s.bucket for s in states]
    return " · ".join(f"{buckets.count(name)} {name}" for name in ("pending", "running", "done", "failed"))


class Watcher:
    """Asks SLURM about a launch's tasks; remembers how long each went unseen."""

    def __init__(self, launch: Launch) -> None:
        self.launch = launch
        self.handles = launch.handles()
        self.unseen = [0] * len(self.handles)
        self.terminal_seen = [0] * len(self.handles)
        self.outcomes: dict[int, tuple[bool, Any]] = {}  # task → (returned, its value or its error's last line)

    def outcome(self, index: int) -> tuple[bool, Any]:
        """(True, value) for a task whose function returned, (False, the error's last line) if it raised."""
        if index not in self.outcomes:
            try:
                self.outcomes[index] = (True, self.handles[index].result())
            except Exception as exc:  # submitit re-raises the job's error with its traceback
                self.outcomes[index] = (False, last_line(str(exc)))
        return self.outcomes[index]

    def poll(self) -> list[TaskState]:
        queue = queue_states(self.launch.array_ids())
        accounting: dict[str, tuple[str, str]] | None = None
        states = []
        for i, (label, handle) in enumerate(zip(self.launch.labels, self.handles)):
            job_id = str(handle.job_id)
            log = str(handle.paths.stdout)
            if handle.paths.result_pickle.exists():
                returned, value = self.outcome(i)
                states.append(TaskState(label, job_id, "DONE", log=log) if returned else
                              TaskState(label, job_id, "FAILED", str(value), log))
                continue
            if job_id in queue and queue[job_id][0] in ACTIVE:
                self.unseen[i] = self.terminal_seen[i] = 0
                states.append(TaskState(label, job_id, queue[job_id][0], queue[job_id][1], log))
                continue
            if accounting is None:
                accounting = accounting_states(self.launch.array_ids()) or {}
            ended = queue.get(job_id) or accounting.get(job_id)
            if ended is not None and ended[0] not in ACTIVE:
                # a result file may still be on its way through a shared filesystem: believe it on the next poll
                self.terminal_seen[i] += 1
                state = ended[0] if self.terminal_seen[i] > 1 else "COMPLETING"
                states.append(TaskState(label, job_id, state, ended[1], log))
                continue
            if ended is not None:  # only the accounting database knows it, and it is still active there
                states.append(TaskState(label, job_id, ended[0], "", log))
                continue
            self.unseen[i] += 1
            gone = self.unseen[i] > UNSEEN_POLLS
            states.append(TaskState(label, job_id, "GONE" if gone else "PENDING",
                                    "not in the queue and no accounting record (sacct unavailable)" if gone else "",
                                    log))
        return states


def wait(launch: Launch, console, poll_seconds: float) -> tuple[Watcher, list[TaskState]]:
    """Wait until every task has finished, printing each task's state changes; the final states."""
    watcher = Watcher(launch)
    shown: dict[str, str] = {}
    status = console.status("waiting for SLURM", spinner="dots")
    with status:
        while True:
            states = watcher.poll()
            for task in states:
                if shown.get(task.job_id) != task.state:
                    shown[task.job_id] = task.state
                    console.print(describe(task), highlight=False, markup=False)
            status.update(f"SLURM {', '.join(launch.array_ids())}: {counts(states)}")
            if all(task.finished for task in states):
                return watcher, states
            time.sleep(poll_seconds)


def describe(task: TaskState) -> str:
    reason = f" ({task.reason})" if task.reason and task.reason not in ("None", "0:0") else ""
    if task.state in ("RUNNING", "DONE"):
        where = f" · log {task.log}"
    else:
        where = f" · log {task.error_log}" if task.finished else ""
    return f"[{task.label}] job {task.job_id} {task.state}{reason}{where}"


def results(watcher: Watcher, states: list[TaskState]) -> list[Any]:
    """The tasks' return values, in task order; any task without one ends the launch with one line
    (:class:`~zslbench.core.errors.JobsFailed`) after its RUNNING MLflow runs are marked KILLED."""
    launch = watcher.launch
    failed = [task for task in states if not task.ok]
    if failed:
        problems = [f"{task.label} (job {task.job_id}) ended {task.state}"
                    + (f": {task.reason}" if task.reason and task.reason != "None" else "") + f" — log {task.error_log}"
                    for task in failed]
        closed = close_task_runs(launch, failed)
        raise JobsFailed(f"{len(failed)} of {len(states)} SLURM jobs of launch {launch.id} did not finish: "
                         + "; ".join(problems) + (f"; {closed} MLflow run(s) they left running marked KILLED"
                                                  if closed else ""))
    return [watcher.outcome(i)[1] for i in range(len(states))]


def last_line(text: str) -> str:
    """The exception line of a job's traceback as submitit reports it (the last unindented line before
    submitit's own trailer).

    >>> last_line("Job (task=0) failed during processing with trace:\\n------\\nTraceback (most recent call "
    ...           "last):\\n  File ...\\nValueError: boom\\n------\\nYou can check full logs with ...")
    'ValueError: boom'
    """
    body = text.split("You can check full logs")[0]
    lines = [line.strip() for line in body.splitlines()
             if line.strip() and not line.startswith((" ", "\t")) and not set(line.strip()) <= {"-"}]
    return lines[-1] if lines else "no error message"


def close_task_runs(launch: Launch, tasks: list[TaskState]) -> int:
    """Mark KILLED the MLflow runs still RUNNING for tasks that ended without a result; how many."""
    if not launch.experiment or not tasks:
        return 0
    from zslbench.tracking import close_run, find_runs

    uri = _tracking_uri(launch)
    closed = 0
    for task in tasks:
        key = f"{launch.id}/{launch.job_ids.index(task.job_id)}"
        for run in find_runs(launch.experiment, f"tags.`{TASK_TAG}` = '{key}' and attributes.status = 'RUNNING'",
                             tracking_uri=uri):
            closed += close_run(run.info.run_id, f"its SLURM job {task.job_id} ended {task.state}; log {task.error_log}",
                                tracking_uri=uri)
    return closed


def finish_parent(launch: Launch, ok: bool, tracker=None, tags: dict[str, str] | None = None) -> None:
    """Close the launch's MLflow parent run with ``tags``: FINISHED when every task finished, else FAILED
    (``tracker``: the parent run as the submitting command holds it; else it is re-opened by id)."""
    if tracker is None:
        if not launch.parent_run_id or not launch.experiment:
            return
        from zslbench.config import TrackConfig
        from zslbench.tracking import open_tracker

        tracker = open_tracker(TrackConfig(uri=_tracking_uri(launch), experiment=launch.experiment),
                               resume_run_id=launch.parent_run_id)
    if tags:
        tracker.set_tags(tags)
    tracker.finish("FINISHED" if ok else "FAILED")


def _tracking_uri(launch: Launch) -> str:
    """The launch's store; a masked URI takes its credentials from ``$MLFLOW_TRACKING_URI``."""
    import os

    from zslbench.core.secrets import MASK

    if MASK in launch.tracking_uri:
        return os.environ.get("MLFLOW_TRACKING_URI", launch.tracking_uri)
    return launch.tracking_uri


def show(launch: Launch, states: list[TaskState], console) -> None:
    """A table of the launch's tasks: label, SLURM job, state, log."""
    from rich.markup import escape
    from rich.table import Table

    table = Table("task", "SLURM job", "state", "log", title=f"{launch.kind} launch {launch.id}",
                  caption=escape(f"{launch.command} · {launch.resources} · {counts(states)}"))
    for task in states:
        state = task.state + (f" ({task.reason})" if task.reason and task.reason != "None" else "")
        table.add_row(escape(task.label), task.job_id, escape(state),
                      escape(task.log if task.ok or not task.finished else task.error_log))
    console.print(table)


__all__ = ["TaskState", "Watcher", "close_task_runs", "counts", "describe", "finish_parent", "last_line",
           "results", "show", "wait"]
