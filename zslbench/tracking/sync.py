"""``zslbench track sync``: upload the journals of runs that went on while the MLflow server was away.

Every pending journal under an output folder (:func:`~zslbench.tracking.journal.find_journals`) is
replayed into its run (:func:`~zslbench.tracking.replay.replay_journal`: nothing is sent twice),
the run gets the journal's final status, and the journal folder is renamed ``tracking-synced``.
A journal whose run still writes it is left alone ("in use"); a server that is (again) away stops
the sync with one line and leaves every journal as it was.

    >>> sync_journals("no-such-folder")  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    zslbench.core.errors.UserError: output folder no-such-folder does not exist; ...

Importing this module does not import mlflow.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Iterable

from zslbench.core.errors import UserError
from zslbench.core.secrets import has_masked_credentials, mask_credentials
from zslbench.tracking.journal import SYNCED_DIR, Journal, find_journals, journal_lock, mark_synced, read_journal
from zslbench.tracking.reachability import check_reachable, failure_reason, is_connection_error, unreachable_error
from zslbench.tracking.replay import INTERRUPTED_STATUS, ReplayStats, replay_journal
from zslbench.tracking.store import http_policy, resolve_tracking_uri, with_credentials

if TYPE_CHECKING:  # pragma: no cover - typing only
    from mlflow import MlflowClient

#: What ``track sync`` says when the server is (again) unreachable.
SYNC_HINT = "the journals are kept (a repeated sync uploads nothing twice); start it (or fix --tracking-uri) " \
    "and run `zslbench track sync` again"


@dataclass
class SyncOutcome:
    """One journal's row in the ``track sync`` table."""

    run_id: str
    directory: Path
    result: str  # synced | would sync | in use | error
    detail: str = ""
    journal: Journal | None = None
    stats: ReplayStats | None = None


def _target_uri(journal: Journal, tracking_uri: str) -> str:
    """``--tracking-uri``, else the URI the run was tracked at; when that held credentials (the
    journal keeps them masked), ``$MLFLOW_TRACKING_URI``, else MLflow's ``$MLFLOW_TRACKING_USERNAME`` and
    ``$MLFLOW_TRACKING_PASSWORD`` with the recorded server."""
    if tracking_uri:
        return resolve_tracking_uri(tracking_uri)
    if journal.tracking_uri and not has_masked_credentials(journal.tracking_uri):
        return journal.tracking_uri
    if journal.tracking_uri:
        try:
            return with_credentials(journal.tracking_uri, any_environment_uri=True, strict=True)
        except UserError as exc:
            raise UserError(f"run {journal.run_id}: {exc}") from None
    if os.environ.get("MLFLOW_TRACKING_URI", "").strip():
        return resolve_tracking_uri("")
    raise UserError(f"run {journal.run_id} was tracked at an unrecorded URI; pass it with --tracking-uri (or set "
                    "$MLFLOW_TRACKING_URI)")


def sync_journals(output_dir: str | os.PathLike[str], tracking_uri: str = "", dry_run: bool = False,
                  ) -> list[SyncOutcome]:
    """Replay every pending journal under ``output_dir`` into its run and mark it synced.

    Every target store is checked first: one that cannot be reached is a :class:`UserError` and no
    journal is touched. A journal whose run is still writing it is left pending ("in use").
    """
    output_dir = Path(output_dir)
    if not output_dir.is_dir():
        raise UserError(f"output folder {output_dir} does not exist; pass the folder holding the run folders "
                        "with --output-dir (track.output_dir, default ./runs)")
    journals = [read_journal(path) for path in find_journals(output_dir)]
    targets = {journal.directory: _target_uri(journal, tracking_uri) for journal in journals}
    if dry_run:
        return [_dry_run_outcome(j, mask_credentials(targets[j.directory])) for j in journals]

    for uri in dict.fromkeys(targets.values()):
        check_reachable(uri, hint=SYNC_HINT)
    clients: dict[str, MlflowClient] = {}
    return [_sync_one(journal, targets[journal.directory], clients) for journal in journals]


def _dry_run_outcome(journal: Journal, shown_uri: str) -> SyncOutcome:
    with journal_lock(journal.directory) as free:
        if not free:
            return SyncOutcome(journal.run_id, journal.directory, "in use", "its run is still writing it",
                               journal=journal)
    return SyncOutcome(journal.run_id, journal.directory, "would sync", f"to {shown_uri}", journal=journal)


def _sync_one(journal: Journal, uri: str, clients: dict[str, "MlflowClient"]) -> SyncOutcome:
    from mlflow import MlflowClient
    from mlflow.exceptions import MlflowException

    with journal_lock(journal.directory) as free:
        if not free:
            return SyncOutcome(journal.run_id, journal.directory, "in use", "its run is still writing it",
                               journal=journal)
        journal = read_journal(journal.directory)  # re-read under the lock: the writer may have appended
        try:
            with http_policy():
                client = clients.setdefault(uri, MlflowClient(tracking_uri=uri))
                try:
                    client.get_run(journal.run_id)
                except MlflowException as exc:
                    if is_connection_error(exc, uri):
                        raise
                    return SyncOutcome(journal.run_id, journal.directory, "error",
                                       f"no run {journal.run_id} at {mask_credentials(uri)}; pass the server "
                                       "the run was started on with --tracking-uri", journal=journal)
                stats = replay_journal(client, journal)
        except Exception as exc:
            if is_connection_error(exc, uri):  # the server went away again: nothing lost, run sync again
                raise unreachable_error(uri, failure_reason(exc), SYNC_HINT) from exc
            # This journal stays pending; the others are still synced.
            text = str(exc) if isinstance(exc, UserError) else f"{type(exc).__name__}: {exc}"
            message = mask_credentials(text.splitlines()[0] if text else type(exc).__name__)[:300]
            return SyncOutcome(journal.run_id, journal.directory, "error", message, journal=journal)
        synced = mark_synced(journal.directory)
    return SyncOutcome(journal.run_id, synced, "synced", "", journal=journal, stats=stats)


def print_sync_table(outcomes: Iterable[SyncOutcome], output_dir: Path, console: Any) -> None:
    """A rich table: one row per journal, with what was (or would be) uploaded."""
    from rich.markup import escape
    from rich.table import Table

    outcomes = list(outcomes)
    if not outcomes:
        console.print(f"nothing to sync: no pending tracking journals under {escape(str(output_dir))}")
        return
    table = Table(title=f"tracking journals under {escape(str(output_dir))}")
    table.add_column("run", no_wrap=True)
    for column in ("metrics", "params", "artifacts"):
        table.add_column(column, justify="right")
    table.add_column("status")
    table.add_column("result")
    styles = {"synced": "green", "would sync": "cyan", "in use": "yellow", "error": "red"}
    for outcome in outcomes:
        journal, stats = outcome.journal, outcome.stats
        if stats is not None:
            metrics = f"{stats.metrics} new" + (f" + {stats.metrics_present} present" if stats.metrics_present else "")
            params, artifacts, status = str(stats.params), str(stats.artifacts), stats.status or ""
        elif journal is not None:
            metrics, params, artifacts = (str(journal.count(k)) for k in ("metrics", "params", "artifacts"))
            status = journal.final_status or f"{INTERRUPTED_STATUS} (interrupted)"
        else:
            metrics = params = artifacts = status = ""
        result = outcome.result + (f": {outcome.detail}" if outcome.detail else "")
        table.add_row(outcome.run_id, metrics, params, artifacts, status,
                      f"[{styles.get(outcome.result, '')}]{escape(result)}[/]")
    console.print(table)
    counts = {kind: sum(o.result == kind for o in outcomes) for kind in ("synced", "in use", "error")}
    if any(o.result == "would sync" for o in outcomes):
        console.print(f"{len(outcomes)} journal(s) pending; run without --dry-run to upload them")
    else:
        console.print(f"synced {counts['synced']} run(s) (journals renamed to <run>/{SYNCED_DIR}); "
                      f"{counts['in use']} still in use; {counts['error']} failed")


def sync_command(output_dir: Path, tracking_uri: str, dry_run: bool, console: Any) -> None:
    """``zslbench track sync``: sync, print the table; journals that failed make it a :class:`UserError`."""
    outcomes = sync_journals(output_dir, tracking_uri, dry_run)
    print_sync_table(outcomes, Path(output_dir), console)
    failed = [o for o in outcomes if o.result == "error"]
    if failed:
        raise UserError(f"{len(failed)} tracking journal(s) could not be synced ({failed[0].detail}); "
                        "fix that and run `zslbench track sync` again (synced journals are not uploaded twice)")


__all__ = ["SYNC_HINT", "SyncOutcome", "print_sync_table", "sync_command", "sync_journals"]
