"""A small name → factory registry, shared by tools, metrics, planners and degradations.

Each entry has a name (``"denoise.nlm"``), a factory, and a card: a dataclass describing it.
``create(name)`` builds an instance, ``names(pattern)`` lists names by shell-style pattern, and an
unknown name raises :class:`~fuseagent.errors.UnknownNameError` with close suggestions. Plugins
from other packages join through an entry-point group (e.g. ``fuseagent.tools``); each entry
point names a module or callable that registers its entries when loaded.
"""

from __future__ import annotations

import fnmatch
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

from .errors import FuseAgentError, UnknownNameError

__all__ = ["Registry", "Entry"]

T = TypeVar("T")


@dataclass(frozen=True)
class Entry(Generic[T]):
    name: str
    factory: Callable[..., T]
    card: Any


class Registry(Generic[T]):
    """Registry of named factories with cards.

    Example:
        >>> reg = Registry("widget")
        >>> @reg.register("w.one", card={"size": 1})
        ... def make_one():
        ...     return 1
        >>> reg.create("w.one"), reg.names("w.*")
        (1, ['w.one'])
    """

    def __init__(self, kind: str, entry_point_group: str | None = None):
        self.kind = kind
        self.entry_point_group = entry_point_group
        self._entries: dict[str, Entry[T]] = {}
        self._plugins_loaded = entry_point_group is None
        self.plugin_errors: dict[str, str] = {}

    def register(self, name: str, card: Any = None, *, factory: Callable[..., T] | None = None,
                 replace: bool = False):
        """Register ``factory`` under ``name``; usable as a decorator when factory is omitted."""

        def _add(fn: Callable[..., T]) -> Callable[..., T]:
            if name in self._entries and not replace:
                raise FuseAgentError(f"{self.kind} '{name}' is already registered")
            self._entries[name] = Entry(name, fn, card)
            return fn

        if factory is not None:
            _add(factory)
            return factory
        return _add

    def _load_plugins(self) -> None:
        if self._plugins_loaded:
            return
        self._plugins_loaded = True
        from importlib.metadata import entry_points

        for ep in entry_points(group=self.entry_point_group):
            try:
                loaded = ep.load()
                if callable(loaded) and not isinstance(loaded, type):
                    loaded(self)
            except Exception as exc:  # a broken plugin must not break the core
                self.plugin_errors[ep.name] = f"{type(exc).__name__}: {exc}"

    def get(self, name: str) -> Entry[T]:
        """The entry for ``name``, or UnknownNameError with suggestions."""
        self._load_plugins()
        try:
            return self._entries[name]
        except KeyError:
            raise UnknownNameError(self.kind, name, self._entries) from None

    def card(self, name: str) -> Any:
        return self.get(name).card

    def create(self, name: str, **kwargs: Any) -> T:
        """Build the entry ``name`` with ``kwargs`` passed to its factory."""
        return self.get(name).factory(**kwargs)

    def names(self, pattern: str = "*") -> list[str]:
        """Sorted names matching a shell-style pattern (``"dehaze*"``)."""
        self._load_plugins()
        return sorted(n for n in self._entries if fnmatch.fnmatchcase(n, pattern))

    def __contains__(self, name: object) -> bool:
        self._load_plugins()
        return name in self._entries

    def __iter__(self) -> Iterator[Entry[T]]:
        self._load_plugins()
        return iter([self._entries[n] for n in sorted(self._entries)])

    def __len__(self) -> int:
        self._load_plugins()
        return len(self._entries)
