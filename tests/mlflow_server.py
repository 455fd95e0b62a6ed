"""A real ``mlflow server`` on 127.0.0.1 for tests: sqlite backend and proxied artifacts under a folder, and —
with ``password`` — MLflow's basic-auth app, so that the tracking URI must carry ``admin:<password>@``."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path
from urllib.parse import quote


def closed_port() -> int:
    """A local TCP port nothing listens on (bound, then released)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class MlflowServer:
    """``mlflow server`` on 127.0.0.1 with a sqlite backend and proxied artifacts under ``root``."""

    def __init__(self, root: Path, password: str | None = None) -> None:
        self.root = root
        self.port = closed_port()
        self.password = password
        self.process: subprocess.Popen | None = None

    @property
    def uri(self) -> str:
        """The tracking URI; with a password, ``admin:<password>`` percent-encoded in its userinfo."""
        if self.password is None:
            return f"http://127.0.0.1:{self.port}"
        return f"http://admin:{quote(self.password, safe='')}@127.0.0.1:{self.port}"

    @property
    def bare_uri(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> None:
        """Launch without waiting (start-up takes seconds: overlap it with other work)."""
        env = {**os.environ, "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false"}  # no job runner processes
        command = [sys.executable, "-m", "mlflow", "server", "--host", "127.0.0.1", "--port", str(self.port),
                   "--backend-store-uri", f"sqlite:///{self.root / 'server.db'}",
                   "--artifacts-destination", str(self.root / "artifacts"), "--workers", "1"]
        if self.password is not None:
            config = self.root / "basic_auth.ini"
            config.write_text("[mlflow]\ndefault_permission = READ\n"
                              f"database_uri = sqlite:///{self.root / 'auth.db'}\nadmin_username = admin\n"
                              "authorization_function = mlflow.server.auth:authenticate_request_basic_auth\n")
            env.update(MLFLOW_AUTH_CONFIG_PATH=str(config), MLFLOW_AUTH_ADMIN_PASSWORD=self.password,
                       MLFLOW_FLASK_SERVER_SECRET_KEY="zslbench-test-secret-key")
            command += ["--app-name", "basic-auth"]
        log = open(self.root / "server.log", "ab")
        self.process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
                                        env=env)
        log.close()

    def wait_healthy(self, timeout: float = 120) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            assert self.process is not None and self.process.poll() is None, (self.root / "server.log").read_text()
            try:
                with urllib.request.urlopen(f"{self.bare_uri}/health", timeout=2) as response:
                    if response.status == 200:
                        return
            except OSError:
                time.sleep(0.2)
        raise AssertionError(f"mlflow server not healthy after {timeout} s")

    def stop(self) -> None:
        """Stop the server and its worker (their own process group); the port refuses connections after."""
        if self.process is None or self.process.poll() is not None:
            return
        os.killpg(self.process.pid, signal.SIGTERM)
        try:
            self.process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait()
        with socket.socket() as probe:  # the worker may outlive the parent by a moment
            for _ in range(100):
                if probe.connect_ex(("127.0.0.1", self.port)) != 0:
                    break
                time.sleep(0.1)
