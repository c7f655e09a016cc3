import json
import uuid
from decimal import Decimal

from odoo.tests import tagged

from ..models.pos_api_device import api_settings
from ..pos_core import api_spec
from .common import PosApiHttpCommon


@tagged("post_install", "-at_install")
class TestOrderApi(PosApiHttpCommon):
    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        products = cls.env["product.product"].search(
            [*cls.config._get_available_product_domain(), ("type", "!=", "combo")], limit=3
        )
        cls.p1, cls.p2, cls.p3 = products

    def _count_orders(self):
        return self.env["pos.order"].search_count([("config_id", "=", self.config.id)])

    def _create(self, body, device=None):
        return self._call("POST", "/orders", body, device=device or self.waiter)

    def test_create_draft_then_replay_returns_the_first_response(self):
        body = self._order_body([(self.p1, 2), (self.p2, 1)])
        status, first = self._create(body)
        self.assertEqual(status, 201, first)
        order = self.env["pos.order"].browse(first["order"]["id"])
        self.assertEqual(order.uuid, body["uuid"])
        self.assertEqual((order.api_state, order.state), ("draft", "draft"))
        self.assertEqual(len(order.lines), 2)
        self.assertEqual(
            Decimal(first["order"]["amount_total"]),
            Decimal(str(order.amount_total)).quantize(Decimal("0.01")),
        )
        # Odoo's own computation agrees with the engine's amounts.
        expected_total = sum(
            line._compute_amount_line_all()["price_subtotal_incl"] for line in order.lines
        )
        self.assertAlmostEqual(order.amount_total, expected_total, places=2)
        order.lines[0].write({"customer_note": "changed after creation"})
        status, again = self._create(body)
        self.assertEqual(status, 201)
        self.assertEqual(again, first)
        self.assertEqual(self.env["pos.order"].search_count([("uuid", "=", body["uuid"])]), 1)
        status, error = self._create({**body, "lines": body["lines"][:1]})
        self.assertEqual(status, 409)
        self.assertEqual(error["error"]["code"], "idempotency_mismatch")

    def test_replay_is_answered_even_when_the_order_would_now_be_refused(self):
        partner = self.env["res.partner"].create({"name": "Regular guest"})
        body = self._order_body([(self.p1, 1)], partner_id=partner.id)
        status, first = self._create(body)
        self.assertEqual(status, 201, first)
        partner.active = False  # a new order for this guest is now refused ...
        status, error = self._create(self._order_body([(self.p1, 1)], partner_id=partner.id))
        self.assertEqual((status, error["error"]["code"]), (422, "unknown_partner"))
        status, again = self._create(body)  # ... but the retry of the first is answered
        self.assertEqual((status, again), (201, first))
        self.assertEqual(self.env["pos.order"].search_count([("uuid", "=", body["uuid"])]), 1)

    def test_create_paid_order_is_paid_in_both_states_and_followed_up(self):
        total = self._quote([(self.p1, 2), (self.p2, 1), (self.p3, 1)])
        body = self._order_body(
            [(self.p1, 2), (self.p2, 1), (self.p3, 1)],
            state="paid",
            pay=[(self.cash_method, total)],
        )
        status, result = self._create(body)
        self.assertEqual(status, 201, result)
        order = self.env["pos.order"].browse(result["order"]["id"])
        self.assertEqual((order.api_state, order.state), ("paid", "paid"))
        self.assertEqual(order.payment_ids.amount, float(total))
        self.assertTrue(order.api_followup_pending)
        self.assertEqual(
            [(row.from_state, row.to_state) for row in order.api_state_history_ids],
            [("draft", "validated"), ("validated", "paid")],
        )
        # One batch that takes every pending order, this one included.
        orders = self.env["pos.order"]
        pending = orders.search_count(orders._api_followup_domain())
        self.env["pos.order"]._cron_api_followup(batch_size=pending)
        self.assertFalse(order.api_followup_pending)
        self.assertTrue(order.picking_ids, "the follow-up makes the stock picking")

    def _quote(self, products):
        """The total of a draft order with these products, then cancelled."""
        status, result = self._create(self._order_body(products))
        self.assertEqual(status, 201)
        order = self.env["pos.order"].browse(result["order"]["id"])
        order.action_pos_order_cancel()
        return Decimal(result["order"]["amount_total"])

    def test_underpaid_order_is_refused_and_nothing_is_written(self):
        before = self._count_orders()
        body = self._order_body([(self.p1, 1)], state="paid", pay=[(self.cash_method, "0.01")])
        status, error = self._create(body)
        self.assertEqual(status, 409, error)
        self.assertEqual(error["error"]["code"], "not_fully_paid")
        self.assertEqual(self._count_orders(), before)

    def test_bad_input_gets_a_clear_4xx_and_writes_nothing(self):
        before = self._count_orders()
        good = self._order_body([(self.p1, 1)])
        other_company = self.env["res.company"].create({"name": "Other Restaurant Co"})
        foreign_product = self.env["product.product"].create(
            {
                "name": "Foreign dish",
                "available_in_pos": True,
                "company_id": other_company.id,
            }
        )
        cases = [
            ("malformed JSON", {"raw": b"{not json"}, 400, "malformed_json"),
            ("unknown field", {"body": {**good, "colour": "red"}}, 422, "invalid_input"),
            ("missing field", {"body": {"lines": good["lines"]}}, 422, "invalid_input"),
            (
                "wrong type",
                {"body": {**good, "lines": [{"product_id": "one", "qty": 1}]}},
                422,
                "invalid_input",
            ),
            (
                "negative qty",
                {"body": {**good, "lines": [{"product_id": self.p1.id, "qty": -1}]}},
                422,
                "invalid_input",
            ),
            (
                "unknown product",
                {"body": {**good, "lines": [{"product_id": 987654, "qty": 1}]}},
                422,
                "unknown_product",
            ),
            (
                "other company's product",
                {"body": {**good, "lines": [{"product_id": foreign_product.id, "qty": 1}]}},
                422,
                "unknown_product",
            ),
            ("unknown table", {"body": {**good, "table_id": 987654}}, 422, "unknown_table"),
            (
                "not JSON content type",
                {"body": good, "headers": {"Content-Type": "text/plain"}},
                415,
                "unsupported_media_type",
            ),
            (
                "oversized body",
                {"raw": b'{"uuid": "' + b"x" * (1024 * 1024 + 10) + b'"}'},
                413,
                "payload_too_large",
            ),
        ]
        for label, kwargs, status, code in cases:
            with self.subTest(label):
                got_status, error = self._call("POST", "/orders", device=self.waiter, **kwargs)
                self.assertEqual(got_status, status, (label, error))
                self.assertEqual(error["error"]["code"], code, label)
                self.assertEqual(set(error["error"]), {"code", "message", "details"})
        self.assertEqual(self._count_orders(), before)

    def test_authentication_roles_and_revocation(self):
        status, error = self._call("GET", "/orders")
        self.assertEqual((status, error["error"]["code"]), (401, "missing_token"))
        status, error = self._call("GET", "/orders", token="not.a.jwt")
        self.assertEqual((status, error["error"]["code"]), (401, "invalid_token"))
        token = self._token(self.waiter)
        self.assertEqual(self._call("GET", "/orders", token=token)[0], 200)
        self.waiter.action_revoke_tokens()
        status, error = self._call("GET", "/orders", token=token)
        self.assertEqual((status, error["error"]["code"]), (401, "token_revoked"))
        # A kitchen display may bump tickets but never take money or create orders.
        status, created = self._create(self._order_body([(self.p1, 1)]))
        order_id = created["order"]["id"]
        status, error = self._call("POST", f"/orders/{order_id}/pay", {}, device=self.kitchen)
        self.assertEqual((status, error["error"]["code"]), (403, "role_forbidden"))
        status, error = self._create(self._order_body([(self.p1, 1)]), device=self.kitchen)
        self.assertEqual(status, 403)
        self.assertEqual(self._call("GET", f"/orders/{order_id}", device=self.kitchen)[0], 200)

    def test_refresh_rotates_and_a_reused_refresh_token_revokes_the_device(self):
        pair = self.manager._issue_tokens()
        status, rotated = self._call("POST", "/auth/refresh", {"refresh_token": pair.refresh_token})
        self.assertEqual(status, 200, rotated)
        self.assertNotEqual(rotated["refresh_token"], pair.refresh_token)
        self.assertEqual(self._call("GET", "/orders", token=rotated["access_token"])[0], 200)
        # Reused after the grace window for retries (see test_device_security).
        self.manager.sudo().tokens_issued_at -= api_settings().refresh_grace_seconds + 1
        self.env.flush_all()
        status, error = self._call("POST", "/auth/refresh", {"refresh_token": pair.refresh_token})
        self.assertEqual((status, error["error"]["code"]), (401, "refresh_reused"))
        status, error = self._call("GET", "/orders", token=rotated["access_token"])
        self.assertEqual((status, error["error"]["code"]), (401, "token_revoked"))

    def test_companies_are_isolated(self):
        other_company = self.env["res.company"].create({"name": "Other Bistro Co"})
        other_config = (
            self.env["pos.config"]
            .sudo()
            .with_company(other_company)
            .create(
                {
                    "name": "Other Bistro",
                    "company_id": other_company.id,
                    "payment_method_ids": [(6, 0, [])],
                }
            )
        )
        other_device = self._create_device("manager", config=other_config)
        status, created = self._create(self._order_body([(self.p1, 1)]))
        order_id = created["order"]["id"]
        status, error = self._call("GET", f"/orders/{order_id}", device=other_device)
        self.assertEqual((status, error["error"]["code"]), (404, "not_found"))
        status, error = self._call("POST", f"/orders/{order_id}/cancel", {}, device=other_device)
        self.assertEqual(status, 404)
        self.assertEqual(self.env["pos.order"].browse(order_id).api_state, "draft")

    def test_lines_change_only_while_draft(self):
        status, created = self._create(self._order_body([(self.p1, 1)]))
        order = created["order"]
        path = f"/orders/{order['id']}/lines"
        line_uuid = str(uuid.uuid4())
        status, added = self._call(
            "POST",
            path,
            {"lines": [{"uuid": line_uuid, "product_id": self.p2.id, "qty": "2"}]},
            device=self.waiter,
        )
        self.assertEqual(status, 200, added)
        self.assertEqual(len(added["order"]["lines"]), 2)
        self.assertGreater(Decimal(added["order"]["amount_total"]), Decimal(order["amount_total"]))
        status, patched = self._call(
            "PATCH", f"{path}/{line_uuid}", {"qty": "3"}, device=self.waiter
        )
        self.assertEqual(status, 200, patched)
        line = next(line for line in patched["order"]["lines"] if line["uuid"] == line_uuid)
        self.assertEqual(Decimal(line["qty"]), 3)
        status, error = self._call(
            "PATCH", f"{path}/{line_uuid}", {"price_unit": "0.10"}, device=self.waiter
        )
        self.assertEqual((status, error["error"]["code"]), (403, "price_override_forbidden"))
        status, patched = self._call(
            "PATCH", f"{path}/{line_uuid}", {"price_unit": "1.00"}, device=self.manager
        )
        self.assertEqual(status, 200, patched)
        status, removed = self._call("DELETE", f"{path}/{line_uuid}", device=self.waiter)
        self.assertEqual(status, 200)
        self.assertEqual(len(removed["order"]["lines"]), 1)
        self.assertEqual(removed["order"]["amount_total"], order["amount_total"])
        status, error = self._call("DELETE", f"{path}/{uuid.uuid4()}", device=self.waiter)
        self.assertEqual(status, 404)
        self.assertEqual(
            self._call("POST", f"/orders/{order['id']}/validate", {}, device=self.waiter)[0], 200
        )
        status, error = self._call(
            "POST", path, {"lines": [{"product_id": self.p2.id, "qty": "1"}]}, device=self.waiter
        )
        self.assertEqual((status, error["error"]["code"]), (409, "order_not_draft"))

    def test_pay_first_lifecycle_through_the_endpoints(self):
        status, created = self._create(self._order_body([(self.p1, 1)]))
        order_id = created["order"]["id"]
        status, error = self._call("POST", f"/orders/{order_id}/prepare", {}, device=self.kitchen)
        self.assertEqual((status, error["error"]["code"]), (409, "illegal_transition"))
        self.assertEqual(error["error"]["details"]["allowed"], ["cancel", "validated"])
        order = self.env["pos.order"].browse(order_id)
        self.assertFalse(order.api_state_history_ids)
        self.assertEqual(
            self._call("POST", f"/orders/{order_id}/validate", {}, device=self.waiter)[0], 200
        )
        status, error = self._call("POST", f"/orders/{order_id}/pay", {}, device=self.waiter)
        self.assertEqual((status, error["error"]["code"]), (409, "not_fully_paid"))
        order.add_payment(
            {
                "pos_order_id": order.id,
                "amount": order.amount_total,
                "payment_method_id": self.cash_method.id,
            }
        )
        for target, device in (
            ("pay", self.waiter),
            ("prepare", self.kitchen),
            ("ready", self.kitchen),
            ("done", self.waiter),
        ):
            status, result = self._call(
                "POST", f"/orders/{order_id}/{target}", {"reason": f"step {target}"}, device=device
            )
            self.assertEqual(status, 200, (target, result))
        order.invalidate_recordset()
        self.assertEqual((order.api_state, order.state), ("done", "paid"))
        self.assertTrue(order.kitchen_started_at and order.kitchen_ready_at)
        self.assertLessEqual(order.kitchen_started_at, order.kitchen_ready_at)
        history = result["order"]["history"]
        self.assertEqual(
            [(row["from_state"], row["to_state"]) for row in history],
            [
                ("draft", "validated"),
                ("validated", "paid"),
                ("paid", "preparing"),
                ("preparing", "ready"),
                ("ready", "done"),
            ],
        )
        self.assertEqual(history[-1]["reason"], "step done")
        self.assertEqual(history[-1]["device_id"], self.waiter.id)

    def test_bill_is_computed_without_writing(self):
        status, created = self._create(self._order_body([(self.p1, 2), (self.p2, 1)]))
        order = self.env["pos.order"].browse(created["order"]["id"])
        write_date = order.write_date
        status, bill = self._call(
            "POST",
            f"/orders/{order.id}/bill",
            {
                "service_charge": {"kind": "percent", "value": "10"},
                "tip": "2.50",
                "split": {"mode": "equal", "parts": 3},
            },
            device=self.waiter,
        )
        self.assertEqual(status, 200, bill)
        self.assertEqual(Decimal(bill["tip"]), Decimal("2.50"))
        self.assertGreater(Decimal(bill["service_charge"]), 0)
        self.assertEqual(len(bill["parts"]), 3)
        self.assertEqual(
            sum(Decimal(part["total_due"]) for part in bill["parts"]), Decimal(bill["total_due"])
        )
        order.invalidate_recordset()
        self.assertEqual(order.write_date, write_date)
        self.assertEqual(
            Decimal(str(order.amount_total)).quantize(Decimal("0.01")),
            Decimal(created["order"]["amount_total"]),
        )

    def test_list_filters_and_cursor_pagination(self):
        table = self.config.floor_ids.table_ids[:1]
        created = {
            self._create(self._order_body([(self.p1, 1)], table_id=table.id))[1]["order"]["id"]
            for _index in range(5)
        }
        seen, cursor, pages = [], None, 0
        while True:
            query = f"?table_id={table.id}&limit=2" + (f"&cursor={cursor}" if cursor else "")
            status, page = self._call("GET", "/orders" + query, device=self.waiter)
            self.assertEqual(status, 200, page)
            seen += [order["id"] for order in page["orders"]]
            pages += 1
            cursor = page["next_cursor"]
            if not cursor or pages > 50:
                break
        self.assertTrue(created <= set(seen))
        self.assertEqual(len(seen), len(set(seen)), "a page repeated an order")
        self.assertGreaterEqual(pages, 3)
        status, page = self._call("GET", "/orders?state=cancel", device=self.waiter)
        self.assertTrue(all(order["state"] == "cancel" for order in page["orders"]))
        for bad in ("?state=eaten", "?limit=0", "?cursor=garbage", "?updated_since=yesterday"):
            status, _error = self._call("GET", "/orders" + bad, device=self.waiter)
            self.assertEqual(status, 422, bad)

    def test_batch_gives_each_order_its_own_result(self):
        good = [self._order_body([(self.p1, 1)]) for _index in range(2)]
        bad = self._order_body([(self.p1, 1)])
        bad["lines"][0]["product_id"] = 987654
        status, result = self._call(
            "POST", "/orders/batch", {"orders": [good[0], bad, good[1]]}, device=self.waiter
        )
        self.assertEqual(status, 200, result)
        self.assertEqual([row["status"] for row in result["results"]], [201, 422, 201])
        self.assertEqual(result["results"][1]["error"]["code"], "unknown_product")
        self.assertEqual(self.env["pos.order"].search_count([("uuid", "=", bad["uuid"])]), 0)
        self.assertEqual(
            self.env["pos.order"].search_count([("uuid", "in", [body["uuid"] for body in good])]), 2
        )
        repeated = self._order_body([(self.p2, 1)])
        changed = {**repeated, "lines": [{"product_id": self.p3.id, "qty": "1"}]}
        status, inner = self._call(
            "POST", "/orders/batch", {"orders": [repeated, repeated, changed]}, device=self.waiter
        )
        self.assertEqual([row["status"] for row in inner["results"]], [201, 201, 409])
        self.assertEqual(inner["results"][0]["order"], inner["results"][1]["order"])
        self.assertEqual(self.env["pos.order"].search_count([("uuid", "=", repeated["uuid"])]), 1)
        status, again = self._call("POST", "/orders/batch", {"orders": good}, device=self.waiter)
        self.assertEqual([row["status"] for row in again["results"]], [201, 201])
        self.assertEqual(again["results"][0]["order"], result["results"][0]["order"])

    def test_openapi_lists_every_route(self):
        status, document = self._call("GET", "/openapi.json")
        self.assertEqual(status, 200)
        self.assertEqual(document["openapi"], "3.1.0")
        documented = {
            (path, method.upper()) for path, item in document["paths"].items() for method in item
        }
        routing = self.env["ir.http"].routing_map()
        registered = set()
        for rule in routing.iter_rules():
            if not rule.rule.startswith(api_spec.PREFIX) or "<path:" in rule.rule:
                continue
            path = rule.rule.replace("<int:", "{").replace("<string:", "{").replace(">", "}")
            for method in rule.methods or ():
                if method not in ("HEAD", "OPTIONS"):
                    registered.add((path, method))
        self.assertTrue(registered)
        self.assertEqual(registered - documented, set(), "routes missing from the OpenAPI doc")
        self.assertIn("OrderCreate", document["components"]["schemas"])
        json.dumps(document)
