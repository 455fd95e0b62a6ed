"""Every tracker mode keeps the one :class:`~zslbench.tracking.Tracker` contract (as Optuna runs each
storage behaviour against every storage): each test here runs against

* ``online`` — an MLflow run in a sqlite store;
* ``offline`` — the same, whose server goes away right after the run is opened: every later write
  is journaled, and ``zslbench track sync`` (the server back) must leave the store exactly as the
  online mode does;
* ``null`` — tracking off: every call accepted, nothing stored anywhere, no error.

Readback is per mode: the store (online), the store after sync (offline), nothing (null).
"""

from __future__ import annotations

import json
import socket
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import yaml

from tracking_outage import Outage
from zslbench.config import TrackConfig
from zslbench.tracking import FINAL_STATUSES, HTTP_POLICY, PARENT_RUN_ENV, Tracker, open_tracker
from zslbench.tracking.journal import JOURNAL_DIR
from zslbench.tracking.sync import sync_journals

MODES = ("online", "offline", "null")
SECRET = "s3cr3t-pa55"


@pytest.fixture(autouse=True)
def clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("MLFLOW_TRACKING_URI", PARENT_RUN_ENV, "MLFLOW_RUN_ID", "http_proxy", "https_proxy", "HTTP_PROXY",
                 "HTTPS_PROXY", "all_proxy", "ALL_PROXY", *HTTP_POLICY):
        monkeypatch.delenv(name, raising=False)


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> str:
    """One sqlite store for the module (creating its schema is slow); every test has its own runs."""
    return f"sqlite:///{tmp_path_factory.mktemp('store')}/mlflow.db"


@dataclass
class StoredRun:
    """What the store holds of one run."""

    status: str
    params: dict[str, str]
    tags: dict[str, str]
    metrics: dict[str, list[tuple[int, float]]]  # key → (step, value), sorted
    artifacts: set[str]  # file paths, recursively
    folder: Path  # the artifacts, downloaded


class Mode:
    """Opens trackers of one mode and reads back what they stored."""

    def __init__(self, name: str, store: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
        self.name, self.store, self.tmp_path, self.monkeypatch = name, store, tmp_path, monkeypatch
        self.output_dir = tmp_path / "runs"
        self.outages: list[Outage] = []

    def open(self, **kwargs: Any) -> Tracker:
        if self.name == "null":
            with socket.socket() as sock:  # a server that is not there: nothing may try to reach it
                sock.bind(("127.0.0.1", 0))
                port = sock.getsockname()[1]
            return open_tracker(TrackConfig(enabled=False, uri=f"http://127.0.0.1:{port}"), **kwargs)
        track = TrackConfig(uri=self.store, experiment="modes", output_dir=str(self.output_dir))
        tracker = open_tracker(track, **kwargs)
        if self.name == "offline":
            outage = Outage(self.monkeypatch, tracker.client, reads=("get_metric_history",))
            outage.down = True
            self.outages.append(outage)
        return tracker

    def readback(self, tracker: Tracker) -> StoredRun | None:
        """What the store holds once the run's writes could reach it (``None``: nothing is stored)."""
        if self.name == "null":
            assert tracker.run_id is None and tracker.status == "DISABLED"
            assert not self.output_dir.exists()  # not even a journal
            return None
        if self.name == "offline":
            assert tracker.offline and (tracker.offline_dir / "journal.jsonl").is_file()
            assert self._read(tracker.run_id).status == "RUNNING"  # nothing after the outage arrived by itself
            for outage in self.outages:
                outage.down = False
            outcomes = sync_journals(self.output_dir, self.store)
            assert [o.result for o in outcomes] == ["synced"], [o.detail for o in outcomes]
            assert not (self.output_dir / tracker.run_id / JOURNAL_DIR).exists()
        return self._read(tracker.run_id)

    def _read(self, run_id: str) -> StoredRun:
        from mlflow import MlflowClient

        client = MlflowClient(tracking_uri=self.store)
        run = client.get_run(run_id)
        metrics = {key: sorted((m.step, m.value) for m in client.get_metric_history(run_id, key))
                   for key in run.data.metrics}
        files: set[str] = set()
        folders = [""]
        while folders:
            for entry in client.list_artifacts(run_id, folders.pop() or None):
                (folders.append(entry.path) if entry.is_dir else files.add(entry.path))
        folder = self.tmp_path / f"download-{run_id}"
        folder.mkdir(exist_ok=True)
        if files:
            client.download_artifacts(run_id, "", str(folder))
        return StoredRun(run.info.status, dict(run.data.params), dict(run.data.tags), metrics, files, folder)


@pytest.fixture(params=MODES)
def mode(request: pytest.FixtureRequest, store: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Mode:
    return Mode(request.param, store, tmp_path, monkeypatch)


class Figure:
    """Stands in for a matplotlib figure: the tracker only calls ``savefig(path)``."""

    def savefig(self, path: Path) -> None:
        Path(path).write_bytes(b"\x89PNG fake")


# --------------------------------------------------------------------------- metrics, params, tags
def test_metrics_params_and_tags_are_recorded_masked(mode: Mode) -> None:
    url = f"postgresql+psycopg://optuna:{SECRET}@db.lab/studies"
    tracker = mode.open(run_name="modes", params={"train.lr": 0.001}, tags={"storage": url})
    tracker.log_params({"sweep.db_password": SECRET, "train.epochs": 3})
    tracker.set_tags({"note": f"token={SECRET}"})
    for step in range(3):
        tracker.log_metrics({"train_loss": 1.0 / (step + 1), "h": step / 10}, step=step)
    tracker.log_metrics({"bad": float("nan")}, step=0)
    tracker.flush()
    tracker.finish()

    run = mode.readback(tracker)
    if run is None:
        return
    assert run.status == "FINISHED"
    assert run.params == {"train.lr": "0.001", "sweep.db_password": "***", "train.epochs": "3"}
    assert run.tags["storage"] == "postgresql+psycopg://optuna:***@db.lab/studies"
    assert run.tags["note"] == "token=***"
    assert run.tags["zslbench.nonfinite_metrics"] == "bad"
    assert run.metrics["train_loss"] == [(0, 1.0), (1, 0.5), (2, pytest.approx(1 / 3))]
    assert run.metrics["h"] == [(0, 0.0), (1, 0.1), (2, 0.2)]
    assert "bad" not in run.metrics
    assert SECRET not in json.dumps([run.params, run.tags])


def test_a_param_logged_again_with_another_value_keeps_its_first(mode: Mode) -> None:
    tracker = mode.open(params={"train.epochs": 30})
    tracker.log_params({"train.epochs": 40, "seed": 1})
    tracker.finish()

    run = mode.readback(tracker)
    if run is None:
        return
    assert run.params == {"train.epochs": "30", "seed": "1"}
    assert run.tags["zslbench.params_changed"] == "train.epochs"


# --------------------------------------------------------------------------- artifacts
def test_artifacts_of_every_kind_are_stored(mode: Mode, tmp_path: Path) -> None:
    single = tmp_path / "final.json"
    single.write_text('{"h": 0.3}')
    folder = tmp_path / "checkpoints"
    folder.mkdir()
    (folder / "a.txt").write_text("a")
    tracker = mode.open()
    tracker.log_artifact(single)
    tracker.log_artifact(folder, "ckpt")
    tracker.log_dict({"storage": f"postgresql://u:{SECRET}@db/x", "epochs": 3}, "config/resolved.json")
    tracker.log_dict({"epochs": 3}, "config/resolved.yaml")
    tracker.log_text(f"password={SECRET}", "notes.txt")
    tracker.log_scores("test_scores", scores=np.eye(2), labels=np.array([0, 1]))
    tracker.log_figure(Figure(), "plots/curve.png")
    tracker.finish()

    run = mode.readback(tracker)
    if run is None:
        return
    assert run.artifacts == {"final.json", "ckpt/a.txt", "config/resolved.json", "config/resolved.yaml", "notes.txt",
                             "scores/test_scores.npz", "plots/curve.png"}
    assert (run.folder / "final.json").read_text() == '{"h": 0.3}'
    assert (run.folder / "ckpt" / "a.txt").read_text() == "a"
    assert json.loads((run.folder / "config" / "resolved.json").read_text()) == {
        "storage": "postgresql://u:***@db/x", "epochs": 3}
    assert yaml.safe_load((run.folder / "config" / "resolved.yaml").read_text()) == {"epochs": 3}
    assert (run.folder / "notes.txt").read_text() == "password=***"
    with np.load(run.folder / "scores" / "test_scores.npz") as saved:
        np.testing.assert_array_equal(saved["scores"], np.eye(2))
        np.testing.assert_array_equal(saved["labels"], [0, 1])
    assert (run.folder / "plots" / "curve.png").read_bytes() == b"\x89PNG fake"


# --------------------------------------------------------------------------- ending
@pytest.mark.parametrize("status", FINAL_STATUSES)
def test_finish_ends_the_run_once_with_its_status(mode: Mode, status: str) -> None:
    tracker = mode.open()
    tracker.log_metrics({"loss": 1.0}, step=0)  # buffered: written by finish
    tracker.finish(status)
    tracker.finish("FINISHED" if status != "FINISHED" else "FAILED")  # idempotent: the first status stays
    with pytest.raises(ValueError, match="status must be one of FINISHED, FAILED, KILLED"):
        tracker.finish("DONE")

    run = mode.readback(tracker)
    if run is None:
        return
    assert tracker.status == status
    assert run.status == status
    assert run.metrics["loss"] == [(0, 1.0)]


@pytest.mark.parametrize(("raised", "status"), [(None, "FINISHED"), (RuntimeError, "FAILED"),
                                                (KeyboardInterrupt, "KILLED")])
def test_leaving_the_with_block_ends_the_run(mode: Mode, raised: type[BaseException] | None, status: str) -> None:
    tracker = mode.open()
    try:
        with tracker as entered:
            assert entered is tracker
            tracker.log_metrics({"loss": 2.0}, step=0)
            if raised is not None:
                raise raised("loss became NaN at step 3\nsecond line")
    except BaseException as exc:  # the with block never swallows the exception
        assert raised is not None and isinstance(exc, raised)
    else:
        assert raised is None

    run = mode.readback(tracker)
    if run is None:
        return
    assert run.status == status
    assert run.metrics["loss"] == [(0, 2.0)]  # buffered metrics still written
    if raised is not None:
        assert run.tags["zslbench.error"] == f"{raised.__name__}: loss became NaN at step 3"
    else:
        assert "zslbench.error" not in run.tags


# --------------------------------------------------------------------------- resuming
def test_a_resumed_run_gets_the_epochs_that_never_reached_the_store(mode: Mode) -> None:
    """A run killed between its checkpoint (epochs 0-3) and its metrics reaching the store (0-1 did)."""
    epochs = {step: {"train_loss": 1.0 / (step + 1), "zsl_t1": step / 10} for step in range(4)}
    first = mode.open(params={"train.epochs": 4})
    for step in (0, 1):
        first.log_metrics(epochs[step], step=step)
    first.finish("KILLED")

    resumed = mode.open(params={"train.epochs": 4}, resume_run_id=first.run_id)
    assert resumed.run_id == first.run_id
    sent = resumed.resend_missing(epochs, probe="train_loss")
    resumed.finish()

    expected_sent = {"online": [2, 3], "offline": [0, 1, 2, 3], "null": []}[mode.name]  # offline: sent on sync if missing
    assert sent == expected_sent
    run = mode.readback(resumed)
    if run is None:
        return
    assert run.status == "FINISHED"
    assert run.tags["zslbench.resumed"] == "1"
    for key in ("train_loss", "zsl_t1"):  # every epoch exactly once
        assert run.metrics[key] == [(step, pytest.approx(epochs[step][key])) for step in range(4)]
