"""The ``zslbench`` command line (Typer).

Thin by design: each command parses its options, builds a config, and calls one function.
Heavy libraries (torch, mlflow, optuna, polars, seaborn) are imported inside commands only,
so ``zslbench --help`` stays fast.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import List, Optional

import typer

from zslbench.core.errors import UserError

app = typer.Typer(
    name="zslbench",
    help="Benchmark and ablation harness for attribute-based zero-shot learning (SVIP and baselines).\n\n"
    "Examples:\n\n"
    "  zslbench run                                  # SVIP on the synthetic benchmark, CPU, minutes\n\n"
    "  zslbench run --dataset CUB --data-root ~/zsl --ablate no_replacement --seed 0 --seed 1\n\n"
    "  zslbench data info --dataset CUB --data-root ~/zsl",
    no_args_is_help=True,
    rich_markup_mode="rich",
    pretty_exceptions_enable=False,
    context_settings={"help_option_names": ["-h", "--help"]},
)
data_app = typer.Typer(help="Datasets: generate, fetch, inspect, verify, embed.", no_args_is_help=True)
app.add_typer(data_app, name="data")

_state = {"debug": False}

DatasetOpt = typer.Option("synth", "--dataset", "-d", help="synth | CUB | AWA2 | SUN")
DataRootOpt = typer.Option(None, "--data-root", help="Directory holding one folder per dataset [default: $ZSLBENCH_DATA or ./data]")
ImageRootOpt = typer.Option(None, "--image-root", help="Where the dataset's images live [default: the dataset folder]")


def _console():
    from rich.console import Console

    return Console()


def _data_root(data_root: Optional[Path]) -> Path:
    from zslbench.config import default_data_root

    return Path(data_root) if data_root is not None else Path(default_data_root())


@app.callback()
def _main(debug: bool = typer.Option(False, "--debug", help="Show full tracebacks for errors.")) -> None:
    _state["debug"] = debug


# --------------------------------------------------------------------------- run
@app.command("run")
def run(
    model: str = typer.Option("svip", "--model", "-m", help="svip | vit | transzero | apn"),
    dataset: str = DatasetOpt,
    data_root: Optional[Path] = DataRootOpt,
    ablate: List[str] = typer.Option([], "--ablate", "-a", help="An ablation (repeatable; `zslbench ablations` lists them)."),
    seed: List[int] = typer.Option([], "--seed", help="Seed (repeatable: seeds run one after another and aggregate)."),
    preset: Optional[str] = typer.Option(None, "--preset", help="paper | quick | tiny"),
    set_: List[str] = typer.Option([], "--set", help="Config override key=value (repeatable), e.g. --set train.lr=1e-4"),
    epochs: Optional[int] = typer.Option(None, "--epochs", help="Shortcut for --set train.epochs=N."),
    device: Optional[str] = typer.Option(None, "--device", help="auto | cpu | cuda | cuda:N"),
    experiment: Optional[str] = typer.Option(None, "--experiment", help="MLflow experiment name [default: zslbench]"),
    tracking_uri: Optional[str] = typer.Option(None, "--tracking-uri", help="MLflow tracking URI [default: $MLFLOW_TRACKING_URI or sqlite:///mlflow.db]"),
    resume: Optional[str] = typer.Option(None, "--resume", help="Continue an interrupted run: RUN_ID or `last`."),
    json_file: Optional[Path] = typer.Option(None, "--json", help="Write the final metrics as JSON to this file ('-' = stdout)."),
    config_file: Optional[Path] = typer.Option(None, "--config", help="Re-run a saved resolved.yaml (then --set applies on top)."),
    dry_run: bool = typer.Option(False, "--dry-run", help="Print the resolved config and its resolution order; train nothing."),
    nproc: int = typer.Option(0, "--nproc", help="Train with DistributedDataParallel over N processes (torchrun; "
                                                  "gloo on CPU, one GPU each on CUDA). train.batch_size stays the global batch."),
) -> None:
    """Train and evaluate a model; print T1, U, S, H, AUSUC, γ and the MLflow run id.

    Examples:

      zslbench run                                  # SVIP on the synthetic benchmark (CPU, minutes)

      zslbench run --ablate no_replacement --seed 0 --seed 1

      zslbench run --model vit --preset tiny --json -

      zslbench run --dataset CUB --data-root ~/zsl --device cuda

      zslbench run --resume last

      zslbench run --nproc 2 --preset tiny          # DDP over 2 processes
    """
    from zslbench.engine.commands import build_run_config, execute_run, launch_distributed

    cfg = build_run_config(model, dataset, data_root, ablate, seed, preset, set_, epochs, device, experiment,
                           tracking_uri, config_file)
    if nproc and not dry_run:
        code = launch_distributed(cfg, nproc, seed, resume, json_file)
        if code:
            raise typer.Exit(code)
        return
    execute_run(cfg, seed, resume, json_file, dry_run, _console())


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
    preset: Optional[str] = typer.Option(None, "--preset", help="paper | quick | tiny"),
    set_: List[str] = typer.Option([], "--set", help="Config override key=value (repeatable), applied to every cell."),
    experiment: Optional[str] = typer.Option(None, "--experiment", help="MLflow experiment name [default: zslbench]"),
    tracking_uri: Optional[str] = typer.Option(None, "--tracking-uri", help="MLflow tracking URI [default: $MLFLOW_TRACKING_URI or sqlite:///mlflow.db]"),
) -> None:
    """Run the paper's ablation table: baseline, each single ablation, full model — over seeds, one MLflow parent run.

    Cells already finished (same resolved config and seed) are reused, so re-running continues the grid.

    Examples:

      zslbench ablate --dataset CUB --data-root ~/zsl --seed 0 --seed 1 --seed 2

      zslbench ablate --preset tiny --only no_js,no_replacement
    """
    from zslbench.ablations.grid import AblateOptions, run_ablation_grid

    names = [n.strip() for n in (only or "").split(",") if n.strip()]
    opts = AblateOptions(model=model, dataset=dataset, only=names, seeds=list(seed), preset=preset,
                         overrides=list(set_), experiment=experiment, tracking_uri=tracking_uri, data_root=data_root)
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
    model: str = typer.Option("svip", "--model", "-m", help="svip | vit"),
    dataset: str = DatasetOpt,
    data_root: Optional[Path] = DataRootOpt,
    preset: Optional[str] = typer.Option(None, "--preset", help="paper | quick | tiny"),
    set_: List[str] = typer.Option([], "--set", help="Config override key=value (repeatable), applied to every trial."),
    seed: int = typer.Option(0, "--seed", help="Training seed of every trial and seed of the TPE sampler."),
    experiment: Optional[str] = typer.Option(None, "--experiment", help="MLflow experiment name [default: zslbench]"),
    tracking_uri: Optional[str] = typer.Option(None, "--tracking-uri", help="MLflow tracking URI [default: $MLFLOW_TRACKING_URI or sqlite:///mlflow.db]"),
    status: bool = typer.Option(False, "--status", help="Show the study's trials (state, params, value, MLflow run) and the best value; run nothing."),
    heartbeat: int = typer.Option(60, "--heartbeat", help="Seconds between worker heartbeats; a trial silent for twice this is failed and retried."),
    max_retry: int = typer.Option(2, "--max-retry", help="Retries of a trial whose worker died."),
    worker_index: Optional[int] = typer.Option(None, "--worker-index", hidden=True),
) -> None:
    """Optuna study of SVIP hyperparameters: one MLflow child run per trial under one parent run.

    Re-running the same command continues the study until --trials trials are finished; the same
    command on several machines with one --storage postgresql+psycopg://… URL shares the study.

    Examples:

      zslbench sweep temperature --trials 20

      zslbench sweep patch_number --grid --dataset CUB --data-root ~/zsl

      zslbench sweep all --trials 100 --workers 4

      zslbench sweep js_weight --storage postgresql+psycopg://zsl:PASS@db:5432/optuna   # on every machine

      zslbench sweep temperature --status
    """
    from zslbench.sweeps.study import SweepOptions, run_sweep, show_status

    overrides = ([f"data.root={data_root}"] if data_root is not None else []) + list(set_)
    opts = SweepOptions(spaces=list(params or []), trials=trials, grid=grid, study=study, storage=storage,
                        workers=workers, pruner=pruner, metric=metric, model=model, dataset=dataset, preset=preset,
                        overrides=overrides, seed=seed, experiment=experiment, tracking_uri=tracking_uri,
                        heartbeat=heartbeat, max_retry=max_retry, worker_index=worker_index)
    if status:
        show_status(opts, _console())
    else:
        run_sweep(opts, _console())


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


# --------------------------------------------------------------------------- data
@data_app.command("info")
def data_info(
    dataset: str = DatasetOpt,
    data_root: Optional[Path] = DataRootOpt,
    image_root: Optional[Path] = ImageRootOpt,
    json_out: bool = typer.Option(False, "--json", help="Print one JSON object instead of tables."),
) -> None:
    """Summarise a dataset directory: classes, splits, attributes, missing images.

    Example: zslbench data info --dataset CUB --data-root ../shared/data --json
    """
    from zslbench.data.inspect import dataset_summary, print_summary

    summary = dataset_summary(dataset, _data_root(data_root), image_root)
    if json_out:
        import json

        typer.echo(json.dumps(summary))
    else:
        print_summary(summary, _console())


@data_app.command("check")
def data_check(
    dataset: str = DatasetOpt,
    data_root: Optional[Path] = DataRootOpt,
    image_root: Optional[Path] = ImageRootOpt,
    decode: bool = typer.Option(True, "--decode/--no-decode", help="Decode every image (slower, catches corrupt files)."),
) -> None:
    """Verify a dataset end to end: split files, counts, every image present and decodable.

    Exit code 1 when a problem is found. Example: zslbench data check --dataset synth
    """
    from zslbench.data.inspect import check_dataset

    report = check_dataset(dataset, _data_root(data_root), image_root, decode=decode, console=_console())
    if not report.ok:
        raise typer.Exit(1)


@data_app.command("synth")
def data_synth(
    preset: str = typer.Option("default", "--preset", "-p", help="tiny | default | paper"),
    seed: int = typer.Option(0, "--seed", help="Generator seed (the same seed gives byte-identical files)."),
    out: Optional[Path] = typer.Option(None, "--out", "--data-root", "-o",
                                       help="Data root; writes <out>/synth (synth-tiny, synth-paper for other presets) "
                                            "[default: $ZSLBENCH_DATA or ./data]"),
    workers: Optional[int] = typer.Option(None, "--workers", "-j", min=1, help="Worker processes [default: one per core, up to 8]."),
    force: bool = typer.Option(False, "--force", help="Regenerate even when a matching complete dataset exists."),
) -> None:
    """Generate the synthetic ZSL benchmark: xlsa17 layout, PNG images and part masks, deterministic per seed.

    An existing dataset with the same preset, seed and generator version is reused unless --force.

    Examples:

      zslbench data synth                              # ./data/synth (the `zslbench run` default)

      zslbench data synth --preset tiny --out /tmp/zsl --seed 3
    """
    from zslbench.data.synth import generate_synth, print_synth_summary

    console = _console()
    result = generate_synth(_data_root(out), preset, seed, workers=workers, force=force, console=console)
    print_synth_summary(result, console)


@data_app.command("fetch")
def data_fetch(
    name: str = typer.Argument(..., help="xlsa17 (split files of CUB, AWA1, AWA2, SUN) | CUB | AWA2 | SUN (images)"),
    data_root: Optional[Path] = DataRootOpt,
    url: Optional[str] = typer.Option(None, "--url", help="Download from here instead (http(s)://, file:// or a local path)."),
    sha256: Optional[str] = typer.Option(None, "--sha256", help="Expected sha256 of the archive (replaces the built-in size/checksum)."),
    force: bool = typer.Option(False, "--force", help="Replace files and folders that already exist."),
    keep_archive: bool = typer.Option(False, "--keep-archive", help="Keep the downloaded archive in <data-root>/.downloads."),
    no_check: bool = typer.Option(False, "--no-check", help="Skip the `data check` of the fetched dataset(s)."),
) -> None:
    """Download an official archive (resumable, verified) and unpack it safely into the data root.

    Existing files are never replaced without --force; a failed fetch changes nothing.

    Afterwards `data check` runs (exit code 1 on problems; missing images after xlsa17 alone are expected).

    Examples:

      zslbench data fetch xlsa17 --data-root ~/zsl      # split files → ~/zsl/CUB, ~/zsl/AWA2, ~/zsl/SUN

      zslbench data fetch CUB --data-root ~/zsl         # images → ~/zsl/CUB/CUB_200_2011/images

      zslbench data fetch AWA2 --data-root ~/zsl --url file:///mnt/usb/AwA2-data.zip
    """
    from zslbench.data.fetch import fetch

    result = fetch(name, _data_root(data_root), url=url, sha256=sha256, force=force, keep_archive=keep_archive,
                   check=not no_check, console=_console())
    if result.check_failed:  # installed, but `data check` found problems (listed above)
        raise typer.Exit(1)


@data_app.command("embed")
def data_embed(
    dataset: str = DatasetOpt,
    data_root: Optional[Path] = DataRootOpt,
    vectors: Path = typer.Option(..., "--vectors", help="word2vec .bin(.gz) (e.g. GoogleNews-vectors-negative300.bin) or GloVe/word2vec text file."),
    out: Optional[Path] = typer.Option(None, "--out", help="Output .npy [default: <data-root>/<dataset>/attribute_w2v.npy]."),
    force: bool = typer.Option(False, "--force", help="Replace an existing output file that differs."),
) -> None:
    """Build the [A, D] attribute word vectors: each cleaned attribute phrase = sum of its word vectors.

    Reads the vector file streaming and keeps only the needed words. Example:

      zslbench data embed --dataset CUB --data-root ~/zsl --vectors GoogleNews-vectors-negative300.bin
    """
    from zslbench.data.embed import build_attribute_vectors

    build_attribute_vectors(dataset, _data_root(data_root), vectors, out=out, force=force, console=_console())


# --------------------------------------------------------------------------- results
table_app = typer.Typer(help="Paper-style tables of an experiment's runs (LaTeX, Markdown, CSV).", no_args_is_help=True)
app.add_typer(table_app, name="table")
plot_app = typer.Typer(help="Plots of an experiment's runs (PNG or PDF by the --out extension).", no_args_is_help=True)
app.add_typer(plot_app, name="plot")

ExperimentOpt = typer.Option("zslbench", "--experiment", "-e", help="MLflow experiment name.")
TrackingUriOpt = typer.Option(None, "--tracking-uri", help="MLflow tracking URI [default: $MLFLOW_TRACKING_URI or sqlite:///mlflow.db]")
FormatOpt = typer.Option("latex", "--format", "-f", help="latex | markdown | csv")
TableOutOpt = typer.Option(None, "--out", "-o", help="Write the table to this file instead of stdout.")
GammaPolicyOpt = typer.Option(None, "--gamma-policy", help="Recompute every run's metrics from its stored test scores "
                              "under this γ policy: none | val | oracle (oracle = chosen on test, marked †).")
ProtocolOpt = typer.Option(None, "--protocol", help="Use only runs of this protocol (metric-code) version.")
ReportedOpt = typer.Option(False, "--reported", help="Add the published numbers as a separate, unranked block.")


def _emit_table(kind: str, experiment: str, fmt: str, out: Optional[Path], tracking_uri: Optional[str],
                gamma_policy: Optional[str], protocol: Optional[str], reported: bool = False,
                param: Optional[str] = None) -> None:
    from zslbench.results.tables import FORMATS, experiment_table, render

    if fmt not in FORMATS:
        from zslbench.core.errors import unknown_name

        raise unknown_name("format", fmt, FORMATS)
    table = experiment_table(kind, experiment, tracking_uri=tracking_uri or "", param=param, reported=reported,
                             gamma_policy=gamma_policy, protocol=protocol)
    text = render(table, fmt)
    if out is None:
        typer.echo(text, nl=False)
    else:
        from zslbench.core.files import atomic_write

        atomic_write(Path(out), text, hint="free disk space or fix the folder's permissions, or choose another --out")
        _console().print(f"wrote {out}")


@table_app.command("main")
def table_main(
    experiment: str = ExperimentOpt,
    fmt: str = FormatOpt,
    reported: bool = ReportedOpt,
    out: Optional[Path] = TableOutOpt,
    gamma_policy: Optional[str] = GammaPolicyOpt,
    protocol: Optional[str] = ProtocolOpt,
    tracking_uri: Optional[str] = TrackingUriOpt,
) -> None:
    """Main results: rows = methods, per dataset T1 | U S H | AUSUC (mean ± std over seeds).

    Examples:

      zslbench table main --format markdown

      zslbench table main --reported --out main.tex

      zslbench table main --gamma-policy oracle --format markdown   # how much does test-set γ inflate H?
    """
    _emit_table("main", experiment, fmt, out, tracking_uri, gamma_policy, protocol, reported=reported)


@table_app.command("ablation")
def table_ablation(
    experiment: str = ExperimentOpt,
    fmt: str = FormatOpt,
    reported: bool = ReportedOpt,
    out: Optional[Path] = TableOutOpt,
    gamma_policy: Optional[str] = GammaPolicyOpt,
    protocol: Optional[str] = ProtocolOpt,
    tracking_uri: Optional[str] = TrackingUriOpt,
) -> None:
    """The paper's ablation rows (baseline, w/o SSPS, w/o PSC, w/o JSD, w/o W2P, full SVIP): T1 and H, Δ vs full SVIP.

    Example: zslbench table ablation --format latex > ablation.tex
    """
    _emit_table("ablation", experiment, fmt, out, tracking_uri, gamma_policy, protocol, reported=reported)


@table_app.command("sensitivity")
def table_sensitivity(
    param: str = typer.Argument(..., help="patch_number | js_weight | patch_cls_weight | temperature"),
    experiment: str = ExperimentOpt,
    fmt: str = FormatOpt,
    out: Optional[Path] = TableOutOpt,
    gamma_policy: Optional[str] = GammaPolicyOpt,
    protocol: Optional[str] = ProtocolOpt,
    tracking_uri: Optional[str] = TrackingUriOpt,
) -> None:
    """Metrics per value of one hyperparameter (rows = values; T1/U/S/H/AUSUC mean ± std).

    Example: zslbench table sensitivity temperature --format markdown
    """
    _emit_table("sensitivity", experiment, fmt, out, tracking_uri, gamma_policy, protocol, param=param)


@plot_app.command("sensitivity")
def plot_sensitivity_cmd(
    param: str = typer.Argument(..., help="patch_number | js_weight | patch_cls_weight | temperature"),
    out: Path = typer.Option(..., "--out", "-o", help="Output file: .png or .pdf"),
    experiment: str = ExperimentOpt,
    tracking_uri: Optional[str] = TrackingUriOpt,
) -> None:
    """Metric vs parameter value, one panel per metric, seeds as an error band.

    Example: zslbench plot sensitivity temperature --out temperature.pdf
    """
    from zslbench.results.plots import plot_sensitivity

    plot_sensitivity(experiment, param, Path(out), tracking_uri=tracking_uri or "")
    _console().print(f"wrote {out}")


@plot_app.command("ausuc")
def plot_ausuc_cmd(
    run: List[str] = typer.Option([], "--run", "-r", help="Run id (repeatable) [default: every finished run of the experiment, up to 8]."),
    out: Path = typer.Option(..., "--out", "-o", help="Output file: .png or .pdf"),
    experiment: str = ExperimentOpt,
    tracking_uri: Optional[str] = TrackingUriOpt,
) -> None:
    """Seen-unseen accuracy curves from stored scores, AUSUC in the legend, the chosen γ marked.

    Example: zslbench plot ausuc --run 1a2b3c --run 4d5e6f --out ausuc.png
    """
    from zslbench.results.plots import plot_ausuc

    plot_ausuc(experiment, list(run), Path(out), tracking_uri=tracking_uri or "")
    _console().print(f"wrote {out}")


@plot_app.command("patches")
def plot_patches_cmd(
    run: str = typer.Option(..., "--run", "-r", help="Run id of an SVIP run."),
    out: Path = typer.Option(..., "--out", "-o", help="Output file: .png or .pdf"),
    count: int = typer.Option(8, "--count", "-n", min=1, max=64, help="Number of test images."),
    data_root: Optional[Path] = typer.Option(None, "--data-root", help="Where the run's dataset lives [default: as in the run's config]"),
    tracking_uri: Optional[str] = TrackingUriOpt,
) -> None:
    """Test images with SVIP's kept super-patches overlaid (synth: the creature mask outlined).

    Example: zslbench plot patches --run 1a2b3c --out patches.png
    """
    from zslbench.results.plots import plot_patches

    plot_patches(run, Path(out), count=count, tracking_uri=tracking_uri or "", data_root=data_root)
    _console().print(f"wrote {out}")


@app.command("report")
def report_cmd(
    experiment: str = ExperimentOpt,
    out: Path = typer.Option(..., "--out", "-o", help="Output directory (report.md, report.html, figures)."),
    reported: bool = typer.Option(True, "--reported/--no-reported", help="Include the published numbers."),
    tracking_uri: Optional[str] = TrackingUriOpt,
) -> None:
    """A self-contained Markdown + HTML report: tables, plots and the provenance of every number.

    Example: zslbench report --experiment zslbench --out report/
    """
    from zslbench.results.report import write_report

    paths = write_report(experiment, Path(out), tracking_uri=tracking_uri or "", reported=reported)
    for path in paths:
        _console().print(f"wrote {path}")


# --------------------------------------------------------------------------- track
track_app = typer.Typer(help="MLflow tracking: upload runs kept offline while the tracking server was away.",
                        no_args_is_help=True)
app.add_typer(track_app, name="track")


@track_app.command("sync")
def track_sync(
    output_dir: Path = typer.Option(Path("runs"), "--output-dir", "-o",
                                    help="The folder holding the run folders (track.output_dir)."),
    tracking_uri: Optional[str] = typer.Option(None, "--tracking-uri", help="MLflow tracking URI (default: the one "
                                               "each run was started with, else $MLFLOW_TRACKING_URI)."),
    dry_run: bool = typer.Option(False, "--dry-run", help="List the pending journals; upload nothing."),
) -> None:
    """Upload the tracking of runs that went on while the MLflow server was away (same run ids,
    then their final status), and mark their journals synced. Safe to repeat: nothing is uploaded twice.

    Examples:

      zslbench track sync --dry-run

      zslbench track sync --output-dir runs --tracking-uri http://mlflow.lab:5000
    """
    from zslbench.tracking_offline import sync_command

    sync_command(output_dir, tracking_uri or "", dry_run, _console())


# --------------------------------------------------------------------------- entry point
def main(argv: list[str] | None = None) -> None:
    """Console entry point: user errors → one line on stderr, exit code 2."""
    debug = "--debug" in (argv if argv is not None else sys.argv[1:])
    try:
        code = app(args=argv, prog_name="zslbench", standalone_mode=False)  # returns typer.Exit's code in this mode
        if isinstance(code, int) and code:
            sys.exit(code)
    except UserError as exc:
        if debug:
            raise
        _print_error(str(exc))
        sys.exit(2)
    except KeyboardInterrupt:
        _print_error("interrupted")
        sys.exit(130)
    except typer.Exit as exc:  # raised by commands for non-zero exits
        sys.exit(exc.exit_code)
    except SystemExit:
        raise
    except Exception as exc:  # the parser's usage errors and the like
        if isinstance(exc, _parser_exception_classes()):
            sys.exit(_show_parser_error(exc))
        if isinstance(exc, _abort_classes()):
            _print_error("aborted")
            sys.exit(1)
        raise


def _parser_exception_classes() -> tuple[type[Exception], ...]:
    """The exceptions the command-line parser raises for bad usage.

    typer ≥ 0.24 bundles its own copy of click whose exceptions derive from ``typer.TyperException``,
    not from ``click.ClickException``; older typer raises click's own. Both are matched.
    """
    classes: list[type[Exception]] = []
    if isinstance(getattr(typer, "TyperException", None), type):
        classes.append(typer.TyperException)
    try:
        import click
    except ImportError:  # click is no dependency of the bundling typer versions
        pass
    else:
        classes.append(click.exceptions.ClickException)
    return tuple(classes)


def _abort_classes() -> tuple[type[BaseException], ...]:
    """Typer's and click's ``Abort`` (raised when a prompt is cancelled)."""
    classes: list[type[BaseException]] = [typer.Abort] if isinstance(getattr(typer, "Abort", None), type) else []
    try:
        import click
    except ImportError:
        pass
    else:
        classes.append(click.exceptions.Abort)
    return tuple(classes)


def _show_parser_error(exc: Exception) -> int:
    """Print a parser error as one line (with where to get help) and return its exit code (2 for usage)."""
    code = getattr(exc, "exit_code", 2)
    if type(exc).__name__ == "NoArgsIsHelpError":  # `zslbench` or `zslbench data` alone: show the help
        exc.show()  # type: ignore[attr-defined]
        return code
    message = exc.format_message() if hasattr(exc, "format_message") else str(exc)
    context = getattr(exc, "ctx", None)
    if context is not None:
        message = f"{message.rstrip('.')}; see '{context.command_path} --help'"
    _print_error(message)
    return code


def _print_error(message: str) -> None:
    first_line = " ".join(message.strip().split("\n"))
    if os.environ.get("NO_COLOR") or not sys.stderr.isatty():
        sys.stderr.write(f"error: {first_line}\n")
    else:
        sys.stderr.write(f"\x1b[31merror:\x1b[0m {first_line}\n")


if __name__ == "__main__":
    main()
