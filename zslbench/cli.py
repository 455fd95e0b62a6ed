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

from zslbench.errors import UserError

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
) -> None:
    """Train and evaluate a model; print T1, U, S, H, AUSUC, γ and the MLflow run id.

    Examples:

      zslbench run                                  # SVIP on the synthetic benchmark (CPU, minutes)

      zslbench run --ablate no_replacement --seed 0 --seed 1

      zslbench run --model vit --preset tiny --json -

      zslbench run --dataset CUB --data-root ~/zsl --device cuda

      zslbench run --resume last
    """
    from zslbench.engine.commands import build_run_config, execute_run

    cfg = build_run_config(model, dataset, data_root, ablate, seed, preset, set_, epochs, device, experiment,
                           tracking_uri, config_file)
    execute_run(cfg, seed, resume, json_file, dry_run, _console())


@app.command("models")
def models_cmd() -> None:
    """List the registered models."""
    from rich.table import Table

    from zslbench.models import MODELS

    table = Table("model", "description")
    for entry in MODELS.entries():
        table.add_row(entry.name, entry.help)
    _console().print(table)


@app.command("ablations")
def ablations_cmd() -> None:
    """List the registered ablations ([paper] = a row of the paper's ablation table)."""
    from rich.table import Table

    from zslbench.ablations import describe

    table = Table("ablation", "models", "what it changes")
    for name, models, text in describe():
        table.add_row(name, models, text)
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


# --------------------------------------------------------------------------- entry point
def main(argv: list[str] | None = None) -> None:
    """Console entry point: user errors → one line on stderr, exit code 2."""
    debug = "--debug" in (argv if argv is not None else sys.argv[1:])
    try:
        code = app(args=argv, standalone_mode=False)  # returns typer.Exit's code in this mode
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
    except Exception as exc:  # click usage errors and the like
        import click

        if isinstance(exc, click.exceptions.ClickException):
            exc.show()
            sys.exit(2 if isinstance(exc, click.UsageError) else 1)
        if isinstance(exc, click.exceptions.Abort):
            _print_error("aborted")
            sys.exit(1)
        raise


def _print_error(message: str) -> None:
    first_line = " ".join(message.strip().split("\n"))
    if os.environ.get("NO_COLOR") or not sys.stderr.isatty():
        sys.stderr.write(f"error: {first_line}\n")
    else:
        sys.stderr.write(f"\x1b[31merror:\x1b[0m {first_line}\n")


if __name__ == "__main__":
    main()
