"""The Typer application, its command groups and the options several commands share."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

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
table_app = typer.Typer(help="Paper-style tables of an experiment's runs (LaTeX, Markdown, CSV).", no_args_is_help=True)
app.add_typer(table_app, name="table")
plot_app = typer.Typer(help="Plots of an experiment's runs (PNG or PDF by the --out extension).", no_args_is_help=True)
app.add_typer(plot_app, name="plot")
track_app = typer.Typer(help="MLflow tracking: upload runs kept offline while the tracking server was away.",
                        no_args_is_help=True)
app.add_typer(track_app, name="track")

_state = {"debug": False}

DatasetOpt = typer.Option("synth", "--dataset", "-d", help="synth | CUB | AWA2 | SUN")
DataRootOpt = typer.Option(None, "--data-root", help="Directory holding one folder per dataset [default: $ZSLBENCH_DATA or ./data]")
ImageRootOpt = typer.Option(None, "--image-root", help="Where the dataset's images live [default: the dataset folder]")


def _console(stderr: bool = False):
    """The console human output goes to: stdout, or stderr where stdout carries data (``--json -``)."""
    from rich.console import Console

    return Console(stderr=stderr)


def _data_root(data_root: Optional[Path]) -> Path:
    from zslbench.config import default_data_root

    return Path(data_root) if data_root is not None else Path(default_data_root())


@app.callback()
def _main(debug: bool = typer.Option(False, "--debug", help="Show full tracebacks for errors.")) -> None:
    _state["debug"] = debug
