"""Limits that hold for hostile clients, over real HTTP: body size on the
bytes read (chunked bodies too), nesting depth, numbers out of range, caps,
and error messages that do not leak Odoo's internals."""

import base64
import contextlib
import http.client
import json
import uuid
from unittest.mock import patch
from urllib.parse import urlsplit

from odoo.tests import tagged
from odoo.tools import mute_logger

from ..pos_core import api_spec, limits
from ..pos_core import audit as audit_engine
from .common import API, PosApiHttpCommon


@tagged("post_install", "-at_install")
class TestHostileInput(PosApiHttpCommon):
    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.p1 = cls.env["product.product"].search(
            [*cls.config._get_available_product_domain(), ("type", "!=", "combo")], limit=1
        )
        cls.cashier = cls._create_device("cashier")

    def _draft(self, lines=1):
        body = self._order_body([(self.p1, 1)] * lines)
        status, result = self._call("POST", "/orders", body, device=self.waiter)
        self.assertEqual(status, 201, result)
        return self.env["pos.order"].browse(result["order"]["id"])

    def _chunked(self, method, path, size, headers=None):
        """Send ``size`` bytes of JSON-looking body with Transfer-Encoding:
        chunked (no Content-Length); returns (status, headers, JSON)."""
        url = urlsplit(self.base_url())
        conn = http.client.HTTPConnection(url.hostname, url.port, timeout=60)
        chunk = b"x" * 65536

        def body():
            yield b'{"refresh_token": "'
            for _ in range(size // len(chunk)):
                yield chunk
            yield b'"}'

        try:
            # The server may answer and close before the body ends.
            with contextlib.suppress(BrokenPipeError, ConnectionResetError):
                conn.request(
                    method,
                    API + path,
                    body=body(),
                    headers={"Content-Type": "application/json", **(headers or {})},
                    encode_chunked=True,
                )
            response = conn.getresponse()
            return response.status, dict(response.getheaders()), json.loads(response.read())
        finally:
            conn.close()

    def test_chunked_bodies_over_the_limit_are_refused_on_every_route(self):
        order = self._draft()
        before = self.env["pos.payment"].search_count([])
        size = 4 * limits.MAX_BODY_BYTES
        auth = {"Authorization": f"Bearer {self._token(self.cashier)}"}
        cases = [
            ("POST", "/auth/refresh", {}),
            ("POST", "/orders", auth),
            ("POST", f"/orders/{order.id}/payments", {**auth, "Idempotency-Key": "k-413"}),
            ("POST", f"/orders/{order.id}/lines", auth),
            ("GET", "/orders", auth),  # a body on a route that takes none
            ("GET", "/health", {}),
        ]
        for method, path, headers in cases:
            with self.subTest(path=path, method=method):
                status, _headers, error = self._chunked(method, path, size, headers)
                self.assertEqual((status, error["error"]["code"]), (413, "payload_too_large"))
                self.assertEqual(error["error"]["details"], {"limit": limits.MAX_BODY_BYTES})
        self.assertEqual(self.env["pos.payment"].search_count([]), before)
        self.assertEqual(len(order.lines), 1)
        # A chunked body within the limit still works.
        status, _headers, result = self._chunked("GET", "/health", 1000)
        self.assertEqual(status, 200, result)

    @mute_logger("odoo.addons.point_of_sale_api.controllers.main")
    def test_deep_nesting_numbers_out_of_range_and_odd_literals_get_4xx(self):
        order = self._draft()
        before = self._count_orders()
        deep = b'{"uuid": "%s", "lines": ' % str(uuid.uuid4()).encode()
        deep += b"[" * 100_000 + b"]" * 100_000 + b"}"
        just_too_deep = b"[" * (limits.MAX_JSON_DEPTH + 1) + b"]" * (limits.MAX_JSON_DEPTH + 1)
        cursor = base64.urlsafe_b64encode(b'{"after": 1e400}').decode()
        huge = 2**31
        cases = [
            ("POST", "/orders", {"raw": deep}, 422, "json_too_deep"),
            ("POST", "/orders", {"raw": just_too_deep}, 422, "json_too_deep"),
            ("GET", f"/orders?cursor={cursor}", {}, 422, "invalid_cursor"),
            (
                "GET",
                "/orders?cursor=" + base64.urlsafe_b64encode(b'{"after": -1}').decode(),
                {},
                422,
                "invalid_cursor",
            ),
            ("GET", "/orders?cursor=" + "A" * 5000, {}, 422, "invalid_cursor"),
            ("GET", f"/orders/{huge}", {}, 422, "id_out_of_range"),
            ("GET", f"/orders/{10**30}", {}, 422, "id_out_of_range"),
            ("POST", f"/orders/{huge}/validate", {"body": {}}, 422, "id_out_of_range"),
            ("GET", f"/orders?table_id={huge * 4}", {}, 422, "invalid_filter"),
            ("GET", "/orders?limit=" + "9" * 5000, {}, 422, "invalid_filter"),
            (
                "POST",
                "/orders",
                {"body": {**self._order_body([(self.p1, 1)]), "table_id": huge}},
                422,
                "invalid_input",
            ),
            (
                "POST",
                "/orders",
                {"raw": b'{"uuid": "%s", "customer_count": 1e400}' % str(uuid.uuid4()).encode()},
                422,
                "invalid_input",
            ),
            (
                "POST",
                "/orders",
                {"raw": b'{"uuid": "%s", "customer_count": %s}' % (b"1", b"9" * 5000)},
                400,
                "malformed_json",
            ),
            (
                "POST",
                "/orders",
                {
                    "raw": b'{"uuid": "%s", "lines": [{"product_id": %d, "qty": 1, '
                    b'"discount": NaN}]}' % (str(uuid.uuid4()).encode(), self.p1.id)
                },
                400,
                "malformed_json",
            ),
            (
                "POST",
                f"/orders/{order.id}/bill",
                {"raw": b'{"tip": Infinity}'},
                400,
                "malformed_json",
            ),
            (
                "POST",
                f"/orders/{order.id}/bill",
                {"raw": b'{"tip": 1e400}'},
                422,
                "invalid_input",
            ),
        ]
        for method, path, kwargs, status, code in cases:
            with self.subTest(path=path[:80], code=code):
                got, error = self._call(method, path, device=self.waiter, **kwargs)
                self.assertEqual((got, error["error"]["code"]), (status, code), error)
                self.assertEqual(set(error["error"]), {"code", "message", "details"})
        self.assertEqual(self._count_orders(), before)

    def _count_orders(self):
        return self.env["pos.order"].search_count([("config_id", "=", self.config.id)])

    def test_lines_are_capped_per_batch_and_per_order_across_edits(self):
        before = self._count_orders()
        per_order = limits.MAX_BATCH_LINES // 10 + 1
        batch = {"orders": [self._order_body([(self.p1, 1)] * per_order) for _ in range(10)]}
        status, error = self._call("POST", "/orders/batch", batch, device=self.waiter)
        self.assertEqual((status, error["error"]["code"]), (422, "invalid_input"), error)
        self.assertIn(str(limits.MAX_BATCH_LINES), json.dumps(error["error"]["details"]))
        self.assertEqual(self._count_orders(), before)

        order = self._draft(lines=limits.MAX_LINES_PER_ORDER - 1)
        one_more = {"lines": [{"product_id": self.p1.id, "qty": "1"}]}
        status, result = self._call(
            "POST", f"/orders/{order.id}/lines", one_more, device=self.waiter
        )
        self.assertEqual(status, 200, result)
        status, error = self._call(
            "POST", f"/orders/{order.id}/lines", one_more, device=self.waiter
        )
        self.assertEqual((status, error["error"]["code"]), (422, "too_many_lines"), error)
        self.assertEqual(len(order.lines), limits.MAX_LINES_PER_ORDER)
        status, error = self._call("GET", "/orders?limit=201", device=self.waiter)
        self.assertEqual((status, error["error"]["code"]), (422, "invalid_filter"))

    def test_openapi_document_is_built_once_per_worker(self):
        api_spec.openapi_document.cache_clear()
        with patch.object(api_spec, "openapi", wraps=api_spec.openapi) as build:
            for _ in range(3):
                status, document = self._call("GET", "/openapi.json")
                self.assertEqual(status, 200)
        self.assertEqual(build.call_count, 1)
        self.assertEqual(document["servers"], [{"url": self.base_url()}])
        self.assertEqual(document["paths"], api_spec.openapi()["paths"])
        self.assertNotIn("servers", api_spec.openapi_document(), "the cached copy is untouched")

    def test_openapi_links_lead_from_a_created_order_to_the_routes_taking_its_id(self):
        status, document = self._call("GET", "/openapi.json")
        self.assertEqual(status, 200)
        links = document["paths"][f"{API}/orders"]["post"]["responses"]["201"]["links"]
        with_order_id = {
            operation["operationId"]
            for path, operations in document["paths"].items()
            if "{order_id}" in path
            for operation in operations.values()
        }
        self.assertEqual(set(links), with_order_id)
        self.assertIn("order_payments", links)
        for link in links.values():
            self.assertEqual(link["parameters"], {"order_id": "$response.body#/order/id"})
        order_id = document["paths"][f"{API}/orders/{{order_id}}"]["get"]["parameters"][0]
        self.assertEqual(order_id["schema"]["maximum"], limits.MAX_INT)

    def _paid_and_verified(self):
        """Pay an order, verify: the sequence of the check's head."""
        order = self._draft()
        total = f"{order.amount_total:.2f}"
        pay = {"payments": [{"payment_method_id": self.cash_method.id, "amount": total}]}
        status, result = self._call(
            "POST",
            f"/orders/{order.id}/payments",
            pay,
            device=self.cashier,
            headers={"Idempotency-Key": str(uuid.uuid4())},
        )
        self.assertEqual(status, 200, result)
        status, first = self._call("GET", "/audit/verify", device=self.manager)
        self.assertEqual(status, 200, first)
        self.assertTrue(first["ok"])
        check = self.env["pos.payment.audit.check"].search(
            [("company_id", "=", self.config.company_id.id)], limit=1
        )
        self.assertGreater(check.head_sequence, 0)
        return check.head_sequence

    def test_audit_verify_of_a_chain_cut_before_the_last_check_head(self):
        head = self._paid_and_verified()
        self.env.cr.execute(
            "ALTER TABLE pos_payment_audit DISABLE TRIGGER USER;"
            "DELETE FROM pos_payment_audit WHERE company_id = %s AND sequence >= %s;"
            "ALTER TABLE pos_payment_audit ENABLE TRIGGER USER;",
            (self.config.company_id.id, head),
        )
        status, result = self._call("GET", "/audit/verify", device=self.manager)
        self.assertEqual(status, 200, result)
        self.assertFalse(result["ok"])
        self.assertEqual(result["first_broken"]["reason"], audit_engine.TRUNCATED)

    def test_audit_verify_is_incremental_from_the_last_check(self):
        head = self._paid_and_verified()
        status, second = self._call("GET", "/audit/verify", device=self.manager)
        self.assertEqual(status, 200, second)
        # Only the last check's head is read again: nothing else changed.
        self.assertEqual(
            (second["ok"], second["since_sequence"], second["checked"]), (True, head, 1)
        )
        # A rewritten head record is found by the next incremental walk.
        audit = self.env["pos.payment.audit"].search(
            [("company_id", "=", self.config.company_id.id), ("sequence", "=", head)]
        )
        self.env.cr.execute(
            "ALTER TABLE pos_payment_audit DISABLE TRIGGER USER;"
            "UPDATE pos_payment_audit SET amount = amount + 1 WHERE id = %s;"
            "ALTER TABLE pos_payment_audit ENABLE TRIGGER USER;",
            (audit.id,),
        )
        status, third = self._call("GET", "/audit/verify", device=self.manager)
        self.assertEqual(status, 200, third)
        self.assertFalse(third["ok"])
        self.assertEqual(third["first_broken"]["id"], audit.id)

    @mute_logger("odoo.addons.point_of_sale_api.controllers.main")
    def test_access_errors_do_not_leak_users_or_record_rules(self):
        table = self.env["restaurant.table"].search(
            [("floor_id", "in", self.config.floor_ids.ids)], limit=1
        )
        self.assertTrue(table)
        self.env["ir.rule"].create(
            {
                "name": "Secret tables of the hostile test",
                "model_id": self.env.ref("pos_restaurant.model_restaurant_table").id,
                "domain_force": f"[('id', '!=', {table.id})]",
            }
        )
        body = {**self._order_body([(self.p1, 1)]), "table_id": table.id}
        status, error = self._call("POST", "/orders", body, device=self.waiter)
        self.assertEqual((status, error["error"]["code"]), (403, "access_denied"), error)
        text = json.dumps(error).lower()
        user = self.waiter.user_id
        for leak in (user.name.lower(), user.login.lower(), "rule", "restaurant.table", "id="):
            self.assertNotIn(leak, text)
