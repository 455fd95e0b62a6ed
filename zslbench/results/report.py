"""``zslbench report``: one Markdown and one HTML file with an experiment's tables, plots and provenance.

The report holds the main table (with the published numbers, unranked, when asked), the ablation
table and a sensitivity table per swept hyperparameter (where the experiment has a sweep of it), a
re-evaluation of H with and without test-set calibration (from the stored scores), the plots, and
a provenance table: every result run used, with its model, dataset, seed, policies, protocol version,
git commit and data fingerprint — so every number can be traced to its runs. Each section uses the runs
its table would (:mod:`zslbench.results.selection`); parent runs (ablation grids, sweeps) are counted
apart and are never results. Nothing is written into the runs unless ``log_to_run``.

``report.md`` links its figures from ``figures/`` next to it; ``report.html`` embeds them (base64)
and needs no other file. No template engine: the HTML is built from the same table model.
"""

from __future__ import annotations

import base64
import datetime as _dt
import html
from pathlib import Path
from typing import Any

import polars as pl

from zslbench.core.version import PROTOCOL_VERSION, __version__
from zslbench.core.errors import UserError
from zslbench.core.files import atomic_write
from zslbench.catalogue import sensitivity_spaces
from zslbench.results.render import percent, render_markdown, signed_percent
from zslbench.results.tables import METRIC_HEADERS, Cell, Table, build_table

_CSS = """body{font-family:system-ui,-apple-system,Segoe UI,Roboto,sans-serif;max-width:1200px;margin:2em auto;
padding:0 1em;color:#222}table{border-collapse:collapse;margin:1em 0;font-size:13px}
th,td{padding:3px 8px;text-align:right;border-bottom:1px solid #ddd}th:first-child,td:first-child{text-align:left}
thead tr:first-child th{border-bottom:1px solid #888}caption{font-weight:600;text-align:left;margin-bottom:.4em}
tr.block td{font-style:italic;text-align:left;background:#f6f6f6}.std{font-size:80%;color:#666}
.notes{font-size:12px;color:#444}code{font-size:12px}img{max-width:100%;border:1px solid #eee}"""
OUT_HINT = "free disk space or fix the folder's permissions, or choose another --out"


def write_report(experiment: str, out_dir: Path, tracking_uri: str = "", reported: bool = True,
                 cache_dir: Path | None = None, selection: Any = None, log_to_run: bool = False) -> list[Path]:
    """Write ``report.md``, ``report.html`` and ``figures/`` into ``out_dir``; returns the two report paths.

    ``selection`` (:class:`zslbench.results.selection.Selection`) narrows every section's runs."""
    from zslbench.results.frames import load_runs
    from zslbench.results.plots import plot_ausuc, plot_sensitivity
    from zslbench.results.selection import Selection, select_runs, split_containers, tagged_runs
    from zslbench.tracking import mask_credentials, resolve_tracking_uri

    out_dir = Path(out_dir)
    selection = selection or Selection()
    frame = load_runs(experiment, tracking_uri)
    tagged = tagged_runs(experiment, tracking_uri, selection)

    def runs_for(purpose: str, param: str | None = None) -> pl.DataFrame:
        return select_runs(frame, selection, purpose, param=param, tagged=tagged)

    chosen = {"main": runs_for("main"), "ablation": runs_for("ablation")}
    chosen |= {space.name: runs_for("sensitivity", space.name) for space in sensitivity_spaces()}
    used = pl.concat([f for f in chosen.values() if not f.is_empty()], how="diagonal_relaxed").unique("run_id") \
        if any(not f.is_empty() for f in chosen.values()) else frame.clear()
    if used.is_empty():
        raise UserError(f"experiment {experiment!r} has no result runs to report (only parent runs, or none "
                        "selected); run `zslbench run` first")
    sections: list[tuple[str, Any]] = []  # (title, Table | str paragraph | Path figure)
    tables = _tables(chosen, experiment, reported)
    figures = out_dir / "figures"
    for title, table in tables:
        sections.append((title, table))
    calibration = _calibration_table(chosen["main"], experiment, tracking_uri, cache_dir)
    if calibration is not None:
        sections.append(("How much does choosing γ on the test set inflate H?", calibration))
    try:
        sections.append(("Seen–unseen curves", plot_ausuc(experiment, [], figures / "ausuc.png", tracking_uri,
                                                          frame=frame, cache_dir=cache_dir, selection=selection,
                                                          log_to_run=log_to_run)))
    except UserError as exc:
        sections.append(("Seen–unseen curves", f"Not available: {exc}"))
    for name in (space.name for space in sensitivity_spaces()):
        if any(title.endswith(f"({name})") for title, _ in tables):
            sections.append((f"Sensitivity plot ({name})",
                             plot_sensitivity(experiment, name, figures / f"sensitivity_{name}.png", tracking_uri,
                                              frame=frame, selection=selection, log_to_run=log_to_run)))
    _, containers = split_containers(frame)
    meta = {
        "experiment": experiment,
        "tracking URI": mask_credentials(resolve_tracking_uri(tracking_uri)),
        "generated": _dt.datetime.now(_dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        "zslbench": f"{__version__} (protocol version {PROTOCOL_VERSION})",
        "result runs reported": str(used.height),
        "parent runs (ablation grids, sweeps; no results of their own)": str(containers.height),
        "protocol versions of the runs": ", ".join(sorted(used["protocol"].unique().to_list())),
        "git commits of the runs": ", ".join(sorted(used["git_commit"].unique().to_list())),
    }
    provenance = _provenance(used)
    markdown = _markdown(experiment, meta, sections, provenance, out_dir)
    page = _html(experiment, meta, sections, provenance)
    md_path, html_path = out_dir / "report.md", out_dir / "report.html"
    atomic_write(md_path, markdown, hint=OUT_HINT)
    atomic_write(html_path, page, hint=OUT_HINT)
    return [md_path, html_path]


# --------------------------------------------------------------------------- content
def _tables(chosen: dict[str, pl.DataFrame], experiment: str, reported: bool) -> list[tuple[str, Table]]:
    from zslbench.results.frames import check_protocols

    tables: list[tuple[str, Table]] = []
    for title, kind, param in [("Main results", "main", None), ("Ablation", "ablation", None)] + \
            [(f"Sensitivity ({space.name})", "sensitivity", space.name) for space in sensitivity_spaces()]:
        frame = chosen[param or kind]
        if frame.is_empty():
            continue
        try:
            tables.append((title, build_table(kind, _current_protocol(frame, check_protocols), param=param,
                                              reported=reported and kind != "sensitivity", experiment=experiment)))
        except UserError:
            continue  # the experiment has no runs for this table
    return tables


def _current_protocol(frame: pl.DataFrame, check) -> pl.DataFrame:
    """Runs of one protocol version: the only one, else the current one (else the newest present)."""
    versions = sorted(frame["protocol"].unique().to_list())
    if len(versions) <= 1:
        return frame
    chosen = PROTOCOL_VERSION if PROTOCOL_VERSION in versions else versions[-1]
    return check(frame, chosen)


def _calibration_table(frame: pl.DataFrame, experiment: str, tracking_uri: str, cache_dir: Path | None) -> Table | None:
    """H per configuration recomputed from stored scores without calibration and with test-set γ."""
    from zslbench.results.frames import aggregate, method_label
    from zslbench.results.scores import reevaluate

    if frame.is_empty():
        return None
    try:
        none = aggregate(reevaluate(frame, "none", tracking_uri, cache_dir), metrics=("gzsl_h",))
        oracle = aggregate(reevaluate(frame, "oracle", tracking_uri, cache_dir), metrics=("gzsl_h",))
    except UserError:
        return None
    from zslbench.results.tables import Block, Row

    from zslbench.results.tables import _row_labels

    labels, _ = _row_labels(none, lambda r: method_label(r["model"], r["ablations"]))
    merged: dict[str, Row] = {}
    for label, plain, tuned in zip(labels, none.iter_rows(named=True), oracle.iter_rows(named=True)):
        dataset = plain["dataset_label"]
        row = merged.setdefault(label, Row(label, {}))
        row.run_ids.extend(plain["run_ids"])
        row.cells[(dataset, "H γ=0")] = Cell(plain["gzsl_h_mean"], plain["gzsl_h_std"], plain["gzsl_h_n"],
                                             plain["selection"] == "oracle")
        row.cells[(dataset, "H γ test†")] = Cell(tuned["gzsl_h_mean"], tuned["gzsl_h_std"], tuned["gzsl_h_n"], True)
        row.cells[(dataset, "gain")] = Cell(tuned["gzsl_h_mean"] - plain["gzsl_h_mean"])
    rows = list(merged.values())
    datasets = list(dict.fromkeys(none["dataset_label"].to_list()))
    return Table("calibration", f"H recomputed from stored scores (experiment {experiment})", "Configuration",
                 [(d, ["H γ=0", "H γ test†"] + ["gain"]) for d in datasets], [Block(rows, ranked=False)],
                 notes=["γ=0: no calibration; γ test†: γ maximising H on the test set (what most papers report); "
                        "gain: the difference in points — optimism from test-set calibration.",
                        "† test-selected."])


def _provenance(frame: pl.DataFrame) -> list[dict[str, str]]:
    columns = ["run_id", "parent_run_id", "model", "dataset", "ablations", "seed", "selection", "gamma_policy",
               "gamma_space", "protocol", "git_commit", "data_fingerprint"]
    rows = frame.sort(["model", "dataset", "ablations", "seed"]).select([c for c in columns if c in frame.columns])
    out = []
    for record in rows.iter_rows(named=True):
        record = {k: "" if v is None else str(v) for k, v in record.items()}
        record["git_commit"] = record.get("git_commit", "")[:10]
        record["data_fingerprint"] = record.get("data_fingerprint", "")[:12]
        out.append(record)
    return out


# --------------------------------------------------------------------------- Markdown
def _markdown(experiment: str, meta: dict[str, str], sections: list[tuple[str, Any]],
              provenance: list[dict[str, str]], out_dir: Path) -> str:
    lines = [f"# zslbench report — experiment `{experiment}`", ""]
    lines += [f"- **{key}**: {value}" for key, value in meta.items()]
    lines.append("")
    for title, content in sections:
        lines += [f"## {title}", ""]
        if isinstance(content, Table):
            lines.append(render_markdown(content))
            lines.append(f"Runs: {', '.join(f'`{r}`' for r in content.run_ids())}")
        elif isinstance(content, Path):
            lines.append(f"![{title}]({content.relative_to(out_dir).as_posix()})")
        else:
            lines.append(str(content))
        lines.append("")
    lines += ["## Provenance of every run", ""]
    if provenance:
        header = list(provenance[0])
        lines.append("| " + " | ".join(header) + " |")
        lines.append("|" + "---|" * len(header))
        lines += ["| " + " | ".join(f"`{v}`" if k == "run_id" and v else v for k, v in row.items()) + " |"
                  for row in provenance]
    lines.append("")
    return "\n".join(lines)


# --------------------------------------------------------------------------- HTML
def table_html(table: Table) -> str:
    """One table as HTML (the same ranks, ± std, † and Δ as the LaTeX/Markdown renderings)."""
    esc = html.escape
    columns = table.columns()
    parts = [f"<table><caption>{esc(table.caption)}</caption><thead><tr><th></th>"]
    parts += [f'<th colspan="{len(cols)}">{esc(group)}</th>' for group, cols in table.groups]
    parts.append(f"</tr><tr><th>{esc(table.stub)}</th>")
    parts += [f"<th>{esc(METRIC_HEADERS.get(c, c))}</th>" for _, c in columns]
    parts.append("</tr></thead><tbody>")
    for block in table.blocks:
        if block.title:
            parts.append(f'<tr class="block"><td colspan="{len(columns) + 1}">{esc(block.title)}</td></tr>')
        for row in block.rows:
            parts.append(f"<tr><td>{esc(row.label)}</td>")
            for column in columns:
                parts.append(f"<td>{_cell_html(row.cells.get(column, Cell(None)))}</td>")
            parts.append("</tr>")
    parts.append("</tbody></table>")
    if table.notes:
        parts.append('<ul class="notes">' + "".join(f"<li>{esc(n)}</li>" for n in table.notes) + "</ul>")
    return "".join(parts)


def _cell_html(cell: Cell) -> str:
    if cell.mean is None:
        return "–"
    text = percent(cell.mean)
    text = {1: f"<b>{text}</b>", 2: f"<u>{text}</u>"}.get(cell.rank or 0, text)
    if cell.oracle:
        text += "†"
    if cell.std is not None and cell.n > 1:
        text += f' <span class="std">± {percent(cell.std)}</span>'
    if cell.delta is not None:
        text += f' <span class="std">({signed_percent(cell.delta)})</span>'
    return text


def _html(experiment: str, meta: dict[str, str], sections: list[tuple[str, Any]],
          provenance: list[dict[str, str]]) -> str:
    esc = html.escape
    body = [f"<h1>zslbench report — experiment <code>{esc(experiment)}</code></h1><ul>"]
    body += [f"<li><b>{esc(k)}</b>: {esc(v)}</li>" for k, v in meta.items()]
    body.append("</ul>")
    for title, content in sections:
        body.append(f"<h2>{esc(title)}</h2>")
        if isinstance(content, Table):
            body.append(table_html(content))
            body.append('<p class="notes">Runs: ' + ", ".join(f"<code>{esc(r)}</code>" for r in content.run_ids())
                        + "</p>")
        elif isinstance(content, Path):
            data = base64.b64encode(content.read_bytes()).decode()
            body.append(f'<img alt="{esc(title)}" src="data:image/png;base64,{data}">')
        else:
            body.append(f"<p>{esc(str(content))}</p>")
    body.append("<h2>Provenance of every run</h2>")
    if provenance:
        header = list(provenance[0])
        body.append("<table><thead><tr>" + "".join(f"<th>{esc(h)}</th>" for h in header) + "</tr></thead><tbody>")
        body += ["<tr>" + "".join(f"<td><code>{esc(v)}</code></td>" for v in row.values()) + "</tr>"
                 for row in provenance]
        body.append("</tbody></table>")
    return (f'<!DOCTYPE html><html lang="en"><head><meta charset="utf-8"><title>zslbench report — {esc(experiment)}'
            f"</title><style>{_CSS}</style></head><body>{''.join(body)}</body></html>\n")


__all__ = ["table_html", "write_report"]
