"""Live kitchen status in Odoo's POS UI, in a real browser: the tour
``point_of_sale_api_kitchen_status_tour`` (static/tests/tours/) finds table
4's order preparing on the floor plan, bumps it as the kitchen device
through the API, and sees it ready on the floor plan and in the order list
without a reload. The bus is relayed to the browser as ``BusRelayMixin``
says."""

import json
import uuid

from odoo.tests import tagged

from ..pos_core import lifecycle as lc
from ..pos_core import schemas as s
from .common import BusRelayMixin, PosApiHttpCommon

TOUR = "point_of_sale_api_kitchen_status_tour"


@tagged("post_install", "-at_install")
class TestKitchenStatusTour(BusRelayMixin, PosApiHttpCommon):
    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls._allow_websockets()
        cls.config.api_kitchen_flow = lc.DINE_IN
        cls.table = cls.env.ref("point_of_sale_api.demo_table_dining_room_04")
        cls.starter = cls.env.ref("point_of_sale_api.demo_product_bruschetta")

    def test_a_bump_reaches_the_floor_plan_and_the_order_list(self):
        body = {
            "uuid": str(uuid.uuid4()),
            "state": "validated",
            "table_id": self.table.id,
            "lines": [{"product_id": self.starter.id, "qty": "1"}],
        }
        order = self.env["pos.order"]._api_create(s.OrderCreate(**body), self.waiter)
        order._api_transition(lc.PREPARING)
        self.assertTrue(order.kitchen_started_at)
        self.env["ir.config_parameter"].sudo().set_param(
            "point_of_sale_api.tour_kitchen_request",
            json.dumps({"token": self._token(self.kitchen), "order_id": order.id}),
        )
        channel = self.config._ensure_access_token()
        # HttpCase keeps its browser session in ``self.session``.
        self.session = None
        with self._bus_relayed(channel):
            self.start_tour(f"/pos/ui?config_id={self.config.id}", TOUR, login="admin", timeout=240)
        order.invalidate_recordset()
        self.assertEqual(order.api_state, lc.READY)
        self.assertTrue(order.kitchen_ready_at)
