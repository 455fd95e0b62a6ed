"""What ``zslbench sweep`` was asked to do: its options, the config every trial starts from, the study name."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Optional

from zslbench.config import Config, Request, resolve_request

if TYPE_CHECKING:  # pragma: no cover - typing only
    from zslbench.sweeps.storage import StorageSpec

METRICS = ("gzsl_h", "zsl_t1", "ausuc")
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

    def worker_argv(self, storage: "StorageSpec", index: int, study_name: str) -> list[str]:
        """The ``zslbench sweep`` command line of worker ``index`` (same study, same storage)."""
        # The storage URL (maybe with a password) goes by environment (STORAGE_ENV), not argv: `ps` shows argv.
        argv = ["sweep", *self.spaces, "--study", study_name, "--workers", "1",
                "--worker-index", str(index), "--pruner", self.pruner, "--metric", self.metric,
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


def base_config(opts: SweepOptions) -> Config:
    """The resolved config every trial starts from (trial values are ``--set`` on top)."""
    return resolve_request(Request(model=opts.model, dataset=opts.dataset, preset=opts.preset,
                                   overrides=tuple(opts.overrides), seed=opts.seed, experiment=opts.experiment,
                                   tracking_uri=opts.tracking_uri))


def default_study_name(opts: SweepOptions) -> str:
    """``<model>-<dataset>-<spaces>[-grid][-<preset>]``, e.g. ``svip-CUB-temperature``."""
    name = f"{opts.model}-{opts.dataset}-{'+'.join(dict.fromkeys(opts.spaces))}"
    return name + ("-grid" if opts.grid else "") + (f"-{opts.preset}" if opts.preset else "")
