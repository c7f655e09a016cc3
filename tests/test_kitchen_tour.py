"""Odoo's POS UI, in a real browser, sends orders to the kitchen with its
Order button; the server prints them on the demo stations (printers on
127.0.0.1 of the test's own). The tour is
``point_of_sale_api_kitchen_order_tour`` (static/tests/tours/)."""

from odoo.tests import tagged

from ..pos_core import kitchen_changes
from .test_kitchen_print import KitchenPrintCase

TOUR = "point_of_sale_api_kitchen_order_tour"


@tagged("post_install", "-at_install")
class TestKitchenTour(KitchenPrintCase):
    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.starter = cls.env.ref("point_of_sale_api.demo_product_bruschetta")
        cls.drink = cls.env.ref("point_of_sale_api.demo_product_still_water")

    def test_the_order_button_prints_on_the_server_and_a_split_prints_nothing(self):
        pos_session = self.session
        pos_session.order_ids.filtered(lambda o: o.state == "draft").action_pos_order_cancel()
        before = self.env["pos.order"].search([("session_id", "=", pos_session.id)])
        # HttpCase keeps its browser session in ``self.session``.
        self.session = None

        self.start_tour(f"/pos/ui?config_id={self.config.id}", TOUR, login="admin", timeout=240)

        self.env.invalidate_all()
        orders = self.env["pos.order"].search([("session_id", "=", pos_session.id)]) - before
        table_order = orders.filtered(lambda o: o.state == "draft")
        split = orders.filtered(lambda o: o.state == "paid")
        self.assertEqual((len(table_order), len(split)), (1, 1), orders.mapped("state"))
        self.assertEqual(table_order.table_id, self.table)
        starter_lines = table_order.lines.filtered(lambda line: line.product_id == self.starter)
        self.assertEqual(sum(starter_lines.mapped("qty")), 1)

        tickets = table_order.api_ticket_ids.sorted("id")
        self.assertEqual(
            [(ticket.kind, ticket.station_id) for ticket in tickets],
            [
                ("new", self.kitchen_station),
                ("new", self.bar_station),
                ("delta", self.kitchen_station),
            ],
        )
        # Split off and paid: lines the kitchen had, nothing to print.
        self.assertFalse(split.api_ticket_ids)
        self._print_all(tickets)
        first, second = self.kitchen_printer.wait_for(2)
        self.assertIn("NEW ORDER", first.text)
        self.assertIn(f"TABLE {self.table.table_number}", first.text)
        self.assertIn(f"1 x {self.starter.name}", first.text)
        self.assertIn("CHANGES", second.text)
        self.assertIn(f"+1 x {self.starter.name}", second.text)
        self.assertIn(f"1 x {self.drink.name}", self.bar_printer.wait_for(1)[0].text)
        # The server knows the kitchen has one starter left on this order.
        sent = kitchen_changes.parse(table_order.last_order_preparation_change)
        self.assertEqual(
            {(entry.product_id, entry.qty) for entry in sent.lines.values()},
            {(self.starter.id, 1), (self.drink.id, 1)},
        )
