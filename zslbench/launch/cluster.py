"""The SLURM commands the launcher runs itself: is SLURM here, would it take this job, how are the jobs doing.

Job states come from the queue (``squeue``), and from the accounting database (``sacct``) once a job has
left the queue. A cluster without accounting storage (``sacct`` fails) still works: a job that has left the
queue without a result file is then reported as ended without a result, never waited for forever.

>>> parse_queue("12_0|RUNNING|None\\n12_1|PENDING|Priority\\n13|COMPLETED|None\\n")
{'12_0': ('RUNNING', 'None'), '12_1': ('PENDING', 'Priority'), '13': ('COMPLETED', 'None')}
>>> parse_accounting("12_0|CANCELLED by 0|0:15\\n12_0.batch|CANCELLED|0:15\\n12_1|COMPLETED|0:0\\n")
{'12_0': ('CANCELLED', '0:15'), '12_1': ('COMPLETED', '0:0')}
>>> sbatch_flags({"partition": "gpu", "requeue": True})
['--partition=gpu', '--requeue']
"""

from __future__ import annotations

import os
import shutil
import subprocess
from typing import Any, Iterable, Mapping, Sequence

from zslbench.core.errors import UserError

#: States of a job that is still in the queue (it will run, or is running).
ACTIVE = frozenset({"PENDING", "CONFIGURING", "RUNNING", "COMPLETING", "REQUEUED", "REQUEUE_HOLD", "REQUEUE_FED",
                    "RESIZING", "SUSPENDED", "STOPPED", "SIGNALING", "STAGE_OUT", "RESV_DEL_HOLD", "SPECIAL_EXIT"})
COMMAND_TIMEOUT = 60.0


def require_slurm() -> None:
    """SLURM's client commands are on PATH (a login node), else a one-line error."""
    missing = [c for c in ("sbatch", "squeue", "scancel", "scontrol", "srun") if shutil.which(c) is None]
    if missing:
        raise UserError(f"--launcher slurm needs SLURM's commands ({', '.join(missing)} not found on PATH): run "
                        "on the cluster's login node, or use --launcher local")


def sbatch_flags(options: Mapping[str, Any]) -> list[str]:
    """sbatch options as command-line flags (``True`` = a bare flag)."""
    return [f"--{key}" if value is True else f"--{key}={value}" for key, value in options.items()]


def check_submission(options: Mapping[str, Any], time_minutes: int, job_name: str) -> None:
    """Ask SLURM whether it would accept a job with these options (``sbatch --test-only``, nothing is
    submitted); its refusal becomes a one-line error with SLURM's reason."""
    command = ["sbatch", "--test-only", f"--job-name={job_name}", f"--time={time_minutes}",
               *sbatch_flags(options), "--output=/dev/null", "--wrap=true"]
    result = _run(command, check=False)
    if result.returncode != 0:
        raise UserError(f"SLURM refused the job: {refusal_reason(result.stderr or result.stdout)}; check the "
                        "SLURM options (--partition, --account, --qos, --gpus-per-job, --cpus-per-job, --mem, "
                        "--time, --slurm-arg) or the site file")


def refusal_reason(output: str) -> str:
    """sbatch's error lines as one line, without the ``sbatch: error:`` prefixes.

    >>> refusal_reason("sbatch: error: invalid partition specified: nope\\n"
    ...                "sbatch: error: Batch job submission failed: Invalid partition name specified\\n")
    'invalid partition specified: nope (Batch job submission failed: Invalid partition name specified)'
    """
    lines = [line.strip().removeprefix("sbatch:").strip().removeprefix("error:").strip()
             for line in output.splitlines() if line.strip()]
    lines = [line for line in lines if line] or ["sbatch failed without saying why"]
    return lines[0] + (f" ({'; '.join(lines[1:])})" if len(lines) > 1 else "")


def parse_queue(text: str) -> dict[str, tuple[str, str]]:
    """``squeue -o %i|%T|%r`` lines → job id → (state, reason)."""
    found: dict[str, tuple[str, str]] = {}
    for line in text.splitlines():
        parts = line.strip().split("|")
        if len(parts) >= 2 and parts[0]:
            found[parts[0]] = (parts[1].strip(), parts[2].strip() if len(parts) > 2 else "")
    return found


def parse_accounting(text: str) -> dict[str, tuple[str, str]]:
    """``sacct -P -o JobID,State,ExitCode`` lines → job id → (state, exit code); job steps are skipped and
    ``CANCELLED by 0`` reads ``CANCELLED``."""
    found: dict[str, tuple[str, str]] = {}
    for line in text.splitlines():
        parts = line.strip().split("|")
        if len(parts) >= 2 and parts[0] and "." not in parts[0]:
            found[parts[0]] = (parts[1].split()[0] if parts[1].strip() else "UNKNOWN",
                               parts[2].strip() if len(parts) > 2 else "")
    return found


def queue_states(array_ids: Iterable[str]) -> dict[str, tuple[str, str]]:
    """The queue's view (state, reason) of every task of these job arrays still known to slurmctld."""
    ids = sorted(set(array_ids))
    if not ids:
        return {}
    result = _run(["squeue", "--noheader", "--array", "--states=all", "--jobs", ",".join(ids),
                   "--format=%i|%T|%r"], check=False)
    return parse_queue(result.stdout) if result.returncode == 0 else {}


def accounting_states(array_ids: Iterable[str]) -> dict[str, tuple[str, str]] | None:
    """The accounting database's final state of every task of these arrays; None when ``sacct`` cannot answer
    (no accounting storage on this cluster)."""
    ids = sorted(set(array_ids))
    if not ids or shutil.which("sacct") is None:
        return None
    result = _run(["sacct", "--noheader", "--parsable2", "--allocations", "--jobs", ",".join(ids),
                   "--format=JobID,State,ExitCode"], check=False)
    if result.returncode != 0:
        return None
    return parse_accounting(result.stdout)


def cancel(job_ids: Sequence[str]) -> None:
    """Cancel jobs (``scancel``); ids that already ended are ignored."""
    if job_ids:
        _run(["scancel", *job_ids], check=False)


def requeue(job_id: str) -> bool:
    """Put a running job back in the queue (``scontrol requeue``): it starts again from its job file."""
    return _run(["scontrol", "requeue", job_id], check=False).returncode == 0


def _run(command: list[str], check: bool) -> subprocess.CompletedProcess:
    try:
        return subprocess.run(command, capture_output=True, text=True, timeout=COMMAND_TIMEOUT, check=check,
                              env={**os.environ, "SLURM_TIME_FORMAT": "standard"})
    except FileNotFoundError:
        require_slurm()
        raise
    except subprocess.TimeoutExpired:
        raise UserError(f"`{' '.join(command[:2])}` did not answer within {COMMAND_TIMEOUT:.0f} s: is slurmctld "
                        "up? (`scontrol ping`)") from None


__all__ = ["ACTIVE", "accounting_states", "cancel", "check_submission", "parse_accounting", "parse_queue",
           "queue_states", "refusal_reason", "require_slurm", "requeue", "sbatch_flags"]
