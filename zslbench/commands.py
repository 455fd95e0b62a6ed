"""What the commands do between parsing options and the work: requests → configs, and ``zslbench run``.

The command line stays thin (:mod:`zslbench.cli`): each command builds a :class:`~zslbench.config.Request`
(the options shared by ``run``, ``ablate`` and ``sweep``) and hands it here or to the grid or study runner,
which resolve it with the one function :func:`zslbench.config.resolve_request`.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Optional, Sequence

from zslbench.config import Config, Request, resolve_request
from zslbench.config.saving import saved_yaml
from zslbench.core.errors import UserError


def build_run_config(model: str, dataset: str, data_root: Optional[Path], ablate: Sequence[str],
                     seeds: Sequence[int], preset: Optional[str], overrides: Sequence[str], epochs: Optional[int],
                     device: Optional[str], experiment: Optional[str], tracking_uri: Optional[str],
                     config_file: Optional[Path]) -> Config:
    """The resolved config of ``zslbench run``'s options (the first seed; the others replace it)."""
    return resolve_request(Request(
        model=model, dataset=dataset, preset=preset, ablations=tuple(ablate), overrides=tuple(overrides),
        data_root=None if data_root is None else str(data_root), seed=seeds[0] if seeds else None, epochs=epochs,
        device=device, experiment=experiment, tracking_uri=tracking_uri,
        config_file=None if config_file is None else str(config_file)))


def resolution_order(cfg: Config) -> list[str]:
    steps = ["library defaults", f"{cfg.model.name} preset for {cfg.data.dataset}"]
    if cfg.preset:
        steps.append(f"--preset {cfg.preset}")
    steps += [f"--ablate {a}" for a in cfg.ablations]
    steps.append("--set overrides")
    return steps


def execute_run(cfg: Config, seeds: Sequence[int], resume: Optional[str], json_file: Optional[Path],
                dry_run: bool, console, device: Optional[str] = None, quiet: bool = False) -> None:
    if dry_run:
        from zslbench.engine.preflight import describe_fidelity

        console.print(f"[bold]resolution order:[/bold] {' → '.join(resolution_order(cfg))}")
        for name, text in describe_fidelity(cfg).items():
            console.print(f"[bold]{name}:[/bold] {text}", highlight=False)
        console.print(saved_yaml(cfg), markup=False, highlight=False)
        return
    check_json_output(json_file)
    from zslbench.engine import distributed
    from zslbench.engine.runner import run_seeds

    try:
        results = run_seeds(cfg, list(seeds) or [cfg.train.seed], console=console, resume=resume, device=device,
                            quiet=quiet)
        main_rank = distributed.current().main
    finally:
        distributed.shutdown()
    if not main_rank:  # rank 0 reports for the whole job
        return
    report_run(results, json_file, console, tracked=cfg.track.enabled)


def report_run(results, json_file: Optional[Path], console, tracked: bool = True) -> None:
    """What ``run`` shows once its seeds are done (here or as SLURM jobs): the table, ``--json``, the run ids."""
    from zslbench.engine.summary import json_summary, print_results

    print_results(results, console)
    summary = json_summary(results)
    if json_file is not None:
        text = json.dumps(summary, indent=2)
        if str(json_file) == "-":
            sys.stdout.write(text + "\n")
        else:
            from zslbench.core.files import atomic_write

            atomic_write(json_file, text + "\n")
    ids = ", ".join(r.run_id for r in results)
    if tracked:
        console.print(f"MLflow run id: [bold]{ids}[/bold]  (`mlflow ui` in this folder shows it)")


def check_json_output(json_file: Optional[Path]) -> None:
    """``--json FILE`` can be written (checked before the run starts, not when it ends); ``-`` is stdout."""
    if json_file is None or str(json_file) == "-":
        return
    from zslbench.core.files import check_output_file, check_utf8

    check_utf8("--json", str(json_file))
    check_output_file(json_file, "--json")


def _environment_with_credentials(cfg: Config) -> dict[str, str]:
    """The environment of processes that read ``cfg`` back from a saved (masked) file: ``$MLFLOW_TRACKING_URI``
    carries the tracking URI's credentials, which the file does not (zslbench.tracking.store.with_credentials)."""
    import os

    from zslbench.core.secrets import mask_credentials

    environment = dict(os.environ)
    if cfg.track.uri and mask_credentials(cfg.track.uri) != cfg.track.uri:
        environment["MLFLOW_TRACKING_URI"] = cfg.track.uri
    return environment


def launch_distributed(cfg: Config, nproc: int, seeds: Sequence[int], resume: Optional[str],
                       json_file: Optional[Path], device: Optional[str] = None) -> int:
    """``zslbench run --nproc N``: the same run under ``torchrun`` with N processes; returns its exit code.

    The parent resolves and checks the config (so bad options fail here, once), saves it and starts
    ``torchrun --standalone`` (:mod:`zslbench.engine.torchrun`) with ``-m zslbench run --config <saved>``.
    """
    import subprocess
    import tempfile

    if nproc < 1:
        raise UserError(f"--nproc {nproc}: give a number of processes >= 1")
    check_json_output(json_file)
    with tempfile.TemporaryDirectory(prefix="zslbench-launch-") as tmp:
        saved = Path(tmp) / "resolved.yaml"
        saved.write_text(saved_yaml(cfg))  # credentials masked; the processes get them from the environment
        command = [sys.executable, "-m", "zslbench.engine.torchrun", "--standalone", f"--nproc-per-node={nproc}",
                   "-m", "zslbench", "run", "--config", str(saved)]
        command += [arg for s in seeds for arg in ("--seed", str(s))]
        if resume is not None:
            command += ["--resume", resume]
        if device is not None:  # also for a resumed run (whose own saved config names a device)
            command += ["--device", device]
        if json_file is not None:
            command += ["--json", str(json_file)]
        return subprocess.call(command, env=_environment_with_credentials(cfg))


# --------------------------------------------------------------------------- SLURM (--launcher slurm)
def launch_run(cfg: Config, seeds: Sequence[int], json_file: Optional[Path], request, console) -> None:
    """``zslbench run --launcher slurm``: one job per seed (a job array), reported as a local run once done."""
    import copy

    from zslbench.engine.preflight import prepare_run
    from zslbench.launch import RunJob, follow, prepare, results, submit
    from zslbench.launch.start import open_store

    check_json_output(json_file)
    settings = prepare(cfg, request.options, "zslbench-run")
    prepare_run(cfg, console)  # data and weights on the shared filesystem before any job starts
    open_store(cfg)
    jobs = []
    for seed in list(dict.fromkeys(seeds)) or [cfg.train.seed]:
        seeded = copy.deepcopy(cfg)
        seeded.train.seed = seed
        jobs.append(RunJob(label=f"seed {seed}", cfg=seeded))
    launch = submit("run", jobs, settings, experiment=cfg.track.experiment, tracking_uri=cfg.track.uri)
    followed = follow(launch, settings, request.wait, console)
    if followed is not None:
        report_run(results(*followed), json_file, console)


def show_launches(wanted: Optional[str], collect: bool, cancel: bool, json_file: Optional[Path],
                  folder: Optional[str], console) -> None:
    """``zslbench jobs``: list the launches, show one, or cancel and/or collect it."""
    from zslbench.launch import Watcher, find_launch, launch_folder, list_launches, show

    root = launch_folder(folder)
    if wanted is None:
        if collect or cancel or json_file is not None:
            raise UserError("name the launch to collect or cancel, e.g. `zslbench jobs last --collect`")
        _list_launches(list_launches(root), root, console)
        return
    launch = find_launch(root, wanted)
    if json_file is not None and (launch.kind != "run" or not collect):
        raise UserError("--json applies to collecting a `run` launch (zslbench jobs ID --collect --json FILE)")
    check_json_output(json_file)
    if cancel:
        from zslbench.launch.cluster import cancel as scancel

        scancel(launch.job_ids)
        console.print(f"cancelled the jobs of launch {launch.id} ({', '.join(launch.array_ids())})", highlight=False)
    if collect or cancel:
        collect_launch(launch, json_file, console)
    else:
        show(launch, Watcher(launch).poll(), console)


def collect_launch(launch, json_file: Optional[Path], console) -> None:
    """Wait for a launch's jobs and report as the command that submitted them would have; the launch is marked
    collected (its parent run closed, its failures reported) whatever the outcome."""
    from zslbench.launch import follow, resolve_settings, results

    watcher, states = follow(launch, resolve_settings(), True, console)
    try:
        if launch.kind == "ablate":
            from zslbench.ablations.on_slurm import finish_grid

            finish_grid(launch, watcher, states, console)
        elif launch.kind == "sweep":
            from zslbench.sweeps.study import finish_sweep

            finish_sweep(launch, watcher, states, console)
        else:
            report_run(results(watcher, states), json_file, console)
    finally:
        launch.collected = True
        launch.save()


def _list_launches(launches, root: Path, console) -> None:
    from rich.markup import escape
    from rich.table import Table

    from zslbench.launch import Watcher
    from zslbench.launch.watch import counts

    if not launches:
        console.print(f"no launches under {root}/ (`zslbench run --launcher slurm` makes one)", highlight=False)
        return
    table = Table("launch", "kind", "SLURM jobs", "tasks", "collected", "command", title=f"launches under {root}/")
    for launch in launches:
        table.add_row(launch.id, launch.kind, ", ".join(launch.array_ids()), counts(Watcher(launch).poll()),
                      "yes" if launch.collected else "no", escape(launch.command))
    console.print(table)
