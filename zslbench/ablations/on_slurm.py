"""``zslbench ablate --launcher slurm``: the grid's cells as one SLURM job array under one MLflow parent run.

The grid is planned and checked exactly as on this machine (:func:`~zslbench.ablations.grid.plan`; finished
cells are reused), SLURM is asked whether it takes the job before the parent run is created, and each cell
left to run becomes one array task: a :class:`~zslbench.launch.RunJob` of the cell's config, a child of the
parent run with the cell's tags. Once every task is done the parent run is closed and the ablation table
printed; a detached grid (``--no-wait``) is finished by ``zslbench jobs ID --collect``.
"""

from __future__ import annotations

from typing import Optional

from zslbench.ablations.grid import (HASH_TAG, ROW_TAG, AblateOptions, Cell, _data_for, _parent_tracker,
                                     _reuse_finished, cell_runs_tags, plan, print_ablation_table)
from zslbench.launch import Launch, LaunchRequest, RunJob, Watcher, finish_parent, follow, prepare, results, submit


def launch_grid(opts: AblateOptions, request: LaunchRequest, console) -> Optional[list[Cell]]:
    """Submit the cells still to run; wait and print the table (None when detached)."""
    from zslbench.ablations.grid import run_ablation_grid

    from zslbench.engine.preflight import prepare_weights

    cells = plan(opts)
    settings = prepare(cells[0].cfg, request.options, "zslbench-ablate")
    data_cache: dict = {}
    for cell in cells:  # data and weights on the shared filesystem before the store is touched or a job starts
        _data_for(cell.cfg, data_cache, console)
        prepare_weights(cell.cfg, console)
    for cell in cells:
        _reuse_finished(cell)
    todo = [c for c in cells if not c.reused]
    if not todo:  # nothing for the cluster: the local path reports the finished grid
        return run_ablation_grid(opts, console)
    console.print(f"ablation grid: {len(cells)} cells; {len(cells) - len(todo)} already finished, {len(todo)} to run "
                  "on SLURM", highlight=False)
    parent = _parent_tracker(cells, opts)
    jobs = [RunJob(label=f"{cell.row} · seed {cell.seed}", cfg=cell.cfg, parent_run_id=parent.run_id,
                   tags={HASH_TAG: cell.hash, ROW_TAG: cell.row}) for cell in todo]
    options = {**vars(opts), "data_root": None if opts.data_root is None else str(opts.data_root)}
    track = cells[0].cfg.track
    try:
        launch = submit("ablate", jobs, settings, experiment=track.experiment, tracking_uri=track.uri,
                        parent_run_id=parent.run_id,
                        details={"options": options, "todo": [[c.row, c.seed] for c in todo]})
    except BaseException:
        parent.finish("FAILED")
        raise
    followed = follow(launch, settings, request.wait, console, parent=parent)
    if followed is None:  # detached: the parent run stays RUNNING until the grid is collected
        return None
    return finish_grid(launch, *followed, console, parent=parent)


def finish_grid(launch: Launch, watcher: Watcher, states, console, parent=None) -> list[Cell]:
    """The finished launch's cells (each job's result, the reused cells found again), the parent run closed,
    and the ablation table."""
    from pathlib import Path

    options = dict(launch.details["options"])
    if options.get("data_root") is not None:
        options["data_root"] = Path(options["data_root"])
    cells = plan(AblateOptions(**options))
    try:
        values = results(watcher, states)
    except BaseException:
        finish_parent(launch, ok=False, tracker=parent)
        raise
    by_cell = {(row, seed): value for (row, seed), value in zip(launch.details["todo"], values)}
    for cell in cells:
        done = by_cell.get((cell.row, cell.seed))
        if done is not None:
            cell.run_id, cell.final = done.run_id, done.final
        else:
            _reuse_finished(cell)
    finish_parent(launch, ok=True, tracker=parent, tags=cell_runs_tags(cells))
    print_ablation_table(cells, console, launch.parent_run_id)
    return cells


__all__ = ["finish_grid", "launch_grid"]
