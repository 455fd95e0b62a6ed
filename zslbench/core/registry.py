"""Small name → object registries (timm's ``register_model`` style).

Example:
    >>> from zslbench.core.registry import Registry
    >>> colours = Registry("colour")
    >>> @colours.register("red", help="the colour of fire")
    ... def red():
    ...     return (255, 0, 0)
    >>> colours.get("red")()
    (255, 0, 0)
    >>> colours.names()
    ['red']
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable, Generic, TypeVar

from zslbench.core.errors import unknown_name

T = TypeVar("T")


@dataclass
class Entry(Generic[T]):
    name: str
    obj: T
    help: str = ""
    meta: dict[str, Any] = field(default_factory=dict)


class Registry(Generic[T]):
    """A named collection of objects, each registered with a one-line description."""

    def __init__(self, kind: str, loader: Callable[[], None] | None = None):
        self.kind = kind
        self._entries: dict[str, Entry[T]] = {}
        self._loader = loader  # imports the modules that register entries, on first use
        self._loaded = loader is None

    def register(self, name: str, help: str = "", **meta: Any) -> Callable[[T], T]:
        def decorator(obj: T) -> T:
            if name in self._entries:
                raise ValueError(f"{self.kind} {name!r} is registered twice")
            doc = help or (getattr(obj, "__doc__", None) or "").strip().split("\n")[0]
            self._entries[name] = Entry(name, obj, doc, meta)
            return obj

        return decorator

    def _ensure_loaded(self) -> None:
        if not self._loaded:
            self._loaded = True
            assert self._loader is not None
            self._loader()

    def entry(self, name: str) -> Entry[T]:
        self._ensure_loaded()
        if name not in self._entries:
            raise unknown_name(self.kind, name, self._entries)
        return self._entries[name]

    def get(self, name: str) -> T:
        return self.entry(name).obj

    def names(self) -> list[str]:
        self._ensure_loaded()
        return sorted(self._entries)

    def entries(self) -> list[Entry[T]]:
        """Every entry, sorted by name."""
        return [self._entries[n] for n in self.names()]

    def registered(self) -> list[T]:
        """Every registered object, in registration order."""
        self._ensure_loaded()
        return [entry.obj for entry in self._entries.values()]

    def __contains__(self, name: str) -> bool:
        self._ensure_loaded()
        return name in self._entries
