"""``run``, ``ablate``, ``sweep`` and the listings of models, ablations and search spaces."""

from __future__ import annotations

from pathlib import Path
from typing import List, Optional

import typer

from zslbench.cli.app import DataRootOpt, DatasetOpt, _console, app
from zslbench.cli.jobs import (AccountOpt, CpusOpt, GpusOpt, LauncherOpt, MemOpt, PartitionOpt, QosOpt, SlurmArgOpt,
                               TimeOpt, WaitOpt, launch_request)
from zslbench.core.errors import UserError


@app.command("run")
def run(
    model: str = typer.Option("svip", "--model", "-m", help="svip | vit | transzero | apn"),
    dataset: str = DatasetOpt,
    data_root: Optional[Path] = DataRootOpt,
    ablate: List[str] = typer.Option([], "--ablate", "-a", help="An ablation (repeatable; `zslbench ablations` lists them)."),
    seed: List[int] = typer.Option([], "--seed", help="Seed (repeatable: seeds run one after another and aggregate)."),
    preset: Optional[str] = typer.Option(None, "--preset", help="paper | paper-zsl | quick | tiny"),
    set_: List[str] = typer.Option([], "--set", help="Config override key=value (repeatable), e.g. --set train.lr=1e-4"),
    epochs: Optional[int] = typer.Option(None, "--epochs", help="Shortcut for --set train.epochs=N."),
    device: Optional[str] = typer.Option(None, "--device", help="auto | cpu | cuda | cuda:N"),
    experiment: Optional[str] = typer.Option(None, "--experiment", help="MLflow experiment name [default: zslbench]"),
    tracking_uri: Optional[str] = typer.Option(None, "--tracking-uri", help="MLflow tracking URI [default: $MLFLOW_TRACKING_URI or sqlite:///mlflow.db]"),
    resume: Optional[str] = typer.Option(None, "--resume", help="Continue an interrupted run: RUN_ID or `last` "
                                                               "(with --device: on another device; its precision stays)."),
    json_file: Optional[Path] = typer.Option(None, "--json", help="Write the final metrics as JSON to this file, as "
                                             "fractions in [0, 1] ('-' = stdout: only the JSON; the human output, "
                                             "in percentages, then goes to stderr)."),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="No per-epoch lines or progress bar (the results "
                               "table and errors still show)."),
    config_file: Optional[Path] = typer.Option(None, "--config", help="Re-run a saved resolved.yaml (then --set applies on top)."),
    dry_run: bool = typer.Option(False, "--dry-run", help="Print the resolved config and its resolution order; train nothing."),
    nproc: int = typer.Option(0, "--nproc", help="Train with DistributedDataParallel over N processes (torchrun; "
                                                  "gloo on CPU, one GPU each on CUDA). train.batch_size stays the global batch."),
    launcher: str = LauncherOpt,
    partition: Optional[str] = PartitionOpt,
    gpus_per_job: Optional[int] = GpusOpt,
    cpus_per_job: Optional[int] = CpusOpt,
    mem: Optional[str] = MemOpt,
    time: Optional[str] = TimeOpt,
    account: Optional[str] = AccountOpt,
    qos: Optional[str] = QosOpt,
    slurm_arg: List[str] = SlurmArgOpt,
    wait: bool = WaitOpt,
) -> None:
    """Train and evaluate a model; print T1, U, S, H, AUSUC (in %), γ and the MLflow run id.

    While it trains: one line per epoch (losses, metrics when evaluated, img/s, elapsed, ETA) — plain lines in
    a log file or batch job, above a live progress bar on a terminal.

    Examples:

      zslbench run                                  # SVIP on the synthetic benchmark (CPU, minutes)

      zslbench run --ablate no_replacement --seed 0 --seed 1

      zslbench run --model vit --preset tiny --json -

      zslbench run --dataset CUB --data-root ~/zsl --device cuda

      zslbench run --resume last

      zslbench run --nproc 2 --preset tiny          # DDP over 2 processes

      zslbench run --dataset CUB --seed 0 --seed 1 --seed 2 --launcher slurm --partition gpu   # a job per seed
    """
    from zslbench.commands import build_run_config, execute_run, launch_distributed, launch_run

    request = launch_request(launcher, partition, account, qos, gpus_per_job, cpus_per_job, mem, time, slurm_arg,
                             wait)
    cfg = build_run_config(model, dataset, data_root, ablate, seed, preset, set_, epochs, device, experiment,
                           tracking_uri, config_file)
    if request.on_slurm and not dry_run:
        if nproc or resume is not None:
            raise UserError("--launcher slurm runs new seeds (a requeued job resumes its own run); drop "
                            f"{'--nproc' if nproc else '--resume'}")
        launch_run(cfg, seed, json_file, request, _console(stderr=str(json_file) == "-"))
        return
    if nproc and not dry_run:
        code = launch_distributed(cfg, nproc, seed, resume, json_file, device)
        if code:
            raise typer.Exit(code)
        return
    execute_run(cfg, seed, resume, json_file, dry_run, _console(stderr=str(json_file) == "-"), device, quiet=quiet)
    if request.on_slurm:  # --dry-run: what each job would ask SLURM for
        from zslbench.launch import resolve_settings

        _console().print(f"SLURM, one job per seed: {resolve_settings(cfg, request.options).describe()}",
                         highlight=False, markup=False)


@app.command("models")
def models_cmd() -> None:
    """List the registered models."""
    from rich.table import Table

    from zslbench.catalogue import MODELS

    table = Table("model", "description")
    for entry in MODELS.entries():
        table.add_row(entry.name, entry.help)
    _console().print(table)


@app.command("ablations")
def ablations_cmd() -> None:
    """List the registered ablations ("paper" marks a row of the paper's ablation table)."""
    from rich.table import Table

    from zslbench.ablations import describe

    table = Table("ablation", "models", "what it changes")
    from rich.markup import escape

    for name, models, text in describe():
        table.add_row(name, escape(models), escape(text))
    _console().print(table)


# --------------------------------------------------------------------------- ablate / sweep
@app.command("ablate")
def ablate(
    model: str = typer.Option("svip", "--model", "-m", help="The full model whose components are ablated."),
    dataset: str = DatasetOpt,
    data_root: Optional[Path] = DataRootOpt,
    only: Optional[str] = typer.Option(None, "--only", help="Comma-separated ablation rows (e.g. no_js,no_word_init); the full model always runs."),
    seed: List[int] = typer.Option([], "--seed", help="Seed (repeatable; default 0)."),
    preset: Optional[str] = typer.Option(None, "--preset", help="paper | paper-zsl | quick | tiny"),
    set_: List[str] = typer.Option([], "--set", help="Config override key=value (repeatable), applied to every cell."),
    experiment: Optional[str] = typer.Option(None, "--experiment", help="MLflow experiment name [default: zslbench]"),
    tracking_uri: Optional[str] = typer.Option(None, "--tracking-uri", help="MLflow tracking URI [default: $MLFLOW_TRACKING_URI or sqlite:///mlflow.db]"),
    launcher: str = LauncherOpt,
    partition: Optional[str] = PartitionOpt,
    gpus_per_job: Optional[int] = GpusOpt,
    cpus_per_job: Optional[int] = CpusOpt,
    mem: Optional[str] = MemOpt,
    time: Optional[str] = TimeOpt,
    account: Optional[str] = AccountOpt,
    qos: Optional[str] = QosOpt,
    slurm_arg: List[str] = SlurmArgOpt,
    wait: bool = WaitOpt,
) -> None:
    """Run the paper's ablation table: baseline, each single ablation, full model — over seeds, one MLflow parent run.

    Cells already finished (same resolved config and seed) are reused, so re-running continues the grid.

    Examples:

      zslbench ablate --dataset CUB --data-root ~/zsl --seed 0 --seed 1 --seed 2

      zslbench ablate --preset tiny --only no_js,no_replacement

      zslbench ablate --dataset CUB --seed 0 --seed 1 --launcher slurm --no-wait   # the cells as a job array
    """
    from zslbench.ablations.grid import AblateOptions, run_ablation_grid

    request = launch_request(launcher, partition, account, qos, gpus_per_job, cpus_per_job, mem, time, slurm_arg,
                             wait)
    names = [n.strip() for n in (only or "").split(",") if n.strip()]
    opts = AblateOptions(model=model, dataset=dataset, only=names, seeds=list(seed), preset=preset,
                         overrides=list(set_), experiment=experiment, tracking_uri=tracking_uri, data_root=data_root)
    if request.on_slurm:
        from zslbench.ablations.on_slurm import launch_grid

        launch_grid(opts, request, _console())
        return
    run_ablation_grid(opts, _console())


@app.command("sweep")
def sweep(
    params: List[str] = typer.Argument(None, help="Search space(s): patch_number, js_weight, patch_cls_weight, temperature, all."),
    trials: Optional[int] = typer.Option(None, "--trials", "-n", help="Total finished (complete + pruned) trials of the study (default 20; with --grid, the grid size)."),
    grid: bool = typer.Option(False, "--grid", help="Run the paper-style grid of the spaces instead of TPE."),
    study: Optional[str] = typer.Option(None, "--study", help="Study name [default: <model>-<dataset>-<params>[-grid][-<preset>]]."),
    storage: Optional[str] = typer.Option(None, "--storage", envvar="ZSLBENCH_OPTUNA_STORAGE", show_envvar=True, help="sqlite:///optuna.db (default) | journal:FILE (default with --workers) | postgresql+psycopg://USER:PASS@HOST/DB"),
    workers: int = typer.Option(1, "--workers", "-w", help="Worker processes on this machine (journal storage unless --storage)."),
    pruner: str = typer.Option("median", "--pruner", help="median | hyperband | none (on the per-epoch metric)."),
    metric: str = typer.Option("gzsl_h", "--metric", help="gzsl_h | zsl_t1 | ausuc (maximised)."),
    select_on: str = typer.Option("val", "--select-on", help="val: the objective and the pruner read the validation "
                                  "protocol (trained on train_loc, scored on val_loc's classes and held-out seen "
                                  "images; no test image), each trial's test metrics reported beside it; test: "
                                  "select on the test set (the choice is test-selected, marked †)."),
    model: str = typer.Option("svip", "--model", "-m", help="svip | vit"),
    dataset: str = DatasetOpt,
    data_root: Optional[Path] = DataRootOpt,
    preset: Optional[str] = typer.Option(None, "--preset", help="paper | paper-zsl | quick | tiny"),
    set_: List[str] = typer.Option([], "--set", help="Config override key=value (repeatable), applied to every trial."),
    seed: int = typer.Option(0, "--seed", help="Training seed of every trial and seed of the TPE sampler."),
    experiment: Optional[str] = typer.Option(None, "--experiment", help="MLflow experiment name [default: zslbench]"),
    tracking_uri: Optional[str] = typer.Option(None, "--tracking-uri", help="MLflow tracking URI [default: $MLFLOW_TRACKING_URI or sqlite:///mlflow.db]"),
    status: bool = typer.Option(False, "--status", help="Show the study's trials (state, params, value, MLflow run) and the best value; run nothing."),
    heartbeat: int = typer.Option(60, "--heartbeat", help="Seconds between worker heartbeats; a trial silent for twice this is failed and retried."),
    max_retry: int = typer.Option(2, "--max-retry", help="Retries of a trial whose worker died."),
    worker_index: Optional[int] = typer.Option(None, "--worker-index", hidden=True),
    launcher: str = LauncherOpt,
    partition: Optional[str] = PartitionOpt,
    gpus_per_job: Optional[int] = GpusOpt,
    cpus_per_job: Optional[int] = CpusOpt,
    mem: Optional[str] = MemOpt,
    time: Optional[str] = TimeOpt,
    account: Optional[str] = AccountOpt,
    qos: Optional[str] = QosOpt,
    slurm_arg: List[str] = SlurmArgOpt,
    wait: bool = WaitOpt,
) -> None:
    """Optuna study of SVIP hyperparameters: one MLflow child run per trial under one parent run.

    Trials are chosen (and pruned) on the validation protocol — trained on train_loc, scored on the val
    classes and held-out seen images, no test image — and each trial's test metrics are reported beside
    it; --select-on test chooses on the test set instead (marked †). Human output in percentages.

    Re-running the same command continues the study until --trials trials are finished; the same
    command on several machines with one --storage postgresql+psycopg://… URL shares the study.

    Examples:

      zslbench sweep temperature --trials 20

      zslbench sweep patch_number --grid --dataset CUB --data-root ~/zsl

      zslbench sweep all --trials 100 --workers 4

      zslbench sweep js_weight --storage postgresql+psycopg://zsl:PASS@db:5432/optuna   # on every machine

      zslbench sweep temperature --status

      zslbench sweep all --trials 100 --workers 8 --launcher slurm   # 8 SLURM jobs on one journal file
    """
    from zslbench.sweeps.options import SweepOptions
    from zslbench.sweeps.study import run_sweep, show_status

    request = launch_request(launcher, partition, account, qos, gpus_per_job, cpus_per_job, mem, time, slurm_arg,
                             wait)
    overrides = ([f"data.root={data_root}"] if data_root is not None else []) + list(set_)
    opts = SweepOptions(spaces=list(params or []), trials=trials, grid=grid, study=study, storage=storage,
                        workers=workers, pruner=pruner, metric=metric, select_on=select_on, model=model,
                        dataset=dataset, preset=preset, overrides=overrides, seed=seed, experiment=experiment,
                        tracking_uri=tracking_uri, heartbeat=heartbeat, max_retry=max_retry, worker_index=worker_index)
    if status:
        show_status(opts, _console())
    else:
        run_sweep(opts, _console(), request)


@app.command("sweeps")
def sweeps_cmd(
    model: str = typer.Option("svip", "--model", "-m", help="Model whose config bounds the spaces."),
    dataset: str = DatasetOpt,
    preset: Optional[str] = typer.Option(None, "--preset", help="paper | quick | tiny (bounds follow the geometry)."),
) -> None:
    """List the search spaces of `zslbench sweep`: config key, TPE range, scale, paper grid and best value."""
    from rich.table import Table

    from zslbench.config import resolve
    from zslbench.sweeps import describe

    table = Table("space", "config key", "range", "scale", "grid (--grid)", "paper best", "what it sweeps",
                  title=f"search spaces for {model} on {dataset}" + (f" (preset {preset})" if preset else ""))
    for row in describe(resolve(model=model, dataset=dataset, preset=preset)):
        table.add_row(row["space"], row["key"], row["range"], row["scale"], row["grid"], row["paper_best"], row["help"])
    _console().print(table)
