"""The one bounded cache type: least recently used entries go first, one at a time."""

from __future__ import annotations

from collections import OrderedDict
from typing import Generic, TypeVar, overload

K = TypeVar("K")
V = TypeVar("V")
D = TypeVar("D")


class LruCache(Generic[K, V]):
    """A mapping of at most ``capacity`` entries; past it, storing a new key drops the least
    recently used one (a hit or a store makes an entry the most recent).

    Dropping one entry at a time keeps every other entry warm: a full cache never empties at
    once, so a process with more keys than ``capacity`` does not send a burst of reloads.

    :param capacity: the most entries kept; 0 keeps nothing.
    """

    __slots__ = ("_entries", "capacity")

    def __init__(self, capacity: int) -> None:
        if capacity < 0:
            raise ValueError("capacity must be 0 or more")
        self.capacity = capacity
        self._entries: OrderedDict[K, V] = OrderedDict()

    def __len__(self) -> int:
        return len(self._entries)

    def __contains__(self, key: object) -> bool:
        return key in self._entries

    @overload
    def get(self, key: K) -> V | None: ...

    @overload
    def get(self, key: K, default: D) -> V | D: ...

    def get(self, key: K, default: object = None) -> object:
        """The value of ``key``, made the most recent; ``default`` when absent."""
        entries = self._entries
        try:
            value = entries[key]
        except KeyError:
            return default
        entries.move_to_end(key)
        return value

    def peek(self, key: K) -> V | None:
        """The value of ``key`` without making it recent; ``None`` when absent."""
        return self._entries.get(key)

    def put(self, key: K, value: V) -> None:
        """Store ``value`` under ``key`` as the most recent, dropping the least recent entry
        when that makes more than ``capacity``."""
        if not self.capacity:
            return
        entries = self._entries
        entries[key] = value
        entries.move_to_end(key)
        if len(entries) > self.capacity:
            entries.popitem(last=False)

    def pop(self, key: K) -> V | None:
        """Remove ``key``; its value, or ``None`` when absent."""
        return self._entries.pop(key, None)

    def clear(self) -> None:
        """Remove every entry."""
        self._entries.clear()
