"""Which epoch's metrics a run reports, and how several seeds' results are summarised (PROTOCOL.md §3).

Epoch selection policies: ``final`` (default: the last evaluated epoch), ``val`` (best validation
metric), ``oracle`` (best test H and best test T1 tracked separately, as the reference
repositories do; marked †). Seeds: mean ± sample std (ddof = 1) of every numeric metric.

>>> select_epoch([{"gzsl_h": 0.2}, {"gzsl_h": 0.1}], "final").epoch
1
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from zslbench.core.errors import UserError, unknown_name

SELECTION_POLICIES = ("final", "val", "oracle")


@dataclass(frozen=True)
class EpochSelection:
    """Which epochs (indices into the history list) the reported metrics come from.

    ``epoch`` is the selected epoch for the selection metric. Under ``oracle``, the best test H
    (``epoch_h``) and the best test T1 (``epoch_t1``) are tracked separately, as the reference
    implementations do; otherwise both equal ``epoch``.
    """

    policy: str
    epoch: int
    epoch_h: int
    epoch_t1: int
    oracle: bool


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float, np.integer, np.floating)) and not isinstance(value, (bool, np.bool_))


def _numeric(value: Any) -> float:
    return float(value) if _is_number(value) else math.nan


def _best_index(history: Sequence[Mapping[str, Any]], key: str) -> int | None:
    """Index of the first epoch with the largest finite value of ``key`` (None if never logged)."""
    values = np.array([_numeric(entry.get(key)) for entry in history], dtype=np.float64)
    if not np.isfinite(values).any():
        return None
    return int(np.argmax(np.where(np.isfinite(values), values, -np.inf)))


def select_epoch(history: Sequence[Mapping[str, Any]], policy: str, metric: str = "gzsl_h") -> EpochSelection:
    """Pick the epoch whose metrics are reported; indices are positions in ``history``.

    ``final``: the last entry. ``val``: the best ``val_<metric>`` (first on ties).
    ``oracle``: the best test ``metric``, with the best ``gzsl_h`` epoch and the best ``zsl_t1``
    epoch reported separately (test-selected, results marked †).

    >>> h = [{"gzsl_h": 0.2, "zsl_t1": 0.5}, {"gzsl_h": 0.4, "zsl_t1": 0.3}, {"gzsl_h": 0.3, "zsl_t1": 0.4}]
    >>> sel = select_epoch(h, "oracle")
    >>> (sel.epoch, sel.epoch_h, sel.epoch_t1, sel.oracle)
    (1, 1, 0, True)
    """
    if policy not in SELECTION_POLICIES:
        raise unknown_name("epoch selection policy", policy, SELECTION_POLICIES)
    if len(history) == 0:
        raise ValueError("epoch selection needs at least one evaluated epoch; the history is empty")
    if policy == "final":
        last = len(history) - 1
        return EpochSelection(policy, last, last, last, oracle=False)
    if policy == "val":
        best = _best_index(history, f"val_{metric}")
        if best is None:
            raise UserError(
                f"epoch selection 'val' needs per-epoch 'val_{metric}', which this run never logged "
                "(no validation split) — use --set eval.selection=final or oracle"
            )
        return EpochSelection(policy, best, best, best, oracle=False)
    best = _best_index(history, metric)
    if best is None:
        raise ValueError(f"epoch selection 'oracle': no epoch logged {metric!r}")
    best_h = _best_index(history, "gzsl_h")
    best_t1 = _best_index(history, "zsl_t1")
    return EpochSelection(
        policy,
        best,
        best if best_h is None else best_h,
        best if best_t1 is None else best_t1,
        oracle=True,
    )


def aggregate_seeds(results: Sequence[Mapping[str, Any]]) -> dict[str, tuple[float, float, int]]:
    """Mean, sample standard deviation (ddof=1; 0.0 for one seed) and count of every numeric key.

    Non-numeric values (strings, booleans, None) are ignored; a key missing from some results
    is aggregated over the results that have it.

    >>> summary = aggregate_seeds([{"gzsl_h": 0.25, "model": "svip"}, {"gzsl_h": 0.75, "model": "svip"}])
    >>> mean, std, n = summary["gzsl_h"]
    >>> (list(summary), mean, round(std, 4), n)
    (['gzsl_h'], 0.5, 0.3536, 2)
    """
    if len(results) == 0:
        raise ValueError("aggregate_seeds needs at least one result")
    collected: dict[str, list[float]] = {}
    for result in results:
        for key, value in result.items():
            if _is_number(value):
                collected.setdefault(key, []).append(float(value))
    summary: dict[str, tuple[float, float, int]] = {}
    for key, values in collected.items():
        array = np.asarray(values)
        std = float(np.std(array, ddof=1)) if array.size > 1 else 0.0
        summary[key] = (float(np.mean(array)), std, int(array.size))
    return summary


__all__ = ["SELECTION_POLICIES", "EpochSelection", "aggregate_seeds", "select_epoch"]
