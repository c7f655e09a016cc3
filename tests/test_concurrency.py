"""Concurrent duplicates, against real transactions: the API through a
prefork server of the test's own (truly separate connections and
transactions, under any test runner), and Odoo's own sync_from_ui through
separate cursors. Data is committed, so every test cleans up after itself."""

import copy
import functools
import json
import random
import threading
import time
import urllib.request
import uuid

from odoo import api
from odoo.modules.registry import Registry
from odoo.service.model import (
    MAX_TRIES_ON_CONCURRENCY_FAILURE,
    PG_CONCURRENCY_EXCEPTIONS_TO_RETRY,
    retrying,
)
from odoo.tests import TransactionCase, tagged

from ..controllers.main import PosApiController
from ..pos_core import schemas
from .common import DEMO_CONFIG_XMLID, PosApiFactories
from .server import OwnServerMixin
from .threads import thread_env

K = 8


@tagged("post_install", "-at_install")
class TestConcurrentDuplicates(OwnServerMixin, PosApiFactories, TransactionCase):
    def setUp(self):
        super().setUp()
        self.uuids = []
        self.admin_id = self.env.ref("base.user_admin").id
        with self.registry.cursor() as cr:
            env = api.Environment(cr, self.admin_id, {})
            config = env.ref(DEMO_CONFIG_XMLID)
            self.session_id = self._open_session(config).id
            device = self._create_device("waiter", config)
            self.device_id = device.id
            self.token = device._issue_tokens().access_token
            products = env["product.product"].search(
                [*config._get_available_product_domain(), ("type", "!=", "combo")], limit=3
            )
            self.product_ids = products.ids
        self.addCleanup(self._cleanup)

    def _cleanup(self):
        with self.registry.cursor() as cr:
            env = api.Environment(cr, api.SUPERUSER_ID, {})
            orders = env["pos.order"].search([("uuid", "in", self.uuids)])
            orders.payment_ids.unlink()
            orders.filtered(lambda order: order.state == "draft").action_pos_order_cancel()
            # Paid orders (sync_from_ui) cannot be cancelled by Odoo's flow.
            orders.filtered(lambda order: order.state != "cancel").write({"state": "cancel"})
            orders.unlink()
            # Audit rows keep referring to the device: archive it, as in production.
            env["pos.api.device"].browse(self.device_id).active = False

    def _in_parallel(self, func):
        barrier = threading.Barrier(K)
        results = [None] * K

        def run(index):
            barrier.wait(timeout=30)
            try:
                results[index] = func()
            except Exception as exc:  # noqa: BLE001 - the outcome is what is tested
                results[index] = exc

        threads = [threading.Thread(target=run, args=(i,)) for i in range(K)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=120)
        return results

    @staticmethod
    def _retrying(func, env):
        """What ``odoo.service.model.retrying`` does around every RPC: on a
        serialization failure, roll back and call again in a new snapshot.
        Not that function itself in threads: its ``env.reset()`` looks the
        registry up by name, which waits on ``Registry._lock``, held by the
        main thread of Odoo's test runner for its whole run."""
        for tries_left in range(MAX_TRIES_ON_CONCURRENCY_FAILURE - 1, -1, -1):
            try:
                result = func()
                env.cr.flush()
                return result
            except PG_CONCURRENCY_EXCEPTIONS_TO_RETRY:
                if not tries_left:
                    raise
                env.cr.rollback()
                env.invalidate_all(flush=False)
                time.sleep(random.uniform(0.0, 0.5))
        raise AssertionError("unreachable")

    def _count(self, order_uuid):
        with self.registry.cursor() as cr:
            cr.execute("SELECT count(*) FROM pos_order WHERE uuid = %s", [order_uuid])
            return cr.fetchone()[0]

    def test_api_duplicates_from_separate_connections_create_one_order(self):
        self.base = self._start_server(workers=4)
        order_uuid = str(uuid.uuid4())
        self.uuids.append(order_uuid)
        body = {
            "uuid": order_uuid,
            "lines": [{"product_id": pid, "qty": "1"} for pid in self.product_ids],
        }
        results = self._in_parallel(lambda: self._post("/orders", body))
        self.assertFalse([r for r in results if isinstance(r, Exception)], results)
        self.assertEqual({status for status, _body in results}, {201})
        self.assertEqual(len({body["order"]["id"] for _status, body in results}), 1)
        self.assertEqual(self._count(order_uuid), 1)

    def _post(self, path, payload, headers=None):
        request = urllib.request.Request(
            f"{self.base}{path}",
            data=json.dumps(payload).encode(),
            method="POST",
            headers={
                "Content-Type": "application/json",
                "Authorization": f"Bearer {self.token}",
                **(headers or {}),
            },
        )
        with self.loopback.open(request, timeout=60) as response:
            return response.status, json.loads(response.read())

    def test_payment_key_sent_at_once_from_separate_connections_pays_once(self):
        self.base = self._start_server(workers=4)
        order_uuid = str(uuid.uuid4())
        self.uuids.append(order_uuid)
        status, created = self._post(
            "/orders",
            {
                "uuid": order_uuid,
                "lines": [{"product_id": pid, "qty": "1"} for pid in self.product_ids],
            },
        )
        self.assertEqual(status, 201)
        order_id = created["order"]["id"]
        with self.registry.cursor() as cr:
            env = api.Environment(cr, api.SUPERUSER_ID, {})
            method = env["pos.order"].browse(order_id).config_id.payment_method_ids[:1]
        key = str(uuid.uuid4())
        body = {"payments": [{"payment_method_id": method.id, "amount": "1.00"}]}
        results = self._in_parallel(
            lambda: self._post(f"/orders/{order_id}/payments", body, {"Idempotency-Key": key})
        )
        self.assertFalse([r for r in results if isinstance(r, Exception)], results)
        self.assertEqual({status for status, _body in results}, {200})
        self.assertEqual(len({json.dumps(body, sort_keys=True) for _s, body in results}), 1)
        with self.registry.cursor() as cr:
            cr.execute("SELECT count(*) FROM pos_payment WHERE pos_order_id = %s", [order_id])
            self.assertEqual(cr.fetchone()[0], 1)
            cr.execute("DELETE FROM pos_api_idempotency WHERE key = %s", [key])

    def test_sync_from_ui_duplicates_create_one_order(self):
        order_uuid = str(uuid.uuid4())
        self.uuids.append(order_uuid)
        with self.registry.cursor() as cr:
            env = api.Environment(cr, self.admin_id, {})
            session = env["pos.session"].browse(self.session_id)
            products = env["product.product"].browse(self.product_ids)
            payload = self._ui_order_payload(
                session,
                [(product, 1) for product in products],
                paid=False,
                order_uuid=order_uuid,
            )

        def push():
            with self.registry.cursor() as cr:
                env = thread_env(self.registry, cr, self.admin_id)
                env["pos.order"].sync_from_ui([copy.deepcopy(payload)])
            return True  # the cursor committed on leaving the block

        results = self._in_parallel(push)
        self.assertIn(True, results)
        self.assertEqual(self._count(order_uuid), 1)
        for result in results:
            if result is not True:
                self.assertIn("uuid", str(result).lower())

    def test_sync_from_ui_concurrent_retries_all_get_the_order(self):
        """The POS UI retries a push whose answer it lost, maybe while the
        first push still runs: every caller, going through Odoo's retry loop
        as an RPC does, gets the order's server data; a later sequential
        retry gets the same."""
        order_uuid = str(uuid.uuid4())
        self.uuids.append(order_uuid)
        with self.registry.cursor() as cr:
            env = api.Environment(cr, self.admin_id, {})
            session = env["pos.session"].browse(self.session_id)
            products = env["product.product"].browse(self.product_ids)
            payload = self._ui_order_payload(
                session, [(product, 1) for product in products], order_uuid=order_uuid
            )

        def push():
            with self.registry.cursor() as cr:
                env = thread_env(self.registry, cr, self.admin_id)
                call = functools.partial(env["pos.order"].sync_from_ui, [copy.deepcopy(payload)])
                result = self._retrying(call, env)
                return [
                    (o["id"], o["uuid"], o["state"], o["amount_total"], o["amount_paid"])
                    for o in result["pos.order"]
                ], sorted(p["id"] for p in result["pos.payment"])

        results = self._in_parallel(push)
        self.assertFalse([r for r in results if isinstance(r, Exception)], results)
        self.assertEqual(self._count(order_uuid), 1)
        self.assertEqual(len({repr(result) for result in results}), 1, results)
        (orders, payment_ids) = results[0]
        self.assertEqual(len(orders), 1)
        self.assertEqual(orders[0][1:3], (order_uuid, "paid"))
        self.assertTrue(payment_ids)
        self.assertEqual(push(), results[0], "a sequential retry gets the same answer")
        with self.registry.cursor() as cr:  # and through Odoo's own loop
            env = thread_env(self.registry, cr, self.admin_id)
            call = functools.partial(env["pos.order"].sync_from_ui, [copy.deepcopy(payload)])
            result = retrying(call, env)
            self.assertEqual([order["id"] for order in result["pos.order"]], [orders[0][0]])

    def test_api_identical_batches_at_once_all_get_the_same_answers(self):
        """Eight devices' worth of retries of one batch, in eight concurrent
        transactions, through the model method the endpoint calls: one order
        per uuid, and every caller gets every order's first answer."""
        if Registry._lock._is_owned():  # pylint: disable=protected-access
            # Odoo's own runner holds the registry lock for its whole run, and
            # a replay's fresh environment looks the registry up.
            self.skipTest("needs a test process that does not hold Registry._lock")
        bodies = []
        for _index in range(3):
            order_uuid = str(uuid.uuid4())
            self.uuids.append(order_uuid)
            bodies.append(
                {
                    "uuid": order_uuid,
                    "lines": [{"product_id": pid, "qty": "1"} for pid in self.product_ids],
                }
            )
        batch = schemas.BatchCreate.model_validate({"orders": bodies})

        def push():
            with self.registry.cursor() as cr:
                env = thread_env(self.registry, cr, api.SUPERUSER_ID)
                device = env["pos.api.device"].browse(self.device_id)
                env = env(
                    user=device.user_id.id, context={"allowed_company_ids": device.company_id.ids}
                )
                return env["pos.order"]._api_create_or_replay(
                    batch.orders,
                    device.with_env(env(su=True)),
                    on_error=PosApiController._error_payload,
                )

        results = self._in_parallel(push)
        self.assertFalse([r for r in results if isinstance(r, Exception)], results)
        for result in results:
            self.assertEqual([status for status, _response in result], [201, 201, 201], result)
        self.assertEqual(len({json.dumps(result, sort_keys=True) for result in results}), 1)
        for body in bodies:
            self.assertEqual(self._count(body["uuid"]), 1)
