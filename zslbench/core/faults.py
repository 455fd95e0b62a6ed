"""Named fault points for crash testing: ``ZSLBENCH_FAULT=<point>:<n>`` SIGKILLs the process the
n-th time it reaches ``<point>`` (n defaults to 1).

The points sit where a crash could lose or tear something (see :data:`POINTS`); the reliability
tests kill runs there and check that ``--resume`` recovers everything. Without the variable a
fault point costs one dictionary lookup.

>>> fault_point("train_step")  # no ZSLBENCH_FAULT set: nothing happens
"""

from __future__ import annotations

import os
import signal
from collections import Counter

ENV = "ZSLBENCH_FAULT"

#: Every fault point, with where it is.
POINTS = {
    "synth_image": "synthetic data generation, after an image is written to the temporary folder",
    "tracker_open": "after the MLflow run is created, before the run folder exists",
    "train_step": "after an optimiser step",
    "eval_batch": "after an evaluation batch",
    "atomic_write": "a checkpoint, score or result file written to its temporary name, not yet renamed",
    "metrics_log": "before an epoch's metrics are sent to MLflow",
    "finalize": "final metrics logged, before the score arrays and final.json",
    "finish": "final.json written, before the MLflow run is marked FINISHED",
}

_hits: Counter[str] = Counter()


def fault_point(name: str) -> None:
    """SIGKILL this process if ``ZSLBENCH_FAULT`` names ``name`` and this is its n-th hit."""
    spec = os.environ.get(ENV)
    if not spec:
        return
    target, _, nth = spec.partition(":")
    if target != name:
        return
    _hits[name] += 1
    if _hits[name] == int(nth or 1):
        os.kill(os.getpid(), signal.SIGKILL)
