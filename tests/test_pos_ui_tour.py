"""Odoo's own POS UI, in a real browser, with the addon installed.

The tour ``point_of_sale_api_ui_order_tour`` (static/tests/tours/) opens the
register of the demo restaurant, takes an order on a table, pays it in cash
and moves on; this test then checks that the order reached the server through
``sync_from_ui`` with the restaurant lifecycle and history, and closes the
session with Odoo's own closing. Odoo's HttpCase skips the test when no
Chrome/Chromium (or no ``websocket-client``) is available.
"""

from odoo.tests import HttpCase, tagged

from .common import PosApiFactories

TOUR = "point_of_sale_api_ui_order_tour"


@tagged("post_install", "-at_install")
class TestPosUiTour(PosApiFactories, HttpCase):
    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls._setup_restaurant()
        cls.table = cls.env.ref("point_of_sale_api.demo_table_dining_room_05")
        cls.starter = cls.env.ref("point_of_sale_api.demo_product_bruschetta")
        cls.drink = cls.env.ref("point_of_sale_api.demo_product_still_water")

    def test_pos_ui_order_paid_and_session_closed(self):
        session = self._session_in_opening_control()

        self.start_tour(f"/pos/ui?config_id={self.config.id}", TOUR, login="admin", timeout=240)

        self.env.invalidate_all()
        self.assertEqual(session.state, "opened", "the tour opens the register from the UI")
        order = self.env["pos.order"].search(
            [("session_id", "=", session.id), ("state", "!=", "cancel")]
        )
        self.assertEqual(len(order), 1, order.mapped("name"))
        # Paid, and its kitchen lines printed: the kitchen has it (pay first).
        self.assertEqual((order.state, order.api_state), ("paid", "preparing"))
        self.assertEqual(order.table_id, self.table)
        self.assertEqual(
            {line.product_id.id: line.qty for line in order.lines},
            {self.starter.id: 1.0, self.drink.id: 1.0},
        )
        self.assertAlmostEqual(order.amount_total, 10.10, places=2)
        self.assertEqual(order.payment_ids.payment_method_id, self.cash_method)
        self.assertAlmostEqual(sum(order.payment_ids.mapped("amount")), 10.10, places=2)
        history = order.api_state_history_ids.filtered(lambda row: row.source == "pos_ui")
        self.assertTrue(history, order.api_state_history_ids.read(["from_state", "to_state"]))
        self.assertEqual(history.sorted("id").mapped("to_state"), ["paid", "preparing"])
        self.assertTrue(order.picking_ids, "stock is updated in real time for UI orders")

        # Close as the cashier does: count the cash, then Odoo's own closing.
        session.order_ids.filtered(lambda o: o.state == "draft").action_pos_order_cancel()
        expected_cash = session.get_closing_control_data()["default_cash_details"]["amount"]
        self.assertAlmostEqual(expected_cash, 10.10, places=2)
        counted = session.post_closing_cash_details(expected_cash)
        self.assertTrue(counted.get("successful"), counted)
        self.assertAlmostEqual(session.cash_register_difference, 0.0, places=2)
        result = session.action_pos_session_closing_control()
        self.assertNotIsInstance(result, dict, result)
        self.assertEqual(session.state, "closed")
        self.assertEqual(session.move_id.state, "posted")
        self.assertEqual(order.state, "done")
        # Odoo moving orders to done at closing keeps the lifecycle where it was.
        self.assertEqual(order.api_state, "preparing")
