"""Scale-out on SLURM clusters: ``run``, ``ablate`` and ``sweep`` with ``--launcher slurm``, built on submitit.

A command's work becomes one SLURM job array — one task per seed (``run``), per grid cell (``ablate``) or per
Optuna worker (``sweep``) — and the command waits for it with progress (or detaches with ``--no-wait``;
``zslbench jobs`` follows and collects a detached launch). Jobs survive preemption and time limits: warned
by SLURM, a job stops, keeps its checkpoint, requeues itself, and its next start resumes the same MLflow run.

Modules, each with one concern (this package sits between the engine and the commands that use it:
``commands``, ``ablations`` and ``sweeps``; only it imports submitit):

* :mod:`~zslbench.launch.settings` — what a job asks for, and where each setting comes from (torch-free);
* :mod:`~zslbench.launch.cluster` — the SLURM commands (``sbatch --test-only``, ``squeue``, ``sacct``, …);
* :mod:`~zslbench.launch.jobs` — what runs inside a job: preemption handling, one training run;
* :mod:`~zslbench.launch.launches` — submitting a job array and the launch's record;
* :mod:`~zslbench.launch.watch` — task states, waiting, results, closing what failed jobs left open;
* :mod:`~zslbench.launch.start` — a command's pre-flight checks, and following or detaching.
"""

from zslbench.launch.jobs import JOB_ID_TAG, TASK_TAG, ClusterJob, JobGaveUp, JobInterrupted, RunJob
from zslbench.launch.launches import Launch, find_launch, launch_folder, list_launches, submit
from zslbench.launch.settings import SlurmOptions, SlurmSettings, resolve_settings
from zslbench.launch.start import LAUNCHERS, LaunchRequest, follow, prepare
from zslbench.launch.watch import TaskState, Watcher, finish_parent, results, show

__all__ = ["JOB_ID_TAG", "LAUNCHERS", "TASK_TAG", "ClusterJob", "JobGaveUp", "JobInterrupted", "Launch",
           "LaunchRequest", "RunJob", "SlurmOptions", "SlurmSettings", "TaskState", "Watcher", "find_launch",
           "finish_parent", "follow", "launch_folder", "list_launches", "prepare", "resolve_settings", "results",
           "show", "submit"]
