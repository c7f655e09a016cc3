"""The tiered cache of the API (L1 in process, L2 Redis, L3 the database),
and :class:`VersionedLRU`, the small per-worker cache of the order path.

:class:`TieredCache` answers ``fetch(namespace, key, loader)`` from the first
tier that has a current value:

- L1, :class:`~pos_core.cache_lru.BoundedLRU`, bounded in entries and bytes;
- L2, Redis (:class:`~pos_core.cache_redis.RedisTier`); a hit is promoted to L1;
- L3, ``loader``: the caller's database read; its result is written to L2
  and L1.

Values are pre-serialised ``bytes`` (what the API sends); a loader returning
``None`` (nothing there) is answered and not cached.

The rule that keeps it correct, version stamps. Every key has a version token
in Redis (see :mod:`pos_core.cache_redis`), bumped by :meth:`TieredCache.invalidate`
(of keys, or of a whole namespace) in the same transaction that deletes the
values and publishes the invalidation. Then:

1. the token is read *before* the loader runs, and a loaded value is written
   to L2 only if that token is still current, checked and written
   atomically in Redis: a reader that started before an invalidation cannot
   write its value back after it, it only answers its own caller;
2. a value goes into L1 only if no invalidation of its namespace reached this
   process since the read started (:meth:`BoundedLRU.generation`);
3. an L1 entry carries its token; by default (``validate=True``) an L1 hit is
   confirmed with one round trip that reads the tokens only (O(1) per key,
   values stay in process), so that no process serves a value invalidated
   before the request began. With ``validate=False`` an L1 hit is served
   without asking Redis while the pub/sub listener is subscribed; the other
   processes' invalidations then reach it within the pub/sub delay.

For the rule to hold, the writer invalidates *after* its transaction commits,
and the loader must read in a database snapshot taken after it is called (a
new transaction or cursor): under PostgreSQL's REPEATABLE READ, as in Odoo, a
transaction that has already queried reads an older snapshot than the token.

Redis outage: every call still answers, from L1 or the loader. A circuit
breaker (:mod:`pos_core.breaker`) stops calls from paying the Redis timeout
while it is open and lets one probe through after the cool-down. While Redis
cannot be asked, an L1 entry is trusted only ``cache_outage_ttl`` seconds
after it was last confirmed, and what is loaded goes to L1 for that long at
most: other processes' invalidations cannot arrive, this bounds the
staleness. Invalidations that could not reach Redis are kept and sent before
anything else once it answers; then L1 is flushed, as it is whenever the
listener (re)subscribes, since messages may have been missed. The one gap: if
only this process lost Redis (a partition) while others still reach it, they
may read the old value from L2 until this process's invalidation gets
through (or the namespace TTL ends).
"""

from __future__ import annotations

import threading
import time
import uuid
from collections import OrderedDict
from collections.abc import Callable, Hashable, Iterable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

from .breaker import BreakerPolicy, CircuitBreaker
from .cache_listener import InvalidationListener
from .cache_lru import BoundedLRU, Entry
from .cache_redis import (
    RESERVED_KEYS,
    RedisTier,
    Versions,
    invalidation_message,
    parse_invalidation_message,
)
from .settings import CacheSettings

# The namespaces of the API, each with its TTL in CacheSettings
# (cache_ttl_<namespace>).
MENU, PRODUCTS, CATEGORIES = "menu", "products", "categories"
TAXES, SETTINGS, PERMISSIONS = "taxes", "settings", "permissions"

L1, L2, L3 = "l1", "l2", "l3"


class VersionedLRU:
    """Entries rebuilt when the version their caller passes changes (the
    order path reads its menu version from the database), or once they are
    ``max_age`` seconds old (None: never)."""

    def __init__(
        self,
        max_entries: int = 64,
        max_age: float | None = None,
        clock: Callable[[], float] = time.monotonic,
    ):
        self.max_entries = max_entries
        self.max_age = max_age
        self.clock = clock
        self._entries: OrderedDict[Hashable, tuple[Hashable, float, Any]] = OrderedDict()
        self._lock = threading.Lock()
        self.hits = 0
        self.misses = 0

    def get(self, key: Hashable, version: Hashable, build: Callable[[], Any]) -> Any:
        now = self.clock()
        with self._lock:
            entry = self._entries.get(key)
            if (
                entry is not None
                and entry[0] == version
                and (self.max_age is None or now - entry[1] < self.max_age)
            ):
                self._entries.move_to_end(key)
                self.hits += 1
                return entry[2]
            self.misses += 1
        value = build()  # outside the lock: building may query the database
        with self._lock:
            self._entries[key] = (version, now, value)
            self._entries.move_to_end(key)
            while len(self._entries) > self.max_entries:
                self._entries.popitem(last=False)
        return value

    def clear(self) -> None:
        with self._lock:
            self._entries.clear()

    def __len__(self) -> int:
        return len(self._entries)


@dataclass(frozen=True)
class Hit:
    """One answer: the value (``None``: the loader found nothing), its
    version token (``None`` when Redis could not be asked; usable as an
    ETag otherwise) and the tier that answered."""

    value: bytes | None
    version: str | None
    tier: str


# fetch_many's loader: the keys missing from L1 and L2 -> {key: value or None}.
Loader = Callable[[list[str]], Mapping[str, bytes | None]]
_UNAVAILABLE = object()


@dataclass
class _Request:
    """One fetch_many call on its way through the tiers."""

    namespace: str
    ttl: float
    loader: Loader
    generation: tuple[int, int]
    stable: bool = False
    local: dict[str, Entry | None] = field(default_factory=dict)
    results: dict[str, Hit] = field(default_factory=dict)

    def outage_ttl(self, outage_ttl: float) -> float | None:
        """How long a value loaded while Redis cannot be asked stays in L1."""
        return None if self.stable else outage_ttl

    def put(
        self, l1: BoundedLRU, key: str, value: bytes, version: str | None, ttl: float | None = None
    ) -> None:
        ttl = self.ttl if ttl is None else min(self.ttl, ttl)
        l1.put(self.namespace, key, value, version=version, ttl=ttl, generation=self.generation)


class TieredCache:
    """L1 / L2 / L3 cache; see the module docstring for the rules.

    One instance per process and Redis URL (it owns a connection pool and,
    once :meth:`start_listener` is called, a subscriber thread). ``ttls``
    adds namespaces, or overrides the TTLs of ``settings``; ``clock`` (a
    monotonic clock, in seconds) drives the TTLs and the breaker's cool-down.
    Without ``redis_url`` the cache is L1 over L3, with the outage TTL.
    """

    def __init__(
        self,
        redis_url: str = "",
        *,
        settings: CacheSettings | None = None,
        ttls: Mapping[str, float] | None = None,
        prefix: str = "pos_api:cache:",
        clock: Callable[[], float] = time.monotonic,
    ):
        self.settings = settings = settings or CacheSettings()
        self.ttls = {**settings.namespace_ttls(), **(ttls or {})}
        for namespace in self.ttls:
            if not namespace or ":" in namespace:
                raise ValueError(f"A cache namespace cannot be empty or hold ':': {namespace!r}")
        self.clock = clock
        self.outage_ttl = settings.cache_outage_ttl
        self.origin = uuid.uuid4().hex  # this instance, in the invalidation messages
        self.l1 = BoundedLRU(
            settings.cache_l1_max_entries, settings.cache_l1_max_bytes, clock=clock
        )
        self.l2 = (
            RedisTier(redis_url, prefix=prefix, timeout=settings.cache_redis_timeout)
            if redis_url
            else None
        )
        self.breaker = CircuitBreaker(
            "Cache: Redis",
            BreakerPolicy(settings.cache_breaker_failures, settings.cache_breaker_cooldown),
            clock=clock,
            on_recover=self._recovered,
        )
        self.listener: InvalidationListener | None = None
        self._lock = threading.Lock()
        self._tracked = threading.local()
        # Invalidations that did not reach Redis: namespace -> keys (None: all).
        self._pending: dict[str, set[str] | None] = {}
        self._counts = dict.fromkeys(
            (
                "l2_hits",
                "l2_misses",
                "l2_bytes_read",
                "l2_bytes_written",
                "l2_unavailable",
                "l3_hits",
                "l3_misses",
                "l3_bytes",
                "stale_writes_refused",
                "recoveries",
            ),
            0,
        )

    # ------------------------------------------------------------ reading
    def fetch(
        self,
        namespace: str,
        key: str,
        loader: Callable[[], bytes | None],
        *,
        validate: bool = True,
        stable: bool = False,
    ) -> Hit:
        """One key: ``loader()`` returns its value (bytes) or None."""
        return self.fetch_many(
            namespace, [key], lambda _keys: {key: loader()}, validate=validate, stable=stable
        )[key]

    def fetch_many(
        self,
        namespace: str,
        keys: Iterable[str],
        loader: Loader,
        *,
        validate: bool = True,
        stable: bool = False,
    ) -> dict[str, Hit]:
        """Several keys of one namespace: their tokens and the L2 values are
        read in one round trip, the loader is called once for all the keys
        neither L1 nor L2 had, and its values are written back in one more.

        ``stable``: each key names one value that never changes (its caller
        puts the version of what it was built from in the key): an L1 hit
        is served without asking Redis, and stays in L1 for the namespace's
        TTL during an outage too."""
        keys = list(dict.fromkeys(keys))
        if RESERVED_KEYS.intersection(keys):
            raise ValueError(f"{sorted(RESERVED_KEYS)} are reserved, not cache keys")
        request = _Request(
            namespace,
            self._ttl(namespace),
            loader,
            # Taken first: an invalidation landing after this refuses our L1 puts.
            self.l1.generation(namespace),
            stable=stable,
        )
        request.local = {key: self.l1.get(namespace, key, count=False) for key in keys}
        results = request.results
        if stable or (not validate and self._listening()):
            for key, entry in request.local.items():
                if entry is not None:
                    results[key] = Hit(entry.value, entry.version, L1)
        need = [key for key in keys if key not in results]
        if need:
            with_data = [key for key in need if request.local[key] is None]
            versions = self._redis(self._read, namespace, need, with_data)
            if versions is _UNAVAILABLE:
                self._answer_without_redis(request, need)
            else:
                self._answer_with_redis(request, need, versions)
        self.l1.record(
            hits=sum(hit.tier == L1 for hit in results.values()),
            misses=sum(hit.tier != L1 for hit in results.values()),
        )
        tiers = getattr(self._tracked, "tiers", None)
        if tiers is not None:
            tiers.extend(results[key].tier for key in keys)
        return {key: results[key] for key in keys}

    @contextmanager
    def tracking(self) -> Iterator[list[str]]:
        """The tiers that answer this thread's fetches inside the block, one
        per key, in order (a response's ``X-Cache`` header). Blocks nest:
        an outer block sees the inner block's tiers too."""
        outer = getattr(self._tracked, "tiers", None)
        tiers: list[str] = []
        self._tracked.tiers = tiers
        try:
            yield tiers
        finally:
            self._tracked.tiers = outer
            if outer is not None:
                outer.extend(tiers)

    def version(self, namespace: str, key: str) -> str | None:
        """The current version token of a key (one O(1) round trip), for a
        cheap "did it change" check; None when Redis cannot be asked."""
        self._ttl(namespace)
        versions = self._redis(self._read, namespace, [key], [])
        return None if versions is _UNAVAILABLE else versions.tokens[key]

    def _read(self, namespace: str, keys: list[str], with_data: list[str]) -> Versions:
        self._replay_pending()
        return self.l2.read_versions(namespace, keys, with_data)

    def _answer_with_redis(self, request: _Request, need: list[str], versions: Versions) -> None:
        namespace, results = request.namespace, request.results
        outdated = []
        for key in need:
            entry = request.local[key]
            if entry is not None:
                if entry.version == versions.tokens[key]:
                    self.l1.touch(namespace, key, entry.version)
                    results[key] = Hit(entry.value, entry.version, L1)
                else:
                    outdated.append(key)
        if outdated:
            self.l1.drop(namespace, outdated)
            # Another read for their values (rare: a change since they were
            # cached). Should it fail, they are loaded, and stay out of L2.
            again = self._redis(self._read, namespace, outdated, outdated)
            if again is not _UNAVAILABLE:
                versions.tokens.update(again.tokens)
                versions.values.update(again.values)
        for key in need:
            value = versions.values.get(key)
            if key not in results and value is not None:
                results[key] = Hit(value, versions.tokens[key], L2)
                request.put(self.l1, key, value, versions.tokens[key])
                self._count(l2_hits=1, l2_bytes_read=len(value))
        missing = [key for key in need if key not in results]
        if not missing:
            return
        self._count(l2_misses=len(missing))
        loaded = self._load(request.loader, missing)
        stored = {
            key: (versions.tokens[key], value) for key, value in loaded.items() if value is not None
        }
        written = (
            self._redis(self.l2.write_if_current, namespace, stored, request.ttl) if stored else {}
        )
        for key in missing:
            value, token = loaded.get(key), versions.tokens[key]
            results[key] = Hit(value, token, L3)
            if value is None:
                continue
            if written is _UNAVAILABLE:
                request.put(self.l1, key, value, None, request.outage_ttl(self.outage_ttl))
            elif written[key]:
                self._count(l2_bytes_written=len(value))
                request.put(self.l1, key, value, token)
            else:
                self._count(stale_writes_refused=1)

    def _answer_without_redis(self, request: _Request, need: list[str]) -> None:
        now = self.clock()
        for key in need:
            entry = request.local.get(key)
            if entry is not None and now - entry.checked_at <= self.outage_ttl:
                request.results[key] = Hit(entry.value, None, L1)
        missing = [key for key in need if key not in request.results]
        if not missing:
            return
        loaded = self._load(request.loader, missing)
        for key in missing:
            value = loaded.get(key)
            request.results[key] = Hit(value, None, L3)
            if value is not None:
                request.put(self.l1, key, value, None, request.outage_ttl(self.outage_ttl))

    def _load(self, loader: Loader, keys: list[str]) -> dict[str, bytes | None]:
        loaded = dict(loader(list(keys)))
        for key in keys:
            value = loaded.get(key)
            if value is not None and not isinstance(value, bytes):
                raise TypeError(f"The loader must return bytes or None, not {type(value)}")
        found = [loaded[key] for key in keys if loaded.get(key) is not None]
        self._count(
            l3_hits=len(found),
            l3_misses=len(keys) - len(found),
            l3_bytes=sum(map(len, found)),
        )
        return loaded

    # ------------------------------------------------------- invalidation
    def invalidate(self, namespace: str, keys: Iterable[str] | None = None) -> bool:
        """Drop ``keys`` of ``namespace`` (all of it for None) from every
        tier of every process. Call it after the change is committed. False
        if Redis could not be told: the invalidation is kept and sent first
        once Redis answers again."""
        self._ttl(namespace)
        keys = None if keys is None else sorted(set(keys))
        if keys is not None and not keys:
            return True
        self.l1.drop(namespace, keys)
        if self.l2 is None:
            return True
        done = self._redis(self._invalidate, namespace, keys)
        if done is _UNAVAILABLE:
            with self._lock:
                self._keep_pending(namespace, keys)
            return False
        return True

    def _invalidate(self, namespace: str, keys: list[str] | None) -> None:
        self._replay_pending()
        self.l2.invalidate(namespace, keys, invalidation_message(self.origin, namespace, keys))

    def _keep_pending(self, namespace: str, keys: list[str] | None) -> None:
        if namespace in self._pending and self._pending[namespace] is None:
            return
        if keys is None:
            self._pending[namespace] = None
            return
        pending = self._pending.setdefault(namespace, set())
        pending.update(keys)
        if len(pending) > 1000:  # bounded: fall back to the whole namespace
            self._pending[namespace] = None

    def _replay_pending(self) -> None:
        with self._lock:
            pending, self._pending = self._pending, {}
        try:
            for namespace, pending_keys in list(pending.items()):
                keys = None if pending_keys is None else sorted(pending_keys)
                self.l2.invalidate(
                    namespace, keys, invalidation_message(self.origin, namespace, keys)
                )
                del pending[namespace]
        finally:
            if pending:
                with self._lock:
                    for namespace, keys in pending.items():
                        self._keep_pending(namespace, None if keys is None else sorted(keys))

    def _apply_message(self, data: bytes) -> None:
        origin, namespace, keys = parse_invalidation_message(data)
        if origin != self.origin:  # ours were dropped by invalidate() already
            self.l1.drop(namespace, keys)

    # ------------------------------------------------------------- Redis
    def _redis(self, function: Callable[..., Any], *args: Any) -> Any:
        """``function(*args)`` if the breaker lets a Redis call through and
        it succeeds; :data:`_UNAVAILABLE` otherwise."""
        if self.l2 is None or not self.breaker.allow():
            self._count(l2_unavailable=1)
            return _UNAVAILABLE
        try:
            result = function(*args)
        except RedisTier.errors as exc:
            self.breaker.record_failure(exc)
            self._count(l2_unavailable=1)
            return _UNAVAILABLE
        except BaseException as exc:  # a bug: still release a half-open probe
            self.breaker.record_failure(exc)
            raise
        self.breaker.record_success()
        return result

    def _recovered(self) -> None:
        """Redis answers again after failing: what was published meanwhile
        never reached this process."""
        self._count(recoveries=1)
        self.l1.clear()

    def _listening(self) -> bool:
        return self.listener is not None and self.listener.connected

    def start_listener(
        self, *, poll_timeout: float = 0.5, ping_interval: float = 1.0, max_backoff: float = 5.0
    ) -> None:
        """Start the subscriber thread that applies other processes'
        invalidations to this L1 (once per process, e.g. at worker start)."""
        if self.l2 is None:
            return
        if self.listener is None:
            self.listener = InvalidationListener(
                lambda: self.l2.pubsub_client(max(poll_timeout, ping_interval) * 2),
                self.l2.channel,
                self._apply_message,
                on_connect=self.l1.clear,
                poll_timeout=poll_timeout,
                ping_interval=ping_interval,
                max_backoff=max_backoff,
            )
        self.listener.start()

    def stop_listener(self) -> None:
        if self.listener is not None:
            self.listener.stop()

    def close(self) -> None:
        self.stop_listener()
        if self.l2 is not None:
            self.l2.close()

    # -------------------------------------------------------------- misc
    def _ttl(self, namespace: str) -> float:
        try:
            return self.ttls[namespace]
        except KeyError:
            raise ValueError(f"Unknown cache namespace {namespace!r}") from None

    def _count(self, **increments: int) -> None:
        with self._lock:
            for name, step in increments.items():
                self._counts[name] += step

    def flush_local(self) -> None:
        """Empty this process's L1 (Redis and the other processes keep theirs)."""
        self.l1.clear()

    def stats(self, *, server: bool = False) -> dict[str, dict[str, Any]]:
        """Per tier: hits, misses, hit ratio, evictions, bytes (and more), as
        plain data for the ops endpoint. ``server=True`` adds Redis's own
        memory and eviction figures (one more round trip)."""
        with self._lock:
            counts = dict(self._counts)

        def ratio(hits: int, misses: int) -> float:
            return hits / (hits + misses) if hits + misses else 0.0

        l2: dict[str, Any] = {
            "enabled": self.l2 is not None,
            "hits": counts["l2_hits"],
            "misses": counts["l2_misses"],
            "hit_ratio": ratio(counts["l2_hits"], counts["l2_misses"]),
            "evictions": None,
            "bytes": None,
            "bytes_read": counts["l2_bytes_read"],
            "bytes_written": counts["l2_bytes_written"],
            "stale_writes_refused": counts["stale_writes_refused"],
            "unavailable": counts["l2_unavailable"],
            "calls": self.l2.calls if self.l2 else 0,
            "failures": self.l2.failures if self.l2 else 0,
            "recoveries": counts["recoveries"],
            "breaker": self.breaker.stats(),
            "listener": None,
        }
        if self.listener is not None:
            l2["listener"] = {
                "connected": self.listener.connected,
                "subscriptions": self.listener.subscriptions,
                "received": self.listener.received,
            }
        if server:
            figures = self._redis(self.l2.server_stats) if self.l2 else _UNAVAILABLE
            if figures is not _UNAVAILABLE:
                l2["evictions"], l2["bytes"] = figures["evicted_keys"], figures["used_memory"]
        return {
            "l1": self.l1.stats(),
            "l2": l2,
            "l3": {
                "hits": counts["l3_hits"],
                "misses": counts["l3_misses"],
                "hit_ratio": ratio(counts["l3_hits"], counts["l3_misses"]),
                "evictions": 0,
                "bytes": counts["l3_bytes"],
            },
        }
