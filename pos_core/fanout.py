"""The per-process fan-out of sync-log events to the devices connected to it.

One :class:`Hub` per database and process. Its dispatcher reads each
broadcast once from the database (one query for every woken point of sale)
and calls :meth:`Hub.publish`; the hub hands every event to the
subscribers that follow one of its rooms, in memory. A subscriber is a
WebSocket's send buffer or a waiting long-poll; a slow one never delays the
others: when its buffer is full it is cut off and told to resync
(:data:`events.CLOSE_RESYNC`), or, for a long-poll, it stops taking events
and answers with what it has.

The hub also keeps, per point of sale, a ring of the latest events, so that
a device attaching or resuming just behind the live stream is served from
memory; and the heads the database announced, so that a point of sale
becoming followed while its wake-up was in flight is read anyway.

Only ``threading`` primitives are used: under Odoo's gevent process they are
monkey-patched and block greenlets, not the process.
"""

from __future__ import annotations

import threading
from collections import deque
from collections.abc import Callable, Iterable

from . import events, limits


class Event:
    """One sequenced event of a point of sale, with its envelope's JSON
    encoded once per room it is delivered under (not once per subscriber)."""

    __slots__ = ("_encoded", "at", "config_id", "payload", "rooms", "seq", "type")

    def __init__(self, config_id: int, seq: int, event_type: str, rooms, *, at: str, payload):
        self.config_id = config_id
        self.seq = seq
        self.type = event_type
        self.rooms = tuple(rooms)
        self.at = at
        self.payload = payload
        self._encoded: dict[str, bytes] = {}

    def envelope(self, room: str) -> dict:
        return events.envelope(self.seq, self.type, room, self.at, self.payload)

    def encoded(self, room: str) -> bytes:
        data = self._encoded.get(room)
        if data is None:
            data = self._encoded[room] = events.dumps(self.envelope(room)).encode()
        return data

    def __repr__(self):
        return f"Event({self.config_id}, {self.seq}, {self.type!r})"


class Subscriber:
    """What one connection follows, and what waits to be sent to it.

    ``cursor`` is the highest seq of the point of sale it has been given or
    could skip (no room of its own): a long-poll answers it as ``last_seq``.
    ``stop_when_full`` (long-poll): a full buffer stops the intake, the
    cursor staying at the last event taken, instead of cutting off.
    ``notify``, when given, is called (under the hub's lock, so it must not
    block) whenever there is something to take: a WebSocket parked with no
    greenlet of its own is woken by it instead of waiting on :meth:`take`."""

    def __init__(
        self,
        config_id: int,
        rooms: Iterable[str],
        *,
        max_bytes: int = limits.WS_SEND_BUFFER_BYTES,
        max_items: int | None = None,
        stop_when_full: bool = False,
        notify: Callable[[], None] | None = None,
    ):
        self.config_id = config_id
        self.rooms = frozenset(rooms)
        self.max_bytes = max_bytes
        self.max_items = max_items
        self.stop_when_full = stop_when_full
        self.cursor = 0
        self.closed: int | None = None  # the close code, once cut off or closed
        self.full = False
        self._items: deque[tuple[int, bytes]] = deque()
        self._size = 0
        self._ready = threading.Event()
        self._notify = notify
        self._hub: Hub | None = None

    def take(self, timeout: float | None) -> tuple[list[tuple[int, bytes]], int, int | None]:
        """Wait up to ``timeout`` seconds for events: ``(items, cursor,
        closed)``, items being ``(seq, envelope JSON)`` in seq order."""
        self._ready.wait(timeout)
        return self.drain()

    def drain(self) -> tuple[list[tuple[int, bytes]], int, int | None]:
        """:meth:`take` without waiting."""
        hub = self._hub
        lock = hub._lock if hub is not None else threading.Lock()
        with lock:
            items = list(self._items)
            self._items.clear()
            self._size = 0
            self._ready.clear()
            if self.closed is not None:
                self._ready.set()  # every later take returns at once
            return items, self.cursor, self.closed

    def pending(self) -> bool:
        """Whether a :meth:`drain` would return events or a close code."""
        return bool(self._items) or self.closed is not None

    def _signal(self):
        self._ready.set()
        if self._notify is not None:
            self._notify()

    def close(self, code: int = events.CLOSE_NORMAL):
        """Detach and wake whoever waits on :meth:`take` (from any thread)."""
        hub = self._hub
        if hub is not None:
            hub.detach(self, code)
        else:
            self.closed = code if self.closed is None else self.closed
            self._signal()

    # called under the hub's lock
    def _deliver(self, event: Event, room: str) -> bool:
        """False when this subscriber is to be detached (full or cut off)."""
        data = event.encoded(room)
        over_items = self.max_items is not None and len(self._items) >= self.max_items
        if over_items or self._size + len(data) > self.max_bytes:
            if self.stop_when_full:
                self.full = True
            else:
                self._items.clear()
                self._size = 0
                self.closed = events.CLOSE_RESYNC
            self._signal()
            return False
        self._items.append((event.seq, data))
        self._size += len(data)
        self.cursor = event.seq
        self._signal()
        return True


class _Followed:
    """One point of sale followed in this process."""

    __slots__ = ("by_room", "head", "ring", "subscribers")

    def __init__(self, head: int, ring_size: int):
        self.head = head
        self.ring: deque[Event] = deque(maxlen=ring_size)
        self.subscribers: set[Subscriber] = set()
        self.by_room: dict[str, set[Subscriber]] = {}


class Hub:
    """Fan-out for one database in one process (see the module docstring)."""

    def __init__(self, ring_size: int = limits.WS_RING_EVENTS, on_pending: Callable | None = None):
        self.ring_size = ring_size
        self.on_pending = on_pending  # wakes the dispatcher: a point of sale needs a read
        self._lock = threading.RLock()
        self._followed: dict[int, _Followed] = {}
        self._announced: dict[int, int] = {}
        self._pending: set[int] = set()
        self._slots: dict[object, int] = {}

    # ------------------------------------------------------------ state
    def heads(self) -> dict[int, int]:
        """``{config_id: head}`` of the points of sale someone follows here:
        what the dispatcher reads after, on a wake-up."""
        with self._lock:
            return {config_id: f.head for config_id, f in self._followed.items()}

    def subscriber_count(self, config_id: int | None = None) -> int:
        with self._lock:
            if config_id is not None:
                followed = self._followed.get(config_id)
                return len(followed.subscribers) if followed else 0
            return sum(len(f.subscribers) for f in self._followed.values())

    def announce(self, heads: dict[int, int]) -> set[int]:
        """Record the heads a wake-up announced; the followed points of sale
        this hub is behind on, with the ones attaches flagged since the last
        call: what the dispatcher reads now."""
        with self._lock:
            for config_id, head in heads.items():
                if head > self._announced.get(config_id, 0):
                    self._announced[config_id] = head
            due = {
                config_id
                for config_id, head in heads.items()
                if config_id in self._followed and self._followed[config_id].head < head
            }
            due |= {config_id for config_id in self._pending if config_id in self._followed}
            self._pending.clear()
            return due

    # ----------------------------------------------------- subscribers
    def attach(self, subscriber: Subscriber, cursor: int) -> bool:
        """Attach a subscriber whose own database read covered the point of
        sale's events up to ``cursor`` (and delivered them itself). The
        events the hub published since come from its ring; False (nothing
        attached) when the ring no longer holds them all: read again from
        ``cursor``."""
        with self._lock:
            followed = self._followed.get(subscriber.config_id)
            if followed is None:
                followed = self._followed[subscriber.config_id] = _Followed(cursor, self.ring_size)
            elif not followed.subscribers and followed.head < cursor:
                # Followed by nobody lately (between two long-polls): the
                # dispatcher kept reading it, but the subscriber's read is
                # newer. Its ring would have a gap: start it afresh. (When
                # the hub is ahead instead, its ring holds what the
                # subscriber's read missed: a wake-up read meanwhile.)
                followed.head = cursor
                followed.ring.clear()
            if not self._catch_up(subscriber, followed, cursor):
                if not followed.subscribers:
                    del self._followed[subscriber.config_id]
                return False
            self._register(subscriber, followed)
            return True

    def attach_from_memory(self, subscriber: Subscriber, after: int) -> bool:
        """Attach from the ring alone, without any database read: True when
        the point of sale is followed here and its ring holds every event
        after ``after`` (a device resuming just behind the live stream)."""
        with self._lock:
            followed = self._followed.get(subscriber.config_id)
            if followed is None or not followed.subscribers or after > followed.head:
                return False
            if not self._catch_up(subscriber, followed, after):
                return False
            self._register(subscriber, followed)
            return True

    def _catch_up(self, subscriber: Subscriber, followed: _Followed, cursor: int) -> bool:
        if followed.head > cursor:
            ring = followed.ring
            if not ring or ring[0].seq > cursor + 1:
                return False
            subscriber.cursor = cursor
            for event in ring:
                if event.seq > cursor:
                    self._offer(subscriber, event)
                    if subscriber.closed is not None or subscriber.full:
                        return True  # told to resync / to answer at once
        subscriber.cursor = max(cursor, followed.head)
        return True

    def _register(self, subscriber: Subscriber, followed: _Followed):
        subscriber._hub = self
        if subscriber.closed is not None or subscriber.full:
            return
        followed.subscribers.add(subscriber)
        for name in subscriber.rooms:
            followed.by_room.setdefault(name, set()).add(subscriber)
        config_id = subscriber.config_id
        if self._announced.get(config_id, 0) > followed.head:
            self._pending.add(config_id)
            if self.on_pending is not None:
                self.on_pending()

    def detach(self, subscriber: Subscriber, code: int | None = None):
        with self._lock:
            self._unregister(subscriber)
            if code is not None and subscriber.closed is None:
                subscriber.closed = code
            subscriber._signal()

    def _unregister(self, subscriber: Subscriber):
        followed = self._followed.get(subscriber.config_id)
        if followed is None or subscriber not in followed.subscribers:
            return
        followed.subscribers.discard(subscriber)
        for name in subscriber.rooms:
            members = followed.by_room.get(name)
            if members is not None:
                members.discard(subscriber)
                if not members:
                    del followed.by_room[name]

    def _offer(self, subscriber: Subscriber, event: Event) -> bool:
        room = events.matches(event.rooms, subscriber.rooms)
        if room is None:
            subscriber.cursor = event.seq
            return True
        return subscriber._deliver(event, room)

    # --------------------------------------------------------- publish
    def publish(self, config_id: int, batch: Iterable[Event]) -> int:
        """Hand the point of sale's new events (in seq order) to its
        subscribers; events at or below the hub's head are ignored (a
        wake-up read twice). Returns how many events were new."""
        with self._lock:
            followed = self._followed.get(config_id)
            if followed is None:
                return 0
            new = 0
            for event in batch:
                if event.seq <= followed.head:
                    continue
                new += 1
                followed.head = event.seq
                followed.ring.append(event)
                reached = set()
                for name in event.rooms:
                    for subscriber in tuple(followed.by_room.get(name, ())):
                        if subscriber in reached:
                            continue
                        reached.add(subscriber)
                        if event.seq > subscriber.cursor and not subscriber._deliver(event, name):
                            self._unregister(subscriber)
            if new:
                for subscriber in followed.subscribers:
                    subscriber.cursor = max(subscriber.cursor, followed.head)
            if followed.head >= self._announced.get(config_id, 0):
                self._announced.pop(config_id, None)
            return new

    def close_all(self, code: int):
        """Cut every subscriber off (server going away)."""
        with self._lock:
            for followed in self._followed.values():
                for subscriber in tuple(followed.subscribers):
                    self.detach(subscriber, code)

    # ----------------------------------------------------------- slots
    def acquire(self, key, cap: int) -> bool:
        """Take one of ``cap`` slots of ``key`` (a device's connections in
        this process); False when all are taken."""
        with self._lock:
            taken = self._slots.get(key, 0)
            if taken >= cap:
                return False
            self._slots[key] = taken + 1
            return True

    def release(self, key):
        with self._lock:
            taken = self._slots.get(key, 0) - 1
            if taken > 0:
                self._slots[key] = taken
            else:
                self._slots.pop(key, None)
