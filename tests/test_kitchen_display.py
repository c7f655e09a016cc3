"""What a kitchen display reads through the API: a station's open orders
with their tickets and all-day counts, new tickets as ``kitchen.ticket``
events in the station's room after the document's ``last_seq``, and a bump
(the ``ready`` transition) taking the order off."""

from odoo.tests import tagged

from ..models.pos_sync_log import TX_KEY
from ..pos_core import events
from .test_kitchen_print import KitchenPrintCase


@tagged("post_install", "-at_install")
class TestKitchenDisplay(KitchenPrintCase):
    def _document(self, station, device=None):
        status, body = self._call(
            "GET", f"/stations/{station.id}/tickets", device=device or self.kitchen
        )
        self.assertEqual(status, 200, body)
        return body

    def _ticket_events(self, after):
        """The station's kitchen.ticket events after ``after``, as a commit
        sequences them (precommit, then the sequencer)."""
        log = self.env["pos.sync.log"]
        self.env.cr.flush()
        log._sequence_pending()
        self.env.cr.flush()
        self.env.cr.postcommit.data.pop(TX_KEY, None)
        room = events.room(events.STATION, self.kitchen_station.id)
        envelopes, _last, resync = log._read_since(self.config.id, after, rooms=[room])
        self.assertFalse(resync)
        return [event for event in envelopes if event["type"] == events.KITCHEN_TICKET]

    def test_a_station_shows_its_open_orders_then_a_bump_takes_one_off(self):
        first = self._to_kitchen()  # 2 pizzas (no basil) and a drink
        second = self._to_kitchen([{"product_id": self.pizza.id, "qty": "1"}])
        document = self._document(self.kitchen_station)
        self.assertEqual(document["station"]["room"], f"station:{self.kitchen_station.id}")
        self.assertIsInstance(document["last_seq"], int)
        self.assertEqual([o["order_id"] for o in document["orders"]], [first.id, second.id])
        shown = document["orders"][0]
        self.assertEqual(shown["table"], str(self.table.table_number))
        self.assertEqual(shown["guests"], 3)
        (ticket,) = shown["tickets"]
        self.assertEqual(
            (ticket["kind"], ticket["id"]), ("new", self._ticket(first, self.kitchen_station).id)
        )
        (line,) = ticket["lines"]
        self.assertEqual(
            (line["name"], line["qty"], line["note"]), (self.pizza.name, 2, "no basil")
        )
        self.assertEqual(document["all_day"], [{"name": self.pizza.name, "qty": 3.0}])
        # The bar sees only the drink.
        bar = self._document(self.bar_station)
        self.assertEqual([o["order_id"] for o in bar["orders"]], [first.id])
        self.assertEqual(bar["all_day"], [{"name": self.drink.name, "qty": 1.0}])

        # A bump by the kitchen: off the display, and off the count.
        status, body = self._call("POST", f"/orders/{first.id}/ready", {}, device=self.kitchen)
        self.assertEqual(status, 200, body)
        after = self._document(self.kitchen_station)
        self.assertEqual([o["order_id"] for o in after["orders"]], [second.id])
        self.assertEqual(after["all_day"], [{"name": self.pizza.name, "qty": 1.0}])

    def test_new_tickets_follow_the_document_as_events_of_the_station(self):
        head = self._document(self.kitchen_station)["last_seq"]
        order = self._to_kitchen([{"product_id": self.pizza.id, "qty": "1"}])
        ticket = self._ticket(order, self.kitchen_station)
        (event,) = self._ticket_events(head)
        self.assertGreater(event["seq"], head)
        self.assertEqual(event["room"], f"station:{self.kitchen_station.id}")
        payload = event["payload"]
        self.assertEqual((payload["ticket_id"], payload["order_id"]), (ticket.id, order.id))
        self.assertEqual(payload["kind"], "new")
        self.assertEqual(payload["lines"][0]["name"], self.pizza.name)
        # The drink's ticket is the bar's: not in the kitchen's room.
        self.assertEqual(len(self._ticket_events(head)), 1)
        # A reprint is a ticket of the station too.
        ticket.action_reprint()
        (reprint,) = self._ticket_events(event["seq"])
        self.assertEqual(reprint["payload"]["kind"], "new")
        self.assertTrue(reprint["payload"]["reprint"])
        self.assertNotEqual(reprint["payload"]["ticket_id"], ticket.id)

    def test_only_stations_of_the_point_of_sale_are_shown(self):
        cases = [
            (self.kitchen_station.id + 10_000, 404, "not_found"),
            (0, 422, "id_out_of_range"),
            (2**31, 422, "id_out_of_range"),
        ]
        for station_id, expected, code in cases:
            status, body = self._call("GET", f"/stations/{station_id}/tickets", device=self.kitchen)
            self.assertEqual((status, body["error"]["code"]), (expected, code), body)
        other = self.kitchen_station.copy({"name": "Elsewhere", "config_ids": [(5,)]})
        status, _body = self._call("GET", f"/stations/{other.id}/tickets", device=self.kitchen)
        self.assertEqual(status, 404)
        status, _body = self._call("GET", f"/stations/{self.kitchen_station.id}/tickets")
        self.assertEqual(status, 401)
