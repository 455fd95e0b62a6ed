"""``zslbench ablate``: the paper's ablation table (SVIP.md §9) over seeds, under one MLflow parent run.

The grid's rows are the model's paper ablation rows (for SVIP: the baseline and each single ablation,
SVIP.md §9; see :func:`zslbench.ablations.paper_rows`) and the full model (``--only`` narrows the rows; the full model is always run, it is what Δ compares to).
Every cell (row × seed) is one child run tagged with ``zslbench.config_hash``: the sha256 of the
resolved config without its seed and tracking fields. A cell whose hash and seed already have a
FINISHED run in the experiment is not trained again — its run is reused — so re-running the same
command only fills in what is missing, and a grid that was interrupted continues where it stopped.

    >>> [cell.row for cell in plan(AblateOptions(preset="tiny"))]
    ['baseline', 'no_patch_selection', 'no_replacement', 'no_js', 'no_word_init', 'full']
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Optional, Sequence

import yaml

from zslbench.ablations import paper_rows, patches_for
from zslbench.config import Config, Request, config_hash, resolve_request
from zslbench.engine.summary import delta, pm
from zslbench.metrics import REPORTED_METRICS
from zslbench.tracking.tags import CELL_RUNS_TAG

FULL = "full"
HASH_TAG = "zslbench.config_hash"
GRID_TAG = "zslbench.grid_hash"
#: The longest cell list kept as a tag (MLflow's tag limit is larger); bigger grids are read from their children.
CELL_RUNS_MAX = 5000
ROW_TAG = "zslbench.ablation_row"


@dataclass
class AblateOptions:
    """The options of ``zslbench ablate``."""

    model: str = "svip"
    dataset: str = "synth"
    only: list[str] = field(default_factory=list)
    seeds: list[int] = field(default_factory=list)
    preset: Optional[str] = None
    overrides: list[str] = field(default_factory=list)
    experiment: Optional[str] = None
    tracking_uri: Optional[str] = None
    data_root: Optional[Path] = None


@dataclass
class Cell:
    """One row × seed of the grid and, once run (or found), its final metrics."""

    row: str
    seed: int
    cfg: Config
    hash: str
    run_id: Optional[str] = None
    final: dict[str, Any] = field(default_factory=dict)
    reused: bool = False


def grid_rows(only: Sequence[str], model: str) -> list[str]:
    """The rows to run: the paper's set (or ``--only``), with the full model last."""
    if not only:
        return [*paper_rows(model), FULL]
    rows: list[str] = []
    for name in only:
        if name != FULL:
            patches_for([name], model)  # validates the name (unknown → the list of valid ones)
        if name not in rows:
            rows.append(name)
    return [r for r in rows if r != FULL] + [FULL]


def cell_config(opts: AblateOptions, row: str, seed: int) -> Config:
    """The resolved config of one cell: the command's request with the row's ablation and the seed."""
    return resolve_request(Request(
        model=opts.model, dataset=opts.dataset, preset=opts.preset, ablations=() if row == FULL else (row,),
        overrides=tuple(opts.overrides), data_root=None if opts.data_root is None else str(opts.data_root),
        seed=seed, experiment=opts.experiment, tracking_uri=opts.tracking_uri))


def plan(opts: AblateOptions) -> list[Cell]:
    """Every cell of the grid, rows outer, seeds inner."""
    seeds = list(dict.fromkeys(opts.seeds)) or [0]
    cells = []
    for row in grid_rows(opts.only, opts.model):
        for seed in seeds:
            cfg = cell_config(opts, row, seed)
            cells.append(Cell(row, seed, cfg, config_hash(cfg)))
    return cells


def grid_hash(cells: Sequence[Cell]) -> str:
    return hashlib.sha256(json.dumps(sorted([c.row, c.seed, c.hash] for c in cells)).encode()).hexdigest()


def run_ablation_grid(opts: AblateOptions, console) -> list[Cell]:
    """Run (or reuse) every cell under one parent run, then print the ablation table."""
    from zslbench.engine.preflight import prepare_weights
    from zslbench.engine.runner import run_one
    from zslbench.tracking import check_reachable, resolve_tracking_uri

    cells = plan(opts)
    track = cells[0].cfg.track
    if track.enabled:
        check_reachable(resolve_tracking_uri(track.uri))
    data_cache: dict[str, Any] = {}
    for cell in cells:  # data, word vectors and weights of every cell settled before the store is touched
        _data_for(cell.cfg, data_cache, console)
        prepare_weights(cell.cfg, console)
    if track.enabled:
        for cell in cells:
            _reuse_finished(cell)
    todo = [c for c in cells if not c.reused]
    console.print(f"ablation grid: {len(cells)} cells ({len({c.row for c in cells})} rows × "
                  f"{len({c.seed for c in cells})} seeds); {len(cells) - len(todo)} already finished, "
                  f"{len(todo)} to run", highlight=False)
    parent = _parent_tracker(cells, opts)
    status = "KILLED"
    try:
        for index, cell in enumerate(todo, 1):
            console.print(f"[{index}/{len(todo)}] {cell.row} · seed {cell.seed}", highlight=False)
            data = _data_for(cell.cfg, data_cache, console)
            result = run_one(cell.cfg, console, parent_run_id=parent.run_id, data=data,
                             tags={HASH_TAG: cell.hash, ROW_TAG: cell.row})
            cell.run_id, cell.final = result.run_id, result.final
        parent.set_tags(cell_runs_tags(cells))
        status = "FINISHED"
    finally:
        parent.finish(status)
    print_ablation_table(cells, console, parent.run_id)
    return cells


def cell_runs_tags(cells: Sequence[Cell]) -> dict[str, str]:
    """The grid's record of its cells' runs, for its parent run (reused cells are children of other parents: the
    grid names them all); none for a list longer than :data:`CELL_RUNS_MAX`."""
    cells_tag = ",".join(c.run_id for c in cells if c.run_id)
    return {CELL_RUNS_TAG: cells_tag} if len(cells_tag) <= CELL_RUNS_MAX else {}


def _data_for(cfg: Config, cache: dict[str, Any], console):
    """Data depends on the data section and the seed (random word vectors), not on the ablation."""
    from zslbench.engine.run_data import load_run_data

    key = yaml.safe_dump({"data": cfg.to_dict()["data"], "seed": cfg.train.seed, "model": cfg.model.name})
    if key not in cache:
        cache[key] = load_run_data(cfg, console)
    return cache[key]


def _reuse_finished(cell: Cell) -> None:
    from zslbench.tracking import find_finished_run, find_runs

    track = cell.cfg.track
    run_id = find_finished_run(track.experiment, {HASH_TAG: cell.hash, "seed": str(cell.seed)},
                               tracking_uri=track.uri)
    if run_id is None:
        return
    runs = find_runs(track.experiment, f"attributes.run_id = '{run_id}'", tracking_uri=track.uri, max_results=1)
    metrics = runs[0].data.metrics if runs else {}
    cell.final = {k: metrics[f"final_{k}"] for k in REPORTED_METRICS if f"final_{k}" in metrics}
    cell.run_id, cell.reused = run_id, True


def _parent_tracker(cells: Sequence[Cell], opts: AblateOptions):
    """The grid's parent run: the one an earlier run of the same grid created, else a new one."""
    from zslbench.tracking import NullTracker, find_runs, open_tracker

    track = cells[0].cfg.track
    if not track.enabled:
        return NullTracker()
    identity = grid_hash(cells)
    found = find_runs(track.experiment, f"tags.`{GRID_TAG}` = '{identity}'", tracking_uri=track.uri, max_results=1)
    if found:
        return open_tracker(track, resume_run_id=found[0].info.run_id)
    full = next(c for c in cells if c.row == FULL)
    tags = {GRID_TAG: identity, "zslbench.role": "ablation-grid", "model": opts.model, "dataset": opts.dataset,
            "ablation_rows": ",".join(dict.fromkeys(c.row for c in cells)),
            "seeds": ",".join(str(s) for s in dict.fromkeys(c.seed for c in cells))}
    params = {k: v for k, v in full.cfg.flat().items() if k not in ("train.seed",)}
    return open_tracker(track, run_name=f"ablate-{opts.model}-{opts.dataset}", tags=tags, params=params)


def ablation_summary(cells: Sequence[Cell]) -> list[dict[str, Any]]:
    """One row per ablation: mean/std/n of each metric and Δ (mean) vs the full model."""
    from zslbench.metrics import aggregate_seeds

    rows = []
    for row in dict.fromkeys(c.row for c in cells):
        finals = [c.final for c in cells if c.row == row and c.final]
        stats = aggregate_seeds(finals) if finals else {}
        rows.append({"row": row, "n": len(finals), **{k: stats.get(k) for k in REPORTED_METRICS}})
    full = next((r for r in rows if r["row"] == FULL), None)
    for r in rows:
        for key in REPORTED_METRICS:
            ok = full is not None and r[key] is not None and full[key] is not None
            r[f"delta_{key}"] = r[key][0] - full[key][0] if ok else None
    return rows


def _label(row: str) -> str:
    return "full model" if row == FULL else row


def print_ablation_table(cells: Sequence[Cell], console, parent_run_id: Optional[str] = None) -> None:
    """Rows = ablations; T1/U/S/H/AUSUC as mean ± std (%) over seeds; Δ T1 and Δ H vs the full model."""
    from rich.table import Table

    summary = ablation_summary(cells)
    full = next(c for c in cells if c.row == FULL).cfg
    reused = sum(c.reused for c in cells)
    table = Table(title=f"Ablations of {full.model.name} on {full.data.dataset}",
                  caption=f"mean ± std over seeds (%), Δ vs the full model; {reused} of {len(cells)} cells reused"
                  + (f"; MLflow parent run {parent_run_id}" if parent_run_id else ""))
    table.add_column("ablation")
    table.add_column("n", justify="right")
    for key in REPORTED_METRICS:
        table.add_column(REPORTED_METRICS[key], justify="right")
    table.add_column("Δ T1", justify="right")
    table.add_column("Δ H", justify="right")
    for r in summary:
        table.add_row(_label(r["row"]), str(r["n"]), *(pm(r[k]) for k in REPORTED_METRICS),
                      delta(r["delta_zsl_t1"]), delta(r["delta_gzsl_h"]),
                      style="bold" if r["row"] == FULL else None)
    console.print(table)


__all__ = ["AblateOptions", "Cell", "ablation_summary", "grid_rows", "plan", "print_ablation_table",
           "run_ablation_grid"]
