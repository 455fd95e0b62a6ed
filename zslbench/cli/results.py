"""``table``, ``plot`` and ``report``: paper-style outputs of an experiment's runs."""

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


def _check_out(out: Optional[Path], folder: bool = False) -> None:
    """``--out`` can be written (its folder exists and takes files): checked before any run is read."""
    if out is None:
        return
    from zslbench.core.files import check_output_file, check_output_folder

    (check_output_folder if folder else check_output_file)(Path(out), "--out")


def _emit_table(kind: str, experiment: str, fmt: str, out: Optional[Path], tracking_uri: Optional[str],
                gamma_policy: Optional[str], protocol: Optional[str], reported: bool = False,
                param: Optional[str] = None, mode: Optional[str] = None) -> None:
    from zslbench.results.render import FORMATS, render
    from zslbench.results.tables import experiment_table

    _check_out(out)
    if fmt not in FORMATS:
        from zslbench.core.errors import unknown_name

        raise unknown_name("format", fmt, FORMATS)
    table = experiment_table(kind, experiment, tracking_uri=tracking_uri or "", param=param, reported=reported,
                             gamma_policy=gamma_policy, protocol=protocol, mode=mode)
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
    protocol: Optional[str] = ProtocolOpt,
    tracking_uri: Optional[str] = TrackingUriOpt,
) -> None:
    """Main results: rows = methods, per dataset T1 | U S H | AUSUC (mean ± std over seeds).

    Examples:

      zslbench table main --format markdown

      zslbench table main --reported --out main.tex

      zslbench table main --gamma-policy oracle --format markdown   # how much does test-set γ inflate H?

      zslbench table main --mode svip --reported   # as the SVIP paper reported (†), beside its published rows
    """
    _emit_table("main", experiment, fmt, out, tracking_uri, gamma_policy, protocol, reported=reported, mode=mode)


@table_app.command("ablation")
def table_ablation(
    experiment: str = ExperimentOpt,
    fmt: str = FormatOpt,
    reported: bool = ReportedOpt,
    out: Optional[Path] = TableOutOpt,
    gamma_policy: Optional[str] = GammaPolicyOpt,
    mode: Optional[str] = ModeOpt,
    protocol: Optional[str] = ProtocolOpt,
    tracking_uri: Optional[str] = TrackingUriOpt,
) -> None:
    """The paper's ablation rows (baseline, w/o SSPS, w/o PSC, w/o JSD, w/o W2P, full SVIP): T1 and H, Δ vs full SVIP.

    Example: zslbench table ablation --format latex > ablation.tex
    """
    _emit_table("ablation", experiment, fmt, out, tracking_uri, gamma_policy, protocol, reported=reported, mode=mode)


@table_app.command("sensitivity")
def table_sensitivity(
    param: str = typer.Argument(..., help="patch_number | js_weight | patch_cls_weight | temperature"),
    experiment: str = ExperimentOpt,
    fmt: str = FormatOpt,
    out: Optional[Path] = TableOutOpt,
    gamma_policy: Optional[str] = GammaPolicyOpt,
    mode: Optional[str] = ModeOpt,
    protocol: Optional[str] = ProtocolOpt,
    tracking_uri: Optional[str] = TrackingUriOpt,
) -> None:
    """Metrics per value of one hyperparameter (rows = values; T1/U/S/H/AUSUC mean ± std).

    Example: zslbench table sensitivity temperature --format markdown
    """
    _emit_table("sensitivity", experiment, fmt, out, tracking_uri, gamma_policy, protocol, param=param, mode=mode)


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

    _check_out(out)
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

    _check_out(out)
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

    _check_out(out)
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

    _check_out(out, folder=True)
    paths = write_report(experiment, Path(out), tracking_uri=tracking_uri or "", reported=reported)
    for path in paths:
        _console().print(f"wrote {path}")
