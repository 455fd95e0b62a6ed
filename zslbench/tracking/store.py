"""The MLflow store a run is tracked in: its URI, MLflow's limits and HTTP settings, its lock, its errors.

>>> resolve_tracking_uri("http://mlflow.lab:5000")
'http://mlflow.lab:5000'
>>> store_scheme("postgresql+psycopg://u@db/x")
'postgresql'

Importing this module does not import mlflow.
"""

from __future__ import annotations

import contextlib
import functools
import os
import re
import threading
from pathlib import Path
from typing import Iterator
from urllib.parse import urlsplit, urlunsplit

from zslbench.core.errors import UserError
from zslbench.core.secrets import has_masked_credentials, mask_credentials, truncate

DEFAULT_TRACKING_URI = "sqlite:///mlflow.db"

#: MLflow's HTTP settings for zslbench's own calls. MLflow's defaults (7 retries, exponential
#: back-off, 120 s timeout) take minutes to give up on a dead server; these give up in about
#: 2 s on a refused connection (retries after 0 s and 1 s) and 3 × 15 s on a silent one. MLflow's
#: own "View run … at: <uri>" lines are off: they print the tracking URI as given, password and all
#: (the tracker prints the link without credentials instead). A variable the user set wins.
HTTP_POLICY = {
    "MLFLOW_HTTP_REQUEST_MAX_RETRIES": "2",
    "MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR": "1",
    "MLFLOW_HTTP_REQUEST_BACKOFF_JITTER": "0.5",
    "MLFLOW_HTTP_REQUEST_TIMEOUT": "15",
    "MLFLOW_SUPPRESS_PRINTING_URL_TO_STDOUT": "true",
}
_POLICY_LOCK = threading.RLock()

#: Top-level modules whose exceptions, raised unwrapped by database and REST stores, mean "the store failed".
STORE_ERROR_MODULES = ("sqlalchemy", "psycopg", "psycopg2", "pymysql", "requests", "urllib3")


@contextlib.contextmanager
def http_policy():
    """Apply :data:`HTTP_POLICY` while zslbench talks to MLflow.

    MLflow reads these variables from the environment on every request and offers no per-client
    setting, so they are set for the duration of zslbench's calls only (serialised by a lock) and
    removed afterwards; other MLflow users in the process keep MLflow's defaults.
    """
    with _POLICY_LOCK:
        added = {name: value for name, value in HTTP_POLICY.items() if name not in os.environ}
        os.environ.update(added)
        try:
            yield
        finally:
            for name in added:
                os.environ.pop(name, None)


# --------------------------------------------------------------------------- tracking URI
def resolve_tracking_uri(cfg_uri: str = "") -> str:
    """The tracking URI: the ``--tracking-uri``/config value, else ``$MLFLOW_TRACKING_URI``,
    else ``sqlite:///mlflow.db`` in the working directory (MLflow's own default). A URI saved with
    its credentials masked gets them back from the environment (:func:`with_credentials`).

    >>> resolve_tracking_uri("http://mlflow.lab:5000")
    'http://mlflow.lab:5000'
    """
    uri = (cfg_uri or "").strip() or os.environ.get("MLFLOW_TRACKING_URI", "").strip() or DEFAULT_TRACKING_URI
    return absolute_sqlite_uri(with_credentials(uri))


def with_credentials(uri: str, any_environment_uri: bool = False, strict: bool = False) -> str:
    """``uri`` as it can be used: one read back from a saved config or journal, whose credentials were
    masked, takes them from ``$MLFLOW_TRACKING_URI`` when that is the same URI with its credentials (any
    ``$MLFLOW_TRACKING_URI`` when ``any_environment_uri``), else — for an http(s) server — from MLflow's
    own ``$MLFLOW_TRACKING_USERNAME``/``$MLFLOW_TRACKING_PASSWORD`` (the URI loses its userinfo, MLflow
    sends them). When none is there, ``strict`` makes it a one-line error that says how to supply them;
    otherwise the masked URI comes back (:func:`~zslbench.tracking.reachability.check_reachable` refuses it
    before anything is created). Other URIs are returned as they are.

    >>> with_credentials("http://mlflow.lab:5000")
    'http://mlflow.lab:5000'
    """
    if not has_masked_credentials(uri):
        return uri
    from_environment = os.environ.get("MLFLOW_TRACKING_URI", "").strip()
    if from_environment and (any_environment_uri or mask_credentials(from_environment) == uri):
        return from_environment
    parts = urlsplit(uri)
    mlflow_credentials = os.environ.get("MLFLOW_TRACKING_USERNAME") and os.environ.get("MLFLOW_TRACKING_PASSWORD")
    only_userinfo_masked = not has_masked_credentials(parts.query + parts.path)
    if parts.scheme in ("http", "https") and mlflow_credentials and only_userinfo_masked:
        return urlunsplit((parts.scheme, parts.netloc.rpartition("@")[2], parts.path, parts.query, parts.fragment))
    if not strict:
        return uri
    raise UserError(f"the tracking URI {uri} was saved with its credentials masked (they are never stored); supply "
                    "them at run time: --tracking-uri with the full URI, $MLFLOW_TRACKING_URI set to it, or, for an "
                    "http(s) server, $MLFLOW_TRACKING_USERNAME and $MLFLOW_TRACKING_PASSWORD")


def run_link(uri: str, experiment_id: str, run_id: str) -> str | None:
    """The web page of a run on an http(s) tracking server, without credentials (None for other stores).

    >>> run_link("http://me:pw@mlflow:5000/", "3", "abc")
    'http://mlflow:5000/#/experiments/3/runs/abc'
    """
    parts = urlsplit(uri)
    if parts.scheme not in ("http", "https"):
        return None
    base = urlunsplit((parts.scheme, parts.netloc.rpartition("@")[2], parts.path.rstrip("/"), "", ""))
    return f"{base}/#/experiments/{experiment_id}/runs/{run_id}"


def absolute_sqlite_uri(uri: str) -> str:
    """``sqlite:///relative.db`` → an absolute path, resolved against the working directory now.

    MLflow caches stores by URI string, so a relative one would keep pointing at the folder where
    it was first used; resolving it once makes every later use (children, workers) the same file.

    >>> absolute_sqlite_uri("sqlite:////data/mlflow.db")
    'sqlite:////data/mlflow.db'
    """
    prefix = "sqlite:///"
    if not uri.startswith(prefix) or uri[len(prefix):].startswith("/") or uri == prefix + ":memory:":
        return uri
    relative, query = uri[len(prefix):].partition("?")[::2]
    absolute = prefix + str(Path(relative).resolve())
    return absolute + (f"?{query}" if query else "")


def store_scheme(uri: str) -> str:
    """The store kind of ``uri`` as MLflow picks it: the scheme without a SQLAlchemy driver
    (``postgresql+psycopg`` → ``postgresql``); "" for a plain path.

    >>> store_scheme("postgresql+psycopg://u@db/x"), store_scheme("/data/mlruns"), store_scheme("databricks")
    ('postgresql', '', 'databricks')
    """
    if uri in ("databricks", "databricks-uc", "uc"):  # MLflow accepts these bare profile names
        return uri
    scheme = urlsplit(uri).scheme.lower()
    if len(scheme) == 1:  # a Windows drive letter: a plain path
        return ""
    return scheme.split("+", 1)[0]


def sqlite_path(uri: str) -> Path | None:
    """The database file of a ``sqlite:`` URI (``None`` for an in-memory database).

    >>> sqlite_path("sqlite:////data/mlflow.db"), sqlite_path("sqlite:///:memory:")
    (PosixPath('/data/mlflow.db'), None)
    """
    rest = uri.split("://", 1)[1] if "://" in uri else ""
    rest = rest.split("?", 1)[0]
    if rest in ("", "/", "/:memory:"):
        return None
    # sqlite:///rel.db → "rel.db" (relative to the working directory); sqlite:////abs.db → "/abs.db"
    return Path(rest[1:] if rest.startswith("/") else rest)


def default_artifact_location(uri: str, experiment: str) -> str | None:
    """Artifacts of a sqlite store live next to the database (MLflow would use ``./mlruns``
    of whatever directory the first run started in); other stores choose themselves.

    >>> default_artifact_location("sqlite:////data/mlflow.db", "my runs")
    'file:///data/mlruns/my_runs'
    """
    if not urlsplit(uri).scheme.lower().startswith("sqlite"):
        return None
    path = sqlite_path(uri)
    if path is None:
        return None
    folder = re.sub(r"[^A-Za-z0-9._-]+", "_", experiment).strip("._") or "experiment"
    return (path.resolve().parent / "mlruns" / folder).as_uri()


# --------------------------------------------------------------------------- MLflow's limits
@functools.lru_cache(maxsize=1)
def mlflow_limits() -> tuple[int, int, int, int]:
    """(param value length, tag value length, params+tags per batch, metrics per batch)."""
    try:
        from mlflow.utils import validation

        return (validation.MAX_PARAM_VAL_LENGTH, validation.MAX_TAG_VAL_LENGTH,
                validation.MAX_PARAMS_TAGS_PER_BATCH, validation.MAX_METRICS_PER_BATCH)
    except (ImportError, AttributeError):  # older MLflow: its historical, smaller limits
        return 500, 5000, 100, 1000


# --------------------------------------------------------------------------- failures
def unusable_store(uri: str, reason: str) -> UserError:
    """The one-line error for a store that cannot be used, credentials masked.

    >>> str(unusable_store("http://u:pw@h", "bad port"))  # doctest: +ELLIPSIS
    'MLflow tracking store http://u:***@h could not be used (bad port); check --tracking-uri ...'
    """
    return UserError(f"MLflow tracking store {mask_credentials(uri)} could not be used ({mask_credentials(reason)}); "
                     "check --tracking-uri (or $MLFLOW_TRACKING_URI), or use --set track.enabled=false")


def store_error(uri: str, exc: Exception) -> UserError:
    """``exc``, raised by the store at ``uri``, as one :class:`UserError` line."""
    reason = mask_credentials(f"{type(exc).__name__}: {exc}".splitlines()[0])
    return unusable_store(uri, truncate(reason, 300))


def is_store_failure(exc: Exception) -> bool:
    """Whether ``exc`` is the store's own failure (MLflow's, or a database driver's raised unwrapped)
    rather than a bug of the caller."""
    if type(exc).__module__.split(".")[0] in STORE_ERROR_MODULES:
        return True
    from mlflow.exceptions import MlflowException

    return isinstance(exc, MlflowException)


@contextlib.contextmanager
def store_errors(uri: str) -> Iterator[None]:
    """Report a store that fails while it is opened or read as one :class:`UserError` line, as
    opening a tracker does: MLflow's own errors, ``OSError``, a missing database driver, and the
    database drivers' errors, which database stores raise unwrapped."""
    try:
        yield
    except UserError:
        raise
    except (OSError, ImportError) as exc:
        raise store_error(uri, exc) from exc
    except Exception as exc:
        if is_store_failure(exc):
            raise store_error(uri, exc) from exc
        raise


@contextlib.contextmanager
def store_lock(uri: str):
    """An exclusive file lock beside a sqlite store while it is opened: MLflow creates or migrates the
    schema on first use, and two processes doing that at once fail ("duplicate column")."""
    # Only sqlite: for a server URI the "path" would be a stray lock file named after the host.
    path = sqlite_path(uri) if urlsplit(uri).scheme.lower().startswith("sqlite") else None
    if path is None:
        yield
        return
    import fcntl

    lock_path = path.parent / f".{path.name}.lock"
    with open(lock_path, "a+") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


__all__ = [
    "DEFAULT_TRACKING_URI", "HTTP_POLICY", "STORE_ERROR_MODULES", "absolute_sqlite_uri", "default_artifact_location",
    "http_policy", "is_store_failure", "mlflow_limits", "resolve_tracking_uri", "sqlite_path", "store_error",
    "run_link", "store_errors", "store_lock", "store_scheme", "unusable_store", "with_credentials",
]
