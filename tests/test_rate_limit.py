"""Per-device rate limits over real HTTP, counted in the real Redis of the
configuration (or per worker when it is unreachable)."""

import os
from unittest.mock import patch

from odoo.tests import tagged
from odoo.tools import mute_logger

from .common import API, PosApiHttpCommon
from .server import free_port


@tagged("post_install", "-at_install")
class TestRateLimit(PosApiHttpCommon):
    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.p1 = cls.env["product.product"].search(
            [*cls.config._get_available_product_domain(), ("type", "!=", "combo")], limit=1
        )

    def _raw(self, method, path, device, body=None):
        return self.opener.request(
            method,
            self.base_url() + API + path,
            json=body,
            headers={"Authorization": f"Bearer {self._token(device)}"},
            timeout=60,
        )

    def _hammer_until_limited(self, device, order, budget):
        """Bill the order ``budget`` + 1 times: the first ``budget`` pass."""
        statuses = [
            self._raw("POST", f"/orders/{order['id']}/bill", device, {}).status_code
            for _ in range(budget)
        ]
        self.assertEqual(statuses, [200] * budget)
        return self._raw("POST", f"/orders/{order['id']}/bill", device, {})

    def _order(self, device):
        status, result = self._call(
            "POST", "/orders", self._order_body([(self.p1, 1)]), device=device
        )
        self.assertEqual(status, 201, result)
        return result["order"]

    def _assert_limited(self, response, rate_class, max_wait=60):
        self.assertEqual(response.status_code, 429, response.text)
        retry_after = int(response.headers["Retry-After"])
        self.assertTrue(max_wait / 2 <= retry_after <= max_wait, retry_after)
        error = response.json()["error"]
        self.assertEqual(set(error), {"code", "message", "details"})
        self.assertEqual(error["code"], "rate_limited")
        self.assertEqual(error["details"], {"class": rate_class, "retry_after": retry_after})

    def test_a_device_is_limited_per_route_class_and_others_are_not(self):
        other = self._create_device("waiter", name="Other waiter")
        order = self._order(self.waiter)
        with patch.dict(os.environ, {"POS_API_RATE_WRITE": "5/60"}):
            response = self._hammer_until_limited(self.waiter, order, 5)
            self._assert_limited(response, "write", 12)
            # Another device has its own bucket; the limited one may still read.
            self.assertEqual(self._raw("POST", "/orders", other, {}).status_code, 422)
            read = self._raw("GET", f"/orders/{order['id']}", self.waiter)
            self.assertEqual(read.status_code, 200)
            self._assert_limited(
                self._raw("POST", f"/orders/{order['id']}/bill", self.waiter, {}), "write", 12
            )
        # Off with rate_limit = 0.
        with patch.dict(os.environ, {"POS_API_RATE_WRITE": "5/60", "POS_API_RATE_LIMIT": "0"}):
            self.assertEqual(
                self._raw("POST", f"/orders/{order['id']}/bill", self.waiter, {}).status_code, 200
            )

    @mute_logger("odoo.addons.point_of_sale_api.pos_core.ratelimit")
    def test_without_redis_each_worker_still_limits(self):
        order = self._order(self.waiter)
        environ = {
            "POS_API_RATE_WRITE": "3/120",
            "POS_API_REDIS_URL": f"redis://127.0.0.1:{free_port()}/0",
        }
        with patch.dict(os.environ, environ):
            self._assert_limited(
                self._hammer_until_limited(self.waiter, order, 3), "write", max_wait=40
            )

    def test_audit_verification_is_rate_limited(self):
        with patch.dict(os.environ, {"POS_API_RATE_AUDIT": "2/600"}):
            for _ in range(2):
                self.assertEqual(self._raw("GET", "/audit/verify", self.manager).status_code, 200)
            self._assert_limited(self._raw("GET", "/audit/verify", self.manager), "audit", 300)
