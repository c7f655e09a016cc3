"""The menu against committed writes, on a prefork server of the test's own
(two HTTP workers, each with its own caches): no stale read after a
writer's commit returns, while readers race it; and the menu still right
with its Redis stopped, and once it is back. Committed data is restored."""

import json
import threading
import time
import urllib.request
import uuid
from decimal import Decimal

from odoo import api
from odoo.tests import TransactionCase, tagged

from .common import DEMO_CONFIG_XMLID, PosApiFactories
from .server import OwnRedis, OwnServerMixin

ROUNDS = 12


@tagged("post_install", "-at_install")
class TestMenuCommitted(OwnServerMixin, PosApiFactories, TransactionCase):
    def setUp(self):
        super().setUp()
        self.admin_id = self.env.ref("base.user_admin").id
        self.order_uuids = []
        with self.registry.cursor() as cr:
            env = api.Environment(cr, self.admin_id, {})
            config = env.ref(DEMO_CONFIG_XMLID)
            self._open_session(config)
            device = self._create_device("waiter", config, name="Cache race tablet")
            self.device_id = device.id
            self.token = device._issue_tokens().access_token
            product = env["product.product"].search(
                [*config._get_available_product_domain(), ("type", "!=", "combo")], limit=1
            )
            self.product_id, self.template_id = product.id, product.product_tmpl_id.id
            self.price = product.list_price
        self.addCleanup(self._cleanup)

    def _cleanup(self):
        with self.registry.cursor() as cr:
            env = api.Environment(cr, api.SUPERUSER_ID, {})
            env["product.template"].browse(self.template_id).list_price = self.price
            orders = env["pos.order"].search([("uuid", "in", self.order_uuids)])
            orders.lines.unlink()
            orders.unlink()
            env["pos.api.device"].browse(self.device_id).active = False

    def _set_price(self, price):
        with self.registry.cursor() as cr:
            env = api.Environment(cr, self.admin_id, {})
            env["product.template"].browse(self.template_id).list_price = price

    def _request(self, path, body=None):
        request = urllib.request.Request(
            f"{self.base}{path}",
            data=json.dumps(body).encode() if body is not None else None,
            method="POST" if body is not None else "GET",
            headers={"Authorization": f"Bearer {self.token}", "Content-Type": "application/json"},
        )
        with self.loopback.open(request, timeout=60) as response:
            return response.status, response.headers, json.loads(response.read())

    def _menu_price(self):
        _status, headers, menu = self._request("/menu")
        item = next(item for item in menu["products"] if item["id"] == self.product_id)
        return Decimal(item["price"]), headers["ETag"]

    def _order_price(self):
        order_uuid = str(uuid.uuid4())
        self.order_uuids.append(order_uuid)
        status, _headers, body = self._request(
            "/orders", {"uuid": order_uuid, "lines": [{"product_id": self.product_id, "qty": "1"}]}
        )
        self.assertEqual(status, 201, body)
        return Decimal(body["order"]["lines"][0]["price_unit"])

    def test_no_stale_read_after_commit_with_two_workers_and_racing_readers(self):
        self.base = self._start_server(workers=2)
        base = Decimal(str(self.price)) + 100
        committed = [0]  # rounds whose commit has returned
        stale, reads, errors = [], [], []
        stop = threading.Event()

        def reader():
            while not stop.is_set():
                floor = committed[0]
                try:
                    price, _etag = self._menu_price()
                except Exception as exc:  # noqa: BLE001 - reported below
                    errors.append(exc)
                    return
                reads.append(price)
                if floor and price < base + floor:
                    stale.append((floor, price))

        threads = [threading.Thread(target=reader) for _ in range(3)]
        for thread in threads:
            thread.start()
        try:
            for index in range(1, ROUNDS + 1):
                self._set_price(float(base + index))
                committed[0] = index
                # Every read and order after the commit, on whichever worker.
                for _ in range(4):
                    self.assertEqual(self._menu_price()[0], base + index, f"round {index}")
                self.assertEqual(self._order_price(), base + index, f"round {index}")
                time.sleep(0.05)
        finally:
            stop.set()
            for thread in threads:
                thread.join(timeout=60)
        self.assertFalse(errors, errors)
        self.assertFalse(stale, "reads older than a commit that had returned")
        self.assertGreater(len(reads), ROUNDS, "the readers raced the writer")

    def test_menu_right_with_redis_stopped_and_after_it_is_back(self):
        redis = OwnRedis()
        self.addCleanup(redis.close)
        redis.start()
        self.base = self._start_server(workers=2, env={"POS_API_REDIS_URL": redis.url})
        price, etag = self._menu_price()
        self.assertEqual(price, Decimal(str(self.price)))
        redis.stop()
        for _ in range(6):  # both workers, their breakers opening
            self.assertEqual(self._menu_price(), (price, etag))
        self._set_price(self.price + 3)
        for _ in range(6):
            new_price, new_etag = self._menu_price()
            self.assertEqual(new_price, price + 3, "the version is PostgreSQL's, not Redis's")
            self.assertNotEqual(new_etag, etag)
        self.assertEqual(self._order_price(), price + 3)
        redis.start()
        deadline = time.monotonic() + 6  # past the breakers' cool-down: Redis in use again
        while time.monotonic() < deadline:
            self.assertEqual(self._menu_price()[0], price + 3)
            time.sleep(0.2)
        self._set_price(self.price + 5)
        for _ in range(6):
            self.assertEqual(self._menu_price()[0], price + 5)
