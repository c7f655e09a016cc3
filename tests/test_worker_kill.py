"""A worker killed mid-payment loses nothing that was acknowledged.

The test starts an Odoo server of its own in prefork mode (two HTTP workers)
on the test's database, pays draft orders through the API from a few client
threads while a killer thread SIGKILLs the HTTP workers (the prefork master
spawns new ones), then retries every request that got no answer with the
same Idempotency-Key, as a device replaying its queue would. Reading the
database afterwards, every acknowledged payment must be there, every key must
have had exactly one effect, and the payment audit chain must still verify.
Data is committed, so the test cleans up after itself.
"""

import http.client
import json
import logging
import os
import random
import signal
import subprocess
import threading
import time
import urllib.error
import urllib.request
import uuid
from collections import Counter
from decimal import Decimal

from odoo import api
from odoo.tests import TransactionCase, tagged

from .common import DEMO_CONFIG_XMLID, PosApiFactories
from .server import OwnServerMixin

_logger = logging.getLogger(__name__)

ORDERS = 6
CLIENTS = 3  # each client pays its own orders, one request at a time
MAX_REQUESTS = 80  # per client
AMOUNT = Decimal("1.00")  # partial payments: the orders stay open
QTY = "10"  # of three products: the bill is far above MAX_REQUESTS * AMOUNT
KILL_SECONDS = 6.0
KILL_PAUSE = (0.1, 0.3)
REQUEST_TIMEOUT = 30
RETRIES = 20  # per key that got no answer
RETRY_PAUSE = 0.25
RETRY_PHASE_LIMIT = 180


@tagged("post_install", "-at_install")
class TestWorkerKill(OwnServerMixin, PosApiFactories, TransactionCase):
    def setUp(self):
        super().setUp()
        self.uuids = []
        self.keys = {}  # Idempotency-Key -> order id, in the order they were sent
        self.acked = {}  # key -> the 200 bodies received for it
        self.rejected = {}  # key -> (status, body) of an unexpected 4xx
        self.attempts = []  # (key, phase, outcome): a status or an exception name
        self.in_flight = 0
        self.lock = threading.Lock()
        self.admin_id = self.env.ref("base.user_admin").id
        with self.registry.cursor() as cr:
            env = api.Environment(cr, self.admin_id, {})
            config = env.ref(DEMO_CONFIG_XMLID)
            self.session_id = self._open_session(config).id
            device = self._create_device("waiter", config, name="Test worker kill")
            self.device_id = device.id
            self.token = device._issue_tokens().access_token
            products = env["product.product"].search(
                [*config._get_available_product_domain(), ("type", "!=", "combo")], limit=3
            )
            self.product_ids = products.ids
            card = config.payment_method_ids.filtered(lambda method: not method.is_cash_count)
            self.method_id = (card or config.payment_method_ids)[:1].id
        self.assertEqual(len(self.product_ids), 3, "the demo menu has too few products")
        self.assertTrue(self.method_id, "the demo point of sale has no payment method")
        self.addCleanup(self._cleanup)

    def _cleanup(self):
        with self.registry.cursor() as cr:
            env = api.Environment(cr, api.SUPERUSER_ID, {})
            orders = env["pos.order"].search([("uuid", "in", self.uuids)])
            orders.payment_ids.unlink()  # audited as voided, as in production
            orders.filtered(lambda order: order.state == "draft").action_pos_order_cancel()
            orders.unlink()
            # Audit rows keep referring to the device: archive it, as in production.
            env["pos.api.device"].browse(self.device_id).active = False
            with self.lock:
                keys = tuple(self.keys)
            if keys:
                cr.execute("DELETE FROM pos_api_idempotency WHERE key IN %s", [keys])

    # ------------------------------------------------------------------
    # the server
    # ------------------------------------------------------------------
    def _http_workers(self):
        """Pids of the master's live HTTP workers: its children but the gevent
        process and the dead ones not reaped yet."""
        pid = self.server.pid
        children = set()
        try:
            for task in os.listdir(f"/proc/{pid}/task"):
                with open(f"/proc/{pid}/task/{task}/children", encoding="ascii") as file:
                    children.update(int(child) for child in file.read().split())
        except OSError:  # no /proc/<pid>/task/<tid>/children in this kernel
            listing = subprocess.run(
                ["ps", "--ppid", str(pid), "-o", "pid="],
                capture_output=True,
                text=True,
                check=False,
                timeout=10,
            )
            children = {int(child) for child in listing.stdout.split()}
        workers = []
        for child in children:
            try:
                with open(f"/proc/{child}/cmdline", "rb") as file:
                    argv = file.read().split(b"\0")
            except OSError:
                continue  # reaped already
            # A zombie has no command line; the gevent process runs `odoo-bin gevent`.
            if argv != [b""] and b"gevent" not in argv:
                workers.append(child)
        return workers

    # ------------------------------------------------------------------
    # the client
    # ------------------------------------------------------------------
    def _request(self, url, payload, headers=None):
        request = urllib.request.Request(
            url,
            data=json.dumps(payload).encode(),
            method="POST",
            headers={
                "Content-Type": "application/json",
                "Authorization": f"Bearer {self.token}",
                **(headers or {}),
            },
        )
        try:
            with self.loopback.open(request, timeout=REQUEST_TIMEOUT) as response:
                return response.status, json.loads(response.read())
        except urllib.error.HTTPError as error:
            with error:
                raw = error.read()
            try:
                return error.code, json.loads(raw)
            except ValueError:
                return error.code, {"raw": raw[:500].decode(errors="replace")}

    def _create_orders(self, base):
        order_ids = []
        for _index in range(ORDERS):
            order_uuid = str(uuid.uuid4())
            self.uuids.append(order_uuid)
            status, body = self._request(
                f"{base}/orders",
                {
                    "uuid": order_uuid,
                    "lines": [{"product_id": pid, "qty": QTY} for pid in self.product_ids],
                    "state": "draft",
                },
            )
            self.assertEqual(status, 201, body)
            # No payment may close an order: every key must be accepted.
            self.assertGreater(
                Decimal(str(body["order"]["amount_total"])), MAX_REQUESTS * AMOUNT, body
            )
            order_ids.append(body["order"]["id"])
        return order_ids

    def _payment_body(self, key):
        # The key is also the card terminal reference: the payment it made is
        # found in the database without trusting the audit trail or the response.
        return {
            "payments": [
                {"payment_method_id": self.method_id, "amount": str(AMOUNT), "terminal_ref": key}
            ]
        }

    def _attempt(self, base, key, phase):
        """Send the payment of ``key``; its status, None when no answer came."""
        with self.lock:
            self.in_flight += 1
        status = body = None
        try:
            status, body = self._request(
                f"{base}/orders/{self.keys[key]}/payments",
                self._payment_body(key),
                {"Idempotency-Key": key},
            )
            outcome = status
        except (OSError, http.client.HTTPException, ValueError) as exc:
            # Connection refused or reset, a body cut short, a timeout: a
            # worker died under this request, or the request was never read.
            outcome = type(exc).__name__
        finally:
            with self.lock:
                self.in_flight -= 1
        with self.lock:
            self.attempts.append((key, phase, outcome))
            if status == 200:
                self.acked.setdefault(key, []).append(body)
            elif status is not None and status < 500 and not self._busy(body):
                self.rejected[key] = (status, body)
        return status

    @staticmethod
    def _busy(body):
        return ((body or {}).get("error") or {}).get("code") == "idempotency_busy"

    def _client(self, base, order_ids, stop):
        for index in range(MAX_REQUESTS):
            if stop.is_set():
                return
            key = str(uuid.uuid4())
            with self.lock:
                self.keys[key] = order_ids[index % len(order_ids)]
            self._attempt(base, key, "load")

    def _killer(self, stop, kills):
        rng = random.Random()
        deadline = time.monotonic() + KILL_SECONDS
        killed = set()
        try:
            while time.monotonic() < deadline and self.server.poll() is None:
                time.sleep(rng.uniform(*KILL_PAUSE))
                workers = [pid for pid in self._http_workers() if pid not in killed]
                if not workers:
                    continue  # the master is spawning their replacements
                victim = rng.choice(workers)
                with self.lock:
                    in_flight = self.in_flight
                try:
                    os.kill(victim, signal.SIGKILL)
                except ProcessLookupError:
                    continue
                killed.add(victim)
                kills.append((victim, in_flight))
        finally:
            stop.set()

    def _committed(self, keys):
        """Keys whose payment is committed: ``{key: [(payment id, order id, amount)]}``."""
        found = {}
        if not keys:
            return found
        with self.registry.cursor() as cr:
            cr.execute(
                "SELECT transaction_id, id, pos_order_id, amount FROM pos_payment"
                " WHERE transaction_id IN %s ORDER BY id",
                [tuple(keys)],
            )
            for key, payment_id, order_id, amount in cr.fetchall():
                found.setdefault(key, []).append((payment_id, order_id, amount))
        return found

    # ------------------------------------------------------------------
    # the test
    # ------------------------------------------------------------------
    def test_killed_workers_lose_no_acknowledged_payment(self):
        base = self._start_server()
        order_ids = self._create_orders(base)

        # Load: each client pays its own orders while workers get killed.
        stop = threading.Event()
        kills = []
        clients = [
            threading.Thread(
                target=self._client, args=(base, order_ids[index::CLIENTS], stop), daemon=True
            )
            for index in range(CLIENTS)
        ]
        killer = threading.Thread(target=self._killer, args=(stop, kills), daemon=True)
        for thread in clients:
            thread.start()
        killer.start()
        killer.join(timeout=KILL_SECONDS + 60)
        stop.set()
        for thread in clients:
            thread.join(timeout=REQUEST_TIMEOUT + 30)
        self.assertFalse(
            [thread for thread in [killer, *clients] if thread.is_alive()],
            "a client or the killer did not stop",
        )
        self.assertIsNone(self.server.poll(), f"the prefork master died:\n{self._server_output()}")
        acked_under_load = set(self.acked)
        failed = [key for key in self.keys if key not in self.acked and key not in self.rejected]
        load_outcomes = Counter(outcome for _key, phase, outcome in self.attempts)
        # Failed requests whose payment was committed before the worker died:
        # their answer was lost, the retry below must replay it, not pay again.
        committed_unanswered = self._committed(failed)

        # Retry: the master has replaced the workers; every request that got
        # no answer is sent again with the same key, as a device would.
        self._wait_healthy(base)
        deadline = time.monotonic() + RETRY_PHASE_LIMIT
        for key in failed:
            for _attempt in range(RETRIES):
                if time.monotonic() > deadline:
                    break
                status = self._attempt(base, key, "retry")
                if status == 200 or key in self.rejected:
                    break
                time.sleep(RETRY_PAUSE)
        retry_outcomes = Counter(
            outcome for _key, phase, outcome in self.attempts if phase == "retry"
        )
        kills_in_flight = sum(1 for _victim, in_flight in kills if in_flight)
        _logger.info(
            "worker kill: %s kills (%s with requests in flight), %s keys sent, "
            "load outcomes %s, %s acknowledged under load, %s without answer "
            "(%s of them committed), retry outcomes %s",
            len(kills),
            kills_in_flight,
            len(self.keys),
            dict(load_outcomes),
            len(acked_under_load),
            len(failed),
            len(committed_unanswered),
            dict(retry_outcomes),
        )

        # The test did what it claims: workers died with requests in flight,
        # and payments were acknowledged. Whether a kill cut a request short
        # depends on timing (a worker may die between two requests, costing
        # nothing): failed requests are counted, not required, and when there
        # are none, what follows still checks that every acknowledgement holds.
        self.assertGreater(len(kills), 0, "the killer found no HTTP worker to kill")
        # The master replaced the killed workers (the retries were answered by them).
        workers = self._http_workers()
        self.assertTrue(workers, "no HTTP worker after the kills")
        self.assertFalse(set(workers) & {victim for victim, _n in kills}, workers)
        self.assertGreater(kills_in_flight, 0, "no kill happened with a request in flight")
        self.assertGreater(len(acked_under_load), 0, f"nothing acknowledged: {load_outcomes}")
        self.assertFalse(self.rejected, "requests refused instead of paid or replayed")
        unanswered = [key for key in self.keys if key not in self.acked]
        self.assertFalse(
            unanswered,
            f"{len(unanswered)} requests still unanswered after {RETRIES} retries: "
            f"{retry_outcomes}\n{self._server_output()}",
        )
        self._assert_durable(order_ids)

    def _assert_durable(self, order_ids):
        keys = tuple(self.keys)
        payments = self._committed(keys)
        with self.registry.cursor() as cr:
            cr.execute(
                "SELECT key, status, response FROM pos_api_idempotency WHERE key IN %s", [keys]
            )
            stored = {key: (status, response) for key, status, response in cr.fetchall()}
            cr.execute(
                "SELECT idempotency_key, payment_res_id, order_res_id FROM pos_payment_audit"
                " WHERE idempotency_key IN %s AND event = 'captured'",
                [keys],
            )
            audited = {}
            for key, payment_id, order_id in cr.fetchall():
                audited.setdefault(key, []).append((payment_id, order_id))
            cr.execute(
                "SELECT pos_order_id, count(*), sum(amount) FROM pos_payment"
                " WHERE pos_order_id IN %s GROUP BY pos_order_id",
                [tuple(order_ids)],
            )
            per_order = {order_id: (count, total) for order_id, count, total in cr.fetchall()}
            cr.execute(
                "SELECT id, state, api_state, amount_paid FROM pos_order WHERE id IN %s",
                [tuple(order_ids)],
            )
            orders = {row[0]: row[1:] for row in cr.fetchall()}
            env = api.Environment(cr, api.SUPERUSER_ID, {})
            verify = env["pos.payment.audit"]._verify()

        for key, bodies in self.acked.items():
            order_id = self.keys[key]
            # Nothing acknowledged is lost: the key, its response and its payment.
            self.assertIn(key, stored, f"acknowledged key {key} has no idempotency row")
            status, response = stored[key]
            self.assertEqual(status, 200, key)
            for body in bodies:
                self.assertEqual(body, json.loads(response), f"{key}: not the stored response")
            acked_ids = [
                payment["id"]
                for payment in bodies[0]["order"]["payments"]
                if payment["terminal_ref"] == key
            ]
            # Exactly one effect per key, retries included.
            self.assertEqual(len(payments.get(key, [])), 1, f"{key}: {payments.get(key)}")
            payment_id, payment_order_id, amount = payments[key][0]
            self.assertEqual(acked_ids, [payment_id], f"{key}: acknowledged payment is missing")
            self.assertEqual(payment_order_id, order_id, key)
            self.assertAlmostEqual(amount, float(AMOUNT), places=2, msg=key)
            self.assertEqual(audited.get(key), [(payment_id, order_id)], f"{key}: audit")

        for order_id in order_ids:
            succeeded = [key for key, order in self.keys.items() if order == order_id]
            count, total = per_order.get(order_id, (0, 0.0))
            self.assertEqual(count, len(succeeded), f"order {order_id}: payments vs keys")
            self.assertAlmostEqual(total, len(succeeded) * float(AMOUNT), places=2)
            state, api_state, amount_paid = orders[order_id]
            self.assertEqual((state, api_state), ("draft", "draft"), f"order {order_id}")
            self.assertAlmostEqual(amount_paid, total, places=2, msg=f"order {order_id}")

        self.assertTrue(verify["ok"], verify["first_broken"])
