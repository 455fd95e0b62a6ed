"""Optuna storages for ``zslbench sweep``: ``sqlite:///optuna.db`` by default, the journal file for
several local workers (``journal:PATH``), any SQLAlchemy URL (``postgresql+psycopg://…``) for workers on
many machines. URLs are shown with their password masked.
"""

from __future__ import annotations

import logging
import random
import re
import time
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Optional

from zslbench.core.errors import UserError
from zslbench.core.secrets import MASK, mask_credentials

log = logging.getLogger(__name__)

DEFAULT_SQLITE = "sqlite:///optuna.db"
DEFAULT_JOURNAL = "optuna-journal.log"
#: Environment variable read by ``--storage`` (keeps a database password out of argv and shell history).
STORAGE_ENV = "ZSLBENCH_OPTUNA_STORAGE"
_RDB_DIALECTS = ("sqlite", "postgresql", "mysql", "mariadb", "oracle", "mssql")


def shown(url: str) -> str:
    """``url`` with its credentials masked, even when it is too malformed for a URL parser."""
    return re.sub(r"(?P<user>[^\s/:@]+):(?P<pw>[^\s@/]+)@", lambda m: f"{m['user']}:{MASK}@"
                  if m["pw"] != MASK else m[0], mask_credentials(url))


@dataclass(frozen=True)
class StorageSpec:
    """Where a study lives: an RDB URL (sqlite, postgresql…) or a journal file."""

    kind: str  # "rdb" | "journal"
    location: str

    @property
    def cli_value(self) -> str:
        return self.location if self.kind == "rdb" else f"journal:{self.location}"

    @property
    def display(self) -> str:
        return shown(self.cli_value)

    @property
    def has_native_heartbeat(self) -> bool:
        return self.kind == "rdb"

    def open(self, heartbeat: int = 60, max_retry: int = 2):
        """The Optuna storage object (heartbeat and retry of dead workers' trials configured)."""
        import optuna
        from optuna.storages import RetryHeartbeatStaleTrialCallback

        warnings.filterwarnings("ignore", category=optuna.exceptions.ExperimentalWarning)
        # Workers beat and fail stale trials themselves (see Heartbeat), so ask/tell is fine here.
        warnings.filterwarnings("ignore", message="Heartbeat of storage is supposed to be used with Study.optimize")
        if self.kind == "journal":
            from optuna.storages.journal import JournalFileBackend, JournalStorage

            path = Path(self.location)
            if not path.parent.is_dir():
                raise UserError(f"journal storage {self.display}: folder {str(path.parent)!r} does not exist; "
                                "create it or pick another journal:PATH")
            return JournalStorage(JournalFileBackend(str(path)))
        engine_kwargs: dict[str, Any] = {"pool_pre_ping": True}
        if self.location.startswith("sqlite"):
            engine_kwargs = {"connect_args": {"timeout": 60}}
        for attempt in range(6):
            try:
                return optuna.storages.RDBStorage(
                    self.location, engine_kwargs=engine_kwargs, heartbeat_interval=heartbeat,
                    grace_period=2 * heartbeat,
                    heartbeat_stale_trial_callback=RetryHeartbeatStaleTrialCallback(max_retry=max_retry))
            except Exception as exc:  # sqlalchemy/driver errors: unreachable server, bad credentials, bad path
                if _lost_schema_race(exc) and attempt < 5:
                    time.sleep(0.2 + random.random())  # another worker is creating the tables right now
                    continue
                reason = shown(f"{type(exc).__name__}: {exc}".splitlines()[0])[:300]
                raise UserError(f"cannot open the Optuna storage {self.display} ({reason}); check that the "
                                "database is running and reachable and the URL is right") from None


def _lost_schema_race(exc: BaseException) -> bool:
    """Whether creating Optuna's tables failed because a concurrent worker was creating them too."""
    text = f"{type(exc).__name__}: {exc}"
    return any(marker in text for marker in ("IntegrityError", "UniqueViolation", "DuplicateTable",
                                              "already exists"))


def parse_storage(value: Optional[str], workers: int = 1) -> StorageSpec:
    """Validate ``--storage``: ``None`` → the default for the worker count; ``journal:PATH``; an RDB URL.

    >>> parse_storage(None)
    StorageSpec(kind='rdb', location='sqlite:///optuna.db')
    >>> parse_storage(None, workers=2).cli_value
    'journal:optuna-journal.log'
    >>> parse_storage("postgresql://u:pw@db/optuna").location
    'postgresql+psycopg://u:pw@db/optuna'
    """
    if value is None or not value.strip():
        return StorageSpec("journal", DEFAULT_JOURNAL) if workers > 1 else StorageSpec("rdb", DEFAULT_SQLITE)
    value = value.strip()
    if value.startswith("journal:"):
        path = value[len("journal:"):]
        if not path:
            raise UserError("--storage journal: needs a file, e.g. --storage journal:optuna-journal.log")
        return StorageSpec("journal", path)
    match = re.fullmatch(r"(?P<dialect>[a-z][a-z0-9]*)(?:\+(?P<driver>[a-z0-9_]+))?://(?P<rest>.*)", value)
    if match is None or match["dialect"] not in _RDB_DIALECTS:
        raise UserError(f"--storage {shown(value)!r} is not a storage URL Optuna can use; pass e.g. "
                        "sqlite:///optuna.db, postgresql+psycopg://USER:PASSWORD@HOST:5432/DB or journal:FILE")
    if match["dialect"] == "sqlite":
        if not match["rest"].startswith("/"):
            raise UserError(f"--storage {shown(value)!r}: a sqlite URL has three slashes (sqlite:///optuna.db) "
                            "or four for an absolute path (sqlite:////data/optuna.db)")
    elif not re.match(r"[^/@\s]+/\w", match["rest"].rsplit("@", 1)[-1]):
        raise UserError(f"--storage {shown(value)!r} names no host and database; use "
                        f"{match['dialect']}://USER:PASSWORD@HOST:PORT/DATABASE")
    if match["dialect"] == "postgresql" and match["driver"] is None:
        value = "postgresql+psycopg://" + match["rest"]  # psycopg 3, the driver zslbench installs
    if (match["dialect"] == "postgresql" and (match["driver"] in (None, "psycopg"))):
        try:
            import psycopg  # noqa: F401
        except ImportError:
            raise UserError("PostgreSQL storage needs the psycopg driver; pip install 'psycopg[binary]'") from None
    return StorageSpec("rdb", value)
