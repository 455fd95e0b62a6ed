"""Test helper: an MLflow client made to fail like a tracking server that went away.

The failure is the one MLflow's REST layer raises once its retries on a refused connection are
spent, so the tracker's own classification (:func:`zslbench.tracking.is_connection_error`) decides,
as it would against a real stopped server (``tests/test_tracking_offline.py`` also stops a real one).
"""

from __future__ import annotations

import pytest


def raise_refused(endpoint: str = "runs/log-batch") -> None:
    """Raise what MLflow's REST layer raises once its retries on a refused connection are spent: an
    MlflowException raised while handling requests' ConnectionError (which wraps the OS error).

    Raised in place, as MLflow does, so the chain of causes is right even while another exception is
    being handled (a run failing, its tracker's ``__exit__`` writing)."""
    import requests
    from mlflow.exceptions import MlflowException

    try:
        try:
            raise ConnectionRefusedError(111, "Connection refused")
        except ConnectionRefusedError as root:
            raise requests.exceptions.ConnectionError("HTTPConnectionPool(host='127.0.0.1', port=9): "
                                                      "Max retries exceeded") from root
    except requests.exceptions.ConnectionError as exc:
        raise MlflowException(f"API request to http://127.0.0.1:9/api/2.0/mlflow/{endpoint} failed "
                              f"with exception {exc}")


def refused(endpoint: str = "runs/log-batch") -> Exception:
    """The exception :func:`raise_refused` raises."""
    from mlflow.exceptions import MlflowException

    try:
        raise_refused(endpoint)
    except MlflowException as exc:
        return exc
    raise AssertionError("unreachable")


class Outage:
    """Makes a tracker's client fail like a vanished server; counts the calls it was asked for.

    ``delivered_before_failing``: the write reaches the store, then the answer is lost (the
    connection dies after the server committed it). ``reads``: client reads that fail too."""

    WRITES = ("log_batch", "log_artifact", "log_artifacts", "set_terminated")

    def __init__(self, monkeypatch: pytest.MonkeyPatch, client, delivered_before_failing: bool = False,
                 reads: tuple[str, ...] = ()) -> None:
        self.down = False
        self.attempts: list[str] = []
        for name in (*self.WRITES, *reads):
            real = getattr(client, name)
            monkeypatch.setattr(client, name, self._wrap(name, real, delivered_before_failing))

    def _wrap(self, name, real, delivered_before_failing):
        def write(*args, **kwargs):
            if not self.down:
                return real(*args, **kwargs)
            self.attempts.append(name)
            if delivered_before_failing:
                real(*args, **kwargs)
            raise_refused()
        return write
