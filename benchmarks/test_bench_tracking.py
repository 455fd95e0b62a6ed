"""What MLflow tracking costs a training run.

The real engine (``zslbench.engine.runner.run_one``) trains SVIP on the synthetic benchmark twice per round — once logging to an sqlite MLflow store, once with
``track.enabled=false`` — same config, same pre-loaded data, alternating order. The overhead
``(tracked − untracked) / untracked`` is for runs into an *existing* store; the one-off costs are
reported beside it: importing mlflow (a subprocess) and creating a store's schema (fresh vs existing
store, the run-opening work only). Full mode trains the default ``zslbench run`` configuration (the
synthetic default preset) for 1 epoch a run — what a user's run pays; quick mode the tiny preset for 2.
"""

from __future__ import annotations

import statistics
import sys

import pytest

from bench_timing import SideBySide, cpu_seconds, run_child

pytestmark = pytest.mark.benchmark(group="tracking", timer=cpu_seconds)


@pytest.fixture(scope="module")
def engine_runs(tmp_path_factory, synth_root, quick):
    import torch

    from zslbench.config import resolve
    from zslbench.engine.run_data import load_run_data

    folder = tmp_path_factory.mktemp("tracking")
    epochs, preset = (2, "tiny") if quick else (1, None)
    common = [f"data.root={synth_root}", f"track.output_dir={folder / 'runs'}", f"train.epochs={epochs}",
              "track.experiment=bench", f"track.uri=sqlite:///{folder / 'mlflow.db'}"]
    tracked = resolve("svip", "synth", preset, overrides=common)
    untracked = resolve("svip", "synth", preset, overrides=[*common, "track.enabled=false"])
    data = load_run_data(untracked)
    yield {"tracked": tracked, "untracked": untracked, "data": data, "folder": folder, "epochs": epochs,
           "preset": preset or "default"}
    torch.use_deterministic_algorithms(False)  # run_one switches it on for CPU runs


def mlflow_import_seconds() -> float:
    """CPU seconds ``import mlflow`` adds to a fresh interpreter (once per process)."""
    bare = run_child([sys.executable, "-c", "pass"])
    loaded = run_child([sys.executable, "-c", "import mlflow"])
    return loaded.cpu_s - bare.cpu_s


def schema_creation_seconds(folder, repeats: int = 2) -> dict[str, float]:
    """CPU seconds of opening (and finishing) a run in a fresh store vs in an existing one."""
    from zslbench.config import TrackConfig
    from zslbench.tracking import open_tracker

    def open_and_finish(uri: str) -> float:
        start = cpu_seconds()
        open_tracker(TrackConfig(uri=uri, experiment="schema"), run_name="schema").finish()
        return cpu_seconds() - start

    existing_uri = f"sqlite:///{folder / 'existing.db'}"
    open_and_finish(existing_uri)  # creates it (and imports mlflow's store modules)
    fresh = [open_and_finish(f"sqlite:///{folder / f'fresh{i}.db'}") for i in range(repeats)]
    existing = [open_and_finish(existing_uri) for _ in range(repeats)]
    return {"fresh_store_open_cpu_s": round(statistics.median(fresh), 4),
            "existing_store_open_cpu_s": round(statistics.median(existing), 4),
            "schema_creation_cpu_s": round(statistics.median(fresh) - statistics.median(existing), 4)}


def tracker_call_costs(cfg, epochs: int = 20) -> dict[str, float]:
    """Where a tracked run's extra CPU goes: opening a run with the config's params and finishing it
    (once per run) vs logging and flushing one epoch's metrics (once per epoch)."""
    from zslbench.tracking import open_tracker

    start = cpu_seconds()
    tracker = open_tracker(cfg.track, run_name="costs", params=cfg.flat())
    opened = cpu_seconds() - start
    metrics = {f"metric_{i}": float(i) for i in range(25)}  # about what the engine logs per epoch
    start = cpu_seconds()
    for epoch in range(epochs):
        tracker.log_metrics(metrics, step=epoch)
        tracker.flush()
    per_epoch = (cpu_seconds() - start) / epochs
    start = cpu_seconds()
    tracker.finish()
    finished = cpu_seconds() - start
    return {"open_with_params_cpu_s": round(opened, 4), "log_and_flush_one_epoch_cpu_s": round(per_epoch, 4),
            "finish_cpu_s": round(finished, 4)}


def test_tracking_overhead(benchmark, recorder, engine_runs, quick):
    from zslbench.engine.runner import run_one

    runs = engine_runs
    one_off = {"mlflow_import_cpu_s": round(mlflow_import_seconds(), 3), **schema_creation_seconds(runs["folder"])}
    pair = SideBySide({
        "tracked": lambda: run_one(runs["tracked"], quiet=True, data=runs["data"]),
        "untracked": lambda: run_one(runs["untracked"], quiet=True, data=runs["data"]),
    })
    pair.warm_up()  # decodes the images once and creates the run store's schema: not part of the ratio
    benchmark.pedantic(pair.round, rounds=1 if quick else 3, iterations=1)
    overhead = pair.ratio("tracked", "untracked") - 1.0
    costs = tracker_call_costs(runs["tracked"])
    costs["untracked_cpu_per_epoch_s"] = round(pair.median("untracked") / runs["epochs"], 4)
    recorder.record("tracking_overhead", overhead, rounds=pair.rounds, epochs_per_run=runs["epochs"],
                    config=f"svip, synth, preset {runs['preset']}, {runs['epochs']} epoch(s), 1 thread",
                    store="sqlite, existing",
                    pairwise_overhead=[round(r - 1, 4) for r in pair.pairwise_ratios("tracked", "untracked")],
                    pairwise_spread={k: round(v - 1, 4) for k, v in pair.spread("tracked", "untracked").items()},
                    one_off=one_off, tracker_calls=costs, sides=pair.summary())
