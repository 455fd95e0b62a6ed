"""Can the store be reached? Checked once before a run starts (:func:`check_reachable`, one clear
line instead of MLflow's minutes of retries), and asked of every failed write once it runs
(:func:`is_connection_error`: a lost server sends the tracker to its offline journal, a refusal does not).

>>> is_connection_error(ConnectionRefusedError(111, "Connection refused"))
True

Importing this module does not import mlflow.
"""

from __future__ import annotations

import base64
import functools
import importlib.metadata
import os
import socket
import ssl
import urllib.error
import urllib.request
from pathlib import Path
from typing import Iterator
from urllib.parse import unquote, urlsplit, urlunsplit

from zslbench.core.errors import UserError
from zslbench.core.secrets import mask_credentials
from zslbench.tracking.store import sqlite_path, store_scheme, unusable_store, with_credentials

UNREACHABLE_HINT = "start it, fix --tracking-uri (or $MLFLOW_TRACKING_URI), or use --set track.enabled=false"
#: Store schemes MLflow itself supports (``postgresql+psycopg://`` counts as ``postgresql``); packages
#: may add more through the ``mlflow.tracking_store`` entry point group.
MLFLOW_STORE_SCHEMES = ("", "file", "sqlite", "postgresql", "mysql", "mssql", "http", "https", "databricks",
                        "databricks-uc", "uc")
#: Default ports of the database servers a store URI may name (to test the connection before MLflow
#: does: MLflow retries an unreachable database for about 100 s).
DATABASE_PORTS = {"postgresql": 5432, "mysql": 3306}  # (an mssql "host" may be an ODBC data source name)
_HEALTH_PATHS = ("/health", "/api/2.0/mlflow/experiments/search?max_results=1")

# Exceptions (by module and name, so nothing is imported to classify) meaning "the store could not be
# reached", not "the store refused the request".
_CONNECTION_ERRORS = {
    ("requests.exceptions", "ConnectionError"), ("requests.exceptions", "ConnectTimeout"),
    ("requests.exceptions", "ReadTimeout"), ("requests.exceptions", "Timeout"),
    ("requests.exceptions", "RetryError"),  # retries of 429/5xx answers (a proxy whose backend is gone) exhausted
    ("urllib3.exceptions", "MaxRetryError"), ("urllib3.exceptions", "NewConnectionError"),
    ("urllib3.exceptions", "ProtocolError"), ("urllib3.exceptions", "ReadTimeoutError"),
    ("urllib3.exceptions", "ConnectTimeoutError"),
    ("http.client", "RemoteDisconnected"), ("http.client", "IncompleteRead"),
}
# A database store (postgresql://…) whose server went away; sqlite's errors are local problems instead.
_DATABASE_CONNECTION_ERRORS = {("sqlalchemy.exc", "OperationalError"), ("sqlalchemy.exc", "InterfaceError"),
                               ("sqlalchemy.exc", "DisconnectionError")}


# --------------------------------------------------------------------------- before a run
def check_reachable(uri: str, timeout: float = 3.0, hint: str = UNREACHABLE_HINT) -> None:
    """Fail fast, with one clear :class:`UserError` line, when the store at ``uri`` cannot be used.

    The scheme must be one MLflow can open. ``http(s)://``: the server must answer ``/health`` (or
    the experiments search endpoint) within ``timeout`` seconds. ``sqlite:``: the database's
    directory must exist and be writable. ``postgresql:``/``mysql:`` with a host: it must
    accept a TCP connection within ``timeout`` seconds. Other stores (``file:``) are checked when first
    opened. ``hint``: what the message of an unreachable server tells the user to do.

    >>> check_reachable("bogus://x")  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    zslbench.core.errors.UserError: MLflow tracking store bogus://x could not be used (unsupported scheme 'bogus'; ...
    """
    with_credentials(uri, strict=True)  # a URI saved with masked credentials: say how to supply them
    scheme = store_scheme(uri)
    if scheme not in MLFLOW_STORE_SCHEMES and scheme not in _plugin_store_schemes():
        raise unusable_store(uri, f"unsupported scheme {scheme!r}; MLflow stores are file:, sqlite:, postgresql:, "
                                  "mysql:, mssql:, http(s): and databricks URIs or a plain folder")
    if scheme in ("http", "https"):
        _check_http(uri, timeout, hint)
    elif scheme == "sqlite":
        _check_sqlite(uri)
    elif scheme in DATABASE_PORTS:
        _check_database_server(uri, DATABASE_PORTS[scheme], timeout)


@functools.lru_cache(maxsize=1)
def _plugin_store_schemes() -> frozenset[str]:
    """Schemes that installed packages add to MLflow (``mlflow.tracking_store`` entry points)."""
    return frozenset(entry.name for entry in importlib.metadata.entry_points(group="mlflow.tracking_store"))


def unreachable_error(uri: str, reason: str, hint: str = UNREACHABLE_HINT) -> UserError:
    """The one-line error for a tracking server that does not answer, credentials masked.

    >>> str(unreachable_error("http://u:pw@h:5000", "connection refused", "start it"))
    'MLflow tracking server http://u:***@h:5000 is unreachable (connection refused); start it'
    """
    return UserError(f"MLflow tracking server {mask_credentials(uri)} is unreachable ({mask_credentials(reason)}); "
                     f"{hint}")


def _check_database_server(uri: str, default_port: int, timeout: float) -> None:
    """A database server named by host must accept a TCP connection (a Unix socket is left to the driver).

    >>> _check_database_server("postgresql:///db?host=/run/postgresql", 5432, 1.0)  # a socket: not tried
    """
    parts = urlsplit(uri)
    try:
        host, port = parts.hostname, parts.port or default_port
    except ValueError as exc:  # a port that is no number
        raise unusable_store(uri, str(exc)) from None
    if not host or "host=" in parts.query or "unix_socket=" in parts.query:
        return
    try:
        socket.create_connection((host, port), timeout=timeout).close()
    except OSError as exc:
        reason = _connection_failure_reason(exc, timeout)
        raise UserError(f"MLflow tracking store {mask_credentials(uri)} is unreachable ({mask_credentials(reason)}); "
                        "start the database server, fix --tracking-uri (or $MLFLOW_TRACKING_URI), "
                        "or use --set track.enabled=false") from None


def _check_http(uri: str, timeout: float, hint: str = UNREACHABLE_HINT) -> None:
    base, headers = _split_http_credentials(uri)
    context = _ssl_context() if base.startswith("https") else None
    failures: list[str] = []
    for path in _HEALTH_PATHS:
        request = urllib.request.Request(base + path, headers=headers, method="GET")
        try:
            with urllib.request.urlopen(request, timeout=timeout, context=context) as response:
                if 200 <= response.status < 300:
                    return
                failures.append(f"HTTP {response.status} from {path.split('?')[0]}")
        except urllib.error.HTTPError as exc:  # the server answered, with an error status
            status = exc.code
            exc.close()
            if status in (401, 403) and path == _HEALTH_PATHS[-1]:
                raise UserError(
                    f"MLflow tracking server {mask_credentials(uri)} refused the credentials (HTTP {status}); "
                    "set MLFLOW_TRACKING_USERNAME and MLFLOW_TRACKING_PASSWORD or MLFLOW_TRACKING_TOKEN, "
                    "or use --set track.enabled=false") from None
            failures.append(f"HTTP {status} from {path.split('?')[0]}")
        except (urllib.error.URLError, OSError, ValueError) as exc:
            # No connection at all: the fallback endpoint would fail the same way, slower.
            raise unreachable_error(uri, _connection_failure_reason(exc, timeout), hint) from None
    raise unreachable_error(uri, "; ".join(failures), hint)


def _connection_failure_reason(exc: BaseException, timeout: float) -> str:
    reason = exc.reason if isinstance(exc, urllib.error.URLError) else exc
    if isinstance(reason, (socket.timeout, TimeoutError)):
        return f"no answer within {timeout:g} s"
    if isinstance(reason, OSError) and reason.strerror:
        return reason.strerror
    return str(reason) or type(reason).__name__


def _split_http_credentials(uri: str) -> tuple[str, dict[str, str]]:
    """The URI without userinfo, query or trailing slash, and the auth headers MLflow would send."""
    parts = urlsplit(uri)
    netloc = parts.hostname or ""
    if ":" in netloc:  # IPv6 literal
        netloc = f"[{netloc}]"
    if parts.port:
        netloc += f":{parts.port}"
    base = urlunsplit((parts.scheme, netloc, parts.path.rstrip("/"), "", ""))
    headers: dict[str, str] = {}
    # userinfo is percent-encoded in a URI (a password with '@' or '/'); requests, which MLflow uses, decodes it
    user = unquote(parts.username or "") or os.environ.get("MLFLOW_TRACKING_USERNAME")
    password = unquote(parts.password or "") or os.environ.get("MLFLOW_TRACKING_PASSWORD")
    token = os.environ.get("MLFLOW_TRACKING_TOKEN")
    if user and password:
        headers["Authorization"] = "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()
    elif token:
        headers["Authorization"] = f"Bearer {token}"
    return base, headers


def _ssl_context() -> ssl.SSLContext:
    if os.environ.get("MLFLOW_TRACKING_INSECURE_TLS", "").lower() in ("1", "true", "yes"):
        return ssl._create_unverified_context()  # the user opted out of verification, as in MLflow
    return ssl.create_default_context(cafile=os.environ.get("MLFLOW_TRACKING_SERVER_CERT_PATH") or None)


def _check_sqlite(uri: str) -> None:
    path = sqlite_path(uri)
    if path is None:
        return
    directory = path.parent if str(path.parent) else Path(".")
    shown = mask_credentials(uri)
    if not directory.is_dir():
        raise UserError(f"MLflow store {shown} cannot be created: directory {str(directory)!r} does not exist; "
                        "create it or fix --tracking-uri")
    if not os.access(directory, os.W_OK | os.X_OK):
        raise UserError(f"MLflow store {shown} cannot be written: directory {str(directory)!r} is not writable; "
                        "fix its permissions or use another --tracking-uri")
    if path.exists() and not os.access(path, os.R_OK | os.W_OK):
        raise UserError(f"MLflow store {shown} cannot be written: {str(path)!r} is read-only; "
                        "fix its permissions or use another --tracking-uri")


# --------------------------------------------------------------------------- while a run writes
def _causes(exc: BaseException) -> Iterator[BaseException]:
    """``exc`` and its causes/contexts (MLflow re-raises request failures without ``from``)."""
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        yield current
        current = current.__cause__ or current.__context__


def _is_named(exc: BaseException, names: set[tuple[str, str]]) -> bool:
    return any((cls.__module__, cls.__name__) in names for cls in type(exc).__mro__)


def is_connection_error(exc: BaseException, tracking_uri: str = "") -> bool:
    """Whether ``exc`` (or what it wraps) says the tracking store could not be reached: a refused or
    dropped connection, a timeout, retries of "unavailable" answers exhausted. Refusals (bad value,
    unknown run, no permission) are not.

    >>> is_connection_error(ConnectionRefusedError(111, "Connection refused"))
    True
    >>> is_connection_error(ValueError("param 'x' already logged with another value"))
    False
    """
    database = not tracking_uri.startswith(("sqlite", "file", "http")) and "://" in tracking_uri
    for cause in _causes(exc):
        if isinstance(cause, (ConnectionError, socket.timeout, TimeoutError)):
            return True
        if _is_named(cause, _CONNECTION_ERRORS):
            return True
        if database and _is_named(cause, _DATABASE_CONNECTION_ERRORS):
            return True
    return False


def failure_reason(exc: BaseException) -> str:
    """A few words on why the store could not be reached (for the one warning line).

    >>> failure_reason(ConnectionRefusedError(111, "Connection refused"))
    'connection refused'
    """
    for cause in reversed(list(_causes(exc))):  # the root cause says most
        if isinstance(cause, ConnectionRefusedError):
            return "connection refused"
        if isinstance(cause, (socket.timeout, TimeoutError)) or "Timeout" in type(cause).__name__:
            return "no answer in time"
        if isinstance(cause, ConnectionError) or type(cause).__name__ == "RemoteDisconnected":
            return "connection lost"
        if type(cause).__name__ == "RetryError":
            text = str(cause)
            marker = text.find("too many ")
            return text[marker:].split(")")[0] if marker >= 0 else "server unavailable"
    return "connection failed" if is_connection_error(exc) else type(exc).__name__


__all__ = ["DATABASE_PORTS", "MLFLOW_STORE_SCHEMES", "UNREACHABLE_HINT", "check_reachable", "failure_reason",
           "is_connection_error", "unreachable_error"]
