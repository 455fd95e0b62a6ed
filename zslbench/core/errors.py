"""The one exception family for user errors.

The CLI catches :class:`UserError` and prints its message as one line with exit code 2.
Raise it for anything the user can fix: a missing file, a bad config value, an unknown name.
The message must say what is wrong *and* how to fix it.
"""

from __future__ import annotations

from difflib import get_close_matches
from typing import Iterable


class UserError(Exception):
    """An error caused by the user's input; shown without a traceback, exit code 2."""


class DataError(UserError):
    """A dataset directory or data file is missing, malformed or inconsistent."""


class ConfigError(UserError):
    """A configuration key or value is unknown or ill-typed."""


class TrainingDiverged(Exception):
    """The loss became NaN/inf; the run is marked FAILED and the last good checkpoint kept."""


def unknown_name(kind: str, name: str, valid: Iterable[str]) -> UserError:
    """Build the standard 'unknown X' error, listing the valid choices and a close match."""
    valid = sorted(valid)
    hint = get_close_matches(name, valid, n=1)
    suggestion = f" Did you mean {hint[0]!r}?" if hint else ""
    return UserError(f"unknown {kind} {name!r}; valid choices: {', '.join(valid)}.{suggestion}")


class RunStopped(Exception):
    """Raised by an epoch callback to stop a run early on purpose (e.g. an Optuna pruner); the run is
    marked KILLED with the reason as a tag, and the exception propagates to the caller."""


class JobsFailed(Exception):
    """Cluster jobs ended without their results (failed, cancelled, out of time): the command reports each
    with its log in one line and exits with code 1 (a failure, not a user error)."""
