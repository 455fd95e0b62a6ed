"""A launch: the jobs one command put on the cluster, submitted as one SLURM job array, and its record.

Each launch has a folder ``<folder>/<launch id>/`` (``folder`` = ``slurm`` unless the settings say
otherwise) holding submitit's job files and logs and ``launch.json``, the record that ``zslbench jobs`` reads:
what was launched (kind, command line, task labels), the SLURM job ids, the MLflow experiment and parent run,
and what the command needs to report the results once the jobs are done (``details``).

>>> new_launch_id("ablate", now=0.0)[:22]
'19700101-000000-ablate'
"""

from __future__ import annotations

import json
import os
import sys
import time
import uuid
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Optional, Sequence

from zslbench.core.errors import UserError
from zslbench.launch.jobs import ClusterJob
from zslbench.launch.settings import SlurmSettings

RECORD = "launch.json"
KINDS = ("run", "ablate", "sweep")


@dataclass
class Launch:
    """The record of one launch (``launch.json``)."""

    id: str
    kind: str
    folder: str
    created: float
    command: str
    labels: list[str]
    job_ids: list[str] = field(default_factory=list)
    resources: str = ""
    experiment: str = ""
    tracking_uri: str = ""
    parent_run_id: Optional[str] = None
    details: dict[str, Any] = field(default_factory=dict)
    collected: bool = False

    @property
    def path(self) -> Path:
        return Path(self.folder)

    def save(self) -> None:
        from zslbench.core.files import atomic_write

        atomic_write(self.path / RECORD, json.dumps(asdict(self), indent=2) + "\n")

    def handles(self) -> list[Any]:
        """submitit's handle of every task, in task order (logs, result files)."""
        from submitit import SlurmJob

        return [SlurmJob(folder=self.path, job_id=job_id) for job_id in self.job_ids]

    def array_ids(self) -> list[str]:
        return sorted({job_id.split("_")[0] for job_id in self.job_ids})


def new_launch_id(kind: str, now: float | None = None) -> str:
    stamp = time.strftime("%Y%m%d-%H%M%S", time.gmtime(time.time() if now is None else now))
    return f"{stamp}-{kind}-{uuid.uuid4().hex[:6]}"


def submit(kind: str, jobs: Sequence[ClusterJob], settings: SlurmSettings, *, experiment: str = "",
           tracking_uri: str = "", parent_run_id: Optional[str] = None,
           details: dict[str, Any] | None = None) -> Launch:
    """Submit ``jobs`` as one job array (one task each) and save the launch's record.

    Call :func:`zslbench.launch.cluster.check_submission` first (before anything is tracked): a refusal
    here, after the check passed, is still one line with SLURM's reason.
    """
    import submitit
    from submitit.core.utils import FailedJobError

    from zslbench.core.secrets import mask_credentials
    from zslbench.launch.cluster import refusal_reason
    from zslbench.tracking import resolve_tracking_uri

    launch_id = new_launch_id(kind)
    folder = (Path(settings.folder) / launch_id).absolute()
    for index, job in enumerate(jobs):
        job.launch_id, job.index = launch_id, index
        job.time_minutes, job.signal_seconds = settings.time_minutes, settings.signal_seconds
        job.move_secrets(os.environ)  # the jobs inherit this process's environment (sbatch --export=ALL)
    folder.mkdir(parents=True, exist_ok=True)
    folder.chmod(0o700)  # job files hold configs, logs may hold data paths: the user's alone
    executor = submitit.SlurmExecutor(folder=folder, max_num_timeout=0)
    executor.update_parameters(time=settings.time_minutes, job_name=f"zslbench-{kind}",
                               signal_delay_s=settings.signal_seconds,
                               additional_parameters={**settings.sbatch_options(), "chdir": os.getcwd()})
    try:
        with executor.batch():
            handles = [executor.submit(job) for job in jobs]
    except FailedJobError as exc:
        raise UserError(f"SLURM refused the job array: {refusal_reason(str(exc))}") from None
    launch = Launch(id=launch_id, kind=kind, folder=str(folder), created=time.time(),
                    command=mask_credentials(" ".join(["zslbench", *sys.argv[1:]])),
                    labels=[job.label for job in jobs], job_ids=[str(h.job_id) for h in handles],
                    resources=settings.describe(), experiment=experiment,
                    tracking_uri=mask_credentials(resolve_tracking_uri(tracking_uri)), parent_run_id=parent_run_id,
                    details=details or {})
    launch.save()
    return launch


# --------------------------------------------------------------------------- finding launches
def launch_folder(folder: Optional[str] = None) -> Path:
    """Where launches are kept: ``folder``, else the ``folder`` setting (environment, site file), else ``slurm``."""
    from zslbench.launch.settings import resolve_settings

    return Path(folder or resolve_settings().folder)


def list_launches(root: Path) -> list[Launch]:
    """Every launch under ``root``, newest first (unreadable records are skipped)."""
    found = []
    for record in root.glob(f"*/{RECORD}") if root.is_dir() else []:
        try:
            found.append(load_launch(record.parent))
        except UserError:
            continue
    return sorted(found, key=lambda launch: launch.created, reverse=True)


def load_launch(path: Path) -> Launch:
    try:
        data = json.loads((path / RECORD).read_text(encoding="utf-8"))
        return Launch(**data)
    except (OSError, ValueError, TypeError) as exc:
        raise UserError(f"{path / RECORD} cannot be read ({exc.__class__.__name__}); it is not a zslbench "
                        "launch") from None


def find_launch(root: Path, wanted: str) -> Launch:
    """A launch by id, unique id prefix or SLURM job id, or ``last``."""
    launches = list_launches(root)
    if not launches:
        raise UserError(f"no launches under {root}/; start one with `zslbench run --launcher slurm` (or pass "
                        "--folder)")
    if wanted == "last":
        return launches[0]
    matches = [launch for launch in launches if launch.id == wanted or launch.id.startswith(wanted)
               or any(job_id == wanted or job_id.split("_")[0] == wanted for job_id in launch.job_ids)]
    if len(matches) != 1:
        known = ", ".join(launch.id for launch in launches[:5])
        what = "no launch" if not matches else "several launches"
        raise UserError(f"{what} matching {wanted!r} under {root}/; recent launches: {known}")
    return matches[0]


__all__ = ["KINDS", "Launch", "RECORD", "find_launch", "launch_folder", "list_launches", "load_launch",
           "new_launch_id", "submit"]
