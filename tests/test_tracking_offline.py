"""Offline tracking: a run whose MLflow server goes away keeps training and journals its tracking
locally; ``zslbench track sync`` uploads it once the server is back, never twice.

Unit tests write through a real sqlite store whose client is made to fail like MLflow's REST layer
does when the server is gone; the end-to-end test stops and restarts a real ``mlflow server``.
"""

from __future__ import annotations

import json
import os
import socket
from pathlib import Path

import numpy as np
import pytest

from mlflow_server import MlflowServer
from tracking_outage import Outage, refused
from zslbench.config import TrackConfig, resolve
from zslbench.core.errors import UserError
from zslbench.tracking import HTTP_POLICY, OnlineTracker, http_policy, open_tracker
from zslbench.tracking.journal import JOURNAL_DIR, JOURNAL_FILE, SYNCED_DIR, OfflineJournal, read_journal
from zslbench.tracking.reachability import failure_reason, is_connection_error
from zslbench.tracking.replay import replay_journal
from zslbench.tracking.sync import sync_journals

SECRET = "s3cr3t-pa55"
SERVER_URI = f"http://zsl:{SECRET}@127.0.0.1:9"  # what the tracker believes it talks to (messages only)


@pytest.fixture(autouse=True)
def clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("MLFLOW_TRACKING_URI", "ZSLBENCH_PARENT_RUN_ID", "MLFLOW_RUN_ID", "http_proxy", "https_proxy",
                 "HTTP_PROXY", "HTTPS_PROXY", "all_proxy", "ALL_PROXY", "no_proxy", "NO_PROXY", *HTTP_POLICY):
        monkeypatch.delenv(name, raising=False)


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> str:
    """One sqlite store for the module's unit tests (creating its schema is slow)."""
    return f"sqlite:///{tmp_path_factory.mktemp('store')}/mlflow.db"


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def experiment_id(client) -> str:
    experiment = client.get_experiment_by_name("offline")
    return experiment.experiment_id if experiment else client.create_experiment("offline")


def new_tracker(store: str, tmp_path: Path, params: dict | None = None) -> OnlineTracker:
    """A tracker of a new run on the sqlite store that names an http server (with credentials) in its
    messages, journaling where the engine's run folder would be."""
    from mlflow import MlflowClient

    client = MlflowClient(tracking_uri=store)
    run = client.create_run(experiment_id(client))
    tracker = OnlineTracker(client, run, SERVER_URI, offline_dir=tmp_path / "runs" / run.info.run_id / JOURNAL_DIR)
    tracker.log_params(params or {})
    return tracker


def make_artifact(tmp_path: Path, name: str, text: str) -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


# --------------------------------------------------------------------------- classifying failures
@pytest.mark.parametrize(("make", "expected"), [
    (refused, True),
    (lambda: TimeoutError("timed out"), True),
    (lambda: ValueError("Changing param values is not allowed"), False),
])
def test_connection_errors_are_told_from_refusals(make, expected: bool) -> None:
    assert is_connection_error(make()) is expected


def test_a_refused_request_is_not_a_lost_server() -> None:
    from mlflow.exceptions import MlflowException
    from mlflow.protos.databricks_pb2 import INVALID_PARAMETER_VALUE

    refusal = MlflowException("Changing param values is not allowed", error_code=INVALID_PARAMETER_VALUE)
    assert not is_connection_error(refusal)
    assert failure_reason(refused()) == "connection refused"


def test_http_policy_shortens_mlflow_retries_only_while_zslbench_calls(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_TIMEOUT", "60")  # the user's own setting wins
    with http_policy():
        assert os.environ["MLFLOW_HTTP_REQUEST_MAX_RETRIES"] == "2"
        assert os.environ["MLFLOW_HTTP_REQUEST_TIMEOUT"] == "60"
    assert "MLFLOW_HTTP_REQUEST_MAX_RETRIES" not in os.environ
    assert os.environ["MLFLOW_HTTP_REQUEST_TIMEOUT"] == "60"


# --------------------------------------------------------------------------- going offline
def test_lost_server_switches_to_offline_and_journals_every_later_write(
        store: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture) -> None:
    tracker = new_tracker(store, tmp_path, params={"train.lr": 0.001})
    outage = Outage(monkeypatch, tracker.client)
    tracker.log_metrics({"loss": 1.0}, step=0)
    tracker.flush()
    outage.down = True

    tracker.log_metrics({"loss": 0.5, "h": 0.3}, step=1)
    tracker.flush()  # the write that finds the server gone: kept, not raised
    assert tracker.offline
    tracker.log_params({"train.lr": 0.001, "late": 7})
    tracker.set_tags({"stopped": "no"})
    tracker.log_artifact(make_artifact(tmp_path, "final.json", '{"h": 0.3}'))
    tracker.log_dict({"storage": f"postgresql://u:{SECRET}@db/x"}, "config/resolved.json")
    tracker.log_scores("test_scores", scores=np.eye(2))
    tracker.log_metrics({"loss": 0.25}, step=2)
    tracker.finish("FINISHED")

    assert outage.attempts == ["log_batch"]  # once offline, the server is not asked again
    err = capsys.readouterr().err
    warnings = [line for line in err.splitlines() if line.startswith("warning:")]
    assert len(warnings) == 1 and "http://zsl:***@127.0.0.1:9" in warnings[0] and "connection refused" in warnings[0]
    assert "zslbench track sync" in warnings[0] and "ended FINISHED offline" in err
    assert SECRET not in err

    journal = read_journal(tracker.offline_dir)
    assert journal.run_id == tracker.run_id and journal.final_status == "FINISHED"
    ops = [record["op"] for record in journal.records]
    assert ops == ["session", "batch", "batch", "batch", "artifact", "artifact", "artifact", "batch", "terminate"]
    first = journal.records[1]
    assert sorted((key, value, step) for key, value, _, step in first["metrics"]) == [("h", 0.3, 1), ("loss", 0.5, 1)]
    assert journal.records[2]["params"] == {"late": "7"}  # train.lr was logged online already
    assert journal.records[3]["tags"] == {"stopped": "no"}
    copies = {Path(r["file"]).name: (tracker.offline_dir / r["file"], r["artifact_path"])
              for r in journal.records if r["op"] == "artifact"}
    assert copies["final.json"][0].read_text() == '{"h": 0.3}' and copies["final.json"][1] is None
    assert copies["resolved.json"][1] == "config" and copies["test_scores.npz"][1] == "scores"
    with np.load(copies["test_scores.npz"][0]) as saved:
        np.testing.assert_array_equal(saved["scores"], np.eye(2))
    assert SECRET not in (tracker.offline_dir / JOURNAL_FILE).read_text() + copies["resolved.json"][0].read_text()

    run = tracker.client.get_run(tracker.run_id)  # the store has only what came before the outage
    assert run.info.status == "RUNNING" and "late" not in run.data.params
    assert [m.step for m in tracker.client.get_metric_history(tracker.run_id, "loss")] == [0]


def test_a_refusal_from_a_live_store_still_raises(store: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from mlflow.exceptions import MlflowException

    tracker = new_tracker(store, tmp_path)
    real_log_batch = tracker.client.log_batch
    refusing = [True]

    def refuse(*args, **kwargs):
        if refusing[0]:
            raise MlflowException("INVALID_PARAMETER_VALUE: metric key too long")
        return real_log_batch(*args, **kwargs)

    monkeypatch.setattr(tracker.client, "log_batch", refuse)
    tracker.log_metrics({"loss": 1.0}, step=0)
    with pytest.raises(MlflowException, match="metric key too long"):
        tracker.flush()
    assert not tracker.offline and not tracker.offline_dir.exists()
    refusing[0] = False
    tracker.finish("FAILED")


def test_torn_last_line_is_ignored_and_cut_before_the_journal_grows(tmp_path: Path) -> None:
    from mlflow.entities import Metric

    folder = tmp_path / JOURNAL_DIR
    journal = OfflineJournal.open(folder, {"run_id": "r1", "tracking_uri": "http://h:5000"})
    journal.log_batch(metrics=[Metric("loss", 0.5, 1000, 0)])
    journal.close()
    with open(folder / JOURNAL_FILE, "ab") as handle:
        handle.write(b'{"op":"batch","metrics":[["loss",0.4')  # the process died mid-write

    assert [r["op"] for r in read_journal(folder).records] == ["session", "batch"]
    journal = OfflineJournal.open(folder, {"run_id": "r1", "tracking_uri": "http://h:5000"})  # a later session
    journal.terminate("KILLED")
    journal.close()
    assert [r["op"] for r in read_journal(folder).records] == ["session", "batch", "session", "terminate"]

    lines = (folder / JOURNAL_FILE).read_text().splitlines()
    lines[1] = lines[1][:20]  # damage inside the journal is not silently skipped
    (folder / JOURNAL_FILE).write_text("\n".join(lines) + "\n")
    with pytest.raises(UserError, match=r"journal\.jsonl line 2 is damaged"):
        read_journal(folder)


# --------------------------------------------------------------------------- syncing
def test_sync_uploads_everything_once_even_when_a_lost_answer_hid_a_delivered_write(
        store: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    tracker = new_tracker(store, tmp_path, params={"train.lr": 0.001})
    outage = Outage(monkeypatch, tracker.client, delivered_before_failing=True)
    outage.down = True
    tracker.log_metrics({"loss": 0.5}, step=1)
    tracker.flush()  # reached the store, but the tracker cannot know: journaled too
    tracker.log_params({"late": 7})
    tracker.log_artifact(make_artifact(tmp_path, "final.json", "{}"))
    assert sync_journals(tmp_path / "runs", store)[0].result == "in use"  # its run is still writing it
    tracker.log_metrics({"loss": 0.25}, step=2)
    tracker.finish("FINISHED")
    outage.down = False

    outcomes = sync_journals(tmp_path / "runs", store)
    assert [(o.run_id, o.result) for o in outcomes] == [(tracker.run_id, "synced")]
    assert outcomes[0].stats.metrics == 1 and outcomes[0].stats.metrics_present == 1
    assert outcomes[0].directory.name == SYNCED_DIR and not tracker.offline_dir.exists()

    client = tracker.client
    run = client.get_run(tracker.run_id)
    assert run.info.status == "FINISHED"
    assert run.data.params == {"train.lr": "0.001", "late": "7"}
    assert sorted((m.step, m.value) for m in client.get_metric_history(tracker.run_id, "loss")) == [(1, 0.5), (2, 0.25)]
    assert [a.path for a in client.list_artifacts(tracker.run_id)] == ["final.json"]

    assert sync_journals(tmp_path / "runs", store) == []  # nothing pending: a second sync uploads nothing
    again = replay_journal(client, read_journal(outcomes[0].directory))  # even a forced replay adds nothing
    assert (again.metrics, again.params, again.metrics_present) == (0, 0, 2)
    assert len(client.get_metric_history(tracker.run_id, "loss")) == 2


def test_sync_keeps_params_the_server_already_has_and_ends_a_dead_writers_run_killed(
        store: str, tmp_path: Path) -> None:
    from mlflow import MlflowClient
    from mlflow.entities import Param

    client = MlflowClient(tracking_uri=store)
    run = client.create_run(experiment_id(client))
    client.log_batch(run.info.run_id, params=[Param("train.epochs", "30")])
    journal = OfflineJournal.open(tmp_path / "runs" / run.info.run_id / JOURNAL_DIR,
                                  {"run_id": run.info.run_id, "tracking_uri": store})
    journal.log_batch(params=[Param("train.epochs", "40"), Param("seed", "1")])
    journal.close()  # no final status: its process died

    (outcome,) = sync_journals(tmp_path / "runs")  # the journal's own URI is used
    assert outcome.result == "synced" and outcome.stats.status == "KILLED"
    synced = client.get_run(run.info.run_id)
    assert synced.info.status == "KILLED"
    assert synced.data.params == {"train.epochs": "30", "seed": "1"}
    assert synced.data.tags["zslbench.params_changed"] == "train.epochs"


def test_sync_with_the_server_still_away_exits_2_and_touches_nothing(
        tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    from zslbench.cli import main

    uri = f"http://zsl:{SECRET}@127.0.0.1:{closed_port()}"
    folder = tmp_path / "runs" / "feedface" / JOURNAL_DIR
    OfflineJournal.open(folder, {"run_id": "feedface", "tracking_uri": uri}).close()
    before = (folder / JOURNAL_FILE).read_bytes()

    with pytest.raises(SystemExit) as exit_info:
        main(["track", "sync", "--output-dir", str(tmp_path / "runs"), "--tracking-uri", uri])
    assert exit_info.value.code == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "is unreachable" in err[0] and "127.0.0.1" in err[0] and SECRET not in err[0]
    assert "journals are kept" in err[0] and "zslbench track sync" in err[0]
    assert (folder / JOURNAL_FILE).read_bytes() == before and not (folder.parent / SYNCED_DIR).exists()


def test_a_journal_whose_uri_had_credentials_needs_the_uri_again(tmp_path: Path) -> None:
    folder = tmp_path / "runs" / "feedface" / JOURNAL_DIR
    OfflineJournal.open(folder, {"run_id": "feedface", "tracking_uri": "http://zsl:***@mlflow.lab:5000"}).close()
    with pytest.raises(UserError, match=r"run feedface: the tracking URI http://zsl:\*\*\*@mlflow.lab:5000 was saved "
                                        r"with its credentials masked \(they are never stored\); supply them at run "
                                        r"time: --tracking-uri with the full URI"):
        sync_journals(tmp_path / "runs", dry_run=True)


def test_dry_run_lists_pending_journals_without_contacting_anything(
        tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    from mlflow.entities import Metric

    from zslbench.cli import main

    folder = tmp_path / "runs" / "cafe01" / JOURNAL_DIR
    journal = OfflineJournal.open(folder, {"run_id": "cafe01", "tracking_uri": f"http://127.0.0.1:{closed_port()}"})
    journal.log_batch(metrics=[Metric("loss", 0.5, 1000, 0), Metric("h", 0.1, 1000, 0)])
    journal.terminate("FINISHED")
    journal.close()

    main(["track", "sync", "--dry-run", "--output-dir", str(tmp_path / "runs")])
    out = capsys.readouterr().out
    assert "cafe01" in out and "would sync" in out and "FINISHED" in out
    assert folder.exists()
    (tmp_path / "no-runs").mkdir()
    main(["track", "sync", "--dry-run", "--output-dir", str(tmp_path / "no-runs")])
    assert "nothing to sync" in capsys.readouterr().out


def test_resuming_a_run_uploads_its_pending_journal_first(store: str, tmp_path: Path,
                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    tracker = new_tracker(store, tmp_path)
    outage = Outage(monkeypatch, tracker.client)
    outage.down = True
    tracker.log_metrics({"loss": 0.5}, step=0)
    tracker.finish("KILLED")  # interrupted while the server was away
    outage.down = False

    track = TrackConfig(uri=store, experiment="offline", output_dir=str(tmp_path / "runs"))
    with open_tracker(track, resume_run_id=tracker.run_id) as resumed:
        assert resumed.client.get_run(tracker.run_id).info.status == "RUNNING"  # not the journal's KILLED
        resumed.log_metrics({"loss": 0.25}, step=1)
    history = resumed.client.get_metric_history(tracker.run_id, "loss")
    assert sorted(m.step for m in history) == [0, 1]
    assert resumed.client.get_run(tracker.run_id).info.status == "FINISHED"
    assert sync_journals(tmp_path / "runs", store) == []  # a later sync cannot undo FINISHED


# --------------------------------------------------------------------------- end to end, real server
@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory):
    server = MlflowServer(tmp_path_factory.mktemp("server"))
    server.start()
    yield server
    server.stop()


@pytest.mark.slow
@pytest.mark.timeout(300)
def test_run_survives_a_server_outage_and_sync_uploads_it(server: MlflowServer, tmp_path: Path) -> None:
    from mlflow import MlflowClient

    from zslbench.cli import main
    from zslbench.engine.run_data import load_run_data
    from zslbench.engine.runner import FINAL, run_one

    cfg = resolve(dataset="synth", preset="tiny", overrides=[
        "train.epochs=4", "train.threads=1", f"track.uri={server.uri}", "track.experiment=outage",
        f"track.output_dir={tmp_path / 'runs'}", f"data.root={tmp_path / 'data'}"])
    data = load_run_data(cfg, None)  # while the server starts
    server.wait_healthy()

    def lose_server_after_second_epoch(epoch: int, metrics: dict) -> None:
        if epoch == 1:
            server.stop()
            server.start()  # back on the same port and store in a while; the run stays offline meanwhile

    result = run_one(cfg, quiet=True, data=data, epoch_callback=lose_server_after_second_epoch)

    assert (result.out_dir / FINAL).exists() and len(result.history) == 4  # training finished, results local
    journal = read_journal(result.out_dir / JOURNAL_DIR)
    assert journal.final_status == "FINISHED"
    assert {Path(r["file"]).name for r in journal.records if r["op"] == "artifact"} >= {"final.json", "test_scores.npz"}
    server.wait_healthy()
    client = MlflowClient(tracking_uri=server.uri)
    assert client.get_run(result.run_id).info.status == "RUNNING"  # nothing after the outage arrived by itself

    main(["track", "sync", "--output-dir", str(tmp_path / "runs")])

    run = client.get_run(result.run_id)
    assert run.info.status == "FINISHED"
    assert len(run.data.params) == len(cfg.flat()) and run.data.params["train.epochs"] == "4"
    assert sorted(m.step for m in client.get_metric_history(result.run_id, "train_loss")) == [0, 1, 2, 3]
    assert run.data.metrics["final_zsl_t1"] == pytest.approx(result.final["zsl_t1"])
    assert run.data.metrics["final_gzsl_h"] == pytest.approx(result.final["gzsl_h"])
    assert {a.path for a in client.list_artifacts(result.run_id)} >= {"resolved.yaml", "final.json", "scores"}
    assert [a.path for a in client.list_artifacts(result.run_id, "scores")] == ["scores/epochs.npz",
                                                                               "scores/test_scores.npz"]
    assert json.loads(Path(client.download_artifacts(result.run_id, "final.json", str(tmp_path / "dl"))).read_text()) \
        == json.loads((result.out_dir / FINAL).read_text())
    assert (result.out_dir / SYNCED_DIR).is_dir() and not (result.out_dir / JOURNAL_DIR).exists()
