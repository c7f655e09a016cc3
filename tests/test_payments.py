import uuid
from decimal import Decimal

from odoo.tests import tagged

from .common import PosApiHttpCommon


@tagged("post_install", "-at_install")
class TestPaymentApi(PosApiHttpCommon):
    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        products = cls.env["product.product"].search(
            [*cls.config._get_available_product_domain(), ("type", "!=", "combo")], limit=2
        )
        cls.p1, cls.p2 = products
        cls.cashier = cls._create_device("cashier")

    def _draft(self, lines=None):
        body = self._order_body(lines or [(self.p1, 2), (self.p2, 1)])
        status, result = self._call("POST", "/orders", body, device=self.waiter)
        self.assertEqual(status, 201, result)
        return self.env["pos.order"].browse(result["order"]["id"])

    def _pay(self, order, body, key=None, device=None):
        return self._call(
            "POST",
            f"/orders/{order.id}/payments",
            body,
            device=device or self.cashier,
            headers={"Idempotency-Key": key or str(uuid.uuid4())},
        )

    def test_multi_tender_with_cash_change_and_card_reference(self):
        order = self._draft()
        total = Decimal(str(order.amount_total)).quantize(Decimal("0.01"))
        card_part = (total / 2).quantize(Decimal("0.01"))
        cash_part = total - card_part
        status, result = self._pay(
            order,
            {
                "payments": [
                    {
                        "payment_method_id": self.card_method.id,
                        "amount": str(card_part),
                        "terminal_ref": "TRX-42",
                    },
                    {
                        "payment_method_id": self.cash_method.id,
                        "amount": str(cash_part),
                        "tendered": str(cash_part + 10),
                    },
                ]
            },
        )
        self.assertEqual(status, 200, result)
        self.assertEqual((order.api_state, order.state), ("paid", "paid"))
        payments = order.payment_ids
        change = payments.filtered("is_change")
        self.assertAlmostEqual(change.amount, -10.0, places=2)
        self.assertEqual(payments.filtered("transaction_id").transaction_id, "TRX-42")
        self.assertAlmostEqual(sum(payments.mapped("amount")), float(total), places=2)
        self.assertAlmostEqual(order.amount_paid, order.amount_total, places=2)
        self.assertTrue(any(p["is_change"] for p in result["order"]["payments"]))

    def test_partial_payment_keeps_the_order_open(self):
        order = self._draft()
        status, result = self._pay(
            order, {"payments": [{"payment_method_id": self.card_method.id, "amount": "1.00"}]}
        )
        self.assertEqual(status, 200, result)
        self.assertEqual((order.api_state, order.state), ("draft", "draft"))
        self.assertAlmostEqual(order.amount_paid, 1.0, places=2)

    def test_bad_payments_get_4xx_and_write_nothing(self):
        order = self._draft()
        too_much = str(Decimal(str(order.amount_total)) + 5)
        cases = [
            (
                "zero amount",
                {"payments": [{"payment_method_id": self.cash_method.id, "amount": "0"}]},
                422,
                "invalid_input",
            ),
            (
                "negative amount",
                {"payments": [{"payment_method_id": self.cash_method.id, "amount": "-3"}]},
                422,
                "invalid_input",
            ),
            (
                "overpayment",
                {"payments": [{"payment_method_id": self.card_method.id, "amount": too_much}]},
                422,
                "overpayment",
            ),
            (
                "unknown method",
                {"payments": [{"payment_method_id": 987654, "amount": "1"}]},
                422,
                "unknown_payment_method",
            ),
            (
                "currency mismatch",
                {
                    "payments": [
                        {"payment_method_id": self.card_method.id, "amount": "1", "currency": "XAF"}
                    ]
                },
                422,
                "currency_mismatch",
            ),
            (
                "change on a card",
                {
                    "payments": [
                        {"payment_method_id": self.card_method.id, "amount": "1", "tendered": "5"}
                    ]
                },
                422,
                "tendered_not_cash",
            ),
        ]
        for label, body, status, code in cases:
            with self.subTest(label):
                got, error = self._pay(order, body)
                self.assertEqual((got, error["error"]["code"]), (status, code), label)
        self.assertFalse(order.payment_ids)
        self.assertFalse(
            self.env["pos.api.idempotency"].search([("device_ref", "=", self.cashier.id)])
        )
        got, error = self._call(
            "POST",
            f"/orders/{order.id}/payments",
            {"payments": [{"payment_method_id": self.cash_method.id, "amount": "1"}]},
            device=self.cashier,
        )
        self.assertEqual((got, error["error"]["code"]), (400, "idempotency_key_required"))
        order.action_pos_order_cancel()
        got, error = self._pay(
            order, {"payments": [{"payment_method_id": self.cash_method.id, "amount": "1"}]}
        )
        self.assertEqual((got, error["error"]["code"]), (409, "order_cancelled"))

    def test_idempotency_key_replays_and_refuses_other_parameters(self):
        order = self._draft()
        body = {"payments": [{"payment_method_id": self.card_method.id, "amount": "2.00"}]}
        status, first = self._pay(order, body, key="pay-1")
        self.assertEqual(status, 200)
        status, again = self._pay(order, body, key="pay-1")
        self.assertEqual((status, again), (200, first))
        self.assertEqual(len(order.payment_ids), 1)
        body["payments"][0]["amount"] = "3.00"
        status, error = self._pay(order, body, key="pay-1")
        self.assertEqual((status, error["error"]["code"]), (409, "idempotency_mismatch"))
        self.assertEqual(len(order.payment_ids), 1)

    def test_tip_before_and_after_payment(self):
        order = self._draft()
        before = order.amount_total
        status, result = self._call(
            "POST",
            f"/orders/{order.id}/tip",
            {"amount": "2.00"},
            device=self.cashier,
            headers={"Idempotency-Key": str(uuid.uuid4())},
        )
        self.assertEqual(status, 200, result)
        self.assertAlmostEqual(order.amount_total, before + 2.0, places=2)
        self.assertIn(self.config.tip_product_id, order.lines.product_id)
        total = f"{order.amount_total:.2f}"
        self._pay(
            order, {"payments": [{"payment_method_id": self.card_method.id, "amount": total}]}
        )
        self.assertEqual(order.state, "paid")
        # pos_restaurant's rule: tips after payment only where the point of sale allows them.
        self.config.set_tip_after_payment = False
        status, error = self._call(
            "POST",
            f"/orders/{order.id}/tip",
            {"amount": "1.50", "payment_method_id": self.card_method.id},
            device=self.cashier,
            headers={"Idempotency-Key": str(uuid.uuid4())},
        )
        self.assertEqual((status, error["error"]["code"]), (409, "tip_after_payment_disabled"))
        self.assertFalse(order.is_tipped)
        self.config.set_tip_after_payment = True
        status, error = self._call(
            "POST",
            f"/orders/{order.id}/tip",
            {"amount": "1.50"},
            device=self.cashier,
            headers={"Idempotency-Key": str(uuid.uuid4())},
        )
        self.assertEqual((status, error["error"]["code"]), (422, "payment_method_required"))
        status, result = self._call(
            "POST",
            f"/orders/{order.id}/tip",
            {"amount": "1.50", "payment_method_id": self.card_method.id},
            device=self.cashier,
            headers={"Idempotency-Key": str(uuid.uuid4())},
        )
        self.assertEqual(status, 200, result)
        self.assertTrue(order.is_tipped)
        self.assertAlmostEqual(order.amount_paid, float(total) + 1.5, places=2)
        self.assertAlmostEqual(order.amount_total, order.amount_paid, places=2)

    def _paid(self):
        order = self._draft()
        self._pay(
            order,
            {
                "payments": [
                    {
                        "payment_method_id": self.card_method.id,
                        "amount": f"{order.amount_total:.2f}",
                    }
                ]
            },
        )
        self.assertEqual(order.state, "paid")
        return order

    def _refund(self, order, body, key=None):
        return self._call(
            "POST",
            f"/orders/{order.id}/refund",
            body,
            device=self.cashier,
            headers={"Idempotency-Key": key or str(uuid.uuid4())},
        )

    def test_partial_then_full_refund(self):
        order = self._paid()
        line = order.lines.filtered(lambda line: line.qty == 2)
        status, result = self._refund(
            order,
            {
                "payment_method_id": self.card_method.id,
                "lines": [{"line_uuid": line.uuid, "qty": "1"}],
            },
        )
        self.assertEqual(status, 200, result)
        refund = self.env["pos.order"].browse(result["refund"]["id"])
        self.assertEqual(refund.lines.qty, -1)
        self.assertEqual(refund.state, "paid")
        self.assertAlmostEqual(refund.amount_paid, refund.amount_total, places=2)
        self.assertLess(refund.amount_total, 0)
        self.assertEqual(order.api_state, "paid", "a partial refund does not cancel")
        status, error = self._refund(
            order,
            {
                "payment_method_id": self.card_method.id,
                "lines": [{"line_uuid": line.uuid, "qty": "2"}],
            },
        )
        self.assertEqual((status, error["error"]["code"]), (422, "refund_exceeds_paid"))
        status, result = self._refund(order, {"payment_method_id": self.card_method.id})
        self.assertEqual(status, 200, result)
        self.assertEqual((order.api_state, order.state), ("cancel", "paid"))
        refunds = order.lines.refund_orderline_ids.order_id
        self.assertAlmostEqual(sum(refunds.mapped("amount_total")), -order.amount_total, places=2)
        status, error = self._refund(order, {"payment_method_id": self.card_method.id})
        self.assertEqual((status, error["error"]["code"]), (409, "nothing_to_refund"))

    def test_cancelling_a_paid_order_refunds_it(self):
        order = self._paid()
        status, result = self._call(
            "POST", f"/orders/{order.id}/cancel", {"reason": "oops"}, device=self.cashier
        )
        self.assertEqual(status, 200, result)
        self.assertEqual(
            (order.api_state, order.state, order.api_refunded), ("cancel", "paid", True)
        )
        refund = order.lines.refund_orderline_ids.order_id
        self.assertAlmostEqual(refund.amount_total, -order.amount_total, places=2)
        self.assertAlmostEqual(sum(refund.payment_ids.mapped("amount")), -order.amount_paid, 2)

    def test_refund_of_unpaid_or_foreign_order_is_refused(self):
        order = self._draft()
        status, error = self._refund(order, {"payment_method_id": self.card_method.id})
        self.assertEqual((status, error["error"]["code"]), (409, "not_paid"))
        status, error = self._call(
            "POST",
            "/orders/987654/refund",
            {"payment_method_id": self.card_method.id},
            device=self.cashier,
            headers={"Idempotency-Key": str(uuid.uuid4())},
        )
        self.assertEqual(status, 404)

    def test_audit_verification_endpoint_is_for_managers(self):
        self._paid()
        status, result = self._call("GET", "/audit/verify", device=self.manager)
        self.assertEqual(status, 200, result)
        self.assertTrue(result["ok"])
        self.assertGreater(result["checked"], 0)
        self.assertIsNone(result["first_broken"])
        status, error = self._call("GET", "/audit/verify", device=self.cashier)
        self.assertEqual((status, error["error"]["code"]), (403, "role_forbidden"))

    def test_card_authorization_capture_and_void_are_audited(self):
        order = self._draft()
        audit = self.env["pos.payment.audit"]
        total = f"{order.amount_total:.2f}"
        status, result = self._pay(
            order,
            {
                "payments": [
                    {
                        "payment_method_id": self.card_method.id,
                        "amount": total,
                        "authorize_only": True,
                        "terminal_ref": "AUTH-1",
                    }
                ]
            },
        )
        self.assertEqual(status, 200, result)
        self.assertEqual(order.state, "draft", "an authorization pays nothing yet")
        self.assertFalse(order.payment_ids)
        [authorization] = result["order"]["authorizations"]
        self.assertEqual(authorization["state"], "authorized")
        events = audit.search([("order_res_id", "=", order.id)]).mapped("event")
        self.assertEqual(events, ["authorized"])
        path = f"/orders/{order.id}/authorizations/{authorization['id']}"
        key = str(uuid.uuid4())
        status, result = self._call(
            "POST", f"{path}/capture", {}, device=self.cashier, headers={"Idempotency-Key": key}
        )
        self.assertEqual(status, 200, result)
        self.assertEqual((order.state, order.api_state), ("paid", "paid"))
        self.assertEqual(order.payment_ids.transaction_id, "AUTH-1")
        status, error = self._call(
            "POST",
            f"{path}/void",
            {},
            device=self.cashier,
            headers={"Idempotency-Key": str(uuid.uuid4())},
        )
        self.assertEqual((status, error["error"]["code"]), (409, "authorization_closed"))
        self.assertEqual(
            audit.search([("order_res_id", "=", order.id)]).mapped("event"),
            ["authorized", "captured"],
        )
        other = self._draft()
        status, result = self._pay(
            other,
            {
                "payments": [
                    {
                        "payment_method_id": self.card_method.id,
                        "amount": "5.00",
                        "authorize_only": True,
                    }
                ]
            },
        )
        auth_id = result["order"]["authorizations"][0]["id"]
        status, result = self._call(
            "POST",
            f"/orders/{other.id}/authorizations/{auth_id}/void",
            {},
            device=self.cashier,
            headers={"Idempotency-Key": str(uuid.uuid4())},
        )
        self.assertEqual(status, 200, result)
        self.assertEqual(result["order"]["authorizations"][0]["state"], "voided")
        self.assertEqual(
            audit.search([("order_res_id", "=", other.id)]).mapped("event"),
            ["authorized", "voided"],
        )
        self.assertTrue(audit._verify(self.env.company)["ok"])

    def test_declined_card_is_a_failed_event_and_pays_nothing(self):
        order = self._draft()
        body = {
            "payments": [
                {
                    "payment_method_id": self.card_method.id,
                    "amount": "3.00",
                    "declined": True,
                    "terminal_ref": "DECL-9",
                }
            ]
        }
        status, error = self._pay(order, body, key="declined-1")
        self.assertEqual((status, error["error"]["code"]), (402, "payment_declined"))
        self.assertFalse(order.payment_ids)
        self.assertEqual(order.state, "draft")
        failed = self.env["pos.payment.audit"].search([("order_res_id", "=", order.id)])
        self.assertEqual(failed.mapped("event"), ["failed"])
        self.assertEqual(failed.terminal_ref, "DECL-9")
        again, replay = self._pay(order, body, key="declined-1")
        self.assertEqual((again, replay), (status, error))
        self.assertEqual(
            len(self.env["pos.payment.audit"].search([("order_res_id", "=", order.id)])), 1
        )
