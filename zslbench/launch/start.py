"""Starting a launch from a command: the pre-flight checks, and following the jobs (or detaching).

Everything that can be refused is refused before anything is tracked or submitted: SLURM's commands on
PATH, tracking on (a requeued job finds its run through MLflow), the settings valid, SLURM's own verdict on
the job (``sbatch --test-only``: an unknown partition, account or QOS, more GPUs than a node has, a time over
the partition's limit…), and the store reachable, each as one line with exit code 2. A new sqlite store is
created by the submitting command (:func:`open_store`, after the data checks), not by several jobs at once.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Optional

from zslbench.core.errors import UserError, unknown_name
from zslbench.launch.cluster import check_submission, require_slurm
from zslbench.launch.launches import Launch
from zslbench.launch.settings import SlurmOptions, SlurmSettings, resolve_settings

if TYPE_CHECKING:  # pragma: no cover - typing only
    from zslbench.config import Config
    from zslbench.launch.watch import TaskState, Watcher

LAUNCHERS = ("local", "slurm")


@dataclass
class LaunchRequest:
    """How a command's work is run: ``local`` (this machine, today's behaviour) or ``slurm`` (a job array),
    with the SLURM options of the command line and whether to wait for the jobs."""

    launcher: str = "local"
    options: SlurmOptions = field(default_factory=SlurmOptions)
    wait: bool = True

    @property
    def on_slurm(self) -> bool:
        """Whether the work goes to SLURM; an unknown launcher name is a one-line error.

        >>> LaunchRequest("slurm").on_slurm, LaunchRequest().on_slurm
        (True, False)
        """
        if self.launcher not in LAUNCHERS:
            raise unknown_name("launcher", self.launcher, LAUNCHERS)
        return self.launcher == "slurm"


def prepare(cfg: "Config", options: SlurmOptions, job_name: str) -> SlurmSettings:
    """The pre-flight checks of a launch (see the module's docstring); returns the resolved settings."""
    require_slurm()
    if not cfg.track.enabled:
        raise UserError("--launcher slurm needs MLflow tracking (a requeued job finds its run again through it); "
                        "drop --set track.enabled=false")
    settings = resolve_settings(cfg, options)
    if settings.gpus_per_job > 1:
        raise UserError(f"--gpus-per-job {settings.gpus_per_job}: a job trains one run on one GPU (DDP across a "
                        "job's GPUs is not supported); use one GPU per job and more jobs (seeds, cells, workers)")
    check_submission(settings.sbatch_options(), settings.time_minutes, job_name)
    from zslbench.tracking import check_reachable, resolve_tracking_uri

    check_reachable(resolve_tracking_uri(cfg.track.uri))
    return settings


def open_store(cfg: "Config") -> None:
    """Create a new sqlite store here, once, before jobs that would all create it at once (call it after the
    data checks: a run that fails them leaves no store behind)."""
    from zslbench.tracking import experiment_names, resolve_tracking_uri, store_lock

    uri = resolve_tracking_uri(cfg.track.uri)
    with store_lock(uri):
        experiment_names(uri)


def announce(launch: Launch, console) -> None:
    arrays = ", ".join(launch.array_ids())
    console.print(f"submitted {len(launch.job_ids)} SLURM job{'s' if len(launch.job_ids) != 1 else ''} "
                  f"(array {arrays}; {launch.resources}) as launch [bold]{launch.id}[/bold]; logs in "
                  f"{launch.folder}", highlight=False)


def follow(launch: Launch, settings: SlurmSettings, wait: bool, console, parent=None
           ) -> Optional[tuple["Watcher", list["TaskState"]]]:
    """Wait for the launch's jobs with progress, or detach (``wait`` false, or Ctrl-C): None when detached.

    ``parent``: the launch's MLflow parent run as this process holds it; when detaching it is handed over
    (left RUNNING, not ended with this process) to whoever collects the launch."""
    from zslbench.launch.watch import wait as wait_for

    announce(launch, console)
    if not wait:
        hand_over(parent)
        console.print(detach_hint(launch), highlight=False)
        return None
    try:
        return wait_for(launch, console, settings.poll_seconds)
    except KeyboardInterrupt:
        hand_over(parent)
        console.print(f"\n{detach_hint(launch)}", highlight=False)
        raise


def hand_over(parent) -> None:
    """Send what ``parent`` buffered and stop counting it among this process's open runs, which are ended
    KILLED at exit: a detached launch's parent run stays RUNNING until ``zslbench jobs ID --collect``."""
    if parent is None or parent.run_id is None:
        return
    from zslbench.tracking.online import forget_open_tracker

    parent.flush()
    forget_open_tracker(parent)


def detach_hint(launch: Launch) -> str:
    return (f"the jobs run on without this command: `zslbench jobs {launch.id}` shows them, "
            f"`zslbench jobs {launch.id} --collect` waits and reports the results")


__all__ = ["LAUNCHERS", "LaunchRequest", "announce", "detach_hint", "follow", "hand_over", "open_store", "prepare"]
