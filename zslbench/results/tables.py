"""Paper-style tables from aggregated runs: main, ablation and sensitivity; LaTeX, Markdown, CSV.

A table is first built as a format-free :class:`Table` (column groups, blocks of rows, cells with
mean ± std, rank, † and Δ, footnotes), then rendered by :mod:`zslbench.results.render` (LaTeX, Markdown, CSV).

Percentages have one decimal. Reported numbers (``reported.csv``: PROTOCOL.md §5, SVIP.md §9)
form their own block, are never ranked against measured rows and are marked as test-selected by
their authors.

Example::

    >>> cell = Cell(0.7512, 0.0041, 3)
    >>> cell.mean, cell.n
    (0.7512, 3)
"""

from __future__ import annotations

import io
import math
from dataclasses import dataclass, field
from importlib import resources
from typing import Any, Iterable, Sequence

import polars as pl

from zslbench.catalogue import (ABLATIONS, MODELS, ablation_families, display_name, key_label, paper_ablations,
                                 sensitivity_spaces, swept_key)
from zslbench.core.errors import UserError, unknown_name
from zslbench.metrics import REPORTED_METRICS
from zslbench.results.frames import (TABLE_METRICS, aggregate, check_protocols, method_label, mode_sentence,
                                     policy_sentence, warn)

TABLE_KINDS = ("main", "ablation", "sensitivity")
METRIC_HEADERS = REPORTED_METRICS
#: Metrics whose value depends on γ (test-selected when γ was chosen on the test set).
GAMMA_METRICS = ("gzsl_u", "gzsl_s", "gzsl_h")
DATASET_ORDER = ("synth", "CUB", "AWA2", "SUN")
REAL_DATASETS = ("CUB", "AWA2", "SUN")
#: The row of the unablated model in an ablation table.
FULL = "full"
REPORTED_NOTE = ("Reported rows are the authors' published numbers, selected on the test set by their authors "
                 "(oracle epoch; γ built in or tuned on test); they are not ranked against measured rows.")
ORACLE_NOTE = "† test-selected: chosen on the test set (oracle epoch or γ); optimistic."


# --------------------------------------------------------------------------- the table model
@dataclass
class Cell:
    """One number: fractions in [0, 1] (``None`` = not available)."""

    mean: float | None
    std: float | None = None
    n: int = 0
    oracle: bool = False
    rank: int | None = None  # 1 = best, 2 = second in its column (measured rows only)
    delta: float | None = None  # difference to a reference row (fraction), shown as (+x.x)
    seeds: tuple[int, ...] = ()  # the seeds averaged (a Δ compares cells of the same seeds only)


@dataclass
class Row:
    label: str
    cells: dict[tuple[str, str], Cell]  # (group, column) → cell
    policy: str = ""  # "gamma/space/selection" for CSV
    run_ids: list[str] = field(default_factory=list)
    key: str = ""  # e.g. the ablation row ("full", "no_js"…)
    ranked: bool = True  # False for rows under another policy than the table's: not comparable


@dataclass
class Block:
    rows: list[Row]
    title: str = ""  # shown as a separating row; "" = no title row
    ranked: bool = True  # whether best/second are marked in this block


@dataclass
class Table:
    kind: str
    caption: str
    stub: str  # header of the label column
    groups: list[tuple[str, list[str]]]  # (group name, [metric keys])
    blocks: list[Block]
    notes: list[str] = field(default_factory=list)
    label: str = ""  # LaTeX \label

    def columns(self) -> list[tuple[str, str]]:
        return [(group, column) for group, columns in self.groups for column in columns]

    def run_ids(self) -> list[str]:
        return [run for block in self.blocks for row in block.rows for run in row.run_ids]


# --------------------------------------------------------------------------- building
def build_table(kind: str, frame: pl.DataFrame, *, param: str | None = None, reported: bool = False,
                protocol: str | None = None, experiment: str = "") -> Table:
    """Build table ``kind`` (main | ablation | sensitivity) from a runs frame (:func:`load_runs`)."""
    if kind not in TABLE_KINDS:
        raise unknown_name("table", kind, TABLE_KINDS)
    frame = check_protocols(frame, protocol)
    if kind == "main":
        return main_table(frame, reported=reported, experiment=experiment)
    if kind == "ablation":
        return ablation_table(frame, reported=reported, experiment=experiment)
    if param is None:
        names = ", ".join(space.name for space in sensitivity_spaces())
        raise UserError(f"table sensitivity needs a parameter: one of {names}")
    return sensitivity_table(frame, param, experiment=experiment)


def main_table(frame: pl.DataFrame, reported: bool = False, experiment: str = "") -> Table:
    """Rows = methods (model + ablations), column groups per dataset with T1 | U S H | AUSUC."""
    rows_elsewhere = _ablation_table_rows()  # belong to the ablation table, not to the main table's methods
    if "ablations" in frame.columns and rows_elsewhere:
        frame = frame.filter(~pl.col("ablations").str.contains("|".join(rows_elsewhere)))
    replacing = [a.name for a in ABLATIONS.registered() if a.exclusive]  # `--ablate baseline` *is* a ViT run
    if "ablations" in frame.columns and replacing:
        frame = frame.with_columns(pl.when(pl.col("ablations").is_in(replacing)).then(pl.lit("none"))
                                   .otherwise(pl.col("ablations")).alias("ablations"))
    grouped = aggregate(frame)
    if grouped.is_empty():
        raise UserError(f"experiment {experiment!r} has no method runs for the main table (only paper ablations); "
                        "see `zslbench table ablation`")
    datasets = _datasets(grouped["dataset_label"].to_list())
    reported_rows = _reported("main") if reported else []
    if reported_rows:
        datasets = _datasets(datasets + [r["dataset"] for r in reported_rows])
    metrics = list(TABLE_METRICS)
    labels, notes = _row_labels(grouped, lambda r: method_label(r["model"], r["ablations"]))
    order = sorted(range(grouped.height), key=lambda i: _method_key(grouped.row(i, named=True)))
    rows = _rows(grouped, labels, order, metrics)
    blocks = [Block(rows)]
    if reported_rows:
        blocks.append(Block(_reported_block_rows(reported_rows, "method"),
                            title="Reported by the authors (test-selected)", ranked=False))
    table = Table("main", _caption("Main results", experiment), "Method",
                  [(d, metrics) for d in datasets], blocks, label="tab:main")
    _finish(table, grouped, notes, reported=bool(reported_rows))
    return table


def ablation_table(frame: pl.DataFrame, reported: bool = False, experiment: str = "") -> Table:
    """The paper's ablation rows of each model that has them (catalogue order), T1 and H per dataset,
    Δ (points) vs the full model; one block per such model when there are several."""
    found = [_ablation_row(m, a) for m, a in zip(frame["model"].to_list(), frame["ablations"].to_list())]
    keyed = frame.with_columns(pl.Series("ablation_family", [f for f, _ in found], dtype=pl.Utf8),
                               pl.Series("ablation_row", [r for _, r in found], dtype=pl.Utf8)) \
        .filter(pl.col("ablation_row") != "")
    if keyed.is_empty():
        raise UserError(f"experiment {experiment!r} has no runs of the paper's ablation rows; "
                        "run `zslbench ablate` first")
    # a model-replacing row (`--ablate baseline`) and a plain run of that model (`--model vit`) are one row
    replacing = [a.name for a in ABLATIONS.registered() if a.exclusive]
    keyed = keyed.with_columns(pl.when(pl.col("ablation_row").is_in(replacing)).then(pl.col("ablation_row"))
                               .otherwise(pl.col("ablations")).alias("ablations"))
    grouped = aggregate(keyed, extra=["ablation_family", "ablation_row"])
    datasets = _datasets(grouped["dataset_label"].to_list())
    metrics = ["zsl_t1", "gzsl_h"]
    families = [f for f in ablation_families() if f in set(grouped["ablation_family"].to_list())]
    labels, notes = _row_labels(grouped, lambda r: _ablation_row_labels(r["ablation_family"])[r["ablation_row"]])
    blocks = []
    other_seeds = False
    for family in families:
        order_of = {row: i for i, row in enumerate(_ablation_row_labels(family))}
        mine = [i for i in range(grouped.height) if grouped[i, "ablation_family"] == family]
        order = sorted(mine, key=lambda i: (order_of[grouped[i, "ablation_row"]], labels[i]))
        rows = _rows(grouped, labels, order, metrics, key_column="ablation_row")
        other_seeds = _mark_deltas(rows, datasets, metrics, _majority_policy(grouped)) or other_seeds
        blocks.append(Block(rows, title=display_name(family) if len(families) > 1 else ""))
    reported_rows = _reported("ablation") if reported and "svip" in families else []
    if reported_rows:
        datasets = _datasets(datasets + [r["dataset"] for r in reported_rows])
        paper = _reported_block_rows(reported_rows, "method", _ablation_row_labels("svip"))
        blocks.append(Block(paper, title="Reported in the SVIP paper (test-selected)", ranked=False))
    shown = " and ".join(display_name(f) for f in families)
    table = Table("ablation", _caption(f"Ablation of {shown}'s components", experiment), "Variant",
                  [(d, metrics) for d in datasets], blocks, label="tab:ablation")
    notes = notes + [f"Δ (in parentheses): difference to full {shown} in percentage points, same dataset, policy "
                     "and seeds."]
    if other_seeds:
        notes.append(f"No Δ where a row's seeds differ from full {shown}'s (run them in one `zslbench ablate` grid).")
    _finish(table, grouped, notes, reported=bool(reported_rows))
    return table


def _mark_deltas(rows: list[Row], datasets: Sequence[str], metrics: Sequence[str], majority: str) -> bool:
    """Δ of every row vs the full model's row of the same dataset, policy and seeds; returns whether a Δ was
    left out because the seeds differ."""
    left_out = False
    for dataset in datasets:
        reference = next((r for r in rows if r.key == FULL and r.policy == majority
                          and any(g == dataset for g, _ in r.cells)), None)
        if reference is None:
            continue
        for row in rows:
            if row is reference or row.policy != majority:
                continue
            for metric in metrics:
                cell, ref = row.cells.get((dataset, metric)), reference.cells.get((dataset, metric))
                if cell is None or ref is None or cell.mean is None or ref.mean is None:
                    continue
                if cell.seeds != ref.seeds:
                    left_out = True
                    continue
                cell.delta = cell.mean - ref.mean
    return left_out


def _majority_policy(grouped: pl.DataFrame) -> str:
    policies = [_policy(r) for r in grouped.to_dicts()]
    return max(sorted(set(policies)), key=lambda p: (policies.count(p), p == "none/logit/final"))


def sensitivity_table(frame: pl.DataFrame, param: str, experiment: str = "") -> Table:
    """Metric per value of one hyperparameter (rows = values; columns T1/U/S/H/AUSUC mean ± std)."""
    column = sensitivity_column(param)
    if column not in frame.columns:
        raise UserError(f"no run of experiment {experiment!r} has the parameter {column}; "
                        f"run `zslbench sweep {param}` first")
    runs = frame.filter(pl.col(column).is_not_null() & (pl.col("ablations") == "none"))
    if runs.is_empty() or runs[column].n_unique() < 2:
        raise UserError(f"the runs of experiment {experiment!r} do not vary {column} ({param}); "
                        f"run `zslbench sweep {param}` first")
    grouped = aggregate(runs)
    if column not in grouped.columns:  # constant within every method: group by it explicitly
        grouped = aggregate(runs, by=[*_identity(runs), column])
    grouped = grouped.with_columns(pl.col(column).cast(pl.Float64, strict=False).alias("_value"))
    others = [h for h in grouped["hyperparameters"].to_list() if h]
    datasets = _datasets(grouped["dataset_label"].to_list())
    metrics = list(TABLE_METRICS)

    def label(row: dict[str, Any]) -> str:
        rest = ", ".join(p for p in row["hyperparameters"].split(", ") if p and not p.startswith(column + "="))
        name = method_label(row["model"], row["ablations"]) if grouped["model"].n_unique() > 1 else ""
        extra = ", ".join(x for x in (name, rest) if x)
        return _format_value(row[column]) + (f" ({extra})" if extra else "")

    labels, notes = _row_labels(grouped, label)
    order = sorted(range(grouped.height), key=lambda i: (_nan_last(grouped[i, "_value"]), labels[i]))
    rows = _rows(grouped, labels, order, metrics)
    pretty = key_label(column)
    table = Table("sensitivity", _caption(f"Sensitivity to {pretty} ({column})", experiment), pretty,
                  [(d, metrics) for d in datasets], [Block(rows)], label=f"tab:sensitivity-{param}")
    if any(p for h in others for p in h.split(", ") if p and not p.startswith(column + "=")):
        notes = notes + ["Other hyperparameters vary between these runs too; they are named in the row labels."]
    _finish(table, grouped, notes)
    return table


def sensitivity_column(param: str) -> str:
    """The config param of a sensitivity name (``temperature`` → ``model.logit_scale``); dotted names pass."""
    return swept_key(param)


# --------------------------------------------------------------------------- building helpers
def _identity(frame: pl.DataFrame) -> list[str]:
    from zslbench.results.frames import IDENTITY_KEYS

    return [k for k in IDENTITY_KEYS if k in frame.columns]


def _caption(title: str, experiment: str) -> str:
    return f"{title} (experiment {experiment})" if experiment else title


def _datasets(names: Iterable[str]) -> list[str]:
    unique = list(dict.fromkeys(names))

    def key(name: str) -> tuple[int, str]:
        base = name.split(" (")[0]
        return (DATASET_ORDER.index(base) if base in DATASET_ORDER else len(DATASET_ORDER), name)

    return sorted(unique, key=key)


def _method_key(row: dict[str, Any]) -> tuple:
    model = row["model"]
    model_rank = MODELS.get(model).table_rank if model in MODELS else -1  # unknown models first
    return (model_rank, model, row["ablations"] != "none", row["ablations"], row.get("hyperparameters", ""))


def _ablation_table_rows() -> list[str]:
    """The ablations that are rows of a paper ablation table without replacing the model."""
    return [a.name for family in ablation_families() for a in paper_ablations(family) if not a.exclusive]


def _ablation_row_labels(family: str) -> dict[str, str]:
    """Row key → label of ``family``'s ablation table, in the paper's order, the full model last."""
    return {**{a.name: a.label or a.name for a in paper_ablations(family)}, FULL: f"Full {display_name(family)}"}


def _ablation_row(model: str, ablations: str) -> tuple[str, str]:
    """(model whose ablation table the run belongs to, its row there), or ("", "") for none."""
    for family in ablation_families():
        for ablation in paper_ablations(family):
            replaced_by = ablation.patch.get("model.name")
            if ablation.exclusive and model == replaced_by and ablations in ("none", ablation.name):
                return family, ablation.name  # e.g. `--model vit` is SVIP's baseline row
        if model == family and ablations == "none":
            return family, FULL
        if model == family and ablations in _ablation_table_rows():
            return family, ablations
    return "", ""


def _policy(row: dict[str, Any]) -> str:
    """The row's reporting policy: ``gamma/space/selection``, or ``paper:<mode>`` under a paper mode."""
    mode = row.get("mode") or "standard"
    if mode != "standard":
        return f"paper:{mode}"
    return f"{row['gamma_policy']}/{row['gamma_space']}/{row['selection']}"


def _row_labels(grouped: pl.DataFrame, base: Any, disambiguate: bool = True) -> tuple[list[str], list[str]]:
    """Row labels (one per aggregated row; rows of one label merge across datasets) and footnotes.

    Rows with the same base label on the same dataset that differ in hyperparameters get the
    differing ones in parentheses; rows whose policy is not the table's most common one get it in
    brackets, plus a footnote and a stderr warning. Any remaining clash gets the first run id.
    """
    records = grouped.to_dicts()
    policies = [_policy(r) for r in records]
    majority = _majority_policy(grouped)
    bases = [base(r) for r in records]
    labels = list(bases)
    if disambiguate:
        params = [_parse_hyperparameters(r.get("hyperparameters", "")) | _fidelity(r) for r in records]
        for i, record in enumerate(records):
            peers = [j for j, other in enumerate(records)
                     if bases[j] == bases[i] and other["dataset_label"] == record["dataset_label"]
                     and policies[j] == policies[i]]
            keys = sorted(k for k in params[i] if len({params[j].get(k) for j in peers}) > 1)
            if keys:
                labels[i] += " (" + ", ".join(f"{_param_name(k)}={_format_value(params[i][k])}" for k in keys) + ")"
    majority_space = majority.split("/")[1] if "/" in majority else ""
    for i, record in enumerate(records):
        if policies[i] != majority and policies[i].startswith("paper:"):
            labels[i] += f" [paper mode {policies[i].split(':', 1)[1]}]"
        elif policies[i] != majority:
            labels[i] += f" [γ {record['gamma_policy']}, epoch {record['selection']}" + \
                (f", {record['gamma_space']}" if record["gamma_space"] != majority_space else "") + "]"
    random_init = [i for i, r in enumerate(records) if r.get("dataset") in REAL_DATASETS
                   and "random init" in str(r.get("weights") or "")]
    for i in random_init:
        labels[i] += " ‡"
    seen: set[tuple[str, str]] = set()
    for i, record in enumerate(records):
        if (labels[i], record["dataset_label"]) in seen:
            labels[i] += f" [run {record['run_ids'][0][:8]}]"
        seen.add((labels[i], record["dataset_label"]))
    if majority.startswith("paper:"):
        notes = [mode_sentence(majority.split(":", 1)[1])]
    else:
        gamma, space, selection = majority.split("/")
        notes = [policy_sentence(gamma, space, selection)]
    if random_init:
        notes.append("‡ random init: the backbone was not pretrained (model.pretrained=none), unlike the papers.")
    mixed = sorted(set(policies) - {majority})
    if mixed:
        warn(f"this table mixes γ/selection policies (most rows: {majority}; others: {', '.join(mixed)}); "
             "rows with another policy are labelled in brackets and were never averaged with the others")
        notes.append("Rows with a bracketed policy use another γ/epoch-selection policy than the other rows: "
                     "never averaged with them and not ranked against them; compare with care.")
    return labels, notes


def _param_name(key: str) -> str:
    """How a row label names a config key: its sweep name where one sweeps it (``model.logit_scale`` →
    ``temperature``, as on the command line), else its last part (``model.keep`` → ``keep``)."""
    for space in sensitivity_spaces():
        if space.key == key:
            return space.name
    return key.split(".")[-1]


def _fidelity(record: dict[str, Any]) -> dict[str, str]:
    """The fidelity settings that split rows (weights, precision), for labels of rows that differ in them."""
    return {key: str(record[key]) for key in ("weights", "precision") if record.get(key)}


def _parse_hyperparameters(text: str) -> dict[str, str]:
    pairs = [part.split("=", 1) for part in text.split(", ") if "=" in part]
    return {key: value for key, value in pairs}


def _rows(grouped: pl.DataFrame, labels: list[str], order: list[int], metrics: Sequence[str],
          key_column: str = "") -> list[Row]:
    """Merge aggregated rows of the same label across datasets into table rows."""
    merged: dict[str, Row] = {}
    for index in order:
        record = grouped.row(index, named=True)
        label = labels[index]
        row = merged.setdefault(label, Row(label, {}, _policy(record), key=record.get(key_column, "") if key_column else ""))
        row.run_ids.extend(record["run_ids"])
        for metric in metrics:
            mean = record.get(f"{metric}_mean")
            if mean is None or (isinstance(mean, float) and math.isnan(mean)):
                continue
            oracle = record["selection"] == "oracle" or (record["gamma_policy"] == "oracle" and metric in GAMMA_METRICS) \
                or (record.get("mode") or "standard") != "standard"
            row.cells[(record["dataset_label"], metric)] = Cell(mean, record.get(f"{metric}_std"),
                                                                int(record.get(f"{metric}_n") or 0), oracle,
                                                                seeds=tuple(record.get("seeds") or ()))
    return list(merged.values())


def _nan_last(value: float | None) -> float:
    return math.inf if value is None or math.isnan(value) else value


def _format_value(value: Any) -> str:
    try:
        number = float(value)
    except (TypeError, ValueError):
        return str(value)
    return str(int(number)) if number.is_integer() else f"{number:.3g}"


def _finish(table: Table, grouped: pl.DataFrame, notes: list[str], reported: bool = False) -> None:
    """Rank measured rows per column, add the footnotes († and reported caveats)."""
    columns = table.columns()
    majority = _majority_policy(grouped)
    for block in table.blocks:
        for row in block.rows:
            row.ranked = row.ranked and (not block.ranked or row.policy == majority)
        if block.ranked:
            rank_block(block, columns)
    table.notes = list(notes)
    if any(cell.oracle for block in table.blocks for row in block.rows for cell in row.cells.values()):
        table.notes.append(ORACLE_NOTE)
    if any(cell.n > 1 for block in table.blocks for row in block.rows for cell in row.cells.values()):
        seeds = sorted({c.n for b in table.blocks for r in b.rows for c in r.cells.values() if c.n})
        table.notes.append(f"Mean ± sample std over seeds (n = {', '.join(map(str, seeds))}).")
    if majority.startswith("paper:"):
        table.notes.append("T1: ZSL top-1 on unseen classes; U, S, H: GZSL accuracies and their harmonic mean, each "
                           "computed as the paper's code computes it (above); in %.")
    else:
        table.notes.append("T1: ZSL per-class top-1 on unseen classes; U, S, H: GZSL per-class accuracies and their "
                           "harmonic mean; AUSUC: area under the seen-unseen curve (calibration-free); in %.")
    if reported:
        table.notes.append(REPORTED_NOTE)


def rank_block(block: Block, columns: Sequence[tuple[str, str]]) -> None:
    """Mark the best (1) and second-best (2) mean per column among the block's ranked rows, comparing
    one-decimal percentages (ties share a rank, as they would look equal in print)."""
    for column in columns:
        cells = [row.cells[column] for row in block.rows
                 if row.ranked and column in row.cells and row.cells[column].mean is not None]
        values = sorted({round(100 * c.mean, 1) for c in cells}, reverse=True)
        if len(cells) < 2:
            continue
        for cell in cells:
            shown = round(100 * cell.mean, 1)
            cell.rank = 1 if shown == values[0] else (2 if len(values) > 1 and shown == values[1] else None)


# --------------------------------------------------------------------------- reported numbers
def reported_numbers() -> pl.DataFrame:
    """The published numbers (%) with their source and caveat (PROTOCOL.md §5, SVIP.md §9)."""
    text = resources.files("zslbench.results").joinpath("reported.csv").read_text(encoding="utf-8")
    return pl.read_csv(io.StringIO(text), schema_overrides={m: pl.Float64 for m in TABLE_METRICS if m != "ausuc"})


def _reported(table: str) -> list[dict[str, Any]]:
    return reported_numbers().filter(pl.col("table") == table).to_dicts()


def _reported_block_rows(records: list[dict[str, Any]], key: str, labels: dict[str, str] | None = None) -> list[Row]:
    rows: dict[str, Row] = {}
    for record in records:
        label = (labels or {}).get(record[key], record[key])
        row = rows.setdefault(label, Row(label, {}, "reported (test-selected)"))
        for metric in TABLE_METRICS:
            value = record.get(metric)
            if value is not None and not (isinstance(value, float) and math.isnan(value)):
                row.cells[(record["dataset"], metric)] = Cell(value / 100.0)
    return list(rows.values())


__all__ = [
    "TABLE_KINDS", "Block", "Cell", "Row", "Table", "ablation_table", "build_table", "main_table",
    "rank_block", "reported_numbers", "sensitivity_column", "sensitivity_table",
]
