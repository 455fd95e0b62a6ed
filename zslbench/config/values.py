"""Typed values of the config tree: coercion of YAML/command-line values to a field's type, and
``key=value`` parsing. Errors name the key and what it accepts.

>>> parse_override("train.betas=[0.9,0.999]")
('train.betas', [0.9, 0.999])
>>> coerce("train.epochs", "3", int)
3
"""

from __future__ import annotations

import types
import typing
from typing import Any, Literal, Mapping

import yaml

from zslbench.core.errors import ConfigError


def parse_override(item: str) -> tuple[str, Any]:
    if "=" not in item:
        raise ConfigError(f"override {item!r} is not of the form key=value (e.g. train.lr=1e-4)")
    key, raw = item.split("=", 1)
    key = key.strip()
    try:
        value = yaml.safe_load(raw) if raw.strip() else ""
    except (yaml.YAMLError, RecursionError):  # not YAML (or nested too deeply): the text itself
        value = raw
    return key, value


def hints(cls: type) -> dict[str, Any]:
    return typing.get_type_hints(cls)


def _yaml_word(value: Any, choices: tuple) -> Any:
    """The choice a YAML boolean was written as: YAML reads ``off``/``on`` (``no``/``yes``) as booleans.

    >>> _yaml_word(False, ("auto", "off", "bf16")), _yaml_word(True, ("auto", "on", "off")), _yaml_word(True, (1, 2))
    ('off', 'on', True)
    """
    if not isinstance(value, bool) or any(isinstance(c, bool) for c in choices):
        return value
    words = {"on", "yes", "true"} if value else {"off", "no", "false"}
    matches = [c for c in choices if isinstance(c, str) and c.lower() in words]
    return matches[0] if len(matches) == 1 else value


def coerce(key: str, value: Any, tp: Any) -> Any:
    origin = typing.get_origin(tp)
    args = typing.get_args(tp)
    if origin is Literal:
        value = _yaml_word(value, args)
        if value not in args:
            raise ConfigError(f"{key}={shown(value)} is not valid; valid choices: {', '.join(map(str, args))}")
        return value
    if origin in (typing.Union, types.UnionType):
        if value is None and type(None) in args:
            return None
        for arg in args:
            if arg is type(None):
                continue
            try:
                return coerce(key, value, arg)
            except ConfigError:
                continue
        raise ConfigError(f"{key}={shown(value)} has the wrong type; expected {tp}")
    if origin is tuple:
        given = value
        if isinstance(value, str):
            value = [v for v in value.replace("(", "").replace(")", "").split(",") if v.strip()]
        if not isinstance(value, (list, tuple)) or (args and args[-1] is not Ellipsis and len(value) != len(args)):
            raise ConfigError(f"{key}={shown(given)} must be a list of {len(args)} values, e.g. {key}=[0.9,0.999]")
        elem = [args[0]] * len(value) if args and args[-1] is Ellipsis else list(args)
        return tuple(coerce(key, v, t) for v, t in zip(value, elem))
    if origin is list:
        if isinstance(value, str):
            value = [v for v in value.split(",") if v]
        if not isinstance(value, (list, tuple)):
            raise ConfigError(f"{key}={shown(value)} must be a list")
        return [coerce(key, v, args[0] if args else str) for v in value]
    if tp is bool:
        if isinstance(value, bool):
            return value
        if isinstance(value, str) and value.lower() in ("true", "false", "yes", "no", "on", "off", "1", "0"):
            return value.lower() in ("true", "yes", "on", "1")
        raise ConfigError(f"{key}={shown(value)} must be true or false")
    if tp is int:
        if isinstance(value, bool) or not isinstance(value, (int, float, str)):
            raise ConfigError(f"{key}={shown(value)} must be an integer")
        try:
            as_float = float(value)
        except ValueError:
            raise ConfigError(f"{key}={shown(value)} must be an integer") from None
        except OverflowError:  # an int too large for a float
            raise ConfigError(f"{key}={shown(value)} is out of range (at most {_INT_LIMIT - 1})") from None
        if not as_float.is_integer():
            raise ConfigError(f"{key}={shown(value)} must be an integer")
        result = int(value) if isinstance(value, int) else int(as_float)
        if not -_INT_LIMIT < result < _INT_LIMIT:  # numpy/torch seeds and sizes are 64-bit
            raise ConfigError(f"{key}={shown(value)} is out of range (at most {_INT_LIMIT - 1})")
        return result
    if tp is float:
        if isinstance(value, bool):
            raise ConfigError(f"{key}={shown(value)} must be a number")
        try:
            result = float(value)
        except (TypeError, ValueError):
            raise ConfigError(f"{key}={shown(value)} must be a number") from None
        except OverflowError:
            raise ConfigError(f"{key}={shown(value)} must be a finite number") from None
        if result != result or result in (float("inf"), float("-inf")):
            raise ConfigError(f"{key}={shown(value)} must be a finite number")
        return result
    if tp is str:
        if isinstance(value, (dict, list)):
            raise ConfigError(f"{key}={shown(value)} must be a string")
        return "" if value is None else str(value)
    return value


def flatten(data: Mapping[str, Any]) -> list[tuple[str, Any]]:
    out: list[tuple[str, Any]] = []
    for section, values in data.items():
        if isinstance(values, Mapping):
            out.extend((f"{section}.{k}", v) for k, v in values.items() if not (section == "model" and k == "name"))
        else:
            out.append((str(section), values))  # YAML keys may be numbers or null: named in the error
    return out


_INT_LIMIT = 2**63


def shown(value: Any, limit: int = 60) -> str:
    """``repr(value)`` cut to ``limit`` characters (an error line must stay one readable line)."""
    text = repr(value)
    return text if len(text) <= limit else text[:limit] + "…"


def to_plain(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: to_plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [to_plain(v) for v in value]
    return value
