"""Which runs a table, plot or report uses: results are selected, never pooled by accident.

An experiment holds **result runs** (one trained model each) and **containers**: the parent runs of
``zslbench ablate`` (role ``ablation-grid``) and ``zslbench sweep`` (role ``sweep``), which group result
runs and have no results of their own. Containers are never table rows; they say which results belong
together. A container's cells are its children plus the runs it lists (``zslbench.cell_runs``: an
ablation grid reuses finished cells of earlier grids).

Explicit choices (``--parent RUN_ID``, ``--run RUN_ID``, both repeatable) replace the default;
``--tag key=value`` (repeatable, all must match) narrows either. The default, per output:

* ``main`` and the seen–unseen curves — runs of no container, and the cells of the latest ablation grid
  of each model and benchmark; never sweep trials (they are hyperparameter probes, not methods);
* ``ablation`` — the cells of the latest ablation grid of each model and benchmark (Δ against that grid's
  own full model); without any grid, the runs of no container;
* ``sensitivity`` (of one parameter) — the trials of the sweeps that swept that parameter, latest parent
  per study; nothing else, so a parameter that was never swept has no sensitivity table.

Runs whose parent is missing from the store (an interrupted grid or sweep) are left out by default, with a
warning naming the parents, so ``--parent`` can bring them in.

>>> import polars as pl
>>> frame = pl.DataFrame({"run_id": ["grid", "a", "b", "solo"], "role": ["ablation-grid", "", "sweep-trial", ""],
...                       "parent_run_id": ["", "grid", "sweep", ""], "model": ["svip"] * 4,
...                       "dataset": ["synth"] * 4, "start_time": [1, 2, 3, 4]})
>>> select_runs(frame, Selection(), "main")["run_id"].to_list()    # the sweep trial's parent is missing
['a', 'solo']
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Iterable, Sequence

import polars as pl

from zslbench.core.errors import UserError, unknown_name
from zslbench.results.frames import warn
from zslbench.tracking.tags import CONTAINER_ROLES

#: What a selection is for (each has its own default).
PURPOSES = ("main", "ablation", "sensitivity", "curves")


@dataclass(frozen=True)
class Selection:
    """The runs asked for: containers (``parents``), single ``runs``, and ``tags`` every run must carry."""

    parents: tuple[str, ...] = ()
    runs: tuple[str, ...] = ()
    tags: tuple[tuple[str, str], ...] = ()

    @classmethod
    def from_options(cls, parents: Iterable[str] = (), runs: Iterable[str] = (),
                     tags: Iterable[str] = ()) -> Selection:
        """From the command line's ``--parent``, ``--run`` and ``--tag key=value`` values.

        >>> Selection.from_options(tags=["dataset=CUB"]).tags
        (('dataset', 'CUB'),)
        """
        return cls(tuple(parents), tuple(runs), tuple(parse_tag(t) for t in tags))

    @property
    def explicit(self) -> bool:
        return bool(self.parents or self.runs)


def parse_tag(text: str) -> tuple[str, str]:
    """``key=value`` → ``(key, value)``; anything else is a one-line UserError.

    >>> parse_tag("zslbench.precision=fp32")
    ('zslbench.precision', 'fp32')
    """
    key, sep, value = str(text).partition("=")
    if not sep or not key.strip():
        raise UserError(f"--tag {text!r}: give key=value, e.g. --tag dataset=CUB or --tag seed=0")
    for part in (key, value):
        if "'" in part or "`" in part:
            raise UserError(f"--tag {text!r}: quotes and backticks cannot appear in a tag filter")
    return key.strip(), value.strip()


def tag_filter(tags: Sequence[tuple[str, str]]) -> str:
    """An MLflow search filter requiring every tag.

    >>> tag_filter([("dataset", "CUB"), ("seed", "0")])
    "tags.`dataset` = 'CUB' and tags.`seed` = '0'"
    """
    return " and ".join(f"tags.`{key}` = '{value}'" for key, value in tags)


# --------------------------------------------------------------------------- containers and cells
def _column(frame: pl.DataFrame, name: str) -> list[str]:
    return [v or "" for v in frame[name].to_list()] if name in frame.columns else [""] * frame.height


def is_container(frame: pl.DataFrame) -> list[bool]:
    """Per run: a container (an ablation grid's or sweep's parent run, or any run other runs name as parent)."""
    parents = set(_column(frame, "parent_run_id")) - {""}
    return [role in CONTAINER_ROLES or run_id in parents
            for role, run_id in zip(_column(frame, "role"), frame["run_id"].to_list())]


def split_containers(frame: pl.DataFrame) -> tuple[pl.DataFrame, pl.DataFrame]:
    """(result runs, containers) of a runs frame."""
    mask = pl.Series(is_container(frame), dtype=pl.Boolean)
    return frame.filter(~mask), frame.filter(mask)


def cells_of(frame: pl.DataFrame, parent_id: str) -> list[str]:
    """The result runs of container ``parent_id``: its children and the runs it lists."""
    children = frame.filter(pl.col("parent_run_id") == parent_id)["run_id"].to_list() \
        if "parent_run_id" in frame.columns else []
    listed: list[str] = []
    if "cell_runs" in frame.columns:
        row = frame.filter(pl.col("run_id") == parent_id)
        if row.height and row["cell_runs"][0]:
            listed = [r for r in str(row["cell_runs"][0]).split(",") if r]
    return list(dict.fromkeys(children + listed))


def latest_containers(containers: pl.DataFrame, role: str, by: Sequence[str]) -> list[str]:
    """Ids of the newest container of ``role`` per group of ``by`` columns (e.g. model and benchmark)."""
    mine = containers.filter(pl.col("role") == role) if "role" in containers.columns else containers.clear()
    if mine.is_empty():
        return []
    keys = [k for k in by if k in mine.columns]
    if "start_time" in mine.columns:
        mine = mine.sort("start_time")
    latest = mine.unique(subset=keys, keep="last", maintain_order=True) if keys else mine.tail(1)
    return latest["run_id"].to_list()


def _swept(containers: pl.DataFrame, param: str) -> pl.DataFrame:
    if "sweep.params" not in containers.columns:
        return containers.clear()
    names = containers["sweep.params"].fill_null("").str.split(",")
    return containers.filter(pl.Series([param in n for n in names.to_list()], dtype=pl.Boolean))


# --------------------------------------------------------------------------- selecting
def select_runs(frame: pl.DataFrame, selection: Selection, purpose: str, *, param: str | None = None,
                tagged: set[str] | None = None) -> pl.DataFrame:
    """The result runs of ``frame`` that ``purpose`` uses under ``selection`` (see the module docstring).

    ``tagged`` holds the ids of the runs matching ``selection.tags`` (found by the caller in the store).
    """
    if purpose not in PURPOSES:
        raise unknown_name("selection purpose", purpose, PURPOSES)
    if frame.is_empty():
        return frame
    results, containers = split_containers(frame)
    known = set(frame["run_id"].to_list())
    if selection.explicit:
        wanted: list[str] = []
        for parent in selection.parents:
            if parent not in set(containers["run_id"].to_list()):
                raise UserError(f"--parent {parent}: no finished ablation grid or sweep with that run id here "
                                "(`mlflow ui` lists the parent runs; see their children)")
            wanted += cells_of(frame, parent)
        for run in selection.runs:
            if run not in known:
                raise UserError(f"--run {run}: no finished run with that id in this experiment")
            if run in set(containers["run_id"].to_list()):
                raise UserError(f"--run {run} is an ablation grid or sweep (a parent run with no results of its "
                                f"own); pass it as --parent {run}")
            wanted.append(run)
        chosen = results.filter(pl.col("run_id").is_in(list(dict.fromkeys(wanted))))
    else:
        chosen = _default(results, containers, frame, purpose, param)
    if tagged is not None:
        chosen = chosen.filter(pl.col("run_id").is_in(sorted(tagged)))
    return chosen


def _default(results: pl.DataFrame, containers: pl.DataFrame, frame: pl.DataFrame, purpose: str,
             param: str | None) -> pl.DataFrame:
    parent_of = pl.col("parent_run_id").fill_null("") if "parent_run_id" in results.columns else pl.lit("")
    standalone = results.filter(parent_of == "")
    grid_by = ("model", "dataset", "data.synth_preset")
    grids = latest_containers(containers, "ablation-grid", grid_by)
    grid_cells = [r for g in grids for r in cells_of(frame, g)]
    orphans = results.filter((parent_of != "") & ~parent_of.is_in(containers["run_id"].to_list()))
    if orphans.height and purpose != "sensitivity":
        missing = sorted(set(orphans["parent_run_id"].to_list()))
        warn(f"{orphans.height} run(s) belong to parent run(s) {', '.join(p[:8] for p in missing[:4])}"
             f"{', …' if len(missing) > 4 else ''} that did not finish; they are left out — pass --parent RUN_ID "
             "to use them")
    if purpose in ("main", "curves"):
        ids = set(standalone["run_id"].to_list()) | set(grid_cells)
        return results.filter(pl.col("run_id").is_in(sorted(ids)))
    if purpose == "ablation":
        if not grids:
            return standalone
        return results.filter(pl.col("run_id").is_in(sorted(set(grid_cells))))
    swept = _swept(containers, param or "")
    studies = latest_containers(swept, "sweep", ("study",))
    return results.filter(pl.col("run_id").is_in(sorted({r for s in studies for r in cells_of(frame, s)})))


def load_selected(experiment: str, tracking_uri: str, selection: Selection, purpose: str,
                  param: str | None = None) -> pl.DataFrame:
    """Every finished run of ``experiment`` (containers included), then the selection for ``purpose``."""
    from zslbench.results.frames import load_runs

    frame = load_runs(experiment, tracking_uri)
    return select_runs(frame, selection, purpose, param=param, tagged=tagged_runs(experiment, tracking_uri,
                                                                                   selection))


def tagged_runs(experiment: str, tracking_uri: str, selection: Selection) -> set[str] | None:
    """Ids of the finished runs carrying every ``--tag`` (None when no tag was asked for)."""
    if not selection.tags:
        return None
    from zslbench.tracking import find_runs

    runs = find_runs(experiment, f"attributes.status = 'FINISHED' and {tag_filter(selection.tags)}",
                     tracking_uri=tracking_uri)
    return {run.info.run_id for run in runs}


def require_runs(frame: pl.DataFrame, what: str, experiment: str, hint: str) -> pl.DataFrame:
    """``frame`` if it holds a run, else a one-line UserError saying what is missing and how to get it."""
    if frame.is_empty():
        raise UserError(f"experiment {experiment!r} has no runs for {what}; {hint}")
    return frame


__all__ = ["CONTAINER_ROLES", "PURPOSES", "Selection", "cells_of", "is_container", "latest_containers",
           "load_selected", "parse_tag", "require_runs", "select_runs", "split_containers", "tag_filter",
           "tagged_runs"]
