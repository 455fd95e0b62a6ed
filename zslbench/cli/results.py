"""``table``, ``plot`` and ``report``: paper-style outputs of an experiment's runs.

Every command picks its runs the same way (:mod:`zslbench.results.selection`): a sensible default, or
``--parent`` / ``--run`` (repeatable), narrowed by ``--tag key=value`` (repeatable). Numbers are percentages.
"""

from __future__ import annotations

from pathlib import Path
from typing import List, Optional

import typer

from zslbench.cli.app import _console, app, plot_app, table_app


ExperimentOpt = typer.Option("zslbench", "--experiment", "-e", help="MLflow experiment name.")
TrackingUriOpt = typer.Option(None, "--tracking-uri", help="MLflow tracking URI [default: $MLFLOW_TRACKING_URI or sqlite:///mlflow.db]")
FormatOpt = typer.Option("latex", "--format", "-f", help="latex | markdown | csv")
TableOutOpt = typer.Option(None, "--out", "-o", help="Write the table to this file instead of stdout.")
GammaPolicyOpt = typer.Option(None, "--gamma-policy", help="Recompute every run's metrics from its stored test scores "
                              "under this γ policy: none | val | oracle (oracle = chosen on test, marked †).")
ProtocolOpt = typer.Option(None, "--protocol", help="Use only runs of this protocol (metric-code) version.")
ModeOpt = typer.Option(None, "--mode", help="Report every run as one paper did, recomputed from its stored per-epoch "
                       "decisions: svip | transzero | apn (test-selected, marked †; docs/PROTOCOL.md lists each "
                       "difference), or standard (the default protocol, as logged).")
ReportedOpt = typer.Option(False, "--reported", help="Add the published numbers as a separate, unranked block.")
ParentOpt = typer.Option([], "--parent", help="Use the result runs of this ablation grid or sweep (its MLflow parent "
                         "run id; repeatable) [default: plain runs and each model's latest grid; for sensitivity, "
                         "the sweeps of that parameter].")
RunOpt = typer.Option([], "--run", "-r", help="Use this run (repeatable).")
TagOpt = typer.Option([], "--tag", help="Keep only runs with this MLflow tag, key=value (repeatable; all must match), "
                      "e.g. --tag dataset=CUB.")
LogToRunOpt = typer.Option(False, "--log-to-run", help="Also attach the figure(s) to the runs they show (under "
                           "plots/); finished runs are otherwise never changed.")


def _selection(parent: List[str], run: List[str], tag: List[str]):
    from zslbench.results.selection import Selection

    return Selection.from_options(parent, run, tag)


def _check_out(out: Optional[Path], folder: bool = False) -> None:
    """``--out`` can be written (its folder exists and takes files): checked before any run is read."""
    if out is None:
        return
    from zslbench.core.files import check_output_file, check_output_folder

    (check_output_folder if folder else check_output_file)(Path(out), "--out")


def _emit_table(kind: str, experiment: str, fmt: str, out: Optional[Path], tracking_uri: Optional[str],
                gamma_policy: Optional[str], protocol: Optional[str], reported: bool = False,
                param: Optional[str] = None, mode: Optional[str] = None, selection=None) -> None:
    from zslbench.results.experiment import experiment_table
    from zslbench.results.render import FORMATS, render

    _check_out(out)
    if fmt not in FORMATS:
        from zslbench.core.errors import unknown_name

        raise unknown_name("format", fmt, FORMATS)
    table = experiment_table(kind, experiment, tracking_uri=tracking_uri or "", param=param, reported=reported,
                             gamma_policy=gamma_policy, protocol=protocol, mode=mode, selection=selection)
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
    mode: Optional[str] = ModeOpt,
    parent: List[str] = ParentOpt,
    run: List[str] = RunOpt,
    tag: List[str] = TagOpt,
    protocol: Optional[str] = ProtocolOpt,
    tracking_uri: Optional[str] = TrackingUriOpt,
) -> None:
    """Main results: rows = methods, per benchmark T1 | U S H | AUSUC in % (mean ± std over seeds).

    Examples:

      zslbench table main --format markdown

      zslbench table main --reported --out main.tex       # LaTeX: \\usepackage{booktabs,graphicx}

      zslbench table main --gamma-policy oracle --format markdown   # how much does test-set γ inflate H?

      zslbench table main --mode svip --reported   # as the SVIP paper reported (†), beside its published rows

      zslbench table main --tag dataset=CUB --format csv
    """
    _emit_table("main", experiment, fmt, out, tracking_uri, gamma_policy, protocol, reported=reported, mode=mode,
                selection=_selection(parent, run, tag))


@table_app.command("ablation")
def table_ablation(
    experiment: str = ExperimentOpt,
    fmt: str = FormatOpt,
    reported: bool = ReportedOpt,
    out: Optional[Path] = TableOutOpt,
    gamma_policy: Optional[str] = GammaPolicyOpt,
    mode: Optional[str] = ModeOpt,
    parent: List[str] = ParentOpt,
    run: List[str] = RunOpt,
    tag: List[str] = TagOpt,
    protocol: Optional[str] = ProtocolOpt,
    tracking_uri: Optional[str] = TrackingUriOpt,
) -> None:
    """The paper's ablation rows (baseline, w/o SSPS, w/o PSC, w/o JSD, w/o W2P, full SVIP): T1 and H in %,
    Δ vs the full model of the same grid and seeds.

    Examples:

      zslbench table ablation --format latex > ablation.tex

      zslbench table ablation --parent 1a2b3c --format markdown   # one `zslbench ablate` grid
    """
    _emit_table("ablation", experiment, fmt, out, tracking_uri, gamma_policy, protocol, reported=reported, mode=mode,
                selection=_selection(parent, run, tag))


@table_app.command("sensitivity")
def table_sensitivity(
    param: str = typer.Argument(..., help="patch_number | js_weight | patch_cls_weight | temperature"),
    experiment: str = ExperimentOpt,
    fmt: str = FormatOpt,
    out: Optional[Path] = TableOutOpt,
    gamma_policy: Optional[str] = GammaPolicyOpt,
    mode: Optional[str] = ModeOpt,
    parent: List[str] = ParentOpt,
    run: List[str] = RunOpt,
    tag: List[str] = TagOpt,
    protocol: Optional[str] = ProtocolOpt,
    tracking_uri: Optional[str] = TrackingUriOpt,
) -> None:
    """Metrics per value of a swept hyperparameter (rows = values; T1/U/S/H/AUSUC in %, mean ± std).

    Example: zslbench table sensitivity temperature --format markdown
    """
    _emit_table("sensitivity", experiment, fmt, out, tracking_uri, gamma_policy, protocol, param=param, mode=mode,
                selection=_selection(parent, run, tag))


@plot_app.command("sensitivity")
def plot_sensitivity_cmd(
    param: str = typer.Argument(..., help="patch_number | js_weight | patch_cls_weight | temperature"),
    out: Path = typer.Option(..., "--out", "-o", help="Output file: .png or .pdf"),
    experiment: str = ExperimentOpt,
    parent: List[str] = ParentOpt,
    run: List[str] = RunOpt,
    tag: List[str] = TagOpt,
    log_to_run: bool = LogToRunOpt,
    tracking_uri: Optional[str] = TrackingUriOpt,
) -> None:
    """Metric (%) vs a swept parameter's value, one panel per metric, one series per benchmark, seeds as a band.

    Example: zslbench plot sensitivity temperature --out temperature.pdf
    """
    from zslbench.results.plots import plot_sensitivity

    _check_out(out)
    plot_sensitivity(experiment, param, Path(out), tracking_uri=tracking_uri or "",
                     selection=_selection(parent, run, tag), log_to_run=log_to_run)
    _console(stderr=True).print(f"wrote {out}")


@plot_app.command("ausuc")
def plot_ausuc_cmd(
    out: Path = typer.Option(..., "--out", "-o", help="Output file: .png or .pdf"),
    run: List[str] = RunOpt,
    parent: List[str] = ParentOpt,
    tag: List[str] = TagOpt,
    experiment: str = ExperimentOpt,
    log_to_run: bool = LogToRunOpt,
    tracking_uri: Optional[str] = TrackingUriOpt,
) -> None:
    """Seen-unseen accuracy curves from stored scores: one panel per benchmark, one curve per method (the main
    table's runs by default), AUSUC in the legend, the chosen γ marked.

    Example: zslbench plot ausuc --run 1a2b3c --run 4d5e6f --out ausuc.png
    """
    from zslbench.results.plots import plot_ausuc

    _check_out(out)
    plot_ausuc(experiment, [], Path(out), tracking_uri=tracking_uri or "", selection=_selection(parent, run, tag),
               log_to_run=log_to_run)
    _console(stderr=True).print(f"wrote {out}")


@plot_app.command("patches")
def plot_patches_cmd(
    run: str = typer.Option(..., "--run", "-r", help="Run id of an SVIP run."),
    out: Path = typer.Option(..., "--out", "-o", help="Output file: .png or .pdf"),
    count: int = typer.Option(8, "--count", "-n", min=1, max=64, help="Number of test images."),
    data_root: Optional[Path] = typer.Option(None, "--data-root", help="Where the run's dataset lives [default: as in the run's config]"),
    log_to_run: bool = LogToRunOpt,
    tracking_uri: Optional[str] = TrackingUriOpt,
) -> None:
    """Test images with SVIP's kept super-patches overlaid (synth: the creature mask outlined).

    Example: zslbench plot patches --run 1a2b3c --out patches.png
    """
    from zslbench.results.plots import plot_patches

    _check_out(out)
    plot_patches(run, Path(out), count=count, tracking_uri=tracking_uri or "", data_root=data_root,
                 log_to_run=log_to_run)
    _console(stderr=True).print(f"wrote {out}")


@app.command("report")
def report_cmd(
    experiment: str = ExperimentOpt,
    out: Path = typer.Option(..., "--out", "-o", help="Output directory (report.md, report.html, figures)."),
    reported: bool = typer.Option(True, "--reported/--no-reported", help="Include the published numbers."),
    parent: List[str] = ParentOpt,
    run: List[str] = RunOpt,
    tag: List[str] = TagOpt,
    log_to_run: bool = LogToRunOpt,
    tracking_uri: Optional[str] = TrackingUriOpt,
) -> None:
    """A self-contained Markdown + HTML report: tables, plots and the provenance of every number (in %).

    Example: zslbench report --experiment zslbench --out report/
    """
    from zslbench.results.report import write_report

    _check_out(out, folder=True)
    paths = write_report(experiment, Path(out), tracking_uri=tracking_uri or "", reported=reported,
                         selection=_selection(parent, run, tag), log_to_run=log_to_run)
    for path in paths:
        _console(stderr=True).print(f"wrote {path}")
