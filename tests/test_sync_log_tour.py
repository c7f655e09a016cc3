"""The sync log reaches Odoo's POS UI through Odoo's bus, in a real browser.

The tour ``point_of_sale_api_live_order_tour`` opens the register on the
floor plan; a waiter device then creates an order at a table through the
device API (the tour fetches the API with the device token this test leaves
in an ir.config_parameter of the test transaction), and the order must show
up on the open UI without a reload.

The bus is relayed to the browser as ``BusRelayMixin`` says. Skipped like every HttpCase tour
when no Chrome is available.
"""

import json

from odoo.tests import HttpCase, tagged

from ..models.pos_sync_log import BUS_NOTIFICATION
from .common import BusRelayMixin, PosApiFactories

TOUR = "point_of_sale_api_live_order_tour"


@tagged("post_install", "-at_install")
class TestSyncLogPosUiTour(BusRelayMixin, PosApiFactories, HttpCase):
    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls._setup_restaurant()
        cls.table = cls.env.ref("point_of_sale_api.demo_table_dining_room_04")
        cls.product = cls.env.ref("point_of_sale_api.demo_product_bruschetta")
        cls._allow_websockets()

    def test_order_created_by_a_device_shows_up_in_the_open_pos_ui(self):
        session = self._session_in_opening_control()
        waiter = self._create_device("waiter")
        body = self._order_body([(self.product, 2)], table_id=self.table.id, customer_count=2)
        self.env["ir.config_parameter"].sudo().set_param(
            "point_of_sale_api.tour_api_request",
            json.dumps({"token": waiter._issue_tokens().access_token, "body": body}),
        )
        token = self.config._ensure_access_token()
        self.env.cr.execute("SELECT COALESCE(max(id), 0) FROM bus_bus")
        bus_since = self.env.cr.fetchone()[0]

        with self._bus_relayed(token):
            self.start_tour(f"/pos/ui?config_id={self.config.id}", TOUR, login="admin", timeout=240)

        self.env.invalidate_all()
        order = self.env["pos.order"].search([("uuid", "=", body["uuid"])])
        self.assertEqual((order.session_id, order.table_id), (session, self.table))
        self.assertEqual(order.api_device_id, waiter)
        # What reached the UI: the sync log's envelopes on the config's channel.
        relayed = [
            json.loads(row.message)
            for row in self.env["bus.bus"].sudo().search([("id", ">", bus_since)])
            if json.loads(row.channel)[1] == token
            and json.loads(row.message)["type"] == f"{token}-{BUS_NOTIFICATION}"
        ]
        created = [
            message["payload"]
            for message in relayed
            if message["payload"]["type"] == "order.created"
            and message["payload"]["payload"]["id"] == order.id
        ]
        self.assertEqual(len(created), 1, relayed)
        self.assertEqual(created[0]["room"], f"config:{self.config.id}")
        self.assertIsInstance(created[0]["seq"], int)
