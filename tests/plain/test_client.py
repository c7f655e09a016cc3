"""The reference client: backoff timing, resume without gap or duplicate,
resync, token refresh, and the offline queue kept on disk and replayed in
order. The network parts run against real servers on 127.0.0.1 started
here (``http.server`` for the API, a small RFC 6455 server over a socket)."""

import base64
import hashlib
import json
import socket
import struct
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlsplit

import pytest
from conftest import free_port

from pos_core import client as client_mod
from pos_core import events
from pos_core.client import (
    Backoff,
    Cursor,
    DeviceTokens,
    EventClient,
    OfflineQueue,
    Response,
    settles,
)


def _event(seq, room="config:1"):
    return events.envelope(seq, events.ORDER_CREATED, room, "2026-01-01T00:00:00Z", {"id": seq})


# ------------------------------------------------------------ backoff
def test_backoff_doubles_up_to_the_cap():
    backoff = Backoff(base=0.5, cap=8.0, jitter=0.0)
    assert [backoff.delay(n, 0.7) for n in range(7)] == [0.5, 1.0, 2.0, 4.0, 8.0, 8.0, 8.0]
    assert backoff.delay(10_000, 0.3) == 8.0


def test_backoff_jitter_takes_off_at_most_its_share():
    backoff = Backoff(base=1.0, cap=30.0, jitter=0.5)
    assert backoff.delay(3, 0.0) == 8.0
    assert backoff.delay(3, 0.5) == 6.0
    assert 4.0 < backoff.delay(3, 0.999999) < 4.01
    delays = {backoff.delay(2, r / 10) for r in range(10)}
    assert len(delays) == 10  # different devices wait different times
    assert all(2.0 < d <= 4.0 for d in delays)


# ------------------------------------------------------------- cursor
def test_cursor_drops_replays_and_repeats():
    cursor = Cursor()
    assert [cursor.accept(_event(s)) for s in (1, 2, 2, 3, 1)] == [True, True, False, True, False]
    assert cursor.last == 3
    assert not cursor.accept({"seq": "4"})
    assert not cursor.accept({"seq": True})
    assert cursor.last == 3


def test_resume_after_reconnects_delivers_each_event_once_in_order():
    seen = []
    c = EventClient(
        "http://127.0.0.1:9",
        lambda refresh=False: "t",
        ["config:1"],
        after=0,
        on_event=lambda e: seen.append(e["seq"]),
        transport="longpoll",
    )
    # A first connection, then a reconnection whose catch-up overlaps it.
    assert c.apply_batch({"events": [_event(1), _event(2), _event(3)], "last_seq": 3}) == 3
    assert c.apply_batch({"events": [_event(2), _event(3), _event(4)], "last_seq": 4}) == 1
    assert c.apply_batch({"events": [], "last_seq": 6}) == 0  # events of other rooms
    assert c.cursor.last == 6
    assert c.apply_batch({"events": [_event(5), _event(7)], "last_seq": 7}) == 1
    assert seen == [1, 2, 3, 4, 7]


def test_resync_answer_moves_the_cursor_to_the_head_and_calls_back():
    resyncs, seen = [], []
    c = EventClient(
        "http://127.0.0.1:9",
        lambda refresh=False: "t",
        ["config:1"],
        after=2,
        on_event=lambda e: seen.append(e["seq"]),
        on_resync=resyncs.append,
        transport="longpoll",
    )
    assert c.apply_batch({"events": [], "last_seq": 90, "resync": True}) == 0
    assert resyncs == [90]
    assert c.cursor.last == 90
    c.apply_batch({"events": [_event(90), _event(91)], "last_seq": 91})
    assert seen == [91]


# ------------------------------------------------------- a real API
class FakeApi:
    """A real HTTP server on 127.0.0.1 whose answers the test scripts:
    writes answer from ``statuses`` (one per request, then 201), events come
    from ``log`` with the long-poll contract."""

    def __init__(self):
        self.requests = []
        self.statuses = []
        self.log = []  # events of config:1
        self.floor = 0
        self.valid_tokens = {"good"}
        api = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def _reply(self, status, body):
                data = json.dumps(body).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def _authorized(self):
                token = self.headers.get("Authorization", "").removeprefix("Bearer ")
                if token not in api.valid_tokens:
                    self._reply(401, {"error": {"code": "token_invalid"}})
                    return False
                return True

            def do_GET(self):
                parts = urlsplit(self.path)
                api.requests.append(("GET", self.path, None, None))
                if not self._authorized():
                    return
                query = parse_qs(parts.query)
                after = int(query["after"][0]) if "after" in query else None
                last = api.log[-1]["seq"] if api.log else 0
                if after is not None and (after < api.floor or after > last):
                    self._reply(200, {"events": [], "last_seq": last, "resync": True})
                    return
                newer = [e for e in api.log if after is None or e["seq"] > after]
                self._reply(200, {"events": newer if after is not None else [], "last_seq": last})

            def do_POST(self):
                length = int(self.headers.get("Content-Length") or 0)
                body = json.loads(self.rfile.read(length) or b"null")
                key = self.headers.get("Idempotency-Key")
                api.requests.append(("POST", self.path, key, body))
                if self.path == "/pos_api/v1/auth/refresh":
                    if body.get("refresh_token") != "refresh-1":
                        self._reply(401, {"error": {"code": "refresh_reused"}})
                        return
                    api.valid_tokens.add("access-2")
                    pair = {"access_token": "access-2", "refresh_token": "refresh-2"}
                    self._reply(200, dict(pair, token_type="Bearer"))
                    return
                if not self._authorized():
                    return
                status = api.statuses.pop(0) if api.statuses else 201
                if status == 0:  # drop the connection without an answer
                    self.close_connection = True
                    self.connection.shutdown(socket.SHUT_RDWR)
                    return
                error = {"error": {"code": "idempotency_busy" if status == 409 else "x"}}
                self._reply(status, {"ok": True, "key": key} if status < 300 else error)

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, args=(0.05,), daemon=True)
        self.thread.start()

    def posts(self):
        return [r for r in self.requests if r[0] == "POST"]

    def close(self):
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def api():
    server = FakeApi()
    yield server
    server.close()


# ------------------------------------------------------ offline queue
def test_queue_survives_a_restart_with_its_keys(tmp_path):
    path = tmp_path / "queue.json"
    queue = OfflineQueue(path)
    first = queue.enqueue("post", "/pos_api/v1/orders", {"uuid": "a"})
    second = queue.enqueue("POST", "/pos_api/v1/orders/1/payments", {"amount": "3.50"})
    assert first["key"] != second["key"]
    reopened = OfflineQueue(path)
    assert [(e["key"], e["method"], e["path"], e["body"]) for e in reopened.entries()] == [
        (first["key"], "POST", "/pos_api/v1/orders", {"uuid": "a"}),
        (second["key"], "POST", "/pos_api/v1/orders/1/payments", {"amount": "3.50"}),
    ]
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".queue-")]


def test_queue_file_that_is_not_a_queue_is_refused(tmp_path):
    path = tmp_path / "queue.json"
    path.write_text("[1, 2]")
    with pytest.raises(ValueError):
        OfflineQueue(path)


def test_which_answers_settle_a_write():
    assert settles(Response(201, {}))
    assert settles(Response(200, {}))
    assert settles(Response(422, {"error": {"code": "invalid_input"}}))
    assert settles(Response(404, {"error": {"code": "not_found"}}))
    assert settles(Response(409, {"error": {"code": "idempotency_mismatch"}}))
    assert not settles(Response(409, {"error": {"code": "idempotency_busy"}}))
    assert not settles(Response(429, {}))
    assert not settles(Response(401, {}))
    assert not settles(Response(500, {}))
    assert not settles(Response(503, "busy"))


def test_replay_is_in_order_keeps_keys_and_stops_at_the_first_failure(tmp_path, api):
    path = tmp_path / "queue.json"
    settled = []
    device = EventClient(
        api.url,
        lambda refresh=False: "good",
        ["config:1"],
        queue_path=path,
        on_write=lambda e, r: settled.append((e["key"], r.status)),
    )
    # Server down for writes: 503 for the first, so nothing after it is sent.
    api.statuses = [503]
    a = device.submit("POST", "/pos_api/v1/orders", {"n": 1})
    assert a.response is None
    b = device.queue.enqueue("POST", "/pos_api/v1/orders", {"n": 2})
    c = device.queue.enqueue("POST", "/pos_api/v1/orders", {"n": 3})
    d = device.queue.enqueue("POST", "/pos_api/v1/orders", {"n": 4})
    assert [r[3]["n"] for r in api.posts()] == [1]
    # The process restarts: a new client reads the same file.
    restarted = EventClient(
        api.url,
        lambda refresh=False: "good",
        ["config:1"],
        queue_path=path,
        on_write=lambda e, r: settled.append((e["key"], r.status)),
    )
    assert len(restarted.queue) == 4
    # 1 is applied, 2 is refused for good (dropped), 3's answer is lost on the way.
    api.statuses = [201, 422, 0]
    restarted.flush()
    assert settled == [(a.key, 201), (b["key"], 422)]
    assert [e["key"] for e in restarted.queue.entries()] == [c["key"], d["key"]]
    # Then the same key is still in progress on the server: kept again.
    api.statuses = [409]
    restarted.flush()
    assert len(restarted.queue) == 2
    api.statuses = []
    restarted.flush()
    assert not len(restarted.queue)
    assert not len(OfflineQueue(path))
    posted = [(r[2], r[3]["n"]) for r in api.posts()]
    assert posted == [
        (a.key, 1),
        (a.key, 1),
        (b["key"], 2),
        (c["key"], 3),
        (c["key"], 3),
        (c["key"], 3),
        (d["key"], 4),
    ]


def test_replay_with_the_server_unreachable_keeps_everything(tmp_path):
    port = free_port()
    device = EventClient(
        f"http://127.0.0.1:{port}",
        lambda refresh=False: "good",
        ["config:1"],
        queue_path=tmp_path / "q.json",
        timeout=2,
    )
    submitted = device.submit("POST", "/pos_api/v1/orders", {"n": 1})
    assert submitted.response is None
    assert [e["key"] for e in OfflineQueue(tmp_path / "q.json").entries()] == [submitted.key]


def test_write_refreshes_the_token_once_on_401(tmp_path, api):
    calls = []

    def tokens(refresh=False):
        calls.append(refresh)
        return "good" if refresh else "expired"

    device = EventClient(api.url, tokens, ["config:1"], queue_path=tmp_path / "q.json")
    submitted = device.submit("POST", "/pos_api/v1/orders", {"n": 1})
    assert submitted.response.status == 201
    assert calls == [False, True]
    assert [r[2] for r in api.posts()] == [submitted.key, submitted.key]


def test_device_tokens_rotate_through_the_refresh_endpoint(tmp_path, api):
    rotated = []
    provider = DeviceTokens(api.url, "expired", "refresh-1", on_rotate=rotated.append)
    device = EventClient(api.url, provider, ["config:1"], queue_path=tmp_path / "q.json")
    submitted = device.submit("POST", "/pos_api/v1/orders", {"n": 1})
    assert submitted.response.status == 201
    assert [r["refresh_token"] for r in rotated] == ["refresh-2"]
    assert (provider.access_token, provider.refresh_token) == ("access-2", "refresh-2")
    # The old refresh token is spent: a second rotation with it is refused.
    provider.refresh_token = "refresh-1-reused"
    with pytest.raises(client_mod.Refused):
        provider(refresh=True)


# ----------------------------------------------------------- long-poll
def test_longpoll_run_loop_refreshes_the_token_resumes_and_dedupes(api):
    api.log = [_event(s) for s in range(1, 6)]
    seen, tokens = [], []

    def provider(refresh=False):
        tokens.append(refresh)
        return "good" if refresh else "stale"

    def on_event(event):
        seen.append(event["seq"])
        if event["seq"] == 5:
            device.stop()

    device = EventClient(
        api.url,
        provider,
        ["config:1"],
        after=2,
        on_event=on_event,
        transport="longpoll",
        longpoll_timeout=1,
        backoff=Backoff(base=0.01, cap=0.05),
    )
    device.run(max_seconds=20)
    assert seen == [3, 4, 5]
    assert tokens == [False, True]
    gets = [r[1] for r in api.requests if r[0] == "GET"]
    assert all("after=2" in path and "rooms=config%3A1" in path for path in gets)
    # The first poll of a connection answers at once; the next ones wait.
    assert "timeout=0" in gets[0]
    assert all("timeout=1" in path for path in gets[2:])


def test_longpoll_past_retention_resyncs(api):
    api.log = [_event(s) for s in range(40, 43)]
    api.floor = 39
    resyncs = []

    def on_resync(last_seq):
        resyncs.append(last_seq)
        device.stop()

    device = EventClient(
        api.url,
        lambda refresh=False: "good",
        ["config:1"],
        after=5,
        on_resync=on_resync,
        transport="longpoll",
        longpoll_timeout=1,
    )
    device.run(max_seconds=20)
    assert resyncs == [42]
    assert device.cursor.last == 42


# ----------------------------------------------------------- WebSocket
class FakeChannel:
    """A real RFC 6455 server on 127.0.0.1: it checks the handshake and the
    bearer token, reads the subscribe message, pushes the events after its
    ``after`` and then does what ``script`` says for that connection
    (close with a code, or stay open)."""

    def __init__(self, log, scripts):
        self.log, self.scripts = log, list(scripts)
        self.subscriptions, self.headers, self.pongs = [], [], []
        self.floor = 0  # a cursor below it is past retention
        self.sock = socket.create_server(("127.0.0.1", 0))
        self.sock.settimeout(20)
        self.url = f"http://127.0.0.1:{self.sock.getsockname()[1]}"
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _serve(self):
        while self.scripts:
            try:
                conn, _addr = self.sock.accept()
            except OSError:
                return
            with conn:
                conn.settimeout(10)
                self._session(conn, self.scripts.pop(0))

    @staticmethod
    def _frame(opcode, payload):
        length = len(payload)
        if length < 126:
            return bytes([0x80 | opcode, length]) + payload
        return bytes([0x80 | opcode, 126]) + struct.pack("!H", length) + payload

    def _read_frame(self, conn):
        head = conn.recv(2, socket.MSG_WAITALL)
        length = head[1] & 0x7F
        assert head[1] & 0x80, "client frames are masked"
        if length == 126:
            (length,) = struct.unpack("!H", conn.recv(2, socket.MSG_WAITALL))
        mask = conn.recv(4, socket.MSG_WAITALL)
        data = conn.recv(length, socket.MSG_WAITALL) if length else b""
        return head[0] & 0x0F, bytes(b ^ mask[i % 4] for i, b in enumerate(data))

    def _session(self, conn, script):
        raw = b""
        while b"\r\n\r\n" not in raw:
            raw += conn.recv(4096)
        lines = raw.decode().split("\r\n")
        headers = {k.lower(): v.strip() for k, _, v in (line.partition(":") for line in lines[1:])}
        self.headers.append(headers)
        if headers.get("authorization") != "Bearer good":
            body = b'{"error": {"code": "token_invalid"}}'
            conn.sendall(
                b"HTTP/1.1 401 Unauthorized\r\nContent-Length: %d\r\n\r\n%s" % (len(body), body)
            )
            return
        accept = base64.b64encode(
            hashlib.sha1((headers["sec-websocket-key"] + client_mod._WS_GUID).encode()).digest()
        )
        conn.sendall(
            b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n"
            b"Connection: Upgrade\r\nSec-WebSocket-Accept: " + accept + b"\r\n\r\n"
        )
        opcode, data = self._read_frame(conn)
        subscribe = json.loads(data)
        self.subscriptions.append(subscribe)
        after = subscribe.get("after")
        conn.sendall(self._frame(0x9, b"hi"))
        opcode, data = self._read_frame(conn)
        self.pongs.append((opcode, data))
        head = self.log[-1]["seq"]
        resync = after is not None and after < self.floor
        ack = {"type": "subscribed", "rooms": subscribe["rooms"], "last_seq": head}
        conn.sendall(self._frame(0x1, json.dumps(dict(ack, resync=resync)).encode()))
        if resync:
            after = None
        # A replay that overlaps what the client saw, as a server may send;
        # nothing for a subscription "from now".
        start = head if after is None else max(after - 1, 0)
        for event in self.log:
            if event["seq"] > start:
                conn.sendall(self._frame(0x1, json.dumps(event).encode()))
        kind, value = script
        if kind == "close":
            conn.sendall(self._frame(0x8, struct.pack("!H", value) + b"bye"))
        elif kind == "wait":
            value.wait(10)

    def close(self):
        self.sock.close()


def test_websocket_resumes_after_going_away_refreshes_and_resyncs():
    log = [_event(s) for s in range(1, 5)]
    done = threading.Event()
    channel = FakeChannel(
        log,
        [
            ("close", events.CLOSE_GOING_AWAY),  # a server restart
            ("close", events.CLOSE_UNAUTHORIZED),  # the access token expired
            ("close", 0),  # refused at the handshake: the refresh gave a bad token
            ("close", events.CLOSE_RESYNC),  # too slow: fetch afresh
            ("wait", done),
        ],
    )
    seen, resyncs, provided = [], [], []
    tokens = iter(["good", "stale", "good"])

    def provider(refresh=False):
        provided.append(refresh)
        return next(tokens)

    def on_event(event):
        seen.append(event["seq"])

    def on_resync(last_seq):
        resyncs.append(last_seq)
        device.stop()
        done.set()

    device = EventClient(
        channel.url,
        provider,
        ["config:1", "table:2"],
        after=1,
        on_event=on_event,
        on_resync=on_resync,
        backoff=Backoff(base=0.01, cap=0.05),
    )
    runner = threading.Thread(target=device.run, kwargs={"max_seconds": 30}, daemon=True)
    runner.start()
    runner.join(30)
    channel.thread.join(15)
    channel.close()
    assert not runner.is_alive()
    assert channel.subscriptions[0] == {
        "type": "subscribe",
        "rooms": ["config:1", "table:2"],
        "after": 1,
    }
    # Resumed from the last seq seen after going away and after the new
    # token; from now (no cursor) after the resync close.
    assert [s.get("after") for s in channel.subscriptions] == [1, 4, 4, None]
    assert all(pong == (0xA, b"hi") for pong in channel.pongs)
    assert [h["authorization"] for h in channel.headers] == [
        "Bearer good",
        "Bearer good",
        "Bearer stale",
        "Bearer good",
        "Bearer good",
    ]
    assert provided == [False, True, True]
    # 2..4 (1 was seen before), the replayed 4s dropped; after the resync
    # close, the new subscription's head goes to on_resync.
    assert seen == [2, 3, 4]
    assert resyncs == [4]
    assert device.cursor.last == 4


def test_websocket_subscription_past_retention_resyncs_from_the_head():
    done = threading.Event()
    channel = FakeChannel([_event(s) for s in range(10, 13)], [("wait", done)])
    channel.floor = 9
    resyncs, seen = [], []

    def on_resync(last_seq):
        resyncs.append(last_seq)
        device.stop()
        done.set()

    device = EventClient(
        channel.url,
        lambda refresh=False: "good",
        ["config:1"],
        after=3,
        on_event=lambda event: seen.append(event["seq"]),
        on_resync=on_resync,
    )
    device.run(max_seconds=20)
    channel.thread.join(15)
    channel.close()
    assert channel.subscriptions[0]["after"] == 3
    assert resyncs == [12]
    assert device.cursor.last == 12
    assert seen == []
