"""The device channel's process side: the dispatcher thread that turns each
sync-log wake-up into one database read and an in-memory fan-out, the
WebSocket sessions and the long-poll waits.

Like Odoo's bus (``bus.models.bus.ImDispatch``), one dispatcher runs per
process, started on first use: only Odoo's gevent process serves waits,
so the HTTP workers never start one. It listens to ``NOTIFY pos_sync_log``,
which the sequencer's own statement sends (the earliest wake-up there is),
and, when Redis is configured, to ``pos_api:sync_log`` there too: whichever
comes first wakes it, the other costs no read. Unlike the bus, a wake-up costs
one query for all the points of sale woken, whatever the number of
connections: the hub (:mod:`pos_core.fanout`) fans it out in memory.

Nothing here holds a database cursor while it waits: the dispatcher's
reads, the token re-checks and the connection registry use short cursors
of their own, opened and closed around one statement or two.
"""

import contextlib
import itertools
import logging
import os
import selectors
import socket
import threading
import time

import gevent

import odoo
from odoo import SUPERUSER_ID, api
from odoo.modules.registry import Registry
from odoo.service.server import CommonServer
from odoo.tools import SQL

from ..pos_core import events, fanout, limits, sync_wake, tokens
from ..pos_core import websocket as ws
from ..pos_core.exceptions import PosApiError
from . import autocommit_connection
from .pos_api_device import api_settings
from .pos_sync_log import event_at

_logger = logging.getLogger(__name__)

REDIS_RETRY_SECONDS = 5
REDIS_TIMEOUT = 5  # seconds: connect and socket timeout of the Redis subscriber
BROADCAST_READ_ROWS = 5000  # rows one broadcast read fetches at most; it loops for more
ORPHAN_SEQUENCER = "_sequence_orphans"  # the write side's backstop
WORK_TURNS = 64  # frames a socket's greenlet reads in a row before it lets the others run

stop_event = threading.Event()


@contextlib.contextmanager
def short_env(dbname):
    """A superuser environment on a cursor of its own, closed on exit."""
    registry = Registry(dbname)
    with registry.cursor() as cr:
        if cr.transaction is None:  # under odoo-bin's test runner (tests/threads.py)
            cr.transaction = api.Transaction(registry)
        yield api.Environment(cr, SUPERUSER_ID, {})


# ------------------------------------------------------------------ watches
class Watch:
    """An open connection's token, re-checked by the dispatcher: ``drop`` is
    called (from the dispatcher's thread) when it no longer holds.
    ``tick(now, ping_interval, idle_timeout)``, when set, is called at every
    sweep (the pings and idle timeouts of the parked WebSockets)."""

    __slots__ = ("claims", "connection_id", "drop", "tick")

    def __init__(self, claims, drop, connection_id=None):
        self.claims = claims
        self.drop = drop
        self.connection_id = connection_id
        self.tick = None


# --------------------------------------------------------------- dispatcher
class Dispatcher(threading.Thread):
    def __init__(self):
        super().__init__(daemon=True, name=f"{__name__}.Dispatcher")
        self._lock = threading.Lock()
        self._start_lock = threading.Lock()
        self._launched = False
        self._hubs = {}
        self._watches = {}  # dbname -> set of Watch
        self._inbox = []  # payloads from the Redis subscriber
        self._wake_r, self._wake_w = socket.socketpair()
        self._wake_r.setblocking(False)
        self._wake_w.setblocking(False)
        self._feed = None
        self._next_backstop = 0.0
        self._next_recheck = 0.0
        self._next_seen = 0.0
        self._next_sweep = 0.0
        # Counters the tests and the benchmark read (see broadcast_reads).
        self.broadcast_reads = 0
        self.wakeups = 0

    # -------------------------------------------------------- public side
    def hub(self, dbname):
        """The hub of ``dbname`` in this process; starts the dispatcher."""
        with self._lock:
            hub = self._hubs.get(dbname)
            if hub is None:
                hub = self._hubs[dbname] = fanout.Hub(on_pending=self.wake)
        self._ensure_started()
        return hub

    def watch(self, dbname, watch):
        with self._lock:
            self._watches.setdefault(dbname, set()).add(watch)
        self._ensure_started()

    def unwatch(self, dbname, watch):
        with self._lock:
            self._watches.get(dbname, set()).discard(watch)

    def wake(self):
        with contextlib.suppress(OSError):  # full: a wake-up is pending anyway
            self._wake_w.send(b".")

    def post(self, payload):
        """A wake-up received out of band (the Redis subscriber)."""
        with self._lock:
            self._inbox.append(payload)
        self.wake()

    def _ensure_started(self):
        """Start once: ``Thread.start`` checks and then waits for the new
        thread, so that callers arriving meanwhile (greenlets, under gevent)
        would start it a second time."""
        if self._launched:
            return
        with self._start_lock:
            if not self._launched:
                self.start()
                self._launched = True

    # ----------------------------------------------------------- the loop
    def run(self):
        _logger.info("POS API channel: dispatcher started")
        while not stop_event.is_set():
            try:
                self._loop()
            except Exception:
                _logger.exception("POS API channel: dispatcher error, restarting in 1 s")
                stop_event.wait(1)

    def _loop(self):
        listening = {}  # dbname -> the cursor that LISTENs on it
        with selectors.DefaultSelector() as selector:
            selector.register(self._wake_r, selectors.EVENT_READ)
            try:
                while not stop_event.is_set():
                    self._sync_sources(selector, listening)
                    ready = selector.select(limits.DISPATCH_TICK)
                    payloads = []
                    for key, _mask in ready:
                        if key.fileobj is self._wake_r:
                            with contextlib.suppress(BlockingIOError):
                                while self._wake_r.recv(4096):
                                    pass
                        else:
                            conn = key.fileobj
                            conn.poll()
                            while conn.notifies:
                                payloads.append(conn.notifies.pop(0).payload)
                    with self._lock:
                        payloads += self._inbox
                        self._inbox = []
                    self._dispatch(_parse_heads(payloads))
                    self._periodic()
            finally:
                for cr in listening.values():
                    with contextlib.suppress(Exception):
                        cr.close()

    def _sync_sources(self, selector, listening):
        """LISTEN on every database served here (NOTIFY is per database);
        start the Redis subscriber when Redis is configured. Each new LISTEN
        is followed by a head check: wake-ups sent before it are not lost."""
        redis_url = api_settings().redis_url
        if redis_url and self._feed is None:
            self._feed = RedisFeed(redis_url, self)
            self._feed.start()
        with self._lock:
            dbnames = set(self._hubs)
        for dbname in set(listening) - dbnames:
            cr = listening.pop(dbname)
            selector.unregister(cr._cnx)
            cr.close()
            self._next_backstop = 0.0
        for dbname in dbnames - set(listening):
            cr = odoo.sql_db.db_connect(dbname).cursor()
            cr.execute(SQL("LISTEN %s", SQL.identifier(sync_wake.NOTIFY_CHANNEL)))
            # A connection of its own that only listens, as Odoo's bus does:
            # LISTEN takes effect at commit.
            cr.commit()  # pylint: disable=invalid-commit
            selector.register(cr._cnx, selectors.EVENT_READ)
            listening[dbname] = cr
            self._next_backstop = 0.0
            _logger.info("POS API channel: listening to %s on %s", sync_wake.NOTIFY_CHANNEL, dbname)

    def _dispatch(self, heads_by_db):
        """One read per database for all its woken points of sale."""
        with self._lock:
            hubs = dict(self._hubs)
        for dbname, hub in hubs.items():
            due = hub.announce(heads_by_db.get(dbname, {}))
            if due:
                self.wakeups += 1
                try:
                    self._read_and_publish(dbname, hub, due)
                except Exception:
                    _logger.exception("POS API channel: reading %s failed", dbname)

    def _read_and_publish(self, dbname, hub, config_ids):
        heads = hub.heads()
        after = {config_id: heads[config_id] for config_id in config_ids if config_id in heads}
        while after:
            batch = read_events(dbname, after, BROADCAST_READ_ROWS)
            self.broadcast_reads += 1
            _logger.debug(
                "POS API channel: broadcast read %s of %s: %s events for configs %s",
                self.broadcast_reads,
                dbname,
                sum(len(config_events) for config_events in batch.values()),
                sorted(after),
            )
            for config_id, config_events in batch.items():
                hub.publish(config_id, config_events)
            if sum(len(config_events) for config_events in batch.values()) < BROADCAST_READ_ROWS:
                return
            heads = hub.heads()
            after = {config_id: heads[config_id] for config_id in batch if config_id in heads}

    # ------------------------------------------------------------ periodic
    def _periodic(self):
        now = time.monotonic()
        with self._lock:
            hubs = dict(self._hubs)
            watches = {dbname: set(items) for dbname, items in self._watches.items() if items}
        if now >= self._next_backstop:
            self._next_backstop = now + limits.DISPATCH_BACKSTOP_INTERVAL
            for dbname, hub in hubs.items():
                self._backstop(dbname, hub)
        if now >= self._next_recheck:
            self._next_recheck = now + limits.TOKEN_RECHECK_INTERVAL
            for dbname, items in watches.items():
                self._recheck(dbname, items)
        if now >= self._next_sweep:
            settings = api_settings()
            ping, idle = settings.ws_ping_interval, settings.ws_idle_seconds
            self._next_sweep = now + min(limits.WS_SWEEP_INTERVAL, max(ping / 2, 0.5))
            for items in watches.values():
                for watch in items:
                    if watch.tick is not None:
                        watch.tick(now, ping, idle)
        if now >= self._next_seen:
            self._next_seen = now + limits.WS_SEEN_INTERVAL
            for dbname, items in watches.items():
                ids = [watch.connection_id for watch in items if watch.connection_id]
                if ids:
                    with contextlib.suppress(Exception), short_env(dbname) as env:
                        registry = _connection_model(env)
                        if registry is not None:
                            registry.browse(ids)._api_seen()

    def _backstop(self, dbname, hub):
        """Sequence what a crashed writer left pending (the write side's
        backstop) and compare the heads: a wake-up lost (a dropped
        connection, a Redis outage) costs at most this interval."""
        try:
            with short_env(dbname) as env:
                log = env["pos.sync.log"]
                getattr(log, ORPHAN_SEQUENCER)()
                followed = hub.heads()
                heads = {
                    config_id: last_seq
                    for config_id, (last_seq, _floor) in log._heads(followed).items()
                }
            if heads:
                self._dispatch({dbname: heads})
        except Exception:
            _logger.exception("POS API channel: backstop of %s failed", dbname)

    def _recheck(self, dbname, items):
        """Drop the connections whose token no longer holds: one query for
        every connection of the database in this process."""
        now = int(time.time())
        expired = {watch for watch in items if watch.claims.expires_at <= now}
        try:
            with short_env(dbname) as env:
                revoked = env["pos.api.device"]._api_revoked_claims(
                    watch.claims for watch in items if watch not in expired
                )
        except Exception:
            _logger.exception("POS API channel: token re-check of %s failed", dbname)
            return
        for watch in items:
            if watch in expired or watch.claims in revoked:
                self.unwatch(dbname, watch)
                watch.drop(events.CLOSE_UNAUTHORIZED)

    def shutdown(self):
        stop_event.set()
        with self._lock:
            hubs = list(self._hubs.values())
        for hub in hubs:
            hub.close_all(events.CLOSE_GOING_AWAY)


class RedisFeed(threading.Thread):
    """Forwards the Redis wake-ups (``sync_wake.REDIS_CHANNEL``) to the
    dispatcher, resubscribing after an outage."""

    def __init__(self, url, dispatcher):
        super().__init__(daemon=True, name=f"{__name__}.RedisFeed")
        self.url = url
        self.dispatcher = dispatcher

    def run(self):
        import redis

        logged = False
        while not stop_event.is_set():
            try:
                client = redis.Redis.from_url(
                    self.url, socket_timeout=REDIS_TIMEOUT, socket_connect_timeout=REDIS_TIMEOUT
                )
                with contextlib.closing(client.pubsub(ignore_subscribe_messages=True)) as pubsub:
                    pubsub.subscribe(sync_wake.REDIS_CHANNEL)
                    logged = False
                    while not stop_event.is_set():
                        message = pubsub.get_message(timeout=limits.DISPATCH_TICK)
                        if message and message.get("type") == "message":
                            self.dispatcher.post(message["data"])
            except (redis.RedisError, OSError) as exc:
                if not logged:
                    _logger.warning(
                        "POS API channel: Redis unavailable (%s), woken by PostgreSQL only", exc
                    )
                    logged = True
            stop_event.wait(REDIS_RETRY_SECONDS)


def _parse_heads(payloads):
    """``{dbname: {config_id: last_seq}}`` of the wake-ups received."""
    heads = {}
    for payload in payloads:
        try:
            dbname, advanced = sync_wake.parse_wake_message(payload)
        except (ValueError, TypeError):
            _logger.warning("POS API channel: ignoring a malformed wake-up %.200r", payload)
            continue
        target = heads.setdefault(dbname, {})
        for config_id, seq in advanced.items():
            target[config_id] = max(seq, target.get(config_id, 0))
    return heads


def read_events(dbname, after, limit):
    """The sequenced events of several points of sale, each after its own
    seq, in one query: ``{config_id: [fanout.Event, ...]}`` in seq order."""
    config_ids = sorted(after)
    rows = autocommit_connection.execute(
        dbname,
        """SELECT l.config_id, l.seq, l.event_type, l.rooms, l.create_date, l.payload
             FROM pos_sync_log l
             JOIN unnest(%s::int[], %s::int[]) AS w(config_id, after)
               ON l.config_id = w.config_id AND l.seq > w.after
         ORDER BY l.config_id, l.seq
            LIMIT %s""",
        (config_ids, [after[config_id] for config_id in config_ids], limit),
    )
    batch = {}
    for config_id, seq, event_type, rooms, created, payload in rows:
        batch.setdefault(config_id, []).append(
            fanout.Event(
                config_id,
                seq,
                event_type,
                (rooms or "").split(","),
                at=event_at(created),
                payload=payload,
            )
        )
    return batch


dispatcher = Dispatcher()
CommonServer.on_stop(dispatcher.shutdown)


def _connection_model(env):
    """The connection registry, when installed (``pos.websocket.connection``)."""
    return env.get("pos.websocket.connection")


def can_hold_connections():
    """Whether this process may keep a request waiting: only Odoo's gevent
    process. An HTTP worker (or the threaded server) answers at once."""
    return bool(odoo.evented)


# ------------------------------------------------------------------ catch-up
def catch_up(env, config_id, after, rooms, limit=limits.MAX_EVENTS_PER_READ):
    """Events of ``rooms`` after ``after`` from the sync log (the resume
    rule applied): ``(envelopes, last_seq, resync)``, ``last_seq`` being the
    seq to continue from."""
    return env["pos.sync.log"]._read_since(config_id, after, list(rooms), limit)


# ----------------------------------------------------------------- long-poll
def long_poll(env, device, after, rooms, timeout):
    """The body of ``GET /events`` (bytes) when it answers at once, else the
    waiter (a hub subscriber) that the response waits on; see LongPollHold."""
    dbname = env.cr.dbname
    config_id = device.config_id.id
    hub = dispatcher.hub(dbname) if can_hold_connections() and timeout > 0 else None
    waiter = None
    if hub is not None and after is not None:
        waiter = _waiter(config_id, rooms)
        if hub.attach_from_memory(waiter, after):
            items, cursor, _closed = waiter.take(0)
            if items or waiter.full:
                waiter.close()
                return _answer([data for _seq, data in items], cursor, False)
        else:
            waiter = None
    resync = False
    if waiter is None:
        envelopes, last_seq, resync = catch_up(env, config_id, after, rooms)
        if envelopes or resync or hub is None:
            return _answer(
                [events.dumps(envelope).encode() for envelope in envelopes], last_seq, resync
            )
        waiter = _waiter(config_id, rooms)
        if not hub.attach(waiter, last_seq):
            return _answer([], last_seq, False)  # the hub moved on: poll again at once
    return waiter


def _waiter(config_id, rooms):
    return fanout.Subscriber(
        config_id, rooms, max_items=limits.MAX_EVENTS_PER_READ, stop_when_full=True
    )


def _answer(encoded, last_seq, resync):
    """The long-poll body: the envelopes as encoded once by the hub."""
    return b"".join(
        (
            b'{"events":[',
            b",".join(encoded),
            b'],"last_seq":',
            str(int(last_seq)).encode(),
            b',"resync":',
            b"true" if resync else b"false",
            b"}",
        )
    )


def no_delay(sock):
    """Small writes (an event, a chunk's terminator) go out at once instead
    of waiting for the peer's acknowledgement of the previous one (Nagle)."""
    with contextlib.suppress(OSError, AttributeError):
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)


class LongPollHold:
    """A waiting long-poll: a connection slot of its device, its token
    watched (a revocation ends the wait at once, with what it has), a row in
    the connection registry while it waits."""

    def __init__(self, dbname, device_id, claims, waiter, *, rooms, remote_addr):
        self.dbname = dbname
        self.device_id = device_id
        self.waiter = waiter
        self.rooms = rooms
        self.remote_addr = remote_addr
        self.hub = dispatcher.hub(dbname)
        self.key = ("device", device_id)
        self.watch = Watch(claims, waiter.close)
        self.slot = False
        self.released = False

    def acquire(self):
        self.slot = self.hub.acquire(self.key, limits.MAX_CONNECTIONS_PER_DEVICE)
        if not self.slot:
            self.release()
        return self.slot

    def body(self, timeout):
        """The response body: waits in the hub, after the request's cursor
        is closed; the registry row is written on a short cursor of its own.
        The release (``response.call_on_close``) comes after the answer went
        out, whether it ended with events, at the timeout or by an error."""
        # The status and headers go out now, with a first byte of the JSON
        # (white space): the client has read them before the events come,
        # which then cost it only the body.
        yield b" "
        dispatcher.watch(self.dbname, self.watch)
        with contextlib.suppress(Exception), short_env(self.dbname) as env:
            registry = _connection_model(env)
            if registry is not None:
                device = env["pos.api.device"].browse(self.device_id)
                self.watch.connection_id = registry._api_open(
                    device, self.rooms, "longpoll", self.remote_addr
                ).id
        items, cursor, _closed = self.waiter.take(timeout)
        self._free_slot()  # for the device's next request, sent on receipt
        yield _answer([data for _seq, data in items], cursor, False)

    def _free_slot(self):
        self.waiter.close()
        dispatcher.unwatch(self.dbname, self.watch)
        if self.slot:
            self.slot = False
            self.hub.release(self.key)

    def release(self):
        if self.released:
            return
        self.released = True
        self._free_slot()
        if self.watch.connection_id:
            with contextlib.suppress(Exception), short_env(self.dbname) as env:
                _connection_model(env).browse(self.watch.connection_id)._api_close()


# ----------------------------------------------------------------- WebSocket
class DeviceSocket:
    """One device's WebSocket, served after the 101 answer went out (Odoo's
    ``response.call_on_close``, as its bus does).

    The request's greenlet authenticates the device and takes its slot, then
    parks the socket and returns: an idle connection costs no greenlet (a
    greenlet's frame stack alone is 16 KiB or more on Python 3.11), only an
    event-loop watcher on its descriptor. A greenlet is spawned when there
    is work (a frame arrived, the hub queued events, a ping is due) and ends
    once there is none: it reads what has arrived without waiting for more
    (a partial frame stays buffered for the next one), sends what the hub
    queued and answers. A client that never reads blocks only that
    greenlet, for at most ``WS_SEND_TIMEOUT``, and fills only its own buffer
    in the hub, until it is cut off."""

    def __init__(self, sock, dbname, remote_addr, device_id=None, claims=None):
        self.sock = sock
        self.dbname = dbname
        self.remote_addr = remote_addr
        self.device_id = device_id
        self.claims = claims
        self.config_id = claims.config_id if claims else None
        self.reader = ws.FrameReader(sock)
        self.send_lock = threading.RLock()
        self.hub = dispatcher.hub(dbname)
        # Before the first subscribe, a subscriber of nothing: it carries
        # the close codes (revocation, shutdown) to the worker.
        self.subscriber = fanout.Subscriber(0, (), notify=self._wake)
        self.watch = None
        self.connection_id = None
        self.slot = None
        self.closing = False
        self.released = False
        self.dropped = None  # the close code of a drop from another greenlet
        self.watcher = None  # the event-loop watcher of the parked socket
        self.worker = None  # the greenlet at work, when there is one
        self.ping_due = False
        self.last_received = self.last_ping = time.monotonic()

    # --------------------------------------------------------------- serve
    def serve(self):
        """Authenticate, take the device's slot, park (the request's
        greenlet then returns)."""
        parked = False
        try:
            with self._ending_on_errors():
                if self.claims is None:
                    self.sock.settimeout(limits.WS_AUTH_TIMEOUT)
                    try:
                        message = self._next_text()
                    except TimeoutError:
                        self.close(events.CLOSE_POLICY, "no auth message in time")
                        return
                    if message is None:
                        return
                    parsed = ws.parse_client_message(message)
                    if parsed["type"] != ws.AUTH:
                        raise ws.ProtocolError(events.CLOSE_POLICY, "authenticate first")
                    if not self._authenticate(parsed["token"]):
                        return
                else:
                    self._send_authenticated()
                if self._opened() and not self.closing:
                    self._park()
                    parked = True
        finally:
            if not parked:
                self._release()

    @contextlib.contextmanager
    def _ending_on_errors(self):
        """What ends the connection: a protocol error (closed with its
        code), the peer gone, or a fault of ours (1011)."""
        try:
            yield
        except ws.ProtocolError as exc:
            self.close(exc.code, exc.reason)
        except (ws.ConnectionClosed, OSError):
            self.closing = True
        except Exception:
            _logger.exception("POS API channel: WebSocket error")
            self.close(1011, "internal error")

    def _park(self):
        """Take the descriptor from the WSGI server (which closes its own
        socket object once this greenlet returns) and watch it."""
        fd = self.sock.detach()
        try:
            self.sock = socket.socket(fileno=fd)  # gevent's, cooperative: sends
        except OSError:
            os.close(fd)
            raise
        self.sock.settimeout(limits.WS_SEND_TIMEOUT)
        no_delay(self.sock)
        # Reads take what has arrived (the descriptor is non-blocking under
        # gevent): a partial frame stays in the reader's buffer.
        self.reader.sock = _Arrived(fd)
        self.watcher = gevent.get_hub().loop.io(fd, 1)
        self.watch.tick = self._tick
        self._wake()  # frames that came with the handshake's answer

    def _wake(self):
        """Something to do (from the event loop, the dispatcher or the hub,
        never blocking): start a greenlet unless one works already."""
        if self.watcher is None or self.worker is not None or self.released:
            return
        self.watcher.stop()
        self.worker = gevent.spawn(self._work)

    def _work(self):
        try:
            with self._ending_on_errors():
                while not self.closing:
                    if self.dropped is not None:
                        self.close(self.dropped, events.CLOSE_CODES.get(self.dropped, ""))
                        break
                    if self._send_queued():
                        break
                    try:
                        message = self._next_text()
                    except BlockingIOError:
                        if self.subscriber.pending() or self.ping_due or self.dropped is not None:
                            continue
                        break  # nothing arrived, nothing queued: park again
                    if message is None:
                        break
                    parsed = ws.parse_client_message(message)
                    if parsed["type"] == ws.AUTH:
                        if not self._authenticate(parsed["token"]):
                            break
                    else:
                        self._subscribe(parsed)
        finally:
            self.worker = None
            if self.closing:
                self._release()
            else:
                self.watcher.start(self._wake)

    def _send_queued(self):
        """Send the hub's events and a due ping; True once the connection is
        to be closed (cut off, or its subscription replaced by nothing)."""
        if self.ping_due:
            self.ping_due = False
            self.last_ping = time.monotonic()
            self._send(ws.encode_frame(ws.OP_PING, b""))
        subscriber = self.subscriber
        items, _cursor, closed = subscriber.drain()
        for _seq, data in items:
            self._send(ws.text_frame(data))
        if closed is not None and subscriber is self.subscriber:
            self.close(closed, events.CLOSE_CODES.get(closed, ""))
            return True
        return False

    def _tick(self, now, ping_interval, idle_timeout):
        """The dispatcher's sweep: a ping every ping interval, events or not
        (a client that only listens sends nothing but its pongs), a close
        when the client sent nothing for longer than the idle timeout."""
        if now - self.last_received > idle_timeout:
            self.drop(events.CLOSE_GOING_AWAY)
        elif now - self.last_ping >= ping_interval:
            self.ping_due = True
            self._wake()

    def _next_text(self):
        """The next text message, answering pings and closes on the way;
        None once the client closed."""
        for turn in itertools.count(1):
            if turn % WORK_TURNS == 0:
                gevent.sleep(0)  # a client that keeps sending starves no one
            message = self.reader.read_message()
            self.last_received = time.monotonic()
            if message.opcode == ws.OP_TEXT:
                return message.data
            if message.opcode == ws.OP_PING:
                self._send(ws.encode_frame(ws.OP_PONG, message.data))
            elif message.opcode == ws.OP_CLOSE:
                code, _reason = ws.parse_close(message.data)
                self.close(events.CLOSE_NORMAL if code == 1005 else code)
                return None
            elif message.opcode == ws.OP_BINARY:
                raise ws.ProtocolError(events.CLOSE_UNSUPPORTED, "binary messages are not used")

    def _authenticate(self, token):
        """Authenticate (first message) or extend (a fresh token of the same
        device before the current one expires); False when refused."""
        try:
            with short_env(self.dbname) as env:
                device, claims = env["pos.api.device"]._api_device_for(token, tokens.ACCESS)
                device._api_touch()
        except PosApiError as exc:
            self.close(events.CLOSE_UNAUTHORIZED, exc.code)
            return False
        if self.claims is not None and claims.device_id != self.device_id:
            self.close(events.CLOSE_POLICY, "a connection keeps its device")
            return False
        self.device_id, self.claims, self.config_id = claims.device_id, claims, claims.config_id
        if self.watch is not None:
            self.watch.claims = claims
        self._send_authenticated()
        return True

    def _send_authenticated(self):
        self._send_json(
            {
                "type": ws.AUTHENTICATED,
                "device_id": self.device_id,
                "expires_at": self.claims.expires_at,
            }
        )

    def _opened(self):
        """Take a connection slot of the device, register the connection."""
        key = ("device", self.device_id)
        if not self.hub.acquire(key, limits.MAX_CONNECTIONS_PER_DEVICE):
            self.close(events.CLOSE_TOO_MANY, "too many connections for this device")
            return False
        self.slot = key
        with short_env(self.dbname) as env:
            registry = _connection_model(env)
            if registry is not None:
                device = env["pos.api.device"].browse(self.device_id)
                self.connection_id = registry._api_open(
                    device, [], "websocket", self.remote_addr
                ).id
        self.watch = Watch(self.claims, self.drop, self.connection_id)
        dispatcher.watch(self.dbname, self.watch)
        return True

    def _subscribe(self, message):
        try:
            with short_env(self.dbname) as env:
                device = env["pos.api.device"].browse(self.device_id)
                rooms = device._api_event_rooms(message["rooms"])
        except PosApiError as exc:
            code = {403: events.CLOSE_FORBIDDEN, 429: events.CLOSE_TOO_MANY}.get(
                exc.status, events.CLOSE_INVALID_DATA
            )
            raise ws.ProtocolError(code, exc.code) from exc
        after = message["after"]
        subscriber = fanout.Subscriber(self.config_id, rooms, notify=self._wake)
        previous, self.subscriber = self.subscriber, subscriber
        previous.close(events.CLOSE_NORMAL)
        if self.dropped is not None:
            subscriber.close(self.dropped)
            return
        # This greenlet alone sends the hub's events: none goes out before
        # the acknowledgement and the catch-up.
        from_memory = after is not None and self.hub.attach_from_memory(subscriber, after)
        if from_memory:
            self._send_json(_subscribed(rooms, after, False))
        else:
            first = True
            cursor = after
            for _attempt in range(10):
                with short_env(self.dbname) as env:
                    envelopes, last_seq, resync = catch_up(env, self.config_id, cursor, rooms)
                if first:
                    resumed = last_seq if resync or cursor is None else cursor
                    self._send_json(_subscribed(rooms, resumed, resync))
                    first = False
                for envelope in envelopes:
                    self._send(ws.text_frame(events.dumps(envelope)))
                cursor = last_seq
                if len(envelopes) < limits.MAX_EVENTS_PER_READ and self.hub.attach(
                    subscriber, cursor
                ):
                    break
            else:
                raise ws.ProtocolError(events.CLOSE_RESYNC, "could not catch up")
        if self.connection_id:
            with short_env(self.dbname) as env:
                _connection_model(env).browse(self.connection_id)._api_subscribed(rooms)

    # --------------------------------------------------------------- write
    def _send(self, frame):
        with self.send_lock:
            self.sock.sendall(frame)

    def _send_json(self, message):
        self._send(ws.text_frame(events.dumps(message)))

    def drop(self, code):
        """Close from another greenlet (token revoked, server going away,
        no answer to pings): the connection's own greenlet sends the close."""
        self.dropped = code
        self.subscriber.close(code)
        if self.watcher is None:
            self.close(code, events.CLOSE_CODES.get(code, ""))
        else:
            self._wake()

    def close(self, code, reason=""):
        """Send a close frame (once) and end the connection: the reader
        sees the end of its stream."""
        if self.closing:
            return
        self.closing = True
        with contextlib.suppress(OSError):
            self._send(ws.close_frame(code, reason))
        with contextlib.suppress(OSError):
            self.sock.shutdown(socket.SHUT_RDWR)

    def _release(self):
        if self.released:
            return
        self.released = True
        self.closing = True
        self.subscriber.close(events.CLOSE_NORMAL)
        if self.watch is not None:
            dispatcher.unwatch(self.dbname, self.watch)
        if self.slot is not None:
            self.hub.release(self.slot)
        if self.connection_id:
            with contextlib.suppress(Exception), short_env(self.dbname) as env:
                _connection_model(env).browse(self.connection_id)._api_close()
        if self.watcher is not None:
            self.watcher.close()
        with contextlib.suppress(OSError):
            self.sock.close()


class _Arrived:
    """``recv`` of what a non-blocking descriptor holds now: BlockingIOError
    when nothing has arrived."""

    __slots__ = ("fd",)

    def __init__(self, fd):
        self.fd = fd

    def recv(self, size):
        return os.read(self.fd, size)


def _subscribed(rooms, after, resync):
    return {"type": ws.SUBSCRIBED, "rooms": list(rooms), "after": after, "resync": resync}
