"""Tests of zslbench.tracking against a real sqlite MLflow store (one per module: creating it is slow):
store URIs and reachability, masking, and the online tracker's runs (the behaviours every tracker mode
shares are in test_tracker_modes.py)."""

from __future__ import annotations

import base64
import json
import os
import socket
import subprocess
import sys
import textwrap
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import numpy as np
import pytest

from zslbench.config import Config, TrackConfig, resolve
from zslbench.core.errors import UserError
from zslbench.tracking import (
    PARENT_RUN_ENV,
    PARENT_TAG,
    NullTracker,
    check_reachable,
    find_finished_run,
    find_runs,
    mask_credentials,
    open_tracker,
    resolve_tracking_uri,
    standard_tags,
)

REPO = Path(__file__).resolve().parents[1]
SECRET = "s3cr3t-pa55"


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A directory holding one sqlite store shared by the module's tests."""
    return tmp_path_factory.mktemp("mlflow")


@pytest.fixture(autouse=True)
def clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    # Proxies would route the closed-port probes elsewhere; the other names would leak state into runs.
    for name in ("MLFLOW_TRACKING_URI", PARENT_RUN_ENV, "MLFLOW_TRACKING_TOKEN", "MLFLOW_RUN_ID",
                 "http_proxy", "https_proxy", "HTTP_PROXY", "HTTPS_PROXY", "all_proxy", "ALL_PROXY"):
        monkeypatch.delenv(name, raising=False)


def track_config(store: Path, experiment: str) -> TrackConfig:
    return TrackConfig(uri=f"sqlite:///{store}/mlflow.db", experiment=experiment)


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


# --------------------------------------------------------------------------- URIs and masking
def test_resolve_tracking_uri_order(monkeypatch: pytest.MonkeyPatch, tmp_path) -> None:
    # relative sqlite paths are pinned to the working directory at resolution time
    monkeypatch.chdir(tmp_path)
    assert resolve_tracking_uri("") == f"sqlite:///{tmp_path / 'mlflow.db'}"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "http://team:5000")
    assert resolve_tracking_uri("") == "http://team:5000"
    assert resolve_tracking_uri("sqlite:///x.db") == f"sqlite:///{tmp_path / 'x.db'}"
    assert resolve_tracking_uri("sqlite:////abs/x.db") == "sqlite:////abs/x.db"


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("postgresql+psycopg://user:secret@host/db", "postgresql+psycopg://user:***@host/db"),
        ("storage=postgresql://optuna:p@ss@db:5432/s ok", "storage=postgresql://optuna:***@db:5432/s ok"),
        ("https://ghp_0123456789abcdefghijkl@github.com/x.git", "https://***@github.com/x.git"),
        ("https://h/db?user=u&password=hunter2&ssl=1", "https://h/db?user=u&password=***&ssl=1"),
        ("s3://b/k?X-Amz-Signature=abcdef&sig=xyz", "s3://b/k?X-Amz-Signature=***&sig=***"),
        ("MLFLOW_TRACKING_TOKEN=dapi123456 and api_key=k", "MLFLOW_TRACKING_TOKEN=*** and api_key=***"),
        ("Authorization: Bearer abcdef123456", "Authorization: Bearer ***"),
        ("http://mlflow:5000/#/runs max_tokens=5 user@example.org", "http://mlflow:5000/#/runs max_tokens=5 user@example.org"),
        ("postgresql://alice@db/x", "postgresql://alice@db/x"),
    ],
)
def test_mask_credentials(text: str, expected: str) -> None:
    assert mask_credentials(text) == expected
    assert mask_credentials(expected) == expected  # masking is idempotent


def test_mask_credentials_hides_secret_environment_values(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MLFLOW_TRACKING_TOKEN", "tok-987654321")
    assert mask_credentials("header X-Token: tok-987654321") == "header X-Token: ***"


# --------------------------------------------------------------------------- reachability
def test_unreachable_server_fails_fast_with_masked_uri() -> None:
    uri = f"http://admin:{SECRET}@127.0.0.1:{closed_port()}"
    with pytest.raises(UserError, match=r"MLflow tracking server http://admin:\*\*\*@127\.0\.0\.1:\d+ is unreachable "
                                         r"\(.+\); start it, fix --tracking-uri .*track\.enabled=false") as caught:
        check_reachable(uri, timeout=2.0)
    assert SECRET not in str(caught.value)
    assert "\n" not in str(caught.value)


def test_open_with_unreachable_server_creates_nothing(monkeypatch: pytest.MonkeyPatch) -> None:
    import mlflow

    def no_client(*args, **kwargs):
        raise AssertionError("a client was created for an unreachable server")

    monkeypatch.setattr(mlflow, "MlflowClient", no_client)
    cfg = TrackConfig(uri=f"https://u:{SECRET}@127.0.0.1:{closed_port()}/mlflow")
    with pytest.raises(UserError, match="is unreachable") as caught:
        open_tracker(cfg, run_name="never")
    assert SECRET not in str(caught.value)


@pytest.fixture()
def fake_server():
    """A local HTTP server answering each path with the status given in ``server.statuses``."""

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # noqa: N802 - http.server's naming
            self.server.seen_auth = self.headers.get("Authorization")
            status = self.server.statuses.get(self.path.split("?")[0], 404)
            self.send_response(status)
            self.end_headers()
            self.wfile.write(b"{}")

        def log_message(self, *args) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server
    server.shutdown()
    server.server_close()


@pytest.mark.parametrize(
    ("statuses", "error"),
    [
        ({"/health": 200}, None),
        ({"/api/2.0/mlflow/experiments/search": 200}, None),  # a server without /health
        ({"/health": 503, "/api/2.0/mlflow/experiments/search": 500}, r"is unreachable \(HTTP 503 from /health; HTTP 500"),
        ({"/api/2.0/mlflow/experiments/search": 401}, r"refused the credentials \(HTTP 401\); set MLFLOW_TRACKING_USERNAME"),
    ],
)
def test_check_reachable_against_a_live_server(fake_server, statuses: dict, error: str | None) -> None:
    fake_server.statuses = statuses
    uri = f"http://user:{SECRET}@127.0.0.1:{fake_server.server_address[1]}/"
    if error is None:
        check_reachable(uri)
        # the URL's credentials travel as a Basic header, as MLflow would send them
        assert base64.b64decode(fake_server.seen_auth.removeprefix("Basic ")).decode() == f"user:{SECRET}"
        return
    with pytest.raises(UserError, match=error) as caught:
        check_reachable(uri)
    assert SECRET not in str(caught.value)


def test_sqlite_store_in_missing_directory_is_a_user_error(tmp_path: Path) -> None:
    with pytest.raises(UserError, match=r"directory '.*no/such' does not exist; create it or fix --tracking-uri"):
        check_reachable(f"sqlite:///{tmp_path}/no/such/mlflow.db")
    check_reachable(f"sqlite:///{tmp_path}/mlflow.db")  # an existing, writable directory is fine
    check_reachable("file:///anywhere/mlruns")


# --------------------------------------------------------------------------- runs
def test_run_records_params_tags_batched_metrics_and_artifacts(store: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    cfg = resolve(dataset="synth", preset="tiny", overrides=["train.seed=3"])
    cfg.ablations = ["no_replacement", "no_w2p"]
    tags = standard_tags(cfg, data_fingerprint="abc123", device="cpu")
    with open_tracker(track_config(store, "basic"), run_name="svip-synth", tags=tags, params=cfg.flat()) as tracker:
        calls = []
        real_log_batch = tracker.client.log_batch
        monkeypatch.setattr(tracker.client, "log_batch",
                            lambda *a, **k: (calls.append(len(k.get("metrics", ()))), real_log_batch(*a, **k))[1])
        for step in range(20):
            tracker.log_metrics({"train/loss": 1.0 / (step + 1), "val/h": step / 20, "lr": 1e-3}, step=step)
        tracker.log_metrics({"bad": float("nan")}, step=0)
        tracker.log_dict(cfg.to_dict(), "config/resolved.json")
        tracker.log_text("done", "notes.txt")
        tracker.log_scores("test", scores=np.arange(6.0).reshape(2, 3), labels=np.array([0, 2]))
        run_id = tracker.run_id
        assert tracker.artifact_uri.startswith(store.as_uri())  # artifacts live next to the store
    assert calls == [60]  # 60 values → one log_batch call at close

    run = tracker.client.get_run(run_id)
    assert run.info.status == "FINISHED"
    assert run.data.params["train.seed"] == "3"
    assert run.data.params["model.keep"] == str(cfg.model.keep)
    assert len(run.data.params) == len(cfg.flat())
    for key in ("zslbench.version", "zslbench.protocol", "git.commit", "git.dirty", "data.fingerprint", "model",
                "dataset", "ablations", "seed", "selection", "gamma_policy", "gamma_space", "device",
                "torch.version", "timm.version"):
        assert run.data.tags[key], key
    assert run.data.tags["ablations"] == "no_replacement,no_w2p"
    assert run.data.tags["data.fingerprint"] == "abc123"
    assert run.data.tags["zslbench.nonfinite_metrics"] == "bad"
    history = tracker.client.get_metric_history(run_id, "val/h")
    assert sorted(m.step for m in history) == list(range(20))
    assert "bad" not in run.data.metrics

    local = Path(tracker.client.download_artifacts(run_id, "", str(store / f"dl-{run_id}")))
    assert json.loads((local / "config" / "resolved.json").read_text())["train"]["seed"] == 3
    with np.load(local / "scores" / "test.npz") as saved:
        np.testing.assert_array_equal(saved["scores"], np.arange(6.0).reshape(2, 3))
        np.testing.assert_array_equal(saved["labels"], [0, 2])


def test_large_metric_buffers_flush_in_few_batches(store: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    with open_tracker(track_config(store, "basic")) as tracker:
        calls = []
        real_log_batch = tracker.client.log_batch
        monkeypatch.setattr(tracker.client, "log_batch", lambda *a, **k: (calls.append(1), real_log_batch(*a, **k))[1])
        for step in range(120):
            tracker.log_metrics({f"m{i}": float(i) for i in range(10)}, step=step)  # 1200 values
        assert len(calls) == 2  # flushed each time the buffer passed 500
    assert len(calls) == 3


def test_resume_continues_the_same_run(store: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    cfg = Config()
    track = track_config(store, "resume")
    with open_tracker(track, params=cfg.flat()) as first:
        first.log_metrics({"loss": 1.0}, step=0)
    cfg.train.epochs = 40  # extending a run changes a param MLflow will not overwrite
    sent_params = []
    from mlflow import MlflowClient

    real_log_batch = MlflowClient.log_batch

    def spy(self, run_id, metrics=(), params=(), tags=(), synchronous=None):
        sent_params.extend(p.key for p in params)
        return real_log_batch(self, run_id, metrics=metrics, params=params, tags=tags, synchronous=synchronous)

    monkeypatch.setattr(MlflowClient, "log_batch", spy)
    with open_tracker(track, params=cfg.flat(), resume_run_id=first.run_id) as resumed:
        assert resumed.run_id == first.run_id
        assert resumed.client.get_run(first.run_id).info.status == "RUNNING"
        resumed.log_metrics({"loss": 0.5}, step=1)
    assert sent_params == []  # nothing re-logged
    run = resumed.client.get_run(first.run_id)
    assert run.info.status == "FINISHED"
    assert [m.value for m in sorted(resumed.client.get_metric_history(run.info.run_id, "loss"), key=lambda m: m.step)] \
        == [1.0, 0.5]
    assert run.data.params["train.epochs"] == "30"
    assert run.data.tags["zslbench.params_changed"] == "train.epochs"
    assert run.data.tags["zslbench.resumed"] == "1"


def test_resume_of_unknown_run_is_a_user_error(store: Path) -> None:
    with pytest.raises(UserError, match="resumed MLflow run 'feedface' does not exist"):
        open_tracker(track_config(store, "resume"), resume_run_id="feedface")


def test_children_carry_the_parent_id_in_process_and_across_processes(store: Path) -> None:
    track = track_config(store, "sweep")
    with open_tracker(track, run_name="study") as parent:
        with open_tracker(track, run_name="trial-0", parent_run_id=parent.run_id) as explicit:
            pass
        with open_tracker(track, run_name="trial-1", nested=True) as nested:
            pass
        script = textwrap.dedent(f"""
            import os
            from zslbench.config import TrackConfig
            from zslbench.tracking import open_tracker
            track = TrackConfig(uri={track.uri!r}, experiment="sweep")
            with open_tracker(track, run_name="trial-2", parent_run_id={parent.run_id!r}) as by_id:
                by_id.log_metrics({{"h": 0.5}}, step=0)
            os.environ["{PARENT_RUN_ENV}"] = {parent.run_id!r}
            with open_tracker(track, run_name="trial-3", nested=True) as by_env:
                pass
            print(by_id.run_id, by_env.run_id)
        """)
        done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, cwd=REPO, timeout=120,
                              env={**os.environ, "PYTHONPATH": str(REPO)})
        assert done.returncode == 0, done.stderr[-2000:]
        remote_ids = done.stdout.split()
    client = parent.client
    for run_id in (explicit.run_id, nested.run_id, *remote_ids):
        run = client.get_run(run_id)
        assert run.data.tags[PARENT_TAG] == parent.run_id
        assert run.info.status == "FINISHED"
    assert PARENT_TAG not in client.get_run(parent.run_id).data.tags


def test_exception_marks_the_run_failed(store: Path) -> None:
    with pytest.raises(RuntimeError, match="loss became NaN"):
        with open_tracker(track_config(store, "failures")) as tracker:
            tracker.log_metrics({"loss": 2.0}, step=0)
            raise RuntimeError("loss became NaN at step 3")
    run = tracker.client.get_run(tracker.run_id)
    assert run.info.status == "FAILED"
    assert run.data.metrics["loss"] == 2.0  # buffered metrics still written
    assert run.data.tags["zslbench.error"] == "RuntimeError: loss became NaN at step 3"


def test_keyboard_interrupt_marks_the_run_killed(store: Path) -> None:
    with pytest.raises(KeyboardInterrupt):
        with open_tracker(track_config(store, "failures")) as tracker:
            raise KeyboardInterrupt
    assert tracker.client.get_run(tracker.run_id).info.status == "KILLED"


def test_credentials_never_reach_params_or_tags(store: Path) -> None:
    url = f"postgresql+psycopg://optuna:{SECRET}@db.lab:5432/studies"
    params = {"sweep.storage": url, "sweep.db_password": SECRET, "long": "x" * 10_000}
    with open_tracker(track_config(store, "secrets"), params=params, tags={"storage": url}) as tracker:
        tracker.log_text(f"storage {url}", "storage.txt")
    run = tracker.client.get_run(tracker.run_id)
    assert run.data.params["sweep.storage"] == "postgresql+psycopg://optuna:***@db.lab:5432/studies"
    assert run.data.params["sweep.db_password"] == "***"
    assert run.data.tags["storage"] == "postgresql+psycopg://optuna:***@db.lab:5432/studies"
    assert run.data.params["long"].endswith("[truncated]") and len(run.data.params["long"]) <= 6000
    assert SECRET not in Path(tracker.client.download_artifacts(tracker.run_id, "storage.txt", str(store))).read_text()
    assert SECRET not in repr(tracker)


def test_find_finished_run_matches_tags_and_ignores_unfinished(store: Path) -> None:
    track = track_config(store, "skip-existing")
    wanted = {"config.hash": "c0ffee", "seed": "1"}
    running = open_tracker(track, tags=wanted)
    with pytest.raises(ValueError):
        with open_tracker(track, tags=wanted):
            raise ValueError("boom")
    with open_tracker(track, tags={"config.hash": "c0ffee", "seed": "2"}):
        pass
    assert find_finished_run("skip-existing", wanted, tracking_uri=track.uri) is None
    with open_tracker(track, tags=wanted) as finished:
        pass
    assert find_finished_run("skip-existing", wanted, tracking_uri=track.uri) == finished.run_id
    assert find_finished_run("skip-existing", {**wanted, "seed": 1}, tracking_uri=track.uri) == finished.run_id
    assert find_finished_run("no-such-experiment", wanted, tracking_uri=track.uri) is None
    found = find_runs("skip-existing", "tags.seed = '1'", tracking_uri=track.uri)
    assert {r.info.run_id for r in found} >= {running.run_id, finished.run_id}
    running.finish("KILLED")


def test_disabled_tracking_gives_a_null_tracker(tmp_path: Path) -> None:
    tracker = open_tracker(TrackConfig(enabled=False, uri=f"http://127.0.0.1:{closed_port()}"))
    assert isinstance(tracker, NullTracker) and tracker.run_id is None
    with tracker as run:
        run.log_metrics({"loss": 1.0}, step=0)
        run.log_params({"a": 1})
        run.set_tags({"b": "2"})
        run.log_artifact(tmp_path / "missing.txt")
        run.log_dict({"a": 1}, "a.json")
        run.log_text("x", "x.txt")
        run.log_scores("test", scores=np.zeros(2))
        run.log_figure(object(), "f.png")
        run.flush()
    run.finish("FAILED")
    assert not list(tmp_path.iterdir())


def test_two_processes_opening_a_new_sqlite_store_at_once_both_record_runs(tmp_path: Path) -> None:
    """MLflow creates the sqlite schema on first use; racing processes must not break each other."""
    code = (
        "import sys\n"
        "from zslbench.config import TrackConfig\n"
        "from zslbench.tracking import open_tracker\n"
        "cfg = TrackConfig(uri=sys.argv[1], experiment='race')\n"
        "t = open_tracker(cfg, run_name=sys.argv[2])\n"
        "t.log_metrics({'x': 1.0}, step=0)\n"
        "t.finish('FINISHED')\n"
    )
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    env = {k: v for k, v in os.environ.items() if k != "MLFLOW_TRACKING_URI"}
    procs = [subprocess.Popen([sys.executable, "-c", code, uri, f"r{i}"], env=env, stderr=subprocess.PIPE, text=True)
             for i in range(3)]
    errors = [p.communicate(timeout=120)[1] for p in procs]
    assert [p.returncode for p in procs] == [0, 0, 0], errors
    import mlflow

    client = mlflow.MlflowClient(tracking_uri=uri)
    runs = client.search_runs([client.get_experiment_by_name("race").experiment_id])
    assert sorted(r.info.run_name for r in runs) == ["r0", "r1", "r2"]
    assert {r.info.status for r in runs} == {"FINISHED"}


def test_masking_survives_other_threads_changing_the_environment() -> None:
    """MLflow's telemetry thread adds and removes variables while runs log params."""
    import threading

    from zslbench.tracking import mask_credentials

    stop = threading.Event()

    def churn() -> None:
        while not stop.is_set():
            os.environ["ZSLBENCH_TEST_CHURN"] = "1"
            os.environ.pop("ZSLBENCH_TEST_CHURN", None)

    worker = threading.Thread(target=churn)
    worker.start()
    try:
        os.environ["ZSLBENCH_TEST_API_TOKEN"] = "churn-secret-value"
        for _ in range(3000):
            assert mask_credentials("key churn-secret-value") == "key ***"
    finally:
        stop.set()
        worker.join()
        os.environ.pop("ZSLBENCH_TEST_API_TOKEN", None)


# --------------------------------------------------------------------------- the package's shape
PACKAGE = REPO / "zslbench" / "tracking"


def imported_modules(path: Path) -> list[tuple[str, list[str]]]:
    """(module, names) of every ``import``/``from … import`` in ``path``, typing-only ones included."""
    import ast

    found = []
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module:
            found.append((node.module, [alias.name for alias in node.names]))
        elif isinstance(node, ast.Import):
            found.extend((alias.name, []) for alias in node.names)
    return found


def test_importing_the_tracking_package_imports_no_mlflow() -> None:
    code = "import sys, zslbench.tracking; print(sorted(m for m in sys.modules if m.split('.')[0] == 'mlflow'))"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.strip() == "[]"


def test_only_the_tracking_package_imports_mlflow() -> None:
    offenders = [f"{path.relative_to(REPO)}: {module}" for path in sorted((REPO / "zslbench").rglob("*.py"))
                 if PACKAGE not in path.parents
                 for module, _ in imported_modules(path) if module.split(".")[0] == "mlflow"]
    assert offenders == []


def test_secret_masking_sits_on_the_ground_floor() -> None:
    imported = {module.split(".")[0] if not module.startswith("zslbench") else module
                for module, _ in imported_modules(REPO / "zslbench" / "core" / "secrets.py")}
    assert {m for m in imported if m.startswith("zslbench") and not m.startswith("zslbench.core")} == set()
    assert imported <= {"__future__", "functools", "os", "re", "typing"}


def test_tracking_modules_are_small_acyclic_and_share_no_private_names() -> None:
    graph: dict[str, set[str]] = {}
    for path in sorted(PACKAGE.glob("*.py")):
        assert len(path.read_text().splitlines()) < 400, path.name
        name = f"zslbench.tracking.{path.stem}" if path.stem != "__init__" else "zslbench.tracking"
        graph[name] = set()
        for module, names in imported_modules(path):
            if module.startswith("zslbench.tracking."):
                graph[name].add(module)
                private = [n for n in names if n.startswith("_")]
                assert not private, f"{path.name} imports private {private} from {module}"
    visiting: list[str] = []
    done: set[str] = set()

    def visit(node: str) -> None:
        assert node not in visiting, f"import cycle: {' → '.join([*visiting, node])}"
        if node in done:
            return
        visiting.append(node)
        for target in graph.get(node, ()):
            visit(target)
        visiting.pop()
        done.add(node)

    for node in graph:
        visit(node)
