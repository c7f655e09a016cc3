"""Money rules of the device API over real HTTP: held authorizations freeze an
order, captures re-check the due, tips after payment follow pos_restaurant,
discounts follow the point of sale's rights, orders created in a later state
pass the checks they skip, money records are not writable over RPC, and the
audit's actor is not the caller's to choose."""

import json
import re
import uuid
from decimal import Decimal

from odoo import fields
from odoo.exceptions import AccessError, UserError
from odoo.tests import new_test_user, tagged

from ..pos_core import audit
from .common import PosApiHttpCommon


@tagged("post_install", "-at_install")
class TestMoneySafety(PosApiHttpCommon):
    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        products = cls.env["product.product"].search(
            [
                *cls.config._get_available_product_domain(),
                ("type", "!=", "combo"),
                ("list_price", ">", 1),
            ],
            limit=2,
        )
        cls.p1, cls.p2 = products
        cls.cashier = cls._create_device("cashier")
        cls.digits = cls.currency.decimal_places

    # ------------------------------------------------------------------
    # helpers
    # ------------------------------------------------------------------
    def _draft(self, lines=None, device=None):
        body = self._order_body(lines or [(self.p1, 2), (self.p2, 1)])
        status, result = self._call("POST", "/orders", body, device=device or self.waiter)
        self.assertEqual(status, 201, result)
        return self.env["pos.order"].browse(result["order"]["id"])

    def _money(self, amount):
        return str(Decimal(str(self.currency.round(amount))).quantize(Decimal(1).scaleb(-2)))

    def _post(self, path, body, device=None):
        return self._call(
            "POST",
            path,
            body,
            device=device or self.cashier,
            headers={"Idempotency-Key": str(uuid.uuid4())},
        )

    def _pay(self, order, method, amount, **extra):
        tender = {"payment_method_id": method.id, "amount": self._money(amount), **extra}
        return self._post(f"/orders/{order.id}/payments", {"payments": [tender]})

    def _paid(self, method=None):
        order = self._draft()
        status, result = self._pay(order, method or self.card_method, order.amount_total)
        self.assertEqual(status, 200, result)
        self.assertEqual(order.state, "paid")
        return order

    def _tip(self, order, amount, method=None):
        body = {"amount": self._money(amount)}
        if method:
            body["payment_method_id"] = method.id
        return self._post(f"/orders/{order.id}/tip", body)

    # ------------------------------------------------------------------
    # §1.2 authorizations and captures
    # ------------------------------------------------------------------
    def test_lines_cannot_change_while_an_authorization_is_held(self):
        order = self._draft()
        status, result = self._pay(order, self.card_method, order.amount_total, authorize_only=True)
        self.assertEqual(status, 200, result)
        authorization_id = result["order"]["authorizations"][0]["id"]
        line = order.lines[0]
        lines_before = order.lines.read(["qty", "discount", "price_unit"])
        total_before = order.amount_total
        attempts = [
            (
                "POST",
                f"/orders/{order.id}/lines",
                {"lines": [{"product_id": self.p1.id, "qty": "1"}]},
            ),
            ("PATCH", f"/orders/{order.id}/lines/{line.uuid}", {"qty": "5"}),
            ("DELETE", f"/orders/{order.id}/lines/{line.uuid}", None),
        ]
        for method, path, body in attempts:
            with self.subTest(method=method):
                status, error = self._call(method, path, body, device=self.waiter)
                self.assertEqual((status, error["error"]["code"]), (409, "authorization_held"))
        status, error = self._tip(order, 1.0)
        self.assertEqual((status, error["error"]["code"]), (409, "authorization_held"))
        # Nor through the POS UI's push of the same order.
        payload = self._ui_order_payload(
            order.session_id, [(self.p1, 3)], paid=False, order_uuid=order.uuid
        )
        with self.assertRaisesRegex(UserError, "card authorization"), self.env.cr.savepoint():
            self.env["pos.order"].sync_from_ui([payload])
        order.invalidate_recordset()
        self.assertEqual(order.lines.read(["qty", "discount", "price_unit"]), lines_before)
        self.assertEqual(order.amount_total, total_before)
        # Voided, the order is the waiter's again.
        status, result = self._post(
            f"/orders/{order.id}/authorizations/{authorization_id}/void", {}
        )
        self.assertEqual(status, 200, result)
        status, result = self._call("PATCH", attempts[1][1], {"qty": "5"}, device=self.waiter)
        self.assertEqual(status, 200, result)

    def test_capture_checks_what_is_still_due(self):
        order = self._draft()
        holds = (
            self.env["pos.api.authorization"]
            .sudo()
            .create(
                [
                    {
                        "company_id": order.company_id.id,
                        "order_id": order.id,
                        "payment_method_id": self.card_method.id,
                        "amount": self.currency.round(order.amount_total * 0.6),
                    }
                    for _index in range(2)
                ]
            )
        )
        status, result = self._post(f"/orders/{order.id}/authorizations/{holds[0].id}/capture", {})
        self.assertEqual(status, 200, result)
        status, error = self._post(f"/orders/{order.id}/authorizations/{holds[1].id}/capture", {})
        self.assertEqual((status, error["error"]["code"]), (409, "overpayment"), error)
        self.assertEqual(holds[1].state, "authorized")
        self.assertLessEqual(sum(order.payment_ids.mapped("amount")), order.amount_total)

    # ------------------------------------------------------------------
    # §1.3 tips after payment
    # ------------------------------------------------------------------
    def test_tip_after_payment_only_on_methods_pos_restaurant_adjusts(self):
        self.config.set_tip_after_payment = True
        order = self._paid(self.cash_method)
        status, error = self._tip(order, 1.0, self.cash_method)
        self.assertEqual((status, error["error"]["code"]), (422, "tip_not_adjustable"), error)
        self.assertFalse(order.is_tipped)
        self.assertAlmostEqual(order.amount_paid, order.amount_total, places=2)

    def test_tips_stay_within_the_ceiling_and_are_audited(self):
        self.config.set_tip_after_payment = True
        self.assertEqual(self.config.api_tip_limit_percent, 100.0, "default: the whole order")
        order = self._paid()
        total = order.amount_total
        status, error = self._tip(order, total + 1, self.card_method)
        self.assertEqual((status, error["error"]["code"]), (422, "tip_exceeds_limit"), error)
        self.config.api_tip_limit_percent = 10.0
        status, error = self._tip(order, total * 0.2, self.card_method)
        self.assertEqual((status, error["error"]["code"]), (422, "tip_exceeds_limit"), error)
        self.assertFalse(order.is_tipped)
        self.assertAlmostEqual(order.amount_paid, total, places=2)
        key = str(uuid.uuid4())
        tip = self.currency.round(total * 0.05)
        status, result = self._call(
            "POST",
            f"/orders/{order.id}/tip",
            {"amount": self._money(tip), "payment_method_id": self.card_method.id},
            device=self.cashier,
            headers={"Idempotency-Key": key},
        )
        self.assertEqual(status, 200, result)
        self.assertTrue(order.is_tipped)
        self.assertAlmostEqual(order.amount_paid, total + tip, places=2)
        rows = self.env["pos.payment.audit"].search(
            [("order_res_id", "=", order.id), ("idempotency_key", "=", key)]
        )
        self.assertEqual(rows.mapped("event"), [audit.VOIDED, audit.CAPTURED])
        self.assertEqual([row.amount for row in rows], [total, self.currency.round(total + tip)])
        self.assertEqual(rows.actor_device_id, self.cashier)
        # Before payment too: a tip beyond the ceiling is refused.
        draft = self._draft()
        status, error = self._tip(draft, draft.amount_total * 0.5)
        self.assertEqual((status, error["error"]["code"]), (422, "tip_exceeds_limit"), error)

    # ------------------------------------------------------------------
    # §1.4 discounts, and orders created in a later state
    # ------------------------------------------------------------------
    def test_line_discounts_follow_manual_discount(self):
        self.config.manual_discount = False
        body = self._order_body([(self.p1, 1)])
        body["lines"][0]["discount"] = "10"
        status, error = self._call("POST", "/orders", body, device=self.manager)
        self.assertEqual((status, error["error"]["code"]), (403, "discount_disabled"), error)
        self.assertFalse(self.env["pos.order"].search_count([("uuid", "=", body["uuid"])]))
        order = self._draft([(self.p1, 1)])
        line = order.lines
        status, error = self._call(
            "PATCH",
            f"/orders/{order.id}/lines/{line.uuid}",
            {"discount": "5"},
            device=self.waiter,
        )
        self.assertEqual((status, error["error"]["code"]), (403, "discount_disabled"), error)
        self.assertEqual(line.discount, 0.0)

    def test_line_discount_ceiling_per_role_with_managers_exempt(self):
        self.config.write({"manual_discount": True, "api_discount_limit_waiter": 10.0})

        def create(device, discount):
            body = self._order_body([(self.p1, 1)])
            body["lines"][0]["discount"] = discount
            return self._call("POST", "/orders", body, device=device)

        status, error = create(self.waiter, "15")
        self.assertEqual((status, error["error"]["code"]), (403, "discount_exceeds_limit"), error)
        status, result = create(self.waiter, "10")
        self.assertEqual(status, 201, result)
        status, result = create(self.manager, "50")
        self.assertEqual(status, 201, result)
        order = self.env["pos.order"].browse(result["order"]["id"])
        self.assertEqual(order.lines.discount, 50.0)
        status, error = self._call(
            "POST",
            f"/orders/{order.id}/lines",
            {"lines": [{"product_id": self.p2.id, "qty": "1", "discount": "11"}]},
            device=self.waiter,
        )
        self.assertEqual((status, error["error"]["code"]), (403, "discount_exceeds_limit"), error)

    def test_orders_created_validated_or_paid_pass_the_skipped_checks(self):
        for state in ("validated", "paid"):
            with self.subTest(state=state, check="empty"):
                body = self._order_body([], state=state)
                status, error = self._call("POST", "/orders", body, device=self.waiter)
                self.assertEqual((status, error["error"]["code"]), (422, "order_invalid"), error)
                codes = {problem["code"] for problem in error["error"]["details"]["problems"]}
                self.assertIn("empty_order", codes)
                self.assertFalse(self.env["pos.order"].search_count([("uuid", "=", body["uuid"])]))
        self.config.api_check_stock = True
        # A product of its own: earlier tests' committed orders may have moved
        # the demo products, whose tracking can then no longer change.
        dish = self.env["product.product"].create(
            {
                "name": "Stock-checked dish",
                "type": "consu",
                "is_storable": True,
                "available_in_pos": True,
                "list_price": self.p1.lst_price,
                "taxes_id": [fields.Command.set(self.p1.taxes_id.ids)],
                "pos_categ_ids": [fields.Command.set(self.p1.pos_categ_ids.ids)],
            }
        )
        self.assertLessEqual(dish.qty_available, 0)
        draft = self._draft([(dish, 1)])  # a draft is not checked yet
        total = draft.amount_total
        for state, pay in (("validated", None), ("paid", [(self.cash_method, total)])):
            with self.subTest(state=state, check="stock"):
                body = self._order_body([(dish, 1)], state=state, pay=pay)
                status, error = self._call("POST", "/orders", body, device=self.waiter)
                self.assertEqual((status, error["error"]["code"]), (422, "order_invalid"), error)
                codes = {problem["code"] for problem in error["error"]["details"]["problems"]}
                self.assertEqual(codes, {"insufficient_stock"})
                self.assertFalse(self.env["pos.order"].search_count([("uuid", "=", body["uuid"])]))

    def test_paid_order_without_payments_is_refused_unless_free(self):
        body = self._order_body([(self.p1, 1)], state="paid")
        status, error = self._call("POST", "/orders", body, device=self.waiter)
        self.assertEqual((status, error["error"]["code"]), (422, "payment_required"), error)
        self.assertFalse(self.env["pos.order"].search_count([("uuid", "=", body["uuid"])]))

    # ------------------------------------------------------------------
    # §1.5 money records over RPC, and the audit's actor
    # ------------------------------------------------------------------
    def _pos_user(self):
        return new_test_user(
            self.env,
            login="money_pos_user",
            password="money_pos_user",
            groups="point_of_sale.group_pos_user,base.group_user",
        )

    def _login(self, login):
        # ``session`` of the common set-up is the POS session; HttpCase's
        # authenticate keeps the web session under that name.
        self.session = None
        self.authenticate(login, login)

    def _call_kw(self, model, method, args, kwargs=None):
        response = self.url_open(
            f"/web/dataset/call_kw/{model}/{method}",
            data=json.dumps(
                {
                    "jsonrpc": "2.0",
                    "method": "call",
                    "id": 1,
                    "params": {
                        "model": model,
                        "method": method,
                        "args": args,
                        "kwargs": kwargs or {},
                    },
                }
            ),
            headers={"Content-Type": "application/json"},
        )
        self.assertEqual(response.status_code, 200)
        return response.json()

    def test_pos_users_cannot_write_authorizations(self):
        user = self._pos_user()
        order = self._draft()
        status, result = self._pay(order, self.card_method, order.amount_total, authorize_only=True)
        self.assertEqual(status, 200, result)
        authorization = (
            self.env["pos.api.authorization"].sudo().search([("order_id", "=", order.id)])
        )
        as_user = authorization.with_user(user)
        self.assertEqual(as_user.read(["state"])[0]["state"], "authorized")
        with self.assertRaises(AccessError):
            as_user.write({"amount": 0.01})
        with self.assertRaises(AccessError):
            as_user.write({"state": "voided"})
        with self.assertRaises(AccessError):
            self.env["pos.api.authorization"].with_user(user).create(
                {
                    "company_id": order.company_id.id,
                    "order_id": order.id,
                    "payment_method_id": self.card_method.id,
                    "amount": 1000.0,
                }
            )
        # Nor any other money record of the addon.
        for model in (
            "pos.api.authorization",
            "pos.payment.audit",
            "pos.payment.audit.check",
            "pos.api.idempotency",
            "pos.order.state.history",
        ):
            for operation in ("write", "create", "unlink"):
                with (
                    self.subTest(model=model, operation=operation),
                    self.assertRaises(AccessError),
                ):
                    self.env[model].with_user(user).check_access(operation)
        self._login("money_pos_user")
        answer = self._call_kw(
            "pos.api.authorization", "write", [authorization.ids, {"state": "captured"}]
        )
        self.assertEqual(answer["error"]["data"]["name"], "odoo.exceptions.AccessError")
        self.assertEqual(authorization.state, "authorized")
        self.assertEqual(authorization.amount, self.currency.round(order.amount_total))

    def test_audit_actor_is_not_chosen_by_the_callers_context(self):
        user = self._pos_user()
        order = self._draft()
        self._login("money_pos_user")
        answer = self._call_kw(
            "pos.order",
            "add_payment",
            [
                order.ids,
                {
                    "pos_order_id": order.id,
                    "amount": 1.0,
                    "payment_method_id": self.cash_method.id,
                },
            ],
            {"context": {"pos_api_device_id": self.cashier.id}},
        )
        self.assertNotIn("error", answer, answer)
        row = self.env["pos.payment.audit"].search([("order_res_id", "=", order.id)])
        self.assertEqual(row.event, audit.CAPTURED)
        self.assertEqual(row.actor_user_id, user)
        self.assertFalse(row.actor_device_id, "the caller named a device it is not")
        # Server code outside requests: a device is believed only as its own user.
        other = order.with_user(user).with_context(pos_api_device_id=self.cashier.id)
        other.add_payment(
            {"pos_order_id": order.id, "amount": 1.0, "payment_method_id": self.cash_method.id}
        )
        self.env.cr.precommit.run()
        rows = self.env["pos.payment.audit"].search([("order_res_id", "=", order.id)])
        self.assertEqual(len(rows), 2)
        self.assertFalse(rows.actor_device_id)

    # ------------------------------------------------------------------
    # §7 details a waiter-app developer notices
    # ------------------------------------------------------------------
    def test_split_bill_amounts_use_the_currency_decimals(self):
        order = self._draft([(self.p1, 1), (self.p2, 2)])
        decimals = re.compile(rf"^-?\d+\.\d{{{self.digits}}}$")
        for split in ({"mode": "equal", "parts": 3}, {"mode": "items", "groups": None}):
            if split["mode"] == "items":
                split["groups"] = [[line.uuid] for line in order.lines]
            with self.subTest(mode=split["mode"]):
                status, bill = self._call(
                    "POST", f"/orders/{order.id}/bill", {"split": split}, device=self.waiter
                )
                self.assertEqual(status, 200, bill)
                self.assertTrue(bill["parts"])
                amounts = [
                    value
                    for part in bill["parts"]
                    for key, value in part.items()
                    if key not in ("label", "line_uuids")
                ]
                amounts += [bill[key] for key in ("subtotal", "tax", "total", "total_due")]
                amounts += [line[key] for line in bill["lines"] for key in ("untaxed", "total")]
                amounts += [tax[key] for tax in bill["taxes"] for key in ("base", "amount")]
                for amount in amounts:
                    self.assertRegex(amount, decimals)

    def test_draft_order_has_its_reference_at_creation(self):
        status, result = self._call(
            "POST", "/orders", self._order_body([(self.p1, 1)]), device=self.waiter
        )
        self.assertEqual(status, 201, result)
        name = result["order"]["name"]
        self.assertNotEqual(name, "/")
        order = self.env["pos.order"].browse(result["order"]["id"])
        self.assertEqual(order.name, name)
        other = self._draft([(self.p1, 1)])
        self.assertNotEqual(other.name, name)
        status, result = self._pay(order, self.card_method, order.amount_total)
        self.assertEqual(status, 200, result)
        self.assertEqual(order.state, "paid")
        self.assertEqual(result["order"]["name"], name, "payment keeps the reference")
