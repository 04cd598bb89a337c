"""An LRU cache of recommendation lists with a capacity and a time to live.

The cached value is only *which version's list* was stored and *when*: the list itself is a
row of that version's top-K table, so the cache holds two numbers per entry.  Keys are
``version * n_users + user`` under ``versioned_keys`` (a new version never reads an old
version's entry) and plain ``user`` under ``flush_on_change`` and ``ttl_only``.

Counts: hits, misses, expired (a miss caused by TTL), stale serves (``ttl_only``: an entry
written by another version served as is), evictions and flushes.
"""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass

__all__ = ["CacheStats", "LruCache"]


@dataclass(slots=True)
class CacheStats:
    hits: int = 0
    misses: int = 0
    expired: int = 0
    stale_serves: int = 0
    evictions: int = 0
    flushes: int = 0
    inserts: int = 0


class LruCache:
    """LRU with TTL; ``lookup`` returns the stored version or ``-1`` (miss)."""

    __slots__ = ("_entries", "_full_capacity", "capacity", "stats", "ttl_s")

    def __init__(self, capacity: int, ttl_s: float) -> None:
        self.capacity = capacity
        self.ttl_s = ttl_s
        self.stats = CacheStats()
        self._full_capacity = capacity
        self._entries: OrderedDict[int, tuple[float, int]] = OrderedDict()

    def __len__(self) -> int:
        return len(self._entries)

    def lookup(self, key: int, now_s: float) -> int:
        """Version whose list is cached under ``key`` and still fresh, else ``-1``."""
        entry = self._entries.get(key)
        if entry is None:
            self.stats.misses += 1
            return -1
        if now_s - entry[0] >= self.ttl_s:
            del self._entries[key]
            self.stats.expired += 1
            self.stats.misses += 1
            return -1
        self._entries.move_to_end(key)
        self.stats.hits += 1
        return entry[1]

    def peek_any(self, key: int) -> int:
        """Version of any entry under ``key``, fresh or not (the stale-cache fallback)."""
        entry = self._entries.get(key)
        return -1 if entry is None else entry[1]

    def store(self, key: int, version: int, now_s: float) -> None:
        if self.capacity <= 0:
            return
        entries = self._entries
        if key in entries:
            entries.move_to_end(key)
        entries[key] = (now_s, version)
        self.stats.inserts += 1
        if len(entries) > self.capacity:
            entries.popitem(last=False)
            self.stats.evictions += 1

    def lose_share(self, fraction: float) -> int:
        """A cache node fails: its share of the keys is gone and its capacity with it.

        Keys live on node ``key mod nodes``-style shards; losing ``fraction`` of the nodes drops
        the entries whose key hashes into that share, and the capacity shrinks by the same
        fraction until ``restore_capacity``.  Returns how many entries were lost.
        """
        cut = round(fraction * 1000)
        lost = [key for key in self._entries if (key * 2654435761) % 1000 < cut]
        for key in lost:
            del self._entries[key]
        self._full_capacity = self.capacity
        self.capacity = max(0, round(self.capacity * (1.0 - fraction)))
        while len(self._entries) > self.capacity:
            self._entries.popitem(last=False)
            self.stats.evictions += 1
        return len(lost)

    def restore_capacity(self) -> None:
        """The node is back, empty: capacity returns, the lost entries do not."""
        self.capacity = self._full_capacity

    def flush(self) -> int:
        """Drop every entry (promotion / rollback under ``flush_on_change``); returns how many."""
        dropped = len(self._entries)
        self._entries.clear()
        self.stats.flushes += 1
        return dropped
