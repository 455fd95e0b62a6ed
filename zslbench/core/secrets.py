"""Secret masking: passwords and tokens never reach a store, a journal or the terminal.

Everything zslbench records or shows about a run (params, tags, logged text and dicts, saved configs,
messages naming a store) passes through :func:`mask_credentials` first: URL userinfo, secret
``key=value`` pairs (``password=``, ``token=`` query parameters), ``Bearer`` tokens, token-shaped values
with a well-known prefix (``ghp_…``, ``hf_…``, ``AKIA…``, JWTs) and the values of secret-named
environment variables become :data:`MASK`. A config saved with masked credentials starts with
:data:`MASKED_CONFIG_NOTE`, which says how to supply them when it is run again.

>>> mask_credentials("postgresql+psycopg://optuna:hunter2@db/studies")
'postgresql+psycopg://optuna:***@db/studies'
>>> param_value("sweep.db_password", "hunter2", limit=500)
'***'
"""

from __future__ import annotations

import functools
import os
import re
from typing import Any, Mapping

MASK = "***"
TRUNCATION_MARK = "...[truncated]"

_URL_USERINFO = re.compile(r"(?P<scheme>\b[a-zA-Z][a-zA-Z0-9+.\-]*://)(?P<userinfo>[^\s/?#'\"<>]*)@")
_KEY_VALUE = re.compile(r"(?P<key>[A-Za-z_][\w.\-]*)(?P<sep>\s*=\s*)(?P<value>[^\s&;#'\",]+)")
_BEARER = re.compile(r"(?i)\b(?P<kind>bearer)\s+[A-Za-z0-9._~+/=\-]{8,}")
_SECRET_WORDS = {"password", "passwd", "pwd", "secret", "token", "apikey", "sig", "signature", "credential",
                 "credentials", "sas"}
_SECRET_PAIRS = {("api", "key"), ("access", "key"), ("private", "key"), ("account", "key"), ("auth", "key")}
_TOKEN_PREFIXES = ("ghp_", "gho_", "ghs_", "ghu_", "github_pat_", "glpat-", "dapi", "hf_", "sk-")
#: Tokens recognisable by their shape alone (each issuer's documented prefix and alphabet), anywhere in a value.
_TOKEN = re.compile(r"(?<![A-Za-z0-9_\-])(?:"
                    r"gh[pousr]_[A-Za-z0-9]{30,}|github_pat_[A-Za-z0-9_]{30,}|glpat-[A-Za-z0-9_\-]{20,}"
                    r"|hf_[A-Za-z0-9]{30,}|sk-(?:proj-|ant-)?[A-Za-z0-9_\-]{20,}|xox[abposr]-[A-Za-z0-9\-]{10,}"
                    r"|(?:AKIA|ASIA)[0-9A-Z]{16}|dapi[0-9a-f]{32}|npm_[A-Za-z0-9]{36}|pypi-[A-Za-z0-9_\-]{50,}"
                    r"|eyJ[A-Za-z0-9_\-]{10,}\.eyJ[A-Za-z0-9_\-]{10,}\.[A-Za-z0-9_\-]{10,})(?![A-Za-z0-9_\-])")


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


def environment_snapshot() -> list[tuple[str, str]]:
    """``os.environ``'s items, safe while other threads (MLflow's telemetry, the tracking HTTP policy) add
    or remove variables: iterating ``os.environ`` itself raises KeyError when a key vanishes mid-way.

    >>> ("PATH", os.environ["PATH"]) in environment_snapshot()
    True
    """
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
    return _secret_values_of(tuple(environment_snapshot()))


@functools.lru_cache(maxsize=8)
def _secret_values_of(environment: tuple[tuple[str, str], ...]) -> list[str]:
    # cached per environment: params are masked one by one, hundreds per run
    # PWD/OLDPWD are the shell's working directories, not passwords
    values = [value for name, value in environment
              if name not in ("PWD", "OLDPWD") and is_secret_name(name) and len(value) >= 6]
    return sorted(set(values), key=len, reverse=True)  # longest first: no partial leftovers


def mask_credentials(text: str) -> str:
    """Mask passwords and tokens in ``text``: URL userinfo, secret ``key=value`` pairs (query
    parameters included), ``Bearer`` tokens, token-shaped values and the values of secret environment
    variables (``MLFLOW_TRACKING_TOKEN``, ``PGPASSWORD``…).

    >>> mask_credentials("postgresql+psycopg://user:secret@host/db")
    'postgresql+psycopg://user:***@host/db'
    >>> mask_credentials("https://host/db?user=u&password=hunter2&ssl=1")
    'https://host/db?user=u&password=***&ssl=1'
    >>> mask_credentials("weights from hf_AbCdEfGhIjKlMnOpQrStUvWxYz0123456789 in /data/hf_cache")
    'weights from *** in /data/hf_cache'
    """
    if not text:
        return text
    text = str(text)
    for value in _secret_env_values():
        text = text.replace(value, MASK)
    text = _URL_USERINFO.sub(_mask_userinfo, text)
    text = _KEY_VALUE.sub(_mask_key_value, text)
    text = _TOKEN.sub(MASK, text)
    return _BEARER.sub(lambda m: f"{m['kind']} {MASK}", text)


def mask_object(value: Any, key: str = "") -> Any:
    """Mask every string of a JSON-like object; values under secret-named keys entirely.

    >>> mask_object({"storage": "postgresql://u:pw@db/x", "api_key": 12, "epochs": [30]})
    {'storage': 'postgresql://u:***@db/x', 'api_key': '***', 'epochs': [30]}
    """
    if isinstance(value, Mapping):
        return {k: mask_object(v, str(k)) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [mask_object(v, key) for v in value]
    if key and is_secret_name(key) and value not in (None, ""):
        return MASK
    return mask_credentials(value) if isinstance(value, str) else value


#: What a config saved with masked credentials says at its top.
MASKED_CONFIG_NOTE = (
    "# Credentials in this file are masked (***): they are never saved. To run or resume it, supply them at\n"
    "# run time: --tracking-uri with the full URI, or $MLFLOW_TRACKING_URI (the same URI with its password),\n"
    "# or, for an http(s) tracking server, MLflow's user-name and password environment variables (a run\n"
    "# started without any of these names them).\n")


def has_masked_credentials(text: str) -> bool:
    """Whether ``text`` (a URI read back from a saved config or a journal) had credentials masked.

    >>> has_masked_credentials("http://me:***@mlflow:5000"), has_masked_credentials("http://mlflow:5000")
    (True, False)
    """
    return MASK in (text or "")


def truncate(text: str, limit: int) -> str:
    """``text`` cut to ``limit`` characters, ending with :data:`TRUNCATION_MARK` when cut.

    >>> truncate("x" * 20, 16)
    'xx...[truncated]'
    """
    return text if len(text) <= limit else text[: limit - len(TRUNCATION_MARK)] + TRUNCATION_MARK


def param_value(key: str, value: Any, limit: int) -> str:
    """A param's value as stored: all of it masked under a secret-named key, else its secrets masked;
    truncated to ``limit``."""
    if is_secret_name(key) and value not in (None, ""):
        return MASK
    return truncate(mask_credentials(str(value)), limit)


def tag_value(value: Any, limit: int) -> str:
    """A tag's value as stored: secrets masked, truncated to ``limit``.

    >>> tag_value("https://u:pw@h", 100)
    'https://u:***@h'
    """
    return truncate(mask_credentials(str(value)), limit)


__all__ = ["MASK", "MASKED_CONFIG_NOTE", "TRUNCATION_MARK", "environment_snapshot",
           "has_masked_credentials", "is_secret_name", "mask_credentials", "mask_object", "param_value", "tag_value",
           "truncate"]
