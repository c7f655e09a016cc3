"""Idempotency keys and order uuids belong to the device that used them, and
a replay passes the checks of a first call."""

import uuid

from odoo.tests import tagged

from .common import PosApiHttpCommon


@tagged("post_install", "-at_install")
class TestIdempotencyScope(PosApiHttpCommon):
    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        products = cls.env["product.product"].search(
            [*cls.config._get_available_product_domain(), ("type", "!=", "combo")], limit=2
        )
        cls.p1, cls.p2 = products
        cls.cashier = cls._create_device("cashier", name="Till A")
        cls.other_cashier = cls._create_device("cashier", name="Till B")
        other_config = cls.env["pos.config"].search([("id", "!=", cls.config.id)], limit=1)
        cls.elsewhere = cls._create_device("cashier", other_config, name="Till at the bar")

    def _create(self, body, device):
        return self._call("POST", "/orders", body, device=device)

    def _pay(self, order_id, key, device, amount="1.00"):
        return self._call(
            "POST",
            f"/orders/{order_id}/payments",
            {"payments": [{"payment_method_id": self.cash_method.id, "amount": amount}]},
            device=device,
            headers={"Idempotency-Key": key},
        )

    def test_order_uuid_of_another_device_is_a_conflict(self):
        body = self._order_body([(self.p1, 1)])
        status, first = self._create(body, self.cashier)
        self.assertEqual(status, 201, first)
        status, again = self._create(body, self.cashier)
        self.assertEqual((status, again), (201, first), "the device's own retry is replayed")
        for device in (self.other_cashier, self.elsewhere):
            status, result = self._create(body, device)
            self.assertEqual(status, 409, result)
            self.assertEqual(result["error"]["code"], "uuid_conflict")
            self.assertNotIn("order", result)
            status, batch = self._call("POST", "/orders/batch", {"orders": [body]}, device=device)
            self.assertEqual(status, 200, batch)
            self.assertEqual(batch["results"][0]["status"], 409)
            self.assertIsNone(batch["results"][0].get("order"))
        self.assertEqual(self.env["pos.order"].search_count([("uuid", "=", body["uuid"])]), 1)

    def test_order_replay_checks_the_order_is_still_visible_to_the_device(self):
        body = self._order_body([(self.p1, 1)])
        status, first = self._create(body, self.cashier)
        self.assertEqual(status, 201, first)
        order = self.env["pos.order"].browse(first["order"]["id"])
        other_session = self._open_session(self.elsewhere.config_id)
        order.sudo().session_id = other_session  # moved to the bar's till
        status, result = self._create(body, self.cashier)
        self.assertEqual(status, 404, result)
        self.assertEqual(result["error"]["code"], "not_found")

    def test_a_key_is_neither_replayed_to_nor_squatted_by_another_device(self):
        key = str(uuid.uuid4())
        _status, mine = self._create(self._order_body([(self.p1, 2)]), self.cashier)
        _status, theirs = self._create(self._order_body([(self.p2, 2)]), self.other_cashier)
        mine_id, theirs_id = mine["order"]["id"], theirs["order"]["id"]
        status, paid = self._pay(mine_id, key, self.cashier)
        self.assertEqual(status, 200, paid)
        # Another till's call with the same key is its own call, on its order.
        status, other = self._pay(theirs_id, key, self.other_cashier)
        self.assertEqual(status, 200, other)
        self.assertEqual(other["order"]["id"], theirs_id)
        self.assertEqual(len(self.env["pos.order"].browse(theirs_id).payment_ids), 1)
        # The first till's replay is still its own answer.
        status, replay = self._pay(mine_id, key, self.cashier)
        self.assertEqual((status, replay), (200, paid))
        self.assertEqual(len(self.env["pos.order"].browse(mine_id).payment_ids), 1)

    def test_a_replay_passes_the_checks_of_a_first_call(self):
        key = str(uuid.uuid4())
        _status, created = self._create(self._order_body([(self.p1, 2)]), self.cashier)
        order_id = created["order"]["id"]
        status, paid = self._pay(order_id, key, self.cashier)
        self.assertEqual(status, 200, paid)
        # A till of another point of sale sending the same call and key.
        status, result = self._pay(order_id, key, self.elsewhere)
        self.assertEqual(status, 404, result)
        self.assertNotIn("order", result)
        # A role that may not pay.
        status, result = self._pay(order_id, key, self.kitchen)
        self.assertEqual(status, 403, result)
        # The order moved away from the till that paid it: no replay either.
        order = self.env["pos.order"].browse(order_id)
        order.sudo().session_id = self._open_session(self.elsewhere.config_id)
        status, result = self._pay(order_id, key, self.cashier)
        self.assertEqual(status, 404, result)
        self.assertEqual(len(order.payment_ids), 1)
