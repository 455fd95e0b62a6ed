"""MLflow tracking: the only module of zslbench that talks to MLflow.

A :class:`Tracker` owns one MLflow run through its own ``MlflowClient`` (no fluent global
state), so a parent run and its children can be open in one process at once. Metrics are
buffered and written with one ``log_batch`` call per flush. Every param, tag, logged text
and message passes through :func:`mask_credentials`, so a storage URL's password never
reaches the store or the terminal.

If the server of an ``http(s)://`` store goes away mid-run, the tracker does not fail the run: it
switches to offline mode and keeps every later write in a journal in the run's output folder
(``<track.output_dir>/<run_id>/tracking-offline/``, see :mod:`zslbench.tracking_offline`);
``zslbench track sync`` uploads it once the server is back. MLflow's HTTP retries are shortened
for zslbench's own calls (:data:`HTTP_POLICY`), so a dead server is noticed in seconds.

Typical use (the engine)::

    check_reachable(resolve_tracking_uri(cfg.track.uri))      # before any training
    with Tracker.open(cfg.track, run_name="svip-CUB-s0", params=cfg.flat(),
                      tags=standard_tags(cfg, fingerprint, "cuda:0")) as run:
        run.log_metrics({"train/loss": 0.7}, step=0)
        run.log_scores("test", seen=seen_scores, unseen=unseen_scores)

``Tracker.open`` returns a :class:`NullTracker` when ``track.enabled`` is false.
Importing this module is cheap: mlflow is imported inside the functions that need it.
"""

from __future__ import annotations

import atexit
import base64
import contextlib
import functools
import getpass
import importlib.metadata
import logging
import math
import os
import posixpath
import re
import socket
import ssl
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING, Any, Callable, Iterable, Iterator, Mapping, Sequence
from urllib.parse import urlsplit, urlunsplit

from zslbench.core.version import PROTOCOL_VERSION, __version__
from zslbench.core.errors import UserError
from zslbench.tracking_offline import (
    JOURNAL_DIR,
    OfflineJournal,
    absorb_pending_journal,
    failure_reason,
    is_connection_error,
    sync_folder,
)

if TYPE_CHECKING:  # pragma: no cover - typing only
    from mlflow import MlflowClient
    from mlflow.entities import Metric, Run

    from zslbench.config import Config, TrackConfig

log = logging.getLogger(__name__)

DEFAULT_TRACKING_URI = "sqlite:///mlflow.db"
#: Environment variable that ``Tracker.open(nested=True)`` reads for the parent run id when
#: no tracker of this process is open (set it for worker processes of a sweep or grid).
PARENT_RUN_ENV = "ZSLBENCH_PARENT_RUN_ID"
PARENT_TAG = "mlflow.parentRunId"
#: Buffered metrics are flushed as soon as the buffer holds more than this many values.
FLUSH_THRESHOLD = 500
MASK = "***"
TRUNCATION_MARK = "...[truncated]"
FINAL_STATUSES = ("FINISHED", "FAILED", "KILLED")

_UNKNOWN = "unknown"
_HEALTH_PATHS = ("/health", "/api/2.0/mlflow/experiments/search?max_results=1")

#: MLflow's HTTP settings for zslbench's own calls. MLflow's defaults (7 retries, exponential
#: back-off, 120 s timeout) take minutes to give up on a dead server; these give up in about
#: 2 s on a refused connection (retries after 0 s and 1 s) and 3 × 15 s on a silent one. A
#: variable the user set wins.
HTTP_POLICY = {
    "MLFLOW_HTTP_REQUEST_MAX_RETRIES": "2",
    "MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR": "1",
    "MLFLOW_HTTP_REQUEST_BACKOFF_JITTER": "0.5",
    "MLFLOW_HTTP_REQUEST_TIMEOUT": "15",
}
_POLICY_LOCK = threading.RLock()


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
    else ``sqlite:///mlflow.db`` in the working directory (MLflow's own default).

    >>> resolve_tracking_uri("http://mlflow.lab:5000")
    'http://mlflow.lab:5000'
    """
    uri = (cfg_uri or "").strip() or os.environ.get("MLFLOW_TRACKING_URI", "").strip() or DEFAULT_TRACKING_URI
    return absolute_sqlite_uri(uri)


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


UNREACHABLE_HINT = "start it, fix --tracking-uri (or $MLFLOW_TRACKING_URI), or use --set track.enabled=false"


#: Store schemes MLflow itself supports (``postgresql+psycopg://`` counts as ``postgresql``); packages
#: may add more through the ``mlflow.tracking_store`` entry point group.
MLFLOW_STORE_SCHEMES = ("", "file", "sqlite", "postgresql", "mysql", "mssql", "http", "https", "databricks",
                        "databricks-uc", "uc")
#: Default ports of the database servers a store URI may name (to test the connection before MLflow
#: does: MLflow retries an unreachable database for about 100 s).
DATABASE_PORTS = {"postgresql": 5432, "mysql": 3306}  # (an mssql "host" may be an ODBC data source name)


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
    scheme = _store_scheme(uri)
    if scheme not in MLFLOW_STORE_SCHEMES and scheme not in _plugin_store_schemes():
        raise _unusable_store(uri, f"unsupported scheme {scheme!r}; MLflow stores are file:, sqlite:, postgresql:, "
                                   "mysql:, mssql:, http(s): and databricks URIs or a plain folder")
    if scheme in ("http", "https"):
        _check_http(uri, timeout, hint)
    elif scheme == "sqlite":
        _check_sqlite(uri)
    elif scheme in DATABASE_PORTS:
        _check_database_server(uri, DATABASE_PORTS[scheme], timeout)


def _store_scheme(uri: str) -> str:
    """The store kind of ``uri`` as MLflow picks it: the scheme without a SQLAlchemy driver
    (``postgresql+psycopg`` → ``postgresql``); "" for a plain path.

    >>> _store_scheme("postgresql+psycopg://u@db/x"), _store_scheme("/data/mlruns"), _store_scheme("databricks")
    ('postgresql', '', 'databricks')
    """
    if uri in ("databricks", "databricks-uc", "uc"):  # MLflow accepts these bare profile names
        return uri
    scheme = urlsplit(uri).scheme.lower()
    if len(scheme) == 1:  # a Windows drive letter: a plain path
        return ""
    return scheme.split("+", 1)[0]


@functools.lru_cache(maxsize=1)
def _plugin_store_schemes() -> frozenset[str]:
    """Schemes that installed packages add to MLflow (``mlflow.tracking_store`` entry points)."""
    return frozenset(entry.name for entry in importlib.metadata.entry_points(group="mlflow.tracking_store"))


def _unusable_store(uri: str, reason: str) -> UserError:
    return UserError(f"MLflow tracking store {mask_credentials(uri)} could not be used ({mask_credentials(reason)}); "
                     "check --tracking-uri (or $MLFLOW_TRACKING_URI), or use --set track.enabled=false")


def _check_database_server(uri: str, default_port: int, timeout: float) -> None:
    """A database server named by host must accept a TCP connection (a Unix socket is left to the driver).

    >>> _check_database_server("postgresql:///db?host=/run/postgresql", 5432, 1.0)  # a socket: not tried
    """
    parts = urlsplit(uri)
    try:
        host, port = parts.hostname, parts.port or default_port
    except ValueError as exc:  # a port that is no number
        raise _unusable_store(uri, str(exc)) from None
    if not host or "host=" in parts.query or "unix_socket=" in parts.query:
        return
    try:
        socket.create_connection((host, port), timeout=timeout).close()
    except OSError as exc:
        reason = _connection_failure_reason(exc, timeout)
        raise UserError(f"MLflow tracking store {mask_credentials(uri)} is unreachable ({mask_credentials(reason)}); "
                        "start the database server, fix --tracking-uri (or $MLFLOW_TRACKING_URI), "
                        "or use --set track.enabled=false") from None


@contextlib.contextmanager
def store_errors(uri: str) -> Iterator[None]:
    """Report a store that fails while it is opened or read as one :class:`UserError` line, as
    :meth:`Tracker.open` does: MLflow's own errors, ``OSError``, a missing database driver, and the
    database drivers' errors, which database stores raise unwrapped."""
    try:
        yield
    except UserError:
        raise
    except (OSError, ImportError) as exc:
        raise _store_error(uri, exc) from exc
    except Exception as exc:
        from mlflow.exceptions import MlflowException

        if isinstance(exc, MlflowException) or type(exc).__module__.split(".")[0] in _STORE_ERROR_MODULES:
            raise _store_error(uri, exc) from exc
        raise


def _unreachable(uri: str, reason: str, hint: str = UNREACHABLE_HINT) -> UserError:
    return UserError(f"MLflow tracking server {mask_credentials(uri)} is unreachable ({mask_credentials(reason)}); "
                     f"{hint}")


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
            raise _unreachable(uri, _connection_failure_reason(exc, timeout), hint) from None
    raise _unreachable(uri, "; ".join(failures), hint)


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
    user = parts.username or os.environ.get("MLFLOW_TRACKING_USERNAME")
    password = parts.password or os.environ.get("MLFLOW_TRACKING_PASSWORD")
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


def _sqlite_path(uri: str) -> Path | None:
    """The database file of a ``sqlite:`` URI (``None`` for an in-memory database)."""
    rest = uri.split("://", 1)[1] if "://" in uri else ""
    rest = rest.split("?", 1)[0]
    if rest in ("", "/", "/:memory:"):
        return None
    # sqlite:///rel.db → "rel.db" (relative to the working directory); sqlite:////abs.db → "/abs.db"
    return Path(rest[1:] if rest.startswith("/") else rest)


def _check_sqlite(uri: str) -> None:
    path = _sqlite_path(uri)
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


def _default_artifact_location(uri: str, experiment: str) -> str | None:
    """Artifacts of a sqlite store live next to the database (MLflow would use ``./mlruns``
    of whatever directory the first run started in); other stores choose themselves."""
    if not urlsplit(uri).scheme.lower().startswith("sqlite"):
        return None
    path = _sqlite_path(uri)
    if path is None:
        return None
    folder = re.sub(r"[^A-Za-z0-9._-]+", "_", experiment).strip("._") or "experiment"
    return (path.resolve().parent / "mlruns" / folder).as_uri()


# --------------------------------------------------------------------------- masking
_URL_USERINFO = re.compile(r"(?P<scheme>\b[a-zA-Z][a-zA-Z0-9+.\-]*://)(?P<userinfo>[^\s/?#'\"<>]*)@")
_KEY_VALUE = re.compile(r"(?P<key>[A-Za-z_][\w.\-]*)(?P<sep>\s*=\s*)(?P<value>[^\s&;#'\",]+)")
_BEARER = re.compile(r"(?i)\b(?P<kind>bearer)\s+[A-Za-z0-9._~+/=\-]{8,}")
_SECRET_WORDS = {"password", "passwd", "pwd", "secret", "token", "apikey", "sig", "signature", "credential",
                 "credentials", "sas"}
_SECRET_PAIRS = {("api", "key"), ("access", "key"), ("private", "key"), ("account", "key"), ("auth", "key")}
_TOKEN_PREFIXES = ("ghp_", "gho_", "ghs_", "ghu_", "github_pat_", "glpat-", "dapi", "hf_", "sk-")


def is_secret_name(name: str) -> bool:
    """Whether a key/variable name denotes a secret (``password``, ``MLFLOW_TRACKING_TOKEN``, ``api_key``…).

    >>> is_secret_name("MLFLOW_TRACKING_TOKEN"), is_secret_name("model.keep")
    (True, False)
    """
    words = [w for w in re.split(r"[^a-z]+", name.lower()) if w]
    return any(w in _SECRET_WORDS for w in words) or any(pair in _SECRET_PAIRS for pair in zip(words, words[1:]))


def _looks_like_token(user: str) -> bool:
    return len(user) >= 20 or user.lower().startswith(_TOKEN_PREFIXES)


def _mask_userinfo(match: re.Match[str]) -> str:
    userinfo = match["userinfo"]
    user, has_password, _ = userinfo.partition(":")
    shown_user = MASK if user != MASK and _looks_like_token(user) else user
    return f"{match['scheme']}{shown_user}{':' + MASK if has_password else ''}@"


def _mask_key_value(match: re.Match[str]) -> str:
    if not is_secret_name(match["key"]):
        return match[0]
    return f"{match['key']}{match['sep']}{MASK}"


def _environment_snapshot() -> list[tuple[str, str]]:
    """``os.environ``'s items, safe while other threads (MLflow's telemetry, :func:`http_policy`) add or
    remove variables: iterating ``os.environ`` itself raises KeyError when a key vanishes mid-way."""
    data = getattr(os.environ, "_data", None)
    if isinstance(data, dict):  # CPython: copying the underlying dict is atomic
        return [(os.environ.decodekey(k), os.environ.decodevalue(v)) for k, v in data.copy().items()]
    for _ in range(100):
        try:
            return list(os.environ.items())
        except (KeyError, RuntimeError):
            continue
    raise RuntimeError("the environment kept changing while being read")


def _secret_env_values() -> list[str]:
    return _secret_values_of(tuple(_environment_snapshot()))


@functools.lru_cache(maxsize=8)
def _secret_values_of(environment: tuple[tuple[str, str], ...]) -> list[str]:
    # cached per environment: params are masked one by one, hundreds per run
    # PWD/OLDPWD are the shell's working directories, not passwords
    values = [value for name, value in environment
              if name not in ("PWD", "OLDPWD") and is_secret_name(name) and len(value) >= 6]
    return sorted(set(values), key=len, reverse=True)  # longest first: no partial leftovers


def mask_credentials(text: str) -> str:
    """Mask passwords and tokens in ``text``: URL userinfo, secret ``key=value`` pairs (query
    parameters included), ``Bearer`` tokens and the values of secret environment variables
    (``MLFLOW_TRACKING_TOKEN``, ``PGPASSWORD``…).

    >>> mask_credentials("postgresql+psycopg://user:secret@host/db")
    'postgresql+psycopg://user:***@host/db'
    >>> mask_credentials("https://host/db?user=u&password=hunter2&ssl=1")
    'https://host/db?user=u&password=***&ssl=1'
    """
    if not text:
        return text
    text = str(text)
    for value in _secret_env_values():
        text = text.replace(value, MASK)
    text = _URL_USERINFO.sub(_mask_userinfo, text)
    text = _KEY_VALUE.sub(_mask_key_value, text)
    return _BEARER.sub(lambda m: f"{m['kind']} {MASK}", text)


def _mask_object(value: Any, key: str = "") -> Any:
    """Mask every string of a JSON-like object; values under secret-named keys entirely."""
    if isinstance(value, Mapping):
        return {k: _mask_object(v, str(k)) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_mask_object(v, key) for v in value]
    if key and is_secret_name(key) and value not in (None, ""):
        return MASK
    return mask_credentials(value) if isinstance(value, str) else value


def _limit(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - len(TRUNCATION_MARK)] + TRUNCATION_MARK


def _param_value(key: str, value: Any, limit: int) -> str:
    if is_secret_name(key) and value not in (None, ""):
        return MASK
    return _limit(mask_credentials(str(value)), limit)


def _tag_value(value: Any, limit: int) -> str:
    return _limit(mask_credentials(str(value)), limit)


@functools.lru_cache(maxsize=1)
def _mlflow_limits() -> tuple[int, int, int, int]:
    """(param value length, tag value length, params+tags per batch, metrics per batch)."""
    try:
        from mlflow.utils import validation

        return (validation.MAX_PARAM_VAL_LENGTH, validation.MAX_TAG_VAL_LENGTH,
                validation.MAX_PARAMS_TAGS_PER_BATCH, validation.MAX_METRICS_PER_BATCH)
    except (ImportError, AttributeError):  # older MLflow: its historical, smaller limits
        return 500, 5000, 100, 1000


# --------------------------------------------------------------------------- standard tags
def _git(directory: Path, *args: str) -> str:
    env = {**os.environ, "GIT_OPTIONAL_LOCKS": "0"}  # `git status` must not take the index lock
    done = subprocess.run(["git", "-C", str(directory), *args], capture_output=True, text=True, timeout=5,
                          check=True, env=env)
    return done.stdout.strip()


@functools.lru_cache(maxsize=1)
def git_state() -> tuple[str, str]:
    """(commit, dirty) of the zslbench source checkout, or ("unknown", "unknown").

    Computed once per process: the code that runs is the code imported at start.
    """
    source = Path(__file__).resolve().parent.parent
    try:
        # An installed copy inside some other repository (a venv in a project) is not a checkout.
        if Path(_git(source, "rev-parse", "--show-toplevel")).resolve() != source:
            return _UNKNOWN, _UNKNOWN
        commit = _git(source, "rev-parse", "HEAD")
        dirty = "true" if _git(source, "status", "--porcelain") else "false"
        return commit, dirty
    except (OSError, subprocess.SubprocessError):
        return _UNKNOWN, _UNKNOWN


def _package_version(name: str) -> str:
    module = sys.modules.get(name)
    if module is not None and getattr(module, "__version__", None):
        return str(module.__version__)
    try:
        return importlib.metadata.version(name)
    except importlib.metadata.PackageNotFoundError:
        return _UNKNOWN


def standard_tags(cfg: "Config", data_fingerprint: str, device: str) -> dict[str, str]:
    """The tags every zslbench run carries (DESIGN.md, Tracking); all values are strings."""
    commit, dirty = git_state()
    return {
        "zslbench.version": __version__,
        "zslbench.protocol": PROTOCOL_VERSION,
        "git.commit": commit,
        "git.dirty": dirty,
        "data.fingerprint": str(data_fingerprint),
        "model": cfg.model.name,
        "dataset": cfg.data.dataset,
        "ablations": ",".join(cfg.ablations) or "none",
        "seed": str(cfg.train.seed),
        "selection": cfg.eval.selection,
        "gamma_policy": cfg.eval.gamma_policy,
        "gamma_space": cfg.eval.gamma_space,
        "device": str(device),
        "torch.version": _package_version("torch"),
        "timm.version": _package_version("timm"),
    }


# --------------------------------------------------------------------------- trackers
_ACTIVE: list["Tracker"] = []  # open trackers of this process, innermost last (for nested=True)
_ACTIVE_LOCK = threading.Lock()


_STORE_ERROR_MODULES = ("sqlalchemy", "psycopg", "psycopg2", "pymysql", "requests", "urllib3")


def _store_error(uri: str, exc: Exception) -> UserError:
    reason = mask_credentials(f"{type(exc).__name__}: {exc}".splitlines()[0])
    return _unusable_store(uri, _limit(reason, 300))


@contextlib.contextmanager
def store_lock(uri: str):
    """An exclusive file lock beside a sqlite store while it is opened: MLflow creates or migrates the
    schema on first use, and two processes doing that at once fail ("duplicate column")."""
    # Only sqlite: for a server URI the "path" would be a stray lock file named after the host.
    path = _sqlite_path(uri) if urlsplit(uri).scheme.lower().startswith("sqlite") else None
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


class Tracker:
    """One MLflow run, written through a private ``MlflowClient``; a context manager.

    Leaving the ``with`` block finishes the run: FINISHED, FAILED on an exception, KILLED on
    ``KeyboardInterrupt``. Create it with :meth:`open`.

    With an ``offline_dir`` (always so from :meth:`open`), a write that fails because the store
    cannot be reached switches the tracker to offline mode: one warning line, then that write and
    all later ones go to the journal in ``offline_dir`` (``zslbench track sync`` uploads it).
    Without one, such failures raise as before.
    """

    enabled = True

    def __init__(self, client: "MlflowClient", run: "Run", tracking_uri: str,
                 offline_dir: str | os.PathLike[str] | None = None) -> None:
        self._client = client
        self._run_id: str = run.info.run_id
        self._experiment_id: str = run.info.experiment_id
        self._artifact_uri: str = run.info.artifact_uri
        self._tracking_uri = tracking_uri
        self._params: dict[str, str] = dict(run.data.params)
        self._buffer: list[Metric] = []
        self._lock = threading.Lock()
        # A resumed run keeps the non-finite keys noted by its earlier sessions.
        noted = run.data.tags.get("zslbench.nonfinite_metrics", "")
        self._nonfinite: set[str] = {key for key in noted.split(",") if key}
        self._nonfinite_noted = len(self._nonfinite)
        self._changed_params: set[str] = set()
        self._status: str | None = None
        self._offline_dir = Path(offline_dir).absolute() if offline_dir is not None else None
        self._journal: OfflineJournal | None = None
        self._write_lock = threading.RLock()  # one write at a time: the journal keeps their order

    # ----------------------------------------------------------------- opening
    @classmethod
    def open(
        cls,
        cfg_track: "TrackConfig",
        run_name: str | None = None,
        tags: Mapping[str, Any] | None = None,
        params: Mapping[str, Any] | None = None,
        parent_run_id: str | None = None,
        resume_run_id: str | None = None,
        nested: bool = False,
        artifact_location: str | None = None,
        offline_dir: str | os.PathLike[str] | None = None,
    ) -> "Tracker | NullTracker":
        """Start (or resume) a run in ``cfg_track.experiment`` at ``cfg_track.uri``.

        - ``resume_run_id``: continue that run (same id, status back to RUNNING); params it
          already has are not logged again.
        - ``parent_run_id``: make the run a child (tag ``mlflow.parentRunId``); works from any
          process given only the id. ``nested=True`` without it: the parent is the innermost
          open tracker of this process, else ``$ZSLBENCH_PARENT_RUN_ID``, else none.
        - ``artifact_location``: for a new experiment only; default for sqlite stores:
          ``<database dir>/mlruns/<experiment>``.
        - ``offline_dir``: where the run's writes are journaled if the server goes away mid-run;
          default ``<cfg_track.output_dir>/<run_id>/tracking-offline`` (next to the run's
          outputs). Resuming a run first uploads a journal left there by an offline session.

        The store is checked (:func:`check_reachable`) before anything is created. Returns a
        :class:`NullTracker` when ``cfg_track.enabled`` is false.
        """
        if not cfg_track.enabled:
            return NullTracker()
        uri = resolve_tracking_uri(cfg_track.uri)
        check_reachable(uri)
        if nested and not parent_run_id:
            parent_run_id = _innermost_run_id() or os.environ.get(PARENT_RUN_ENV) or None

        from mlflow import MlflowClient
        from mlflow.exceptions import MlflowException

        _, tag_limit, _, _ = _mlflow_limits()
        start_tags = {k: _tag_value(v, tag_limit) for k, v in (tags or {}).items()}
        try:
            with http_policy(), store_lock(uri):  # first use creates the schema and the experiment
                client = MlflowClient(tracking_uri=uri)
                client.search_experiments(max_results=1)  # forces the store (and its schema) into existence
                if parent_run_id:
                    _require_run(client, parent_run_id, "parent", uri)
                    start_tags[PARENT_TAG] = parent_run_id
                if resume_run_id:
                    run = _require_run(client, resume_run_id, "resumed", uri)
                    client.update_run(run.info.run_id, status="RUNNING")
                    journal_dir = _journal_dir(cfg_track, run.info.run_id, offline_dir)
                    if absorb_pending_journal(client, journal_dir, run.info.run_id) is not None:
                        run = client.get_run(run.info.run_id)  # with the params and tags just uploaded
                else:
                    experiment_id = _experiment_id(client, cfg_track.experiment,
                                                   artifact_location or _default_artifact_location(uri, cfg_track.experiment))
                    start_tags.setdefault("mlflow.user", _current_user())
                    start_tags.setdefault("mlflow.source.name", _tag_value(Path(sys.argv[0]).name or "python", tag_limit))
                    run = client.create_run(experiment_id, tags=start_tags, run_name=run_name)
        except UserError:
            raise
        except (MlflowException, OSError) as exc:
            raise _store_error(uri, exc) from exc
        except Exception as exc:
            # Database stores raise their driver's errors (sqlalchemy, psycopg) unwrapped.
            if type(exc).__module__.split(".")[0] in _STORE_ERROR_MODULES:
                raise _store_error(uri, exc) from exc
            raise

        tracker = cls(client, run, uri, offline_dir=_journal_dir(cfg_track, run.info.run_id, offline_dir))
        with _ACTIVE_LOCK:
            _ACTIVE.append(tracker)
        try:
            if resume_run_id and start_tags:
                tracker.set_tags(start_tags)
            if params:
                tracker.log_params(params)
            if resume_run_id:
                tracker.set_tags({"zslbench.resumed": str(_resume_count(run) + 1)})
        except BaseException:
            tracker.finish("FAILED")
            raise
        log.info("MLflow run %s in experiment %s at %s", tracker.run_id, tracker.experiment_id,
                 mask_credentials(uri))
        return tracker

    # ----------------------------------------------------------------- properties
    @property
    def run_id(self) -> str:
        return self._run_id

    @property
    def experiment_id(self) -> str:
        return self._experiment_id

    @property
    def artifact_uri(self) -> str:
        return self._artifact_uri

    @property
    def tracking_uri(self) -> str:
        return self._tracking_uri

    @property
    def client(self) -> "MlflowClient":
        """The private client (for reading the run back; write through the tracker)."""
        return self._client

    @property
    def status(self) -> str:
        """RUNNING until :meth:`finish`, then the final status."""
        return self._status or "RUNNING"

    @property
    def offline(self) -> bool:
        """Whether the store was lost mid-run and writes now go to the local journal."""
        return self._journal is not None

    @property
    def offline_dir(self) -> Path | None:
        """Where writes are journaled once the store is lost (``None``: failures raise)."""
        return self._offline_dir

    def __repr__(self) -> str:
        mode = ", offline" if self.offline else ""
        return (f"Tracker(run_id={self._run_id!r}, experiment_id={self._experiment_id!r}, "
                f"uri={mask_credentials(self._tracking_uri)!r}, status={self.status!r}{mode})")

    # ----------------------------------------------------------------- writing
    def _write(self, online: Callable[[], Any], offline: Callable[[OfflineJournal], None]) -> None:
        """Do one write: ``online`` through the client, or ``offline`` into the journal once the store
        is lost. The write that finds it lost goes to the journal too, so nothing is dropped."""
        with self._write_lock:
            if self._journal is None:
                try:
                    with http_policy():
                        online()
                    return
                except Exception as exc:
                    if self._offline_dir is None or not is_connection_error(exc, self._tracking_uri):
                        raise
                    self._go_offline(exc)
            assert self._journal is not None
            offline(self._journal)

    def _go_offline(self, exc: BaseException) -> None:
        assert self._offline_dir is not None
        self._journal = OfflineJournal.open(self._offline_dir, {
            "run_id": self._run_id, "experiment_id": self._experiment_id, "artifact_uri": self._artifact_uri,
            "tracking_uri": mask_credentials(self._tracking_uri), "reason": mask_credentials(failure_reason(exc)),
        })
        sys.stderr.write(
            f"warning: MLflow tracking server {mask_credentials(self._tracking_uri)} went away "
            f"({mask_credentials(failure_reason(exc))}); the run goes on and its tracking is kept in "
            f"{self._offline_dir} — upload it with "
            f"`zslbench track sync --output-dir {sync_folder(self._offline_dir)}` once the server is back\n")
        sys.stderr.flush()

    def _log_batch(self, metrics: Sequence["Metric"] = (), params: Sequence[Any] = (),
                   tags: Sequence[Any] = ()) -> None:
        self._write(lambda: self._client.log_batch(self._run_id, metrics=metrics, params=params, tags=tags,
                                                   synchronous=True),
                    lambda journal: journal.log_batch(metrics, params, tags))

    def _log_file(self, path: Path, artifact_path: str | None) -> None:
        def online() -> None:
            if path.is_dir():
                self._client.log_artifacts(self._run_id, str(path), artifact_path)
            else:
                self._client.log_artifact(self._run_id, str(path), artifact_path)

        self._write(online, lambda journal: journal.log_file(path, artifact_path))

    def _log_generated(self, name: str, write: Callable[[Path], None]) -> None:
        """Write an artifact with ``write(path)`` into a temporary file named like ``name``'s last part,
        then log it under ``name``'s folder (what MLflow's ``log_dict``/``log_text`` do)."""
        normalized = posixpath.normpath(name)
        folder, filename = posixpath.dirname(normalized), posixpath.basename(normalized)
        with tempfile.TemporaryDirectory(prefix="zslbench-artifact-") as tmp:
            path = Path(tmp) / filename
            write(path)
            self._log_file(path, folder or None)

    # ----------------------------------------------------------------- logging
    def log_metrics(self, metrics: Mapping[str, float], step: int) -> None:
        """Buffer ``metrics`` at ``step``; written in batches (one ``log_batch`` per flush).

        Non-finite values are skipped and their keys listed in tag ``zslbench.nonfinite_metrics``.
        """
        from mlflow.entities import Metric

        timestamp = int(time.time() * 1000)
        with self._lock:
            for key, value in metrics.items():
                number = float(value)
                if not math.isfinite(number):
                    self._nonfinite.add(key)
                    continue
                self._buffer.append(Metric(key, number, timestamp, int(step)))
            full = len(self._buffer) > FLUSH_THRESHOLD
        if full:
            self.flush()

    def flush(self) -> None:
        """Write buffered metrics (and a pending non-finite note) with one ``log_batch`` call
        (more only past MLflow's per-batch limit)."""
        from mlflow.entities import RunTag

        _, tag_limit, _, metrics_per_batch = _mlflow_limits()
        with self._write_lock:
            with self._lock:
                metrics, self._buffer = self._buffer, []
                tags = []
                if len(self._nonfinite) != self._nonfinite_noted:
                    note = ",".join(sorted(self._nonfinite))
                    tags.append(RunTag("zslbench.nonfinite_metrics", _tag_value(note, tag_limit)))
                    self._nonfinite_noted = len(self._nonfinite)
            if not metrics and not tags:
                return
            for start in range(0, max(len(metrics), 1), metrics_per_batch):
                chunk = metrics[start:start + metrics_per_batch]
                self._log_batch(metrics=chunk, tags=tags if start == 0 else [])

    def log_params(self, params: Mapping[str, Any]) -> None:
        """Log params (values masked and truncated to MLflow's limit).

        A key already logged is skipped; one whose value changed (e.g. on resume) keeps its
        first value (MLflow refuses changes) and is listed in tag ``zslbench.params_changed``.
        """
        from mlflow.entities import Param, RunTag

        param_limit, tag_limit, per_batch, _ = _mlflow_limits()
        with self._write_lock:
            new: list[Param] = []
            for key, value in params.items():
                shown = _param_value(str(key), value, param_limit)
                logged = self._params.get(str(key))
                if logged is None:
                    new.append(Param(str(key), shown))
                    self._params[str(key)] = shown
                elif logged != shown:
                    self._changed_params.add(str(key))
            tags = []
            if self._changed_params:
                log.warning("params already logged with other values keep their first values: %s",
                            ", ".join(sorted(self._changed_params)))
                tags.append(RunTag("zslbench.params_changed",
                                   _tag_value(",".join(sorted(self._changed_params)), tag_limit)))
            entities: list[Any] = [*new, *tags]
            for start in range(0, len(entities), per_batch):
                chunk = entities[start:start + per_batch]
                self._log_batch(params=[e for e in chunk if isinstance(e, Param)],
                                tags=[e for e in chunk if isinstance(e, RunTag)])

    def set_tags(self, tags: Mapping[str, Any]) -> None:
        """Set tags (values masked and truncated), in as few calls as MLflow allows."""
        from mlflow.entities import RunTag

        _, tag_limit, per_batch, _ = _mlflow_limits()
        entities = [RunTag(str(k), _tag_value(v, tag_limit)) for k, v in tags.items()]
        with self._write_lock:
            for start in range(0, len(entities), per_batch):
                self._log_batch(tags=entities[start:start + per_batch])

    def log_artifact(self, path: str | os.PathLike[str], artifact_path: str | None = None) -> None:
        """Upload a file (or a directory's contents) into the run's artifacts (offline: copy it
        into the journal)."""
        path = Path(path)
        if not path.exists():
            raise FileNotFoundError(f"artifact {str(path)!r} does not exist")
        self._log_file(path, artifact_path)

    def log_dict(self, obj: Mapping[str, Any], name: str) -> None:
        """Store ``obj`` as JSON or YAML (by the extension of ``name``), strings masked."""
        import json

        masked = _mask_object(obj)

        def write(path: Path) -> None:
            if path.suffix in (".yml", ".yaml"):
                import yaml

                path.write_text(yaml.dump(masked, indent=2, default_flow_style=False), encoding="utf-8")
            else:
                path.write_text(json.dumps(masked, indent=2, default=str), encoding="utf-8")

        self._log_generated(name, write)

    def log_text(self, text: str, name: str) -> None:
        """Store ``text`` (masked) as the artifact ``name``."""
        masked = mask_credentials(text)
        self._log_generated(name, lambda path: path.write_text(masked, encoding="utf-8"))

    def log_scores(self, name: str, **arrays: Any) -> None:
        """Store arrays as ``scores/<name>.npz`` (e.g. test-set class scores and labels), so
        metrics can be recomputed under another policy without retraining."""
        import numpy as np

        filename = name if name.endswith(".npz") else f"{name}.npz"
        self._log_generated(f"scores/{filename}",
                            lambda path: np.savez_compressed(path, **{k: np.asarray(v) for k, v in arrays.items()}))

    def log_figure(self, fig: Any, name: str) -> None:
        """Store a matplotlib figure as the artifact ``name`` (format from its extension)."""
        self._log_generated(name, lambda path: fig.savefig(path))

    # ----------------------------------------------------------------- finishing
    def finish(self, status: str = "FINISHED") -> None:
        """Flush buffered metrics and terminate the run with ``status`` (idempotent).

        Offline, the status is journaled too, the journal is closed and a reminder printed."""
        if status not in FINAL_STATUSES:
            raise ValueError(f"status must be one of {', '.join(FINAL_STATUSES)}, got {status!r}")
        if self._status is not None:
            return
        try:
            self.flush()
        finally:
            self._status = status
            with _ACTIVE_LOCK:
                if self in _ACTIVE:
                    _ACTIVE.remove(self)
            end_time = int(time.time() * 1000)
            try:
                self._write(lambda: self._client.set_terminated(self._run_id, status=status, end_time=end_time),
                            lambda journal: journal.terminate(status, end_time))
            finally:
                self._close_journal()

    def _close_journal(self) -> None:
        if self._journal is None:
            return
        self._journal.close()
        assert self._offline_dir is not None
        sys.stderr.write(f"MLflow run {self._run_id} ended {self._status} offline; its tracking is kept in "
                         f"{self._offline_dir} — run `zslbench track sync --output-dir "
                         f"{sync_folder(self._offline_dir)}` once {mask_credentials(self._tracking_uri)} is back\n")
        sys.stderr.flush()

    def __enter__(self) -> "Tracker":
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 traceback: TracebackType | None) -> bool:
        if exc_type is None:
            self.finish("FINISHED")
            return False
        status = "KILLED" if issubclass(exc_type, KeyboardInterrupt) else "FAILED"
        try:
            summary = f"{exc_type.__name__}: {exc}".splitlines()[0]
            self.set_tags({"zslbench.error": _limit(summary, 1000)})
        except Exception:  # the original exception matters more than a failed note
            log.warning("could not record the error on MLflow run %s", self._run_id)
        self.finish(status)
        return False


class NullTracker:
    """The :class:`Tracker` interface doing nothing (``track.enabled=false``)."""

    enabled = False
    run_id: str | None = None
    experiment_id: str | None = None
    artifact_uri: str | None = None
    tracking_uri: str | None = None
    client = None
    status = "DISABLED"
    offline = False
    offline_dir = None

    @classmethod
    def open(cls, *args: Any, **kwargs: Any) -> "NullTracker":
        return cls()

    def log_metrics(self, metrics: Mapping[str, float], step: int) -> None:
        pass

    def flush(self) -> None:
        pass

    def log_params(self, params: Mapping[str, Any]) -> None:
        pass

    def set_tags(self, tags: Mapping[str, Any]) -> None:
        pass

    def log_artifact(self, path: str | os.PathLike[str], artifact_path: str | None = None) -> None:
        pass

    def log_dict(self, obj: Mapping[str, Any], name: str) -> None:
        pass

    def log_text(self, text: str, name: str) -> None:
        pass

    def log_scores(self, name: str, **arrays: Any) -> None:
        pass

    def log_figure(self, fig: Any, name: str) -> None:
        pass

    def finish(self, status: str = "FINISHED") -> None:
        pass

    def __enter__(self) -> "NullTracker":
        return self

    def __exit__(self, *exc_info: Any) -> bool:
        return False

    def __repr__(self) -> str:
        return "NullTracker()"


def _journal_dir(cfg_track: "TrackConfig", run_id: str, offline_dir: str | os.PathLike[str] | None) -> Path:
    """Where a run's offline journal lives: next to its outputs, ``<output_dir>/<run_id>/tracking-offline``
    (the engine's run folder), unless the caller chose a place."""
    if offline_dir is not None:
        return Path(offline_dir).absolute()
    return (Path(cfg_track.output_dir or "runs") / run_id / JOURNAL_DIR).absolute()


def _innermost_run_id() -> str | None:
    with _ACTIVE_LOCK:
        return _ACTIVE[-1].run_id if _ACTIVE else None


def _resume_count(run: "Run") -> int:
    try:
        return int(run.data.tags.get("zslbench.resumed", "0"))
    except ValueError:
        return 0


def _current_user() -> str:
    try:
        return getpass.getuser()
    except (OSError, KeyError):
        return _UNKNOWN


def _require_run(client: "MlflowClient", run_id: str, role: str, uri: str) -> "Run":
    from mlflow.exceptions import MlflowException

    try:
        run = client.get_run(run_id)
    except MlflowException:
        run = None
    if run is None or run.info.lifecycle_stage == "deleted":
        raise UserError(f"the {role} MLflow run {run_id!r} does not exist in {mask_credentials(uri)}; "
                        "check the run id (zslbench results list them) and --tracking-uri")
    return run


def _experiment_id(client: "MlflowClient", name: str, artifact_location: str | None) -> str:
    from mlflow.exceptions import MlflowException

    experiment = client.get_experiment_by_name(name)
    if experiment is None:
        try:
            return client.create_experiment(name, artifact_location=artifact_location)
        except MlflowException:
            # Another worker created it between our lookup and create.
            experiment = client.get_experiment_by_name(name)
            if experiment is None:
                raise
    if experiment.lifecycle_stage == "deleted":
        raise UserError(f"MLflow experiment {name!r} was deleted; restore it with "
                        f"`mlflow experiments restore --experiment-id {experiment.experiment_id}` "
                        "or choose another --experiment")
    return experiment.experiment_id


@atexit.register
def _finish_forgotten_trackers() -> None:
    """Runs never finished by their owner keep their buffered metrics and end KILLED."""
    for tracker in list(reversed(_ACTIVE)):
        try:
            tracker.finish("KILLED")
        except Exception:  # the interpreter is exiting; nothing better to do
            pass


# --------------------------------------------------------------------------- searching
def find_runs(
    experiment: str,
    filter_string: str = "",
    *,
    tracking_uri: str = "",
    order_by: Iterable[str] | None = None,
    max_results: int | None = None,
) -> list["Run"]:
    """Runs of ``experiment`` matching an MLflow ``filter_string`` (all pages; newest first
    unless ``order_by`` says otherwise). An experiment that does not exist has no runs."""
    from mlflow import MlflowClient

    uri = resolve_tracking_uri(tracking_uri)
    check_reachable(uri)
    client = MlflowClient(tracking_uri=uri)
    found = client.get_experiment_by_name(experiment)
    if found is None:
        return []
    runs: list[Run] = []
    token = None
    order = list(order_by) if order_by is not None else ["attributes.start_time DESC"]
    while max_results is None or len(runs) < max_results:
        page_size = 1000 if max_results is None else min(1000, max_results - len(runs))
        page = client.search_runs([found.experiment_id], filter_string, max_results=page_size, order_by=order,
                                  page_token=token)
        runs.extend(page)
        token = page.token
        if not token:
            break
    return runs


def find_finished_run(experiment: str, tags: Mapping[str, Any], *, tracking_uri: str = "") -> str | None:
    """The id of the newest FINISHED run of ``experiment`` whose tags equal all of ``tags``
    (compared as stored: masked strings), else ``None``. Used by ``--skip-existing``."""
    _, tag_limit, _, _ = _mlflow_limits()
    wanted = {str(k): _tag_value(v, tag_limit) for k, v in tags.items()}
    clauses = ["attributes.status = 'FINISHED'"]
    for key, value in wanted.items():
        if "`" not in key and "'" not in value and "\\" not in value:
            clauses.append(f"tags.`{key}` = '{value}'")
    for run in find_runs(experiment, " and ".join(clauses), tracking_uri=tracking_uri):
        # The filter narrows the search; the exact comparison here decides (quotes, status).
        if run.info.status == "FINISHED" and all(run.data.tags.get(k) == v for k, v in wanted.items()):
            return run.info.run_id
    return None


__all__ = [
    "DEFAULT_TRACKING_URI", "HTTP_POLICY", "PARENT_RUN_ENV", "NullTracker", "Tracker", "check_reachable",
    "find_finished_run", "find_runs", "git_state", "http_policy", "is_secret_name", "mask_credentials",
    "resolve_tracking_uri", "standard_tags", "store_errors",
]
