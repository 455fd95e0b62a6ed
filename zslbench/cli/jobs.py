"""``zslbench jobs`` and the launcher options that ``run``, ``ablate`` and ``sweep`` share."""

from __future__ import annotations

from pathlib import Path
from typing import List, Optional

import typer

from zslbench.cli.app import _console, app
from zslbench.core.errors import UserError

LauncherOpt = typer.Option("local", "--launcher", help="local (this machine) | slurm (one SLURM job per seed, "
                                                       "grid cell or sweep worker, as a job array)")
PartitionOpt = typer.Option(None, "--partition", help="SLURM partition (default: site file, "
                                                      "$ZSLBENCH_SLURM_PARTITION, else the cluster's default)")
AccountOpt = typer.Option(None, "--account", help="SLURM account to charge (default: site file, "
                                                  "$ZSLBENCH_SLURM_ACCOUNT, else sbatch's default)")
QosOpt = typer.Option(None, "--qos", help="SLURM quality of service (default: the site's)")
GpusOpt = typer.Option(None, "--gpus-per-job", help="GPUs per job (default: 1 on CUB/AWA2/SUN, 0 on synth "
                                                    "or with --device cpu)")
CpusOpt = typer.Option(None, "--cpus-per-job", help="CPUs per job (default: 8 with a GPU, else 4)")
MemOpt = typer.Option(None, "--mem", help="Memory per job, e.g. 32G (default: 32G with a GPU, else 8G)")
TimeOpt = typer.Option(None, "--time", help="Time limit per job: minutes or H:MM:SS or D-HH:MM "
                                            "(default: 1-00:00 with a GPU, else 2:00:00); a job warned of its end "
                                            "requeues itself and resumes")
SlurmArgOpt = typer.Option([], "--slurm-arg", help="Any other sbatch option as key=value, e.g. constraint=a100 "
                                                   "(repeatable)")
WaitOpt = typer.Option(True, "--wait/--no-wait", help="With --launcher slurm: wait for the jobs with progress, or "
                                                      "submit and return (`zslbench jobs` follows them)")


def launch_request(launcher: str, partition: Optional[str], account: Optional[str], qos: Optional[str],
                   gpus: Optional[int], cpus: Optional[int], mem: Optional[str], time: Optional[str],
                   slurm_args: List[str], wait: bool):
    """The command line's launcher options as a :class:`~zslbench.launch.LaunchRequest`."""
    from zslbench.launch import LaunchRequest, SlurmOptions

    request = LaunchRequest(launcher=launcher, wait=wait, options=SlurmOptions(
        partition=partition, account=account, qos=qos, gpus_per_job=gpus, cpus_per_job=cpus, mem=mem, time=time,
        slurm_args=tuple(slurm_args)))
    if not request.on_slurm and (request.options.given() or not wait):
        raise UserError("SLURM options (--partition, --gpus-per-job, …, --no-wait) apply to --launcher slurm; "
                        "add --launcher slurm or drop them")
    return request


@app.command("jobs")
def jobs(
    launch_id: Optional[str] = typer.Argument(None, help="A launch id (or a unique prefix, a SLURM job id, or "
                                                          "`last`); none = list the launches."),
    collect: bool = typer.Option(False, "--collect", help="Wait for the launch's jobs and report their results as "
                                                          "the submitting command would have."),
    cancel: bool = typer.Option(False, "--cancel", help="Cancel the launch's jobs (scancel), then report."),
    json_file: Optional[Path] = typer.Option(None, "--json", help="With --collect, for a `run` launch: write the "
                                                                  "final metrics as JSON ('-' = stdout)."),
    folder: Optional[str] = typer.Option(None, "--folder", help="Where launches are kept (default: "
                                                                "$ZSLBENCH_SLURM_FOLDER, the site file, else ./slurm)"),
) -> None:
    """SLURM launches of `run`, `ablate` and `sweep` (--launcher slurm): list them, show one, collect its results.

    Examples:

      zslbench jobs                          # every launch here: kind, jobs pending/running/done/failed

      zslbench jobs last                     # the newest launch's jobs, their states and logs

      zslbench jobs 20261202-0735 --collect  # wait, then the results table (and close the MLflow parent run)

      zslbench jobs last --cancel
    """
    from zslbench.commands import show_launches

    show_launches(launch_id, collect, cancel, json_file, folder, _console())
