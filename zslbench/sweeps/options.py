"""What ``zslbench sweep`` was asked to do: its options, the config every trial starts from, the study name."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Optional

from zslbench.config import Config, Request, resolve_request

if TYPE_CHECKING:  # pragma: no cover - typing only
    from zslbench.sweeps.storage import StorageSpec

METRICS = ("gzsl_h", "zsl_t1", "ausuc")
#: Where the objective and the pruner read the metric: the validation protocol (default; no test image) or,
#: only when asked, the test set (the chosen configuration is then test-selected, marked †).
SELECT_ON = ("val", "test")
PRUNERS = ("median", "hyperband", "none")
DEFAULT_TRIALS = 20


@dataclass
class SweepOptions:
    """Everything ``zslbench sweep`` was asked to do (the CLI's options, parsed)."""

    spaces: list[str] = field(default_factory=list)
    trials: Optional[int] = None
    grid: bool = False
    study: Optional[str] = None
    storage: Optional[str] = None
    workers: int = 1
    pruner: str = "median"
    metric: str = "gzsl_h"
    select_on: str = "val"
    model: str = "svip"
    dataset: str = "synth"
    preset: Optional[str] = None
    overrides: list[str] = field(default_factory=list)
    seed: int = 0
    experiment: Optional[str] = None
    tracking_uri: Optional[str] = None
    heartbeat: int = 60
    max_retry: int = 2
    worker_index: Optional[int] = None

    @property
    def objective(self) -> str:
        """The metric key the study maximises: ``val_<metric>`` (validation protocol) or ``<metric>`` (test, †)."""
        return f"val_{self.metric}" if self.select_on == "val" else self.metric

    def worker_argv(self, storage: "StorageSpec", index: int, study_name: str) -> list[str]:
        """The ``zslbench sweep`` command line of worker ``index`` (same study, same storage)."""
        # The storage URL (maybe with a password) goes by environment (STORAGE_ENV), not argv: `ps` shows argv.
        argv = ["sweep", *self.spaces, "--study", study_name, "--workers", "1",
                "--worker-index", str(index), "--pruner", self.pruner, "--metric", self.metric,
                "--select-on", self.select_on,
                "--model", self.model, "--dataset", self.dataset, "--seed", str(self.seed),
                "--heartbeat", str(self.heartbeat), "--max-retry", str(self.max_retry)]
        if self.trials is not None:
            argv += ["--trials", str(self.trials)]
        if self.grid:
            argv.append("--grid")
        if self.preset:
            argv += ["--preset", self.preset]
        for item in self.overrides:
            argv += ["--set", item]
        if self.experiment:
            argv += ["--experiment", self.experiment]
        if self.tracking_uri:
            argv += ["--tracking-uri", self.tracking_uri]
        return argv


#: Short names of the metrics a study can maximise, as the tables head them.
METRIC_NAMES = {"zsl_t1": "T1", "gzsl_u": "U", "gzsl_s": "S", "gzsl_h": "H", "ausuc": "AUSUC"}


def objective_label(metric: str, select_on: str) -> str:
    """How the objective is named in human output.

    >>> objective_label("gzsl_h", "val"), objective_label("gzsl_h", "test")
    ('validation H', 'test H†')
    """
    name = METRIC_NAMES.get(metric, metric)
    return f"validation {name}" if select_on == "val" else f"test {name}†"


def test_line(test: dict, select_on: str) -> str:
    """A trial's test metrics in percentages, labelled with their role.

    >>> test_line({"zsl_t1": 0.5, "gzsl_h": 0.25}, "val")
    'test (reported, not selected on): T1 50.0 H 25.0'
    """
    shown = " ".join(f"{METRIC_NAMES[k]} {100 * test[k]:.1f}" for k in METRIC_NAMES if k in test)
    role = "test (reported, not selected on)" if select_on == "val" else "test"
    return f"{role}: {shown}" if shown else f"{role}: –"


def base_config(opts: SweepOptions) -> Config:
    """The resolved config every trial starts from (trial values are ``--set`` on top)."""
    return resolve_request(Request(model=opts.model, dataset=opts.dataset, preset=opts.preset,
                                   overrides=tuple(opts.overrides), seed=opts.seed, experiment=opts.experiment,
                                   tracking_uri=opts.tracking_uri))


def default_study_name(opts: SweepOptions) -> str:
    """``<model>-<dataset>-<spaces>[-grid][-<preset>]``, e.g. ``svip-CUB-temperature``."""
    name = f"{opts.model}-{opts.dataset}-{'+'.join(dict.fromkeys(opts.spaces))}"
    return name + ("-grid" if opts.grid else "") + (f"-{opts.preset}" if opts.preset else "")
