"""``zslbench track``: the MLflow store's side of runs kept offline."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from zslbench.cli.app import _console, track_app


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
    from zslbench.tracking.sync import sync_command

    sync_command(output_dir, tracking_uri or "", dry_run, _console())
