"""What a finished ``zslbench run`` shows: the ``--json`` object and the results table, and the
percentage formats the command-line tables share.

>>> pct(0.7512), pm((0.7512, 0.0041, 3)), delta(-0.012)
('75.1', '75.1 ± 0.4', '-1.2')
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Optional

from zslbench.metrics import REPORTED_METRICS, aggregate_seeds

if TYPE_CHECKING:  # pragma: no cover - typing only
    from zslbench.engine.runner import RunResult

#: The keys of ``zslbench run --json`` (DESIGN.md), fractions in [0, 1].
JSON_KEYS = ("zsl_t1", "gzsl_u", "gzsl_s", "gzsl_h", "gamma", "gamma_policy", "selection", "ausuc", "epochs",
             "seed", "run_id", "model", "dataset", "ablations", "mode", "oracle")
#: Keys added when a run has them: the epochs its numbers come from, and the SVIP reference's
#: independently maximised U and S (never one operating point).
OPTIONAL_JSON_KEYS = ("selected_epoch", "selected_epoch_t1", "gzsl_u_max", "gzsl_s_max")


def json_summary(results: list[RunResult]) -> dict[str, Any]:
    """The ``--json`` object: DESIGN.md's keys; several seeds → means, with per-run rows and stds."""
    rows = [{k: r.final.get(k) for k in JSON_KEYS} | {k: r.final[k] for k in OPTIONAL_JSON_KEYS if k in r.final}
            for r in results]
    if len(rows) == 1:
        return rows[0]
    agg = aggregate_seeds([r.final for r in results])
    summary = dict(rows[0])
    for key in ("zsl_t1", "gzsl_u", "gzsl_s", "gzsl_h", "gamma", "ausuc"):
        if key in agg:
            summary[key] = agg[key][0]
    summary["std"] = {k: agg[k][1] for k in ("zsl_t1", "gzsl_u", "gzsl_s", "gzsl_h", "ausuc") if k in agg}
    summary["seed"] = [r["seed"] for r in rows]
    summary["run_id"] = [r["run_id"] for r in rows]
    summary["runs"] = rows
    return summary


def print_results(results: list[RunResult], console) -> None:
    """A rich table: one row per seed, plus mean ± std when there are several."""
    from rich.table import Table

    first = results[0].final
    title = f"{first['model']} on {first['dataset']}" + (f" — ablations: {', '.join(first['ablations'])}"
                                                          if first["ablations"] else "")
    table = Table(title=title, caption=_caption(first))
    for column in ("seed", *REPORTED_METRICS.values(), "γ", "epoch", "patch IoU", "MLflow run"):
        table.add_column(column, justify="right" if column not in ("MLflow run",) else "left")
    for r in results:
        f = r.final
        table.add_row(str(f["seed"]), *(pct(f.get(k)) for k in REPORTED_METRICS),
                      f"{f.get('gamma', 0.0):.3g}", _epochs(f),
                      pct(f.get("patch_iou")), r.run_id)
    if len(results) > 1:
        agg = aggregate_seeds([r.final for r in results])
        table.add_row("mean", *(pm(agg.get(k)) for k in REPORTED_METRICS),
                      "", "", pm(agg.get("patch_iou")), "", style="bold")
    console.print(table)


def _epochs(final: dict[str, Any]) -> str:
    """The 1-based epoch the numbers come from; "H 3 · T1 2" when T1 comes from another epoch (oracle, modes).

    >>> _epochs({"selected_epoch": 2, "selected_epoch_t1": 1}), _epochs({"selected_epoch": 2}), _epochs({})
    ('H 3 · T1 2', '3', '')
    """
    if "selected_epoch" not in final:
        return ""
    h, t1 = int(final["selected_epoch"]) + 1, final.get("selected_epoch_t1")
    return str(h) if t1 is None or int(t1) + 1 == h else f"H {h} · T1 {int(t1) + 1}"


def _caption(final: dict[str, Any]) -> str:
    mark = " †" if final.get("oracle") else ""
    mode = final.get("mode", "standard")
    if mode != "standard":
        from zslbench.metrics.paper import MODE_SUMMARIES

        extra = ""
        if "gzsl_u_max" in final:
            extra = (f" · the reference's independent maxima over epochs: U {pct(final['gzsl_u_max'])}, "
                     f"S {pct(final['gzsl_s_max'])}")
        return f"paper mode {mode}† (test-selected) — {MODE_SUMMARIES[mode]}{extra}"
    return (f"selection: {final['selection']} · γ policy: {final['gamma_policy']} ({final['gamma_space']}){mark} · "
            f"T1 = ZSL per-class top-1 on unseen; U/S/H = GZSL per-class accuracies; AUSUC calibration-free")


def pct(value: Any) -> str:
    """A fraction as a percentage with one decimal ("–" for none)."""
    return "–" if value is None else f"{100 * float(value):.1f}"


def pm(stat: Any) -> str:
    """A (mean, std, n) of fractions as "mean ± std" percentages ("–" for none)."""
    if stat is None:
        return "–"
    mean, std, _ = stat
    return f"{100 * mean:.1f} ± {100 * std:.1f}"


def delta(value: Optional[float]) -> str:
    """A signed difference of fractions in percentage points ("–" for none)."""
    return "–" if value is None else f"{100 * value:+.1f}"
