"""The reference device client of the events channel (issue 10, section 3.7).

A device keeps one cursor, the last ``seq`` it saw, follows its rooms over a
WebSocket (``/pos_api/v1/ws``) or by long-polling (``GET /pos_api/v1/events``)
and, whatever happens to the connection (a drop, a server restart, a move to
another worker or server), comes back with that cursor: the server replays
what it missed, and the client drops anything at or below its cursor, so
that the application sees every event once, in order. When the server says
the cursor is too old (``"resync": true``, or the close code
:data:`events.CLOSE_RESYNC`), the application fetches afresh through its
``on_resync`` callback.

Writes made while offline go to a queue kept in a JSON file: each gets its
``Idempotency-Key`` when it is queued, so that replaying it after a restart,
or after a response lost on the way back, cannot apply it twice.

Plain standard library (sockets, ``http.client``, ``json``), no Odoo: it is
what the tests and the benchmarks drive, and a template for device apps.
Every network call has a timeout.
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import http.client
import json
import logging
import os
import random
import socket
import struct
import tempfile
import threading
import time
import uuid
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from urllib.parse import urlencode, urlsplit

from . import events, limits

_logger = logging.getLogger(__name__)

WS_PATH = "/pos_api/v1/ws"
EVENTS_PATH = "/pos_api/v1/events"
WEBSOCKET, LONGPOLL = "websocket", "longpoll"
TRANSPORTS = (WEBSOCKET, LONGPOLL)
# RFC 6455, section 1.3: appended to the key to prove the server speaks it.
_WS_GUID = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"


# ------------------------------------------------------------- backoff
@dataclass(frozen=True)
class Backoff:
    """Reconnection timing as data: the n-th retry in a row waits
    ``min(cap, base * 2**n)`` seconds, less a random part of up to
    ``jitter`` of it, so that a thousand devices dropped by one server
    restart do not all come back in the same millisecond."""

    base: float = 0.5
    cap: float = 30.0
    jitter: float = 0.5

    def delay(self, attempt: int, rand: float) -> float:
        """Seconds before retry number ``attempt`` (0 for the first),
        ``rand`` a number in [0, 1) (``random.random()``)."""
        ceiling = min(self.cap, self.base * 2 ** min(max(attempt, 0), 62))
        return ceiling * (1 - self.jitter * rand)


DEFAULT_BACKOFF = Backoff()


# -------------------------------------------------------------- cursor
class Cursor:
    """The last ``seq`` a device saw, and the rule that makes resuming from
    it exact: a replayed or repeated event (``seq <= last``) is dropped."""

    def __init__(self, last: int | None = None):
        self.last = last

    def accept(self, event: dict) -> bool:
        """Whether ``event`` is new; it moves the cursor when it is."""
        seq = event.get("seq")
        if not isinstance(seq, int) or isinstance(seq, bool):
            return False
        if self.last is not None and seq <= self.last:
            return False
        self.last = seq
        return True

    def reset(self, last: int | None) -> None:
        """After a resync, the device continues from the server's head."""
        self.last = last


# ------------------------------------------------------------- errors
class ChannelError(Exception):
    """The connection failed for a reason that a retry may cure."""


class TokenRejected(ChannelError):
    """401 or close 4001: the token must be refreshed."""


class Refused(Exception):
    """A definitive refusal (403 room, 422 bad room, 4029 too many): a
    retry would get the same answer, so the client stops."""

    def __init__(self, status: int, body=None):
        super().__init__(f"refused with {status}: {body}")
        self.status, self.body = status, body


class Resync(ChannelError):
    """The server told the client to fetch afresh."""


# ------------------------------------------------------------ websocket
OP_CONT, OP_TEXT, OP_BINARY, OP_CLOSE, OP_PING, OP_PONG = 0x0, 0x1, 0x2, 0x8, 0x9, 0xA


def ws_accept_key(key: str) -> str:
    return base64.b64encode(hashlib.sha1((key + _WS_GUID).encode()).digest()).decode()


def encode_frame(opcode: int, payload: bytes, mask: bytes | None = None) -> bytes:
    """One final frame; a client masks every frame it sends (RFC 6455 5.3)."""
    mask = os.urandom(4) if mask is None else mask
    length = len(payload)
    head = bytes([0x80 | opcode])
    if length < 126:
        head += bytes([0x80 | length])
    elif length < 1 << 16:
        head += bytes([0x80 | 126]) + struct.pack("!H", length)
    else:
        head += bytes([0x80 | 127]) + struct.pack("!Q", length)
    masked = bytes(b ^ mask[i % 4] for i, b in enumerate(payload))
    return head + mask + masked


class WebSocket:
    """A small blocking client side of RFC 6455: handshake with headers,
    masked frames out, fragmented messages in, pings answered."""

    def __init__(self, sock: socket.socket, leftover: bytes = b""):
        self.sock = sock
        self._buffer = bytearray(leftover)
        self._send_lock = threading.Lock()
        self.close_code: int | None = None
        self.close_reason = ""
        self._close_sent = False

    @classmethod
    def connect(
        cls, url: str, headers: dict[str, str], timeout: float, max_message: int
    ) -> WebSocket:
        parts = urlsplit(url)
        host, port = parts.hostname, parts.port or (443 if parts.scheme == "wss" else 80)
        if parts.scheme not in ("ws", "http"):
            raise ValueError(f"only plain ws:// or http:// URLs, not {url!r}")
        sock = socket.create_connection((host, port), timeout=timeout)
        try:
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            key = base64.b64encode(os.urandom(16)).decode()
            lines = [
                f"GET {parts.path or '/'}{'?' + parts.query if parts.query else ''} HTTP/1.1",
                f"Host: {host}:{port}",
                "Upgrade: websocket",
                "Connection: Upgrade",
                f"Sec-WebSocket-Key: {key}",
                "Sec-WebSocket-Version: 13",
                *(f"{name}: {value}" for name, value in headers.items()),
            ]
            sock.sendall(("\r\n".join(lines) + "\r\n\r\n").encode())
            raw = b""
            while b"\r\n\r\n" not in raw:
                chunk = sock.recv(4096)
                if not chunk:
                    raise ChannelError("connection closed during the WebSocket handshake")
                raw += chunk
                if len(raw) > 65536:
                    raise ChannelError("handshake response too large")
            head, _sep, rest = raw.partition(b"\r\n\r\n")
            status_line, *header_lines = head.decode("latin-1").split("\r\n")
            status = int(status_line.split(" ", 2)[1])
            found = {}
            for line in header_lines:
                name, _colon, value = line.partition(":")
                found[name.strip().lower()] = value.strip()
            if status != 101:
                body = rest
                length = int(found.get("content-length", "0") or 0)
                while len(body) < min(length, 65536):
                    chunk = sock.recv(4096)
                    if not chunk:
                        break
                    body += chunk
                _raise_for_status(status, _json_or_text(body))
            if found.get("sec-websocket-accept") != ws_accept_key(key):
                raise ChannelError("the server's Sec-WebSocket-Accept does not match")
            ws = cls(sock, rest)
            ws.max_message = max_message
            return ws
        except BaseException:
            sock.close()
            raise

    max_message = limits.MAX_WS_MESSAGE_BYTES * 64

    def _read_exact(self, count: int) -> bytes:
        while len(self._buffer) < count:
            chunk = self.sock.recv(max(65536, count - len(self._buffer)))
            if not chunk:
                raise ChannelError("connection closed by the server")
            self._buffer += chunk
        data = bytes(self._buffer[:count])
        del self._buffer[:count]
        return data

    def _read_frame(self) -> tuple[bool, int, bytes]:
        first, second = self._read_exact(2)
        fin, opcode = bool(first & 0x80), first & 0x0F
        length = second & 0x7F
        if length == 126:
            (length,) = struct.unpack("!H", self._read_exact(2))
        elif length == 127:
            (length,) = struct.unpack("!Q", self._read_exact(8))
        if length > self.max_message:
            raise ChannelError(f"server frame of {length} bytes")
        mask = self._read_exact(4) if second & 0x80 else None
        payload = self._read_exact(length)
        if mask:
            payload = bytes(b ^ mask[i % 4] for i, b in enumerate(payload))
        return fin, opcode, payload

    def send(self, opcode: int, payload: bytes) -> None:
        with self._send_lock:
            self.sock.sendall(encode_frame(opcode, payload))

    def send_json(self, value) -> None:
        self.send(OP_TEXT, events.dumps(value).encode())

    def receive(self) -> str | None:
        """The next text message; pings are answered on the way. None when
        the server closed (``close_code`` then says why)."""
        parts: list[bytes] = []
        while True:
            fin, opcode, payload = self._read_frame()
            if opcode == OP_PING:
                self.send(OP_PONG, payload)
                continue
            if opcode == OP_PONG:
                continue
            if opcode == OP_CLOSE:
                self.close_code = struct.unpack("!H", payload[:2])[0] if len(payload) >= 2 else None
                self.close_reason = payload[2:].decode("utf-8", "replace")
                self._send_close(payload[:2])
                return None
            if opcode in (OP_TEXT, OP_BINARY, OP_CONT):
                parts.append(payload)
                if sum(map(len, parts)) > self.max_message:
                    raise ChannelError("server message too large")
                if fin:
                    return b"".join(parts).decode("utf-8")

    def _send_close(self, payload: bytes) -> None:
        if not self._close_sent:
            self._close_sent = True
            with contextlib.suppress(OSError):
                self.send(OP_CLOSE, payload)

    def close(self, code: int = events.CLOSE_NORMAL) -> None:
        self._send_close(struct.pack("!H", code))
        with contextlib.suppress(OSError):
            self.sock.shutdown(socket.SHUT_RDWR)
        self.sock.close()


# ------------------------------------------------------------- HTTP
@dataclass
class Response:
    status: int
    body: object

    @property
    def error_code(self) -> str | None:
        if isinstance(self.body, dict) and isinstance(self.body.get("error"), dict):
            return self.body["error"].get("code")
        return None


def _json_or_text(raw: bytes):
    try:
        return json.loads(raw or b"null")
    except ValueError:
        return raw.decode("utf-8", "replace")[:500]


def _raise_for_status(status: int, body) -> None:
    if status == 401:
        raise TokenRejected(f"401: {body}")
    if status >= 500 or status in (408, 429):
        raise ChannelError(f"{status}: {body}")
    raise Refused(status, body)


def http_request(
    base_url: str,
    method: str,
    path: str,
    *,
    body=None,
    headers: dict[str, str] | None = None,
    timeout: float,
) -> Response:
    """One request on its own connection, with a timeout; OSError and
    ``http.client`` errors propagate (the caller decides to retry)."""
    parts = urlsplit(base_url)
    conn_cls = (
        http.client.HTTPSConnection
        if parts.scheme in ("https", "wss")
        else http.client.HTTPConnection
    )
    conn = conn_cls(parts.hostname, parts.port, timeout=timeout)
    try:
        data = None if body is None else events.dumps(body).encode()
        hdrs = {"Accept": "application/json", **(headers or {})}
        if data is not None:
            hdrs["Content-Type"] = "application/json"
        conn.request(method, (parts.path.rstrip("/") + path), body=data, headers=hdrs)
        resp = conn.getresponse()
        return Response(resp.status, _json_or_text(resp.read()))
    finally:
        conn.close()


# ------------------------------------------------------------- tokens
class DeviceTokens:
    """A ``token_provider`` over the API's token pair: the access token as
    is, and on ``refresh=True`` a rotation through ``POST /auth/refresh``
    (``on_rotate`` gets the new pair, for the device to store it)."""

    def __init__(
        self,
        base_url: str,
        access_token: str,
        refresh_token: str,
        on_rotate: Callable[[dict], None] | None = None,
        timeout: float = 10.0,
    ):
        self.base_url, self.access_token, self.refresh_token = base_url, access_token, refresh_token
        self.on_rotate, self.timeout = on_rotate, timeout
        self._lock = threading.Lock()

    def __call__(self, refresh: bool = False) -> str:
        with self._lock:
            if refresh:
                reply = http_request(
                    self.base_url,
                    "POST",
                    "/pos_api/v1/auth/refresh",
                    body={"refresh_token": self.refresh_token},
                    timeout=self.timeout,
                )
                if reply.status != 200 or not isinstance(reply.body, dict):
                    raise Refused(reply.status, reply.body)
                self.access_token = reply.body["access_token"]
                self.refresh_token = reply.body["refresh_token"]
                if self.on_rotate:
                    self.on_rotate(reply.body)
            return self.access_token


# -------------------------------------------------------- offline queue
# Statuses after which a write is settled: the server applied it (2xx) or
# will never apply it (another 4xx). Everything else is retried later, in
# order: 5xx, no answer, 408 and 429, and a 409 "the same key is still in
# progress" (the first attempt is running on the server).
RETRYABLE_4XX = frozenset({401, 408, 425, 429})
RETRYABLE_CODES = frozenset({"idempotency_busy"})


def settles(response: Response) -> bool:
    """Whether ``response`` ends a queued write (2xx or a definitive 4xx)."""
    if 200 <= response.status < 300:
        return True
    if 400 <= response.status < 500:
        return response.status not in RETRYABLE_4XX and response.error_code not in RETRYABLE_CODES
    return False


class OfflineQueue:
    """Idempotent writes waiting to reach the server, in a JSON file.

    The file is replaced atomically (written beside it, fsynced, renamed) on
    every change, so a crash leaves the old queue or the new one, never a
    torn one. Entries keep the Idempotency-Key given at enqueue time."""

    def __init__(self, path: str | os.PathLike):
        self.path = os.fspath(path)
        self._lock = threading.RLock()
        self._entries: list[dict] = self._load()

    def _load(self) -> list[dict]:
        try:
            with open(self.path, encoding="utf-8") as handle:
                data = json.load(handle)
        except FileNotFoundError:
            return []
        if not isinstance(data, dict) or not isinstance(data.get("entries"), list):
            raise ValueError(f"{self.path} is not an offline queue file")
        return data["entries"]

    def _save(self) -> None:
        folder = os.path.dirname(os.path.abspath(self.path))
        fd, tmp = tempfile.mkstemp(prefix=".queue-", dir=folder)
        try:
            with os.fdopen(fd, "w", encoding="utf-8") as handle:
                json.dump({"version": 1, "entries": self._entries}, handle, ensure_ascii=False)
                handle.flush()
                os.fsync(handle.fileno())
            os.replace(tmp, self.path)
        except BaseException:
            with contextlib.suppress(OSError):
                os.unlink(tmp)
            raise

    def enqueue(self, method: str, path: str, body=None, key: str | None = None) -> dict:
        entry = {
            "key": key or str(uuid.uuid4()),
            "method": method.upper(),
            "path": path,
            "body": body,
            "queued_at": time.time(),
            "attempts": 0,
        }
        if len(entry["key"]) > limits.IDEMPOTENCY_KEY_MAX_LENGTH:
            raise ValueError("Idempotency-Key too long")
        with self._lock:
            self._entries.append(entry)
            self._save()
        return dict(entry)

    def entries(self) -> list[dict]:
        with self._lock:
            return [dict(entry) for entry in self._entries]

    def __len__(self) -> int:
        with self._lock:
            return len(self._entries)

    def replay(self, send: Callable[[dict], Response]) -> list[tuple[dict, Response]]:
        """Send the entries in order through ``send``; each settled one goes
        (:func:`settles`). The first that does not settle, or that raises
        (no connection: ``OSError``, :class:`ChannelError`), stops the
        replay so that later writes never overtake it. Returns the settled
        entries with their responses."""
        settled = []
        with self._lock:
            while self._entries:
                entry = self._entries[0]
                entry["attempts"] += 1
                try:
                    response = send(dict(entry))
                except (OSError, http.client.HTTPException, ChannelError):
                    self._save()
                    break
                if not settles(response):
                    self._save()
                    break
                self._entries.pop(0)
                self._save()
                settled.append((entry, response))
        return settled


# -------------------------------------------------------------- client
@dataclass
class Submitted:
    """What ``submit`` did: the write's key, and the server's answer when it
    was sent at once (None when it waits in the queue)."""

    key: str
    response: Response | None


class EventClient:
    """Follows ``rooms`` from ``after`` and calls ``on_event(envelope)`` once
    per event, in ``seq`` order, across reconnections.

    ``token_provider(refresh: bool) -> str`` gives the access token (a new one
    when ``refresh`` is true: after a 401 or a close 4001); ``on_resync(last_seq)``
    is called when the server says the device must fetch afresh, with the
    seq it continues from. ``transport`` is ``"websocket"`` (on the gevent
    port: ``base_url``) or ``"longpoll"``; writes (``submit``) go to
    ``write_url`` (the HTTP workers; ``base_url`` by default)."""

    def __init__(
        self,
        base_url: str,
        token_provider: Callable[..., str],
        rooms: Iterable[str],
        *,
        after: int | None = None,
        on_event: Callable[[dict], None] | None = None,
        on_resync: Callable[[int | None], None] | None = None,
        transport: str = WEBSOCKET,
        write_url: str | None = None,
        queue_path: str | os.PathLike | None = None,
        on_write: Callable[[dict, Response], None] | None = None,
        backoff: Backoff = DEFAULT_BACKOFF,
        timeout: float = 10.0,
        longpoll_timeout: int = 25,
        read_timeout: float = limits.WS_IDLE_TIMEOUT,
        rand: Callable[[], float] = random.random,
    ):
        if transport not in TRANSPORTS:
            raise ValueError(f"transport is one of {TRANSPORTS}, not {transport!r}")
        self.base_url = base_url.rstrip("/")
        self.write_url = (write_url or base_url).rstrip("/")
        self.token_provider = token_provider
        self.rooms = list(rooms)
        self.cursor = Cursor(after)
        self.on_event = on_event or (lambda event: None)
        self.on_resync = on_resync or (lambda last_seq: None)
        self.on_write = on_write or (lambda entry, response: None)
        self.transport = transport
        self.queue = OfflineQueue(queue_path) if queue_path else None
        self.backoff, self.rand = backoff, rand
        self.timeout = timeout
        self.longpoll_timeout = min(int(longpoll_timeout), limits.LONGPOLL_MAX_TIMEOUT)
        self.read_timeout = read_timeout
        self.attempt = 0  # failed connections in a row
        self.connected = threading.Event()
        self._stop = threading.Event()
        self._ws: WebSocket | None = None
        self._token: str | None = None
        self._resync_pending = False
        self._got_in = False

    # ------------------------------------------------------- events
    def deliver(self, event: dict) -> bool:
        """Hand one pushed or polled event to the application unless it is
        a duplicate (at or below the cursor)."""
        if not self.cursor.accept(event):
            return False
        self.on_event(event)
        return True

    def apply_batch(self, answer: dict) -> int:
        """One long-poll answer: ``resync`` first (the cursor moves to the
        server's ``last_seq``), then the new events; the cursor ends at
        ``last_seq`` (events of rooms the device does not follow also move
        the head). Returns how many events were delivered."""
        last_seq = answer.get("last_seq")
        if answer.get("resync"):
            self.cursor.reset(last_seq)
            self.on_resync(last_seq)
            return 0
        delivered = sum(self.deliver(event) for event in answer.get("events") or ())
        if isinstance(last_seq, int) and (self.cursor.last is None or last_seq > self.cursor.last):
            self.cursor.reset(last_seq)
        return delivered

    # ------------------------------------------------------- tokens
    def _auth_headers(self) -> dict[str, str]:
        if self._token is None:
            self._token = self.token_provider(refresh=False)
        return {"Authorization": f"Bearer {self._token}"}

    def _refresh_token(self) -> None:
        self._token = self.token_provider(refresh=True)

    # ------------------------------------------------------ transports
    def _ws_url(self) -> str:
        return self.base_url + WS_PATH

    def _ws_session(self) -> None:
        """One WebSocket connection, until it drops; raises why."""
        ws = WebSocket.connect(
            self._ws_url(), self._auth_headers(), self.timeout, limits.WS_SEND_BUFFER_BYTES
        )
        self._ws = ws
        try:
            ws.sock.settimeout(self.read_timeout)
            subscribe = {"type": "subscribe", "rooms": self.rooms}
            if self.cursor.last is not None and not self._resync_pending:
                subscribe["after"] = self.cursor.last
            ws.send_json(subscribe)
            self._connected()
            while not self._stop.is_set():
                text = ws.receive()
                if text is None:
                    self._closed_by_server(ws.close_code, ws.close_reason)
                    return
                self._ws_message(text)
        finally:
            self._ws = None
            ws.close()
            self.connected.clear()

    def _ws_message(self, text: str) -> None:
        try:
            message = json.loads(text)
        except ValueError:
            _logger.warning("ignoring a message that is not JSON")
            return
        if not isinstance(message, dict):
            return
        kind = message.get("type")
        if "seq" in message and kind in events.EVENT_TYPES:
            if self._resync_pending:  # a server that does not acknowledge
                self._resynced(None)
            self.deliver(message)
        elif kind == "subscribed":
            last_seq = message.get("last_seq")
            last_seq = last_seq if isinstance(last_seq, int) else None
            if self._resync_pending or message.get("resync"):
                self._resynced(last_seq)
            elif self.cursor.last is None:
                # Subscribed "from now": the head it starts at.
                self.cursor.reset(last_seq)

    def _resynced(self, last_seq: int | None) -> None:
        """The subscription after a resync is live: the application fetches
        afresh now, and events from ``last_seq`` on follow."""
        self._resync_pending = False
        self.cursor.reset(last_seq)
        self.on_resync(last_seq)

    def _closed_by_server(self, code: int | None, reason: str) -> None:
        if code == events.CLOSE_UNAUTHORIZED:
            raise TokenRejected(reason)
        if code == events.CLOSE_RESYNC:
            # Resubscribe from now; on_resync runs once that subscription is
            # acknowledged, so nothing committed after the fetch is missed.
            self._resync_pending = True
            self.cursor.reset(None)
            raise Resync(reason)
        if code in (events.CLOSE_FORBIDDEN, events.CLOSE_TOO_MANY, events.CLOSE_POLICY):
            raise Refused(code, reason)
        raise ChannelError(f"closed by the server: {code} {reason}")

    def _longpoll_session(self) -> None:
        """Long-polls one after another until one fails; raises why. The
        first poll of a connection does not wait: it checks the token and
        the rooms, and the offline queue is replayed at once."""
        wait = 0
        while not self._stop.is_set():
            params = {"rooms": ",".join(self.rooms), "timeout": wait}
            if self.cursor.last is not None:
                params["after"] = self.cursor.last
            reply = http_request(
                self.base_url,
                "GET",
                f"{EVENTS_PATH}?{urlencode(params)}",
                headers=self._auth_headers(),
                timeout=wait + self.timeout,
            )
            if reply.status != 200 or not isinstance(reply.body, dict):
                _raise_for_status(reply.status, reply.body)
            if not self.connected.is_set():
                self._connected()
            self.apply_batch(reply.body)
            wait = self.longpoll_timeout

    def _connected(self) -> None:
        self.attempt = 0
        self._got_in = True
        self.connected.set()
        if self.queue is not None:
            self.flush()

    # ------------------------------------------------------ run loop
    def run(self, max_seconds: float | None = None) -> None:
        """Follow the rooms until :meth:`stop` (or ``max_seconds``):
        reconnects with :class:`Backoff`, refreshing the token once per 401.
        A :class:`Refused` answer (403, 422, 4029) ends the loop by raising."""
        deadline = None if max_seconds is None else time.monotonic() + max_seconds
        session = self._ws_session if self.transport == WEBSOCKET else self._longpoll_session
        refreshed = False  # the token was refreshed since the last connection
        while not self._stop.is_set() and (deadline is None or time.monotonic() < deadline):
            self._got_in = False
            try:
                session()
                continue  # stopped, or closed normally: the loop decides
            except TokenRejected:
                refreshed = refreshed and not self._got_in
                self._refresh_token()
                if not refreshed:
                    refreshed = True
                    continue
                _logger.warning("a refreshed token is rejected too; backing off")
            except Resync:
                continue
            except (OSError, http.client.HTTPException, ChannelError, ValueError) as exc:
                _logger.info("events connection failed (%s); retrying", exc)
            if self._stop.is_set():
                break
            delay = self.backoff.delay(self.attempt, self.rand())
            self.attempt += 1
            if deadline is not None:
                delay = max(0.0, min(delay, deadline - time.monotonic()))
            self._stop.wait(delay)

    def start(self) -> threading.Thread:
        """:meth:`run` in a daemon thread."""
        thread = threading.Thread(target=self.run, name="pos-api-events", daemon=True)
        thread.start()
        return thread

    def stop(self) -> None:
        self._stop.set()
        ws = self._ws
        if ws is not None:
            with contextlib.suppress(OSError):
                ws.sock.shutdown(socket.SHUT_RDWR)

    # -------------------------------------------------------- writes
    def _send_write(self, entry: dict) -> Response:
        headers = {"Idempotency-Key": entry["key"], **self._auth_headers()}
        response = http_request(
            self.write_url,
            entry["method"],
            entry["path"],
            body=entry["body"],
            headers=headers,
            timeout=self.timeout,
        )
        if response.status == 401:
            self._refresh_token()
            headers.update(self._auth_headers())
            response = http_request(
                self.write_url,
                entry["method"],
                entry["path"],
                body=entry["body"],
                headers=headers,
                timeout=self.timeout,
            )
        return response

    def flush(self) -> list[tuple[dict, Response]]:
        """Replay the queue in order (on every (re)connection, and after
        each ``submit``); each settled write is reported to ``on_write``."""
        if self.queue is None:
            return []
        settled = self.queue.replay(self._send_write)
        for entry, response in settled:
            self.on_write(entry, response)
        return settled

    def submit(self, method: str, path: str, body=None) -> Submitted:
        """Queue an idempotent write (its key is fixed now), then try to
        send the queue. ``response`` is the server's answer when this write
        settled at once."""
        if self.queue is None:
            raise RuntimeError("submit needs a queue_path")
        entry = self.queue.enqueue(method, path, body)
        for settled, response in self.flush():
            if settled["key"] == entry["key"]:
                return Submitted(entry["key"], response)
        return Submitted(entry["key"], None)
