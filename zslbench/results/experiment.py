"""An experiment's table: its finished runs loaded, the ones the table uses selected
(:mod:`zslbench.results.selection`), optionally re-evaluated from stored scores (another γ policy, or a
paper's reporting mode: :mod:`zslbench.results.scores`), then built (:mod:`zslbench.results.tables`).

>>> sweep_name("model.logit_scale"), sweep_name("temperature")
('temperature', 'temperature')
"""

from __future__ import annotations

from typing import Any

from zslbench.core.errors import UserError, unknown_name
from zslbench.results.frames import check_protocols
from zslbench.results.tables import TABLE_KINDS, Table, build_table, sensitivity_column


def experiment_table(kind: str, experiment: str = "zslbench", *, tracking_uri: str = "", param: str | None = None,
                     reported: bool = False, gamma_policy: str | None = None, protocol: str | None = None,
                     cache_dir: Any = None, mode: str | None = None, selection: Any = None) -> Table:
    """Load the finished runs of ``experiment``, select the ones table ``kind`` uses (``selection``, a
    :class:`zslbench.results.selection.Selection`; default: see that module) and build the table.

    ``gamma_policy`` (none | val | oracle) recomputes every run's metrics from its stored test
    scores under that γ policy first (:func:`zslbench.results.scores.reevaluate`); ``mode`` (svip |
    transzero | apn) recomputes them as that paper reported them (†,
    :func:`zslbench.results.scores.reevaluate_mode`); ``standard`` (or None) shows them as logged.
    """
    from zslbench.metrics import check_mode
    from zslbench.results.selection import Selection, load_selected

    if kind not in TABLE_KINDS:
        raise unknown_name("table", kind, TABLE_KINDS)
    if kind == "sensitivity":
        sensitivity_column(param or "")
    paper_mode = check_mode(mode) if mode not in (None, "standard") else None
    if paper_mode is not None and gamma_policy is not None:
        raise UserError(f"--mode {paper_mode} fixes γ as that paper did; drop --gamma-policy (or use --mode standard)")
    frame = load_selected(experiment, tracking_uri, selection or Selection(), kind,
                          param=sweep_name(param) if kind == "sensitivity" else None)
    if frame.is_empty():
        raise UserError(_nothing_selected(kind, experiment, param, selection))
    if paper_mode is not None:
        from zslbench.results.scores import reevaluate_mode

        frame = reevaluate_mode(check_protocols(frame, protocol) if protocol else frame, paper_mode, tracking_uri,
                                cache_dir)
        return build_table(kind, frame, param=param, reported=reported, experiment=experiment)
    if gamma_policy is not None:
        from zslbench.results.scores import reevaluate

        # Recomputed numbers all come from the current metric code (protocol version), so runs
        # logged under older versions become comparable; --protocol still restricts the runs.
        frame = reevaluate(check_protocols(frame, protocol) if protocol else frame, gamma_policy,
                           tracking_uri, cache_dir)
    return build_table(kind, frame, param=param, reported=reported, protocol=protocol if gamma_policy is None else None,
                       experiment=experiment)


def _nothing_selected(kind: str, experiment: str, param: str | None, selection: Any) -> str:
    if selection is not None and (selection.explicit or selection.tags):
        return f"the runs selected (--parent/--run/--tag) of experiment {experiment!r} include no result run"
    if kind == "sensitivity":
        return (f"experiment {experiment!r} has no sweep of {param}: a sensitivity table shows swept parameters "
                f"only — run `zslbench sweep {sweep_name(param)}` (or pick runs with --parent/--run)")
    if kind == "ablation":
        return f"experiment {experiment!r} has no ablation grid or plain runs; run `zslbench ablate` first"
    return f"experiment {experiment!r} has no result runs (only parent runs); run `zslbench run` first"


def sweep_name(param: str | None) -> str:
    """The sweep (search-space) name of a sensitivity parameter: ``model.logit_scale`` → ``temperature``."""
    from zslbench.catalogue import sensitivity_spaces

    if param and "." in param:
        for space in sensitivity_spaces():
            if space.key == param:
                return space.name
    return param or ""


__all__ = ["experiment_table", "sweep_name"]
