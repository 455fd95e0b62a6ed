"""Credentials are used, never stored or printed: a tracking URI's password, MLflow's credential variables and
token-shaped values are masked in saved configs, artifacts, journals, params, tags and terminal output, and
supplied again at run time from the command line or the environment.

The end-to-end test runs against a real ``mlflow server`` with MLflow's basic-auth app, so the password in the
URI is really needed: a run, a second run that loses the server mid-way (journalled offline), a ``track
sync`` with the credentials in MLflow's own variables only — and then nothing on disk or on the terminal holds
the password, in plain or percent-encoded form.
"""

from __future__ import annotations

import importlib.util
import json
import secrets
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from mlflow_server import MlflowServer, closed_port
from zslbench.config import Config, resolve
from zslbench.config.saving import saved_yaml
from zslbench.core.errors import UserError
from zslbench.core.secrets import MASK, MASKED_CONFIG_NOTE, mask_credentials
from zslbench.tracking import HTTP_POLICY, check_reachable, resolve_tracking_uri

PASSWORD = "PASSWORD-" + secrets.token_hex(4) + "@x/y"  # '@' and '/' travel percent-encoded in the URI
ENCODED = PASSWORD.replace("@", "%40").replace("/", "%2F")


@pytest.fixture(autouse=True)
def clean_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("MLFLOW_TRACKING_URI", "MLFLOW_TRACKING_USERNAME", "MLFLOW_TRACKING_PASSWORD",
                 "MLFLOW_TRACKING_TOKEN", "HTTP_PROXY", "HTTPS_PROXY", "http_proxy", "https_proxy", *HTTP_POLICY):
        monkeypatch.delenv(name, raising=False)


# --------------------------------------------------------------------------- masking
@pytest.mark.parametrize("text", [
    "ghp_" + "a1B2" * 9, "github_pat_" + "11ABCDEFG0" * 4, "glpat-" + "x1Y2z3" * 4, "hf_" + "AbCd1234" * 4,
    "sk-proj-" + "Q7r8S9t0" * 4, "xoxb-1234567890-abcdefghij", "AKIAIOSFODNN7EXAMPLE", "dapi" + "0123456789abcdef" * 2,
    "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxMjM0NTY3ODkwIn0.dozjgNryP4J3jVmNHl0w5N_XgL0n3I9PlFUP0THsR8U",
])
def test_token_shaped_values_are_masked_wherever_they_appear(text: str) -> None:
    assert mask_credentials(f"model.pretrained={text}") == "model.pretrained=***"
    assert mask_credentials(f"a note: {text}, then more") == "a note: ***, then more"


@pytest.mark.parametrize("text", [
    "/data/hf_cache/models", "task-0123456789abcdefghij", "vit_base_patch16_224.augreg2_in21k_ft_in1k",
    "sqlite:////home/me/mlflow.db", "http://mlflow:5000/#/experiments/1", "svip-CUB-no_replacement-s0",
])
def test_ordinary_values_are_left_alone(text: str) -> None:
    assert mask_credentials(text) == text


def test_password_and_token_query_parameters_are_masked() -> None:
    text = "postgresql://db/x?user=u&password=hunter2 https://h/a?token=t0k3n&x=1"
    assert mask_credentials(text) == "postgresql://db/x?user=u&password=*** https://h/a?token=***&x=1"


def test_a_saved_config_masks_its_secrets_and_says_how_to_supply_them() -> None:
    cfg = resolve(overrides=[f"track.uri=http://admin:{ENCODED}@mlflow.lab:5000/",
                             "data.word_vectors=hf_" + "AbCd1234" * 4])
    text = saved_yaml(cfg)
    assert "PASSWORD" not in text and "AbCd1234" not in text
    assert text.startswith(MASKED_CONFIG_NOTE) and "uri: http://admin:***@mlflow.lab:5000/" in text
    assert saved_yaml(resolve()) == resolve().to_yaml()  # nothing to mask: the plain YAML, no note
    again = resolve(overrides=["track.uri=http://admin:***@mlflow.lab:5000/"])  # read back from a masked file
    assert saved_yaml(again).startswith(MASKED_CONFIG_NOTE)


def test_run_dry_run_shows_the_config_masked(capsys: pytest.CaptureFixture[str]) -> None:
    from zslbench.cli import main

    main(["run", "--preset", "tiny", "--tracking-uri", f"http://admin:{ENCODED}@mlflow.lab:5000", "--dry-run"])
    out = capsys.readouterr().out
    assert "PASSWORD" not in out and "uri: http://admin:***@mlflow.lab:5000" in out


# --------------------------------------------------------------------------- credentials at run time
def masked_config(tmp_path: Path, uri: str) -> Config:
    path = tmp_path / "resolved.yaml"
    path.write_text(saved_yaml(resolve(overrides=[f"track.uri={uri}"])))
    return Config.from_yaml(path)


def test_a_masked_uri_takes_its_credentials_from_the_environment(tmp_path: Path,
                                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    uri = f"http://admin:{ENCODED}@127.0.0.1:{closed_port()}"
    saved = masked_config(tmp_path, uri)
    assert saved.track.uri == mask_credentials(uri) and MASK in saved.track.uri

    with pytest.raises(UserError, match=r"saved with its credentials masked .*--tracking-uri with the full URI, "
                                        r"\$MLFLOW_TRACKING_URI set to it, or, for an http\(s\) server, "
                                        r"\$MLFLOW_TRACKING_USERNAME and \$MLFLOW_TRACKING_PASSWORD"):
        check_reachable(resolve_tracking_uri(saved.track.uri))

    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)  # the same URI, with its password
    assert resolve_tracking_uri(saved.track.uri) == uri
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "http://other:pw@elsewhere:5000")  # another store: not used
    assert resolve_tracking_uri(saved.track.uri) == saved.track.uri

    monkeypatch.setenv("MLFLOW_TRACKING_USERNAME", "admin")  # MLflow's own variables: the URI loses its userinfo
    monkeypatch.setenv("MLFLOW_TRACKING_PASSWORD", PASSWORD)
    assert resolve_tracking_uri(saved.track.uri) == uri.replace(f"admin:{ENCODED}@", "")


def test_a_resumed_run_takes_the_password_from_the_same_tracking_uri_on_the_command_line(tmp_path: Path) -> None:
    from zslbench.engine.runner import with_command_credentials

    uri = f"http://admin:{ENCODED}@mlflow.lab:5000"
    assert with_command_credentials(masked_config(tmp_path, uri), resolve(overrides=[f"track.uri={uri}"])) \
        .track.uri == uri
    other = resolve(overrides=["track.uri=http://admin:x@elsewhere:5000"])
    assert MASK in with_command_credentials(masked_config(tmp_path, uri), other).track.uri


def test_processes_started_for_nproc_get_the_credentials_from_the_environment_not_the_file() -> None:
    from zslbench.commands import _environment_with_credentials

    uri = f"http://admin:{ENCODED}@mlflow.lab:5000"
    assert _environment_with_credentials(resolve(overrides=[f"track.uri={uri}"]))["MLFLOW_TRACKING_URI"] == uri
    assert "MLFLOW_TRACKING_URI" not in _environment_with_credentials(resolve(overrides=["track.uri=http://h:5000"]))


# --------------------------------------------------------------------------- end to end, a password-protected server
@pytest.fixture(scope="module")
def auth_server(tmp_path_factory: pytest.TempPathFactory):
    if importlib.util.find_spec("flask_wtf") is None:
        pytest.skip("MLflow's basic-auth app needs Flask-WTF (pip install 'mlflow[auth]'): credential test skipped")
    server = MlflowServer(tmp_path_factory.mktemp("auth-server"), password=PASSWORD)
    server.start()
    yield server
    server.stop()


def dead_pid() -> int:
    """The id of a process that has exited."""
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()
    return child.pid


def leaks(folder: Path) -> list[str]:
    """Files under ``folder`` holding the password, plain or percent-encoded (every form starts 'PASSWORD')."""
    return sorted(str(p) for p in folder.rglob("*") if p.is_file() and b"PASSWORD" in p.read_bytes())


@pytest.mark.slow
@pytest.mark.timeout(400)
def test_a_password_in_the_tracking_uri_is_never_stored_or_printed(auth_server: MlflowServer, tmp_path: Path,
                                                                  monkeypatch: pytest.MonkeyPatch,
                                                                  capfd: pytest.CaptureFixture[str]) -> None:
    from mlflow import MlflowClient

    from zslbench.cli import main
    from zslbench.engine.run_data import load_run_data
    from zslbench.engine.runner import RESOLVED, run_one
    from zslbench.tracking.journal import SYNCED_DIR
    from zslbench.tracking.tags import HOST_TAG, PID_TAG, START_TAG

    monkeypatch.chdir(tmp_path)
    data_root, runs = tmp_path / "data", tmp_path / "runs"
    cfg = resolve(dataset="synth", preset="tiny", overrides=[
        "train.epochs=2", "train.threads=1", f"track.uri={auth_server.uri}", "track.experiment=secret",
        f"track.output_dir={runs}", f"data.root={data_root}"])
    data = load_run_data(cfg, None)  # while the server starts
    auth_server.wait_healthy()
    client = MlflowClient(tracking_uri=auth_server.uri)
    dead = client.create_run(client.create_experiment("secret"), tags={  # a run whose process died: reaped below
        HOST_TAG: socket.gethostname(), PID_TAG: str(dead_pid()), START_TAG: "0"}).info.run_id

    # 1. a run through the command line, the password in --tracking-uri
    main(["run", "--preset", "tiny", "--epochs", "2", "--set", "train.threads=1", "--data-root", str(data_root),
          "--tracking-uri", auth_server.uri, "--experiment", "secret", "--set", f"track.output_dir={runs}",
          "--json", str(tmp_path / "first.json")])
    first = json.loads((tmp_path / "first.json").read_text())["run_id"]

    # 2. a run that loses the server after its first epoch: the rest is journalled in its run folder
    def lose_server(epoch: int, metrics: dict) -> None:
        if epoch == 0:
            auth_server.stop()
            auth_server.start()

    second = run_one(cfg, quiet=True, data=data, epoch_callback=lose_server)
    auth_server.wait_healthy()

    # 3. track sync with the credentials in MLflow's own variables only (the journal keeps the URI masked)
    monkeypatch.setenv("MLFLOW_TRACKING_USERNAME", "admin")
    monkeypatch.setenv("MLFLOW_TRACKING_PASSWORD", PASSWORD)
    main(["track", "sync", "--output-dir", str(runs)])
    monkeypatch.delenv("MLFLOW_TRACKING_PASSWORD")

    printed = capfd.readouterr()
    assert client.get_run(dead).info.status == "KILLED"  # reaped by the first run (MLflow prints a link then)
    for run_id in (first, second.run_id):
        assert client.get_run(run_id).info.status == "FINISHED"
        assert client.get_run(run_id).data.params["track.uri"] == f"http://admin:***@127.0.0.1:{auth_server.port}"
    assert (second.out_dir / SYNCED_DIR).is_dir()
    saved = (runs / first / RESOLVED).read_text()
    assert saved.startswith(MASKED_CONFIG_NOTE) and f"uri: http://admin:***@127.0.0.1:{auth_server.port}" in saved
    assert f"MLflow run {first}: http://127.0.0.1:{auth_server.port}/#/experiments/" in printed.err  # the link, bare

    assert "PASSWORD" not in printed.out + printed.err, "the password was printed"
    assert leaks(runs) == [] and leaks(auth_server.root / "artifacts") == []  # run folders, journals, artifacts
    assert b"PASSWORD" not in (auth_server.root / "server.db").read_bytes()  # params, tags, metrics
