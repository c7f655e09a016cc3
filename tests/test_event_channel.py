"""The device channel against a running Odoo with workers, over TCP.

The test starts a prefork server of its own (two HTTP workers and the
gevent process) on the test's database, connects real WebSocket clients to
the gevent port and long-polls both ports. Events are emitted by committing
writes through the sync log's API (``pos.sync.log._emit``), which numbers
them after commit and wakes the server, as every writer does. The data it
commits (devices, events) is removed afterwards.
"""

import contextlib
import json
import logging
import os
import re
import shutil
import socket
import tempfile
import threading
import time
import unittest.mock
import urllib.error
import urllib.request
import uuid
from urllib.parse import urlencode

from odoo import SUPERUSER_ID
from odoo.tests import TransactionCase, tagged

from ..pos_core import client as reference
from ..pos_core import events, limits
from ..pos_core import websocket as ws
from .common import DEMO_CONFIG_XMLID, PosApiFactories
from .server import OwnServerMixin, SyncLogMark
from .threads import thread_env

_logger = logging.getLogger(__name__)
CHANNEL_LOGGER = "odoo.addons.point_of_sale_api.models.pos_event_channel"
READ_LINE = re.compile(rb"broadcast read (\d+) of (\S+): (\d+) events")
TIMEOUT = 15


class DeviceSocket:
    """A minimal WebSocket client (RFC 6455, masked frames) on pos_core's codec."""

    def __init__(self, port, token=None, path="/pos_api/v1/ws", rcvbuf=None):
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        if rcvbuf:
            self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
        self.sock.settimeout(TIMEOUT)
        self.sock.connect(("127.0.0.1", port))
        key = ws.client_key()
        headers = [
            f"GET {path} HTTP/1.1",
            f"Host: 127.0.0.1:{port}",
            "Upgrade: websocket",
            "Connection: Upgrade",
            f"Sec-WebSocket-Key: {key}",
            "Sec-WebSocket-Version: 13",
        ]
        if token:
            headers.append(f"Authorization: Bearer {token}")
        self.sock.sendall(("\r\n".join(headers) + "\r\n\r\n").encode())
        head = b""
        while b"\r\n\r\n" not in head:
            chunk = self.sock.recv(1)
            if not chunk:
                break
            head += chunk
        self.status = int(head.split(b" ", 2)[1]) if head else 0
        self.head = head
        self.body = b""
        if self.status == 101:
            assert ws.accept_key(key).encode() in head, head
            self.reader = ws.FrameReader(self.sock, max_message=1 << 22, require_mask=False)
        else:
            match = re.search(rb"content-length: (\d+)", head, re.IGNORECASE)
            size = int(match.group(1)) if match else 0
            while len(self.body) < size:
                self.body += self.sock.recv(size - len(self.body))

    def send_json(self, message):
        self.sock.sendall(ws.text_frame(json.dumps(message), mask=True))

    def send_raw(self, data):
        self.sock.sendall(data)

    def recv(self, timeout=TIMEOUT):
        """The next message: a dict (text), ("close", code) or ("eof", None);
        pings are answered."""
        self.sock.settimeout(timeout)
        while True:
            try:
                message = self.reader.read_message()
            except (ws.ConnectionClosed, ConnectionResetError):
                return ("eof", None)
            if message.opcode == ws.OP_PING:
                self.sock.sendall(ws.encode_frame(ws.OP_PONG, message.data, mask=True))
            elif message.opcode == ws.OP_CLOSE:
                return ("close", ws.parse_close(message.data)[0])
            elif message.opcode == ws.OP_TEXT:
                return json.loads(message.data)

    def events_until(self, seq, timeout=TIMEOUT, received=None):
        """Envelopes received until one with ``seq`` (included); appended to
        ``received`` as they arrive when it is given."""
        received = [] if received is None else received
        deadline = time.monotonic() + timeout
        while not received or received[-1]["seq"] < seq:
            message = self.recv(max(deadline - time.monotonic(), 0.01))
            if isinstance(message, tuple):
                raise AssertionError(f"connection ended ({message}) after {received[-3:]}")
            if "seq" in message:
                received.append(message)
        return received

    def close(self):
        with contextlib.suppress(OSError):
            self.sock.sendall(ws.close_frame(events.CLOSE_NORMAL, mask=True))
        self.sock.close()


def _envelopes_until(client, target, timeout):
    """Envelopes until one reaches ``target[0]`` (set later by the test) or
    the connection ends; pings answered."""
    received, deadline = [], time.monotonic() + timeout
    while time.monotonic() < deadline:
        if target and received and received[-1]["seq"] >= target[0]:
            break
        try:
            message = client.recv(0.5)
        except TimeoutError:
            continue
        if isinstance(message, tuple):
            break
        if "seq" in message:
            received.append(message)
    return received


def _control(client, opcode, timeout):
    """The next frame of ``opcode``, the others skipped (pings unanswered)."""
    deadline = time.monotonic() + timeout
    while True:
        client.sock.settimeout(max(deadline - time.monotonic(), 0.01))
        message = client.reader.read_message()
        if message.opcode == opcode:
            return message


@tagged("post_install", "-at_install")
class TestEventChannel(OwnServerMixin, PosApiFactories, TransactionCase):
    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.config_id = cls.env.ref(DEMO_CONFIG_XMLID).id

    def setUp(self):
        super().setUp()
        self.device_ids = []
        self.order_uuids = []
        with self._cursor() as env:
            config = env["pos.config"].browse(self.config_id)
            self.table_ids = config.floor_ids.table_ids.ids
            self.product_ids = (
                env["product.product"]
                .search([*config._get_available_product_domain(), ("type", "!=", "combo")], limit=1)
                .ids
            )
            # Orders need an open session: opened here when none is, and
            # removed afterwards.
            self.opened_session_id = None
            if not config.current_session_id:
                self.opened_session_id = self._open_session(config).id
            self.log_mark = SyncLogMark(env.cr, self.config_id)
        self.assertTrue(self.table_ids, "the demo restaurant has no tables")
        self.addCleanup(self._cleanup)
        self.waiter_id, self.token = self._device("waiter")

    def _cursor(self):
        registry = self.registry

        class _Env:
            def __enter__(inner):
                inner.cr = registry.cursor()
                return thread_env(registry, inner.cr, SUPERUSER_ID)

            def __exit__(inner, exc_type, *_args):
                if exc_type is None:
                    inner.cr.commit()
                inner.cr.close()

        return _Env()

    def _device(self, role):
        with self._cursor() as env:
            config = env["pos.config"].browse(self.config_id)
            device = self._create_device(role, config, name=f"Test channel {role}")
            self.device_ids.append(device.id)
            return device.id, device._issue_tokens().access_token

    def _cleanup(self):
        with self._cursor() as env:
            orders = env["pos.order"].search([("uuid", "in", self.order_uuids)])
            orders.filtered(lambda order: order.state == "draft").action_pos_order_cancel()
            orders.unlink()
            if self.opened_session_id:
                env["pos.session"].browse(self.opened_session_id).unlink()
        with self._cursor() as env:
            self.log_mark.restore(env.cr)
            env["pos.api.device"].browse(self.device_ids).unlink()

    # ------------------------------------------------------------ helpers
    def _emit(self, count, rooms=(), size=0):
        """Commit ``count`` events; returns the seq of the last one."""
        with self._cursor() as env:
            log = env["pos.sync.log"]
            config = env["pos.config"].browse(self.config_id)
            for index in range(count):
                log._emit(
                    config, events.ORDER_UPDATED, list(rooms), {"n": index, "pad": "x" * size}
                )
        return self._head()

    def _head(self):
        with self._cursor() as env:
            return env["pos.sync.log"]._heads([self.config_id])[self.config_id][0]

    def _reads(self):
        """The broadcast reads the server logged so far."""
        self.server_log.seek(0)
        return READ_LINE.findall(self.server_log.read())

    def _get(self, base, path, token=None, **query):
        url = f"{base}{path}?{urlencode(query)}"
        request = urllib.request.Request(url)
        if token:
            request.add_header("Authorization", f"Bearer {token}")
        try:
            with self.loopback.open(request, timeout=limits.LONGPOLL_MAX_TIMEOUT + 10) as response:
                return response.status, json.loads(response.read())
        except urllib.error.HTTPError as error:
            with error:
                return error.code, json.loads(error.read())

    def _post_order(self, base):
        order_uuid = str(uuid.uuid4())
        self.order_uuids.append(order_uuid)
        body = {
            "uuid": order_uuid,
            "lines": [{"product_id": self.product_ids[0], "qty": "1"}],
            "state": "draft",
        }
        request = urllib.request.Request(
            f"{base}/orders",
            data=json.dumps(body).encode(),
            method="POST",
            headers={"Content-Type": "application/json", "Authorization": f"Bearer {self.token}"},
        )
        with self.loopback.open(request, timeout=60) as response:
            self.assertEqual(response.status, 201)
            return json.loads(response.read())["order"]

    def _start(self, **kwargs):
        base = self._start_server(
            workers=2, extra_args=("--log-handler", f"{CHANNEL_LOGGER}:DEBUG"), **kwargs
        )
        self.addCleanup(self._report_server)
        return base

    def _report_server(self):
        """The server's log tail, when the test failed (to see why)."""
        outcome = getattr(self, "_outcome", None)
        result = getattr(outcome, "result", None)
        if result is not None and not getattr(result, "wasSuccessful", lambda: True)():
            _logger.error("server log:\n%s", self._server_output())

    def _subscribed(self, client, rooms=None, after=None):
        client.send_json({"type": "subscribe", "rooms": rooms or [], "after": after})
        message = client.recv()
        self.assertEqual(message.get("type"), ws.SUBSCRIBED, message)
        return message

    def _connect(self, token=None, **kwargs):
        """A connected client; ``token=False``: no Authorization header."""
        header = None if token is False else token or self.token
        client = DeviceSocket(self.gevent_port, token=header, **kwargs)
        self.addCleanup(client.close)
        self.assertEqual(client.status, 101, client.head + client.body)
        if header:
            message = client.recv()
            self.assertEqual(message.get("type"), ws.AUTHENTICATED, message)
        return client

    # -------------------------------------------------------------- tests
    def test_delivery_resume_long_poll_and_one_read_per_broadcast(self):
        base = self._start()
        start = self._head()
        table = f"table:{self.table_ids[0]}"
        config_room = f"config:{self.config_id}"
        whole = [self._connect() for _ in range(3)]
        for client in whole:
            self._subscribed(client, [config_room], start)
        by_message = DeviceSocket(self.gevent_port, token=None)
        self.addCleanup(by_message.close)
        self.assertEqual(by_message.status, 101)
        by_message.send_json({"type": "auth", "token": self.token})
        self.assertEqual(by_message.recv()["type"], ws.AUTHENTICATED)
        self._subscribed(by_message, [table], start)

        reads_before = len(self._reads())
        last = self._emit(5, rooms=[table])
        self.assertEqual(last, start + 5)
        for client in whole:
            received = client.events_until(last)
            self.assertEqual([e["seq"] for e in received], list(range(start + 1, last + 1)))
            self.assertEqual({e["room"] for e in received}, {config_room})
        received = by_message.events_until(last)
        self.assertEqual([e["seq"] for e in received], list(range(start + 1, last + 1)))
        self.assertEqual({e["room"] for e in received}, {table})
        self.assertEqual(set(received[0]), {"seq", "type", "room", "at", "payload"})
        self.assertTrue(received[0]["at"].endswith("Z"))
        # One commit, one wake-up: one read for all four connections.
        time.sleep(0.5)
        reads = self._reads()[reads_before:]
        self.assertEqual(len(reads), 1, reads)

        # A device disconnects, events go on, it resumes: no gap, no duplicate.
        whole[0].close()
        last_seen = last
        last = self._emit(3)
        resumed = self._connect()
        self._subscribed(resumed, [config_room], last_seen)
        received = resumed.events_until(last)
        self.assertEqual([e["seq"] for e in received], list(range(last_seen + 1, last + 1)))
        # The others got them live, once each.
        for client in whole[1:]:
            received = client.events_until(last)
            self.assertEqual([e["seq"] for e in received], list(range(last_seen + 1, last + 1)))

        # Long-poll on the gevent port: answers at once with newer events...
        status, body = self._get(self.gevent_base, "/events", self.token, after=start, timeout=30)
        self.assertEqual(status, 200, body)
        self.assertEqual([e["seq"] for e in body["events"]], list(range(start + 1, last + 1)))
        self.assertEqual((body["last_seq"], body["resync"]), (last, False))
        # ... else waits for the next one.
        answer = {}
        poller = threading.Thread(
            target=lambda: answer.update(
                zip(
                    ("status", "body"),
                    self._get(self.gevent_base, "/events", self.token, after=last, timeout=30),
                )
            )
        )
        poller.start()
        time.sleep(1)
        self.assertTrue(poller.is_alive(), "the long-poll answered without an event")
        emitted_at = time.monotonic()
        newest = self._emit(1, rooms=[table])
        poller.join(TIMEOUT)
        self.assertLess(time.monotonic() - emitted_at, 5)
        self.assertEqual(answer["status"], 200, answer)
        self.assertEqual([e["seq"] for e in answer["body"]["events"]], [newest])
        # A real write through the API (an HTTP worker) reaches the sockets.
        order = self._post_order(base)
        head = self._head()
        created = [e for e in whole[1].events_until(head) if e["type"] == events.ORDER_CREATED]
        self.assertEqual([e["payload"].get("id") for e in created], [order["id"]], created)
        newest = head
        # On the HTTP workers' port it never waits.
        started = time.monotonic()
        status, body = self._get(base, "/events", self.token, after=newest, timeout=30)
        self.assertEqual((status, body["events"], body["last_seq"]), (200, [], newest))
        self.assertLess(time.monotonic() - started, 5)
        # A cursor ahead of the log (another database, an old backup): resync.
        status, body = self._get(base, "/events", self.token, after=newest + 1000, timeout=0)
        self.assertEqual((status, body["resync"], body["last_seq"]), (200, True, newest))

    def test_a_client_that_never_reads_is_cut_off_and_delays_nobody(self):
        self._start()
        start = self._head()
        fast = self._connect()
        self._subscribed(fast, None, start)
        slow = self._connect(rcvbuf=4096)
        self._subscribed(slow, None, start)
        # About ten times the send buffer: more than the kernel buffers hold.
        size, batches, per_batch = 5000, 20, 100
        count = batches * per_batch
        self.assertGreater(count * size, 8 * limits.WS_SEND_BUFFER_BYTES)
        received = []
        reader = threading.Thread(
            target=lambda: fast.events_until(start + count, 90, received=received)
        )
        reader.start()
        for batch in range(batches):
            last = self._emit(per_batch, size=size)
            # The fast client gets each batch while the slow one reads nothing
            # (waiting here keeps this test's own reader, a thread of the test
            # process, from falling behind and being cut off as slow itself).
            deadline = time.monotonic() + TIMEOUT
            while len(received) < (batch + 1) * per_batch and time.monotonic() < deadline:
                time.sleep(0.01)
            self.assertEqual(len(received), (batch + 1) * per_batch, f"batch {batch}")
        reader.join(90)
        self.assertEqual([e["seq"] for e in received], list(range(start + 1, last + 1)))
        # The slow one was cut off: its stream ends (told to resync, or dropped
        # once its sends timed out) before the last event.
        seqs, end = [], None
        deadline = time.monotonic() + limits.WS_SEND_TIMEOUT + TIMEOUT
        while end is None and time.monotonic() < deadline:
            message = slow.recv(TIMEOUT)
            if isinstance(message, tuple):
                end = message
            elif "seq" in message:
                seqs.append(message["seq"])
        self.assertIn(end, [("close", events.CLOSE_RESYNC), ("eof", None)])
        self.assertLess(len(seqs), count)
        self.assertEqual(seqs, list(range(start + 1, start + 1 + len(seqs))))

    def test_hostile_input(self):
        base = self._start()
        config_room = f"config:{self.config_id}"
        # A bad token is refused before the upgrade.
        refused = DeviceSocket(self.gevent_port, token="not.a.token")
        self.assertEqual(refused.status, 401, refused.head)
        self.assertEqual(json.loads(refused.body)["error"]["code"], "invalid_token")
        refused.sock.close()
        # ... and by message, with 4001.
        client = self._connect(token=False)
        client.send_json({"type": "auth", "token": "not.a.token"})
        self.assertEqual(client.recv(), ("close", events.CLOSE_UNAUTHORIZED))
        # No auth message in time.
        client = self._connect(token=False)
        started = time.monotonic()
        self.assertEqual(client.recv(), ("close", events.CLOSE_POLICY))
        self.assertLess(time.monotonic() - started, limits.WS_AUTH_TIMEOUT + 3)
        # Subscribing before authenticating breaks the protocol's order.
        client = self._connect(token=False)
        client.send_json({"type": "subscribe", "rooms": [config_room]})
        self.assertEqual(client.recv(), ("close", events.CLOSE_POLICY))
        # Rooms outside the device's config: 403 / 4003.
        other = f"config:{self.config_id + 100000}"
        status, body = self._get(base, "/events", self.token, rooms=other, timeout=0)
        self.assertEqual((status, body["error"]["code"]), (403, "room_forbidden"))
        client = self._connect()
        client.send_json({"type": "subscribe", "rooms": [other]})
        self.assertEqual(client.recv(), ("close", events.CLOSE_FORBIDDEN))
        # A kitchen device may not follow a table.
        _kitchen_id, kitchen = self._device("kitchen")
        table = f"table:{self.table_ids[0]}"
        status, body = self._get(base, "/events", kitchen, rooms=table, timeout=0)
        self.assertEqual((status, body["error"]["code"]), (403, "room_forbidden"))
        # Malformed rooms and queries: 422.
        status, body = self._get(base, "/events", self.token, rooms="kitchen:1", timeout=0)
        self.assertEqual((status, body["error"]["code"]), (422, "invalid_room"))
        status, body = self._get(base, "/events", self.token, timeout=61)
        self.assertEqual((status, body["error"]["code"]), (422, "invalid_query"))
        status, body = self._get(base, "/events", None)
        self.assertEqual((status, body["error"]["code"]), (401, "missing_token"))
        # Too many rooms: 429 / 4029.
        rooms = [config_room] * (limits.MAX_ROOMS_PER_DEVICE + 1)
        status, body = self._get(base, "/events", self.token, rooms=",".join(rooms), timeout=0)
        self.assertEqual((status, body["error"]["code"]), (429, "too_many_rooms"))
        client = self._connect()
        client.send_json({"type": "subscribe", "rooms": rooms})
        self.assertEqual(client.recv(), ("close", events.CLOSE_TOO_MANY))
        # Frames: unmasked, oversized, binary, unknown type, not JSON.
        for raw, code in (
            (ws.encode_frame(ws.OP_TEXT, b"{}"), events.CLOSE_PROTOCOL_ERROR),
            (
                ws.encode_frame(ws.OP_TEXT, b"x" * (limits.MAX_WS_MESSAGE_BYTES + 1), mask=True),
                events.CLOSE_TOO_BIG,
            ),
            (ws.encode_frame(ws.OP_BINARY, b"\x00", mask=True), events.CLOSE_UNSUPPORTED),
            (ws.text_frame('{"type": "hello"}', mask=True), events.CLOSE_UNSUPPORTED),
            (ws.text_frame("{not json", mask=True), events.CLOSE_INVALID_DATA),
        ):
            client = self._connect()
            client.send_raw(raw)
            self.assertEqual(client.recv(), ("close", code), raw[:20])
        # Connections per device are capped.
        time.sleep(0.5)  # the closed ones above gave their slots back
        clients = [self._connect() for _ in range(limits.MAX_CONNECTIONS_PER_DEVICE)]
        extra = self._connect(token=False)
        extra.send_json({"type": "auth", "token": self.token})
        self.assertEqual(extra.recv()["type"], ws.AUTHENTICATED)
        self.assertEqual(extra.recv(), ("close", events.CLOSE_TOO_MANY))
        for client in clients:
            client.close()
        # The HTTP workers' port does not upgrade.
        wrong = DeviceSocket(self.http_port, token=self.token)
        self.assertEqual(wrong.status, 422, wrong.head)
        self.assertEqual(json.loads(wrong.body)["error"]["code"], "use_gevent_port")
        wrong.sock.close()

    def test_a_token_revoked_while_connected_drops_within_seconds(self):
        self._start()
        client = self._connect()
        self._subscribed(client)
        answer = {}
        poller = threading.Thread(
            target=lambda: answer.update(
                zip(
                    ("status", "body"),
                    self._get(self.gevent_base, "/events", self.token, timeout=50),
                )
            )
        )
        poller.start()
        time.sleep(1)
        with self._cursor() as env:
            env["pos.api.device"].browse(self.waiter_id).action_revoke_tokens()
        revoked_at = time.monotonic()
        self.assertEqual(client.recv(), ("close", events.CLOSE_UNAUTHORIZED))
        self.assertLess(time.monotonic() - revoked_at, limits.TOKEN_RECHECK_INTERVAL + 3)
        poller.join(limits.TOKEN_RECHECK_INTERVAL + 5)
        self.assertFalse(poller.is_alive(), "the waiting long-poll was not ended")
        self.assertEqual((answer["status"], answer["body"]["events"]), (200, []))
        status, body = self._get(self.gevent_base, "/events", self.token, timeout=0)
        self.assertEqual((status, body["error"]["code"]), (401, "token_revoked"))

    def test_idle_sockets_are_pinged_timed_out_and_read_in_pieces(self):
        """A subscribed socket waits with no greenlet of its own: the
        dispatcher's sweep pings it and closes it when its client answers
        nothing; what arrives, in pieces or not, is read once it is there."""
        self._start(env={"POS_API_WS_PING_INTERVAL": "1", "POS_API_WS_IDLE_TIMEOUT": "4"})
        start = self._head()
        client = self._connect()
        # A subscribe in two writes, apart: read whole, once complete.
        frame = ws.text_frame(json.dumps({"type": "subscribe", "after": start}), mask=True)
        client.send_raw(frame[:5])
        time.sleep(0.5)
        client.send_raw(frame[5:])
        self.assertEqual(client.recv()["type"], ws.SUBSCRIBED)
        # The client's ping is answered with its payload.
        client.send_raw(ws.encode_frame(ws.OP_PING, b"are you there", mask=True))
        self.assertEqual(_control(client, ws.OP_PONG, 5).data, b"are you there")
        # Events keep coming (a busy service): pings go out all the same,
        # since a client that only listens sends nothing but its pongs.
        stop = threading.Event()

        def stream():
            while not stop.wait(0.4):
                self._emit(1)

        emitter = threading.Thread(target=stream)
        emitter.start()
        self.addCleanup(stop.set)
        # A client that answers the pings stays connected past the idle timeout.
        received, target = [], []
        reader = threading.Thread(
            target=lambda: received.extend(_envelopes_until(client, target, 40))
        )
        reader.start()
        # A client that never answers is pinged, then closed.
        quiet = self._connect()
        self._subscribed(quiet, None, start)
        subscribed_at = time.monotonic()
        # (the sweep runs at least every second: a ping within 1 + 1 s and
        # some slack for a loaded machine; the close after 4 s without a frame)
        _control(quiet, ws.OP_PING, 5)
        self.assertLess(time.monotonic() - subscribed_at, 4.5)
        closed = _control(quiet, ws.OP_CLOSE, 12)
        waited = time.monotonic() - subscribed_at
        self.assertEqual(ws.parse_close(closed.data)[0], events.CLOSE_GOING_AWAY)
        self.assertGreater(waited, 4)
        self.assertLess(waited, 10)
        time.sleep(1)
        stop.set()
        emitter.join(TIMEOUT)
        last = self._head()
        target.append(last)
        reader.join(TIMEOUT)
        seqs = [e["seq"] for e in received]
        self.assertGreater(len(seqs), 10)
        self.assertEqual(seqs, list(range(start + 1, start + 1 + len(seqs))))
        self.assertEqual(seqs[-1], last, "the listening client was dropped mid-stream")

    def test_reauth_expiry_and_every_room_kind_over_tcp(self):
        """A fresh token of the same device extends an open socket; another
        device's is refused; a token that expires while connected drops it;
        session, table and station rooms deliver their events only."""
        self._start()
        with self._cursor() as env:
            config = env["pos.config"].browse(self.config_id)
            session_id = config.current_session_id.id
            station = env["pos.api.printer"].create(
                {"name": "Test channel grill", "host": "127.0.0.1", "config_ids": config.ids}
            )
            station_id = station.id
        self.addCleanup(self._drop_printer, station_id)
        start = self._head()
        rooms = {
            "session": f"session:{session_id}",
            "table": f"table:{self.table_ids[0]}",
            "station": f"station:{station_id}",
        }
        _kitchen_id, kitchen_token = self._device("kitchen")
        clients = {"session": self._connect(), "table": self._connect()}
        clients["station"] = self._connect(token=kitchen_token)
        for kind, client in clients.items():
            self._subscribed(client, [rooms[kind]], start)
        # Re-authentication with a fresh token of the same device.
        with self._cursor() as env:
            fresh = env["pos.api.device"].browse(self.waiter_id)._sign_pair().access_token
        clients["table"].send_json({"type": "auth", "token": fresh})
        self.assertEqual(clients["table"].recv()["type"], ws.AUTHENTICATED)
        for kind in ("station", "session", "table"):
            self._emit(1, rooms=[rooms[kind]])
        last = self._emit(1, rooms=[rooms["table"], rooms["station"]])
        expected = {
            "session": [start + 2],
            "table": [start + 3, last],
            "station": [start + 1, last],
        }
        for kind, client in clients.items():
            got = client.events_until(last if kind != "session" else start + 2)
            self.assertEqual([e["seq"] for e in got], expected[kind], kind)
            self.assertEqual({e["room"] for e in got} - {rooms[kind]}, set(), kind)
        # Another device's token on an open socket: refused.
        clients["table"].send_json({"type": "auth", "token": kitchen_token})
        self.assertEqual(clients["table"].recv(), ("close", events.CLOSE_POLICY))
        # A token that expires while connected: dropped at the next re-check.
        ttl = {"POS_API_ACCESS_TOKEN_TTL": "3"}
        with unittest.mock.patch.dict(os.environ, ttl), self._cursor() as env:
            short = env["pos.api.device"].browse(self.waiter_id)._sign_pair().access_token
        expiring = self._connect(token=short)
        self._subscribed(expiring, None, last)
        self.assertEqual(
            expiring.recv(3 + limits.TOKEN_RECHECK_INTERVAL + 3),
            ("close", events.CLOSE_UNAUTHORIZED),
        )

    def _drop_printer(self, printer_id):
        with self._cursor() as env:
            env["pos.api.printer"].browse(printer_id).unlink()

    def test_two_servers_sharing_the_database(self):
        """As behind a load balancer: an order created through one server
        reaches the devices of the other, and a device moving from one to
        the other resumes with no gap and no duplicate."""
        base_a = self._start()
        start = self._head()
        on_a = self._connect()
        self._subscribed(on_a, None, start)
        self._start()  # server B: self.gevent_port is now its
        on_b = self._connect()
        self._subscribed(on_b, None, start)
        order = self._post_order(base_a)
        seen_a = on_a.events_until(self._head())
        seen_b = on_b.events_until(seen_a[-1]["seq"])
        self.assertEqual([e["seq"] for e in seen_a], [e["seq"] for e in seen_b])
        self.assertIn(order["id"], [e["payload"].get("id") for e in seen_b])
        # The device on A moves to B, from the last seq it saw.
        on_a.close()
        missed = self._emit(3)
        moved = self._connect()
        self._subscribed(moved, None, seen_a[-1]["seq"])
        live = self._emit(1)
        self.assertEqual(
            [e["seq"] for e in moved.events_until(live)],
            list(range(seen_a[-1]["seq"] + 1, live + 1)),
        )
        self.assertEqual(live, missed + 1)

    def test_with_redis_down_the_channel_wakes_through_postgresql(self):
        """Redis configured but unreachable: the dispatcher listens to
        PostgreSQL instead, and events still arrive."""
        self._start(env={"POS_API_REDIS_URL": "redis://127.0.0.1:9/0"})
        start = self._head()
        client = self._connect()
        self._subscribed(client, None, start)
        last = self._emit(2)
        started = time.monotonic()
        received = client.events_until(last)
        self.assertEqual([e["seq"] for e in received], [start + 1, start + 2])
        # Woken by NOTIFY, not by the head check of the backstop.
        self.assertLess(time.monotonic() - started, limits.DISPATCH_BACKSTOP_INTERVAL / 2)

    def test_resume_across_a_server_restart(self):
        """Events committed while the server is down reach the device once it
        reconnects to the new server: no gap, no duplicate."""
        self._start()
        start = self._head()
        client = self._connect()
        self._subscribed(client, None, start)
        seen = self._emit(3)
        self.assertEqual(
            [e["seq"] for e in client.events_until(seen)], [start + 1, start + 2, start + 3]
        )
        self._stop_server()
        self.assertIn(client.recv(), [("close", events.CLOSE_GOING_AWAY), ("eof", None)])
        last = self._emit(4)
        self._start()
        resumed = self._connect()
        self._subscribed(resumed, None, seen)
        live = self._emit(1)
        self.assertEqual(
            [e["seq"] for e in resumed.events_until(live)], list(range(seen + 1, live + 1))
        )
        self.assertEqual(live, last + 1)

    def test_the_reference_client_across_a_server_restart(self):
        """pos_core.client over both transports, against the server on the
        same ports before and after a restart, under a stream of events:
        every event reaches each client once, in order; a write submitted
        while the server is down waits in the offline queue and creates the
        order once the server is back."""
        self._start()
        ports = (self.http_port, self.gevent_port)
        host = f"http://127.0.0.1:{self.gevent_port}"
        start = self._head()
        received = {transport: [] for transport in reference.TRANSPORTS}
        clients = []
        for transport in reference.TRANSPORTS:
            device = reference.EventClient(
                host,
                lambda refresh=False: self.token,
                [f"config:{self.config_id}"],
                after=start,
                on_event=received[transport].append,
                transport=transport,
                write_url=f"http://127.0.0.1:{self.http_port}",
                backoff=reference.Backoff(base=0.2, cap=1.0, jitter=0.5),
                longpoll_timeout=5,
            )
            clients.append(device)
            device.start()
            self.addCleanup(device.stop)
        writer = reference.EventClient(
            host,
            lambda refresh=False: self.token,
            [f"config:{self.config_id}"],
            write_url=f"http://127.0.0.1:{self.http_port}",
            queue_path=self._queue_path(),
            backoff=reference.Backoff(base=0.2, cap=1.0, jitter=0.5),
        )

        def caught_up(seq):
            deadline = time.monotonic() + 30
            while time.monotonic() < deadline:
                if all(batch and batch[-1]["seq"] >= seq for batch in received.values()):
                    return
                time.sleep(0.05)
            self.fail(f"not caught up to {seq}: {[b[-1:] for b in received.values()]}")

        caught_up(self._emit(3))
        self._stop_server()
        self._emit(4)  # committed while the server is down
        order_uuid = str(uuid.uuid4())
        self.order_uuids.append(order_uuid)
        body = {
            "uuid": order_uuid,
            "lines": [{"product_id": self.product_ids[0], "qty": "1"}],
            "state": "draft",
        }
        queued = writer.submit("POST", "/pos_api/v1/orders", body)
        self.assertIsNone(queued.response)  # the server is down: kept
        self.assertEqual(len(writer.queue.entries()), 1)
        self._start(ports=ports)
        settled = writer.flush()
        self.assertEqual([response.status for _entry, response in settled], [201])
        self.assertEqual(writer.queue.entries(), [])
        last = self._emit(2)
        caught_up(last)
        for transport, batch in received.items():
            self.assertEqual(
                [event["seq"] for event in batch],
                list(range(start + 1, last + 1)),
                f"{transport}: a gap, a duplicate or an event out of order",
            )
        # The queued write created the order once, with its events in the log.
        with self._cursor() as env:
            orders = env["pos.order"].search([("uuid", "=", order_uuid)])
            self.assertEqual(len(orders), 1)
            self.assertTrue(
                env["pos.sync.log"].search_count(
                    [("res_model", "=", "pos.order"), ("res_id", "=", orders.id)]
                )
            )

    def _queue_path(self):
        folder = tempfile.mkdtemp(prefix="pos_api_queue_")
        self.addCleanup(shutil.rmtree, folder, True)
        return os.path.join(folder, "writes.json")
