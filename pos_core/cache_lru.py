"""L1 of the tiered cache: an in-process LRU bounded in entries and in bytes.

Values are pre-serialised ``bytes`` (what the API sends), so that their size
is known exactly and a hit costs no serialisation. The size rule: an entry
weighs ``len(value)`` plus the UTF-8 length of its namespace and key; the
Python object overhead (a hundred bytes or so an entry) is bounded by the
entry limit instead.

Every entry carries the version token it was built from (``None`` when Redis
could not say) and the time it was last confirmed current (``checked_at``):
the tiered cache decides from those whether it may trust it.

Thread-safe with ``threading`` primitives only (under Odoo's gevent process
they are monkey-patched into cooperative ones).
"""

from __future__ import annotations

import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Iterable
from dataclasses import dataclass


@dataclass
class Entry:
    value: bytes
    version: str | None
    expires_at: float
    checked_at: float
    size: int


def entry_size(namespace: str, key: str, value: bytes) -> int:
    """The bytes an entry counts for (see the module docstring)."""
    return len(value) + len(namespace.encode()) + len(key.encode())


class BoundedLRU:
    """Least recently used entries go first once either bound is passed.

    ``generation(namespace)`` changes whenever entries of the namespace are
    dropped (an invalidation, a flush): a caller that read it before loading
    a value passes it to :meth:`put`, which refuses the value if an
    invalidation came in between, so that a slow load cannot put back what
    the invalidation just removed.
    """

    def __init__(
        self,
        max_entries: int,
        max_bytes: int,
        *,
        clock: Callable[[], float] = time.monotonic,
    ):
        self.max_entries = max_entries
        self.max_bytes = max_bytes
        self.clock = clock
        self._entries: OrderedDict[tuple[str, str], Entry] = OrderedDict()
        self._lock = threading.Lock()
        self._bytes = 0
        self._flushes = 0  # part of every namespace's generation
        self._dropped: dict[str, int] = {}
        self.hits = 0
        self.misses = 0
        self.evictions = 0  # pushed out by a bound
        self.expirations = 0  # past their TTL when looked up
        self.refused = 0  # puts refused: too large, or an invalidation came first

    def generation(self, namespace: str) -> tuple[int, int]:
        with self._lock:
            return (self._flushes, self._dropped.get(namespace, 0))

    def get(self, namespace: str, key: str, *, count: bool = True) -> Entry | None:
        """The live entry, or None (an expired one is removed)."""
        with self._lock:
            entry = self._entries.get((namespace, key))
            if entry is not None and entry.expires_at <= self.clock():
                self._remove((namespace, key))
                self.expirations += 1
                entry = None
            if entry is not None:
                self._entries.move_to_end((namespace, key))
            if count:
                if entry is None:
                    self.misses += 1
                else:
                    self.hits += 1
            return entry

    def record(self, *, hits: int, misses: int) -> None:
        """Count lookups decided by the caller (``get(count=False)``)."""
        with self._lock:
            self.hits += hits
            self.misses += misses

    def put(
        self,
        namespace: str,
        key: str,
        value: bytes,
        *,
        version: str | None,
        ttl: float,
        generation: tuple[int, int] | None = None,
    ) -> bool:
        """Store ``value`` for ``ttl`` seconds; False if refused (larger than
        the byte bound, or ``generation`` is no longer current)."""
        if not isinstance(value, bytes):
            raise TypeError("the cache stores pre-serialised bytes")
        size = entry_size(namespace, key, value)
        with self._lock:
            current = (self._flushes, self._dropped.get(namespace, 0))
            if size > self.max_bytes or (generation is not None and generation != current):
                self.refused += 1
                return False
            self._remove((namespace, key))
            now = self.clock()
            self._entries[(namespace, key)] = Entry(value, version, now + ttl, now, size)
            self._bytes += size
            while len(self._entries) > self.max_entries or self._bytes > self.max_bytes:
                oldest = next(iter(self._entries))
                self._remove(oldest)
                self.evictions += 1
            return True

    def touch(self, namespace: str, key: str, version: str) -> None:
        """Redis confirmed the entry current now."""
        with self._lock:
            entry = self._entries.get((namespace, key))
            if entry is not None and entry.version == version:
                entry.checked_at = self.clock()

    def drop(self, namespace: str, keys: Iterable[str] | None = None) -> int:
        """Remove the given keys of ``namespace`` (all of them for None)."""
        with self._lock:
            self._dropped[namespace] = self._dropped.get(namespace, 0) + 1
            if keys is None:
                doomed = [item for item in self._entries if item[0] == namespace]
            else:
                doomed = [(namespace, key) for key in keys]
            return sum(self._remove(item) for item in doomed)

    def clear(self) -> None:
        with self._lock:
            self._flushes += 1
            self._entries.clear()
            self._bytes = 0

    def _remove(self, item: tuple[str, str]) -> bool:
        entry = self._entries.pop(item, None)
        if entry is None:
            return False
        self._bytes -= entry.size
        return True

    def __len__(self) -> int:
        return len(self._entries)

    def __contains__(self, item: tuple[str, str]) -> bool:
        """Presence only (expired or not): no counters, no LRU touch."""
        return item in self._entries

    @property
    def bytes(self) -> int:
        return self._bytes

    def stats(self) -> dict[str, object]:
        with self._lock:
            lookups = self.hits + self.misses
            return {
                "hits": self.hits,
                "misses": self.misses,
                "hit_ratio": self.hits / lookups if lookups else 0.0,
                "evictions": self.evictions,
                "expirations": self.expirations,
                "refused": self.refused,
                "flushes": self._flushes,
                "entries": len(self._entries),
                "bytes": self._bytes,
                "max_entries": self.max_entries,
                "max_bytes": self.max_bytes,
            }
