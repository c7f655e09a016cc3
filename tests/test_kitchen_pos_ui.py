"""Kitchen tickets for orders taken in Odoo's POS UI: its Order button
records what it sent in ``last_order_preparation_change``, which
``sync_from_ui`` carries to the server; the server prints that change (a new
order, then deltas), on real printers on 127.0.0.1 whose bytes are parsed.
"""

import json
from datetime import timedelta
from unittest.mock import patch

from odoo import Command, fields
from odoo.tests import tagged
from odoo.tools import mute_logger

from ..models import pos_kitchen_ticket
from ..models.pos_sync_log import EVENTS_KEY
from ..pos_core import events, kitchen_changes
from ..pos_core import lifecycle as lc
from .test_kitchen_print import KitchenPrintCase


def ui_state(lines, general_note=""):
    """What the POS UI's ``updateLastOrderChange`` writes: ``lines`` are
    ``(pos.order.line, quantity)`` pairs, keyed by uuid and note."""
    return json.dumps(
        {
            "lines": {
                f"{line.uuid} - {line.note or ''}": {
                    "attribute_value_ids": [],
                    "uuid": line.uuid,
                    "isCombo": line.combo_item_id.id or False,
                    "product_id": line.product_id.id,
                    "name": line.full_product_name or line.product_id.name,
                    "basic_name": line.product_id.name,
                    "note": line.note or "",
                    "quantity": qty,
                }
                for line, qty in lines
            },
            "sittingMode": "dine in",
            "generalNote": general_note,
        }
    )


@tagged("post_install", "-at_install")
class TestKitchenPosUi(KitchenPrintCase):
    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.pasta = cls.env["product.product"].search(
            [("pos_categ_ids", "in", cls.env.ref("point_of_sale_api.demo_categ_pasta").ids)],
            limit=1,
        )

    def _ui_draft(self, products):
        """A draft order taken in the POS UI at the table, synced, nothing
        sent to the kitchen yet."""
        payload = self._ui_order_payload(self.session, products, paid=False)
        payload["table_id"] = self.table.id
        self.env["pos.order"].sync_from_ui([payload])
        order = self.env["pos.order"].search([("uuid", "=", payload["uuid"])])
        self.assertFalse(order.api_ticket_ids)
        return order, payload

    def _ui_sync(self, order, payload, state, lines=()):
        """The POS UI syncs the order again: ``lines`` are line commands,
        ``state`` its last_order_preparation_change."""
        self.env["pos.order"].sync_from_ui(
            [
                {
                    **payload,
                    "id": order.id,
                    "lines": list(lines),
                    "payment_ids": [],
                    "last_order_preparation_change": state,
                }
            ]
        )
        order.invalidate_recordset()
        order.lines.invalidate_recordset()
        return order.api_ticket_ids

    def _line(self, order, product):
        return order.lines.filtered(lambda line: line.product_id == product)

    def _new_line(self, product, qty):
        return self._ui_order_payload(self.session, [(product, qty)], paid=False)["lines"][0]

    # ------------------------------------------------------------------
    def test_the_order_button_prints_the_order_then_its_changes(self):
        order, payload = self._ui_draft([(self.pizza, 2), (self.drink, 1)])
        pizza, drink = self._line(order, self.pizza), self._line(order, self.drink)
        # The Order button: the lines as sent.
        tickets = self._ui_sync(order, payload, ui_state([(pizza, 2), (drink, 1)]))
        self.assertEqual(set(tickets.mapped("kind")), {"new"})
        self.assertEqual(tickets.station_id, self.kitchen_station | self.bar_station)
        self.assertTrue(order.kitchen_started_at)
        self._print_all(tickets)
        (kitchen,) = self.kitchen_printer.wait_for(1)
        self.assertIn("NEW ORDER", kitchen.text)
        self.assertIn(f"TABLE {self.table.table_number}", kitchen.text)
        self.assertIn(f"2 x {self.pizza.name}", kitchen.text)
        self.assertIn(f"1 x {self.drink.name}", self.bar_printer.wait_for(1)[0].text)
        # Synced again without pressing Order: nothing new.
        self.assertEqual(self._ui_sync(order, payload, ui_state([(pizza, 2), (drink, 1)])), tickets)

        # One more pizza, a pasta added, then Order: a delta for the kitchen
        # only, with just the changes.
        sent = ui_state([(pizza, 2), (drink, 1)])
        lines = [Command.update(pizza.id, {"qty": 3}), self._new_line(self.pasta, 1)]
        self.assertEqual(self._ui_sync(order, payload, sent, lines), tickets)
        pasta = self._line(order, self.pasta)
        delta = (
            self._ui_sync(order, payload, ui_state([(pizza, 3), (drink, 1), (pasta, 1)])) - tickets
        )
        self.assertEqual((delta.kind, delta.station_id), ("delta", self.kitchen_station))
        self._print_all(delta)
        changes = self.kitchen_printer.wait_for(2)[1].text
        self.assertIn("CHANGES", changes)
        self.assertIn(f"+1 x {self.pizza.name}", changes)
        self.assertIn(f"+1 x {self.pasta.name}", changes)
        self.assertNotIn(f"2 x {self.pizza.name}", changes)

        # The drink removed, a note on the pasta, then Order.
        sent = ui_state([(pizza, 3), (drink, 1), (pasta, 1)])
        lines = [Command.delete(drink.id), Command.update(pasta.id, {"note": "no cheese"})]
        self.assertEqual(self._ui_sync(order, payload, sent, lines), tickets | delta)
        pasta.invalidate_recordset()
        later = self._ui_sync(order, payload, ui_state([(pizza, 3), (pasta, 1)])) - tickets - delta
        self.assertEqual(len(later), 2)
        self._print_all(later)
        bar = self.bar_printer.wait_for(2)[1].text
        self.assertIn(f"-1 x {self.drink.name}", bar)
        note = self.kitchen_printer.wait_for(3)[2].text
        self.assertIn(f"1 x {self.pasta.name}", note)
        self.assertIn("NOTE CHANGED: no cheese", note)
        self.assertNotIn(self.pizza.name, note)
        # The kitchen's state is recorded as the POS UI reads it back.
        self.assertEqual(
            {
                (sent.uuid, sent.qty, sent.note)
                for sent in kitchen_changes.parse(
                    order.last_order_preparation_change
                ).lines.values()
            },
            {(pizza.uuid, 3, ""), (pasta.uuid, 1, "no cheese")},
        )

    def test_a_split_bill_moves_lines_without_a_ticket(self):
        order, payload = self._ui_draft([(self.pizza, 2)])
        pizza = self._line(order, self.pizza)
        tickets = self._ui_sync(order, payload, ui_state([(pizza, 2)]))
        self.assertEqual(len(tickets), 1)
        # Split bill: one pizza to another order; the POS UI marks both as
        # sent (the addon's patch adds the mark).
        split = json.loads(ui_state([(pizza, 1)]))
        split[kitchen_changes.NO_TICKET] = True
        after = self._ui_sync(
            order, payload, json.dumps(split), [Command.update(pizza.id, {"qty": 1})]
        )
        self.assertEqual(after, tickets)
        # The mark is honoured once: the server keeps the state without it.
        stored = json.loads(order.last_order_preparation_change)
        self.assertNotIn(kitchen_changes.NO_TICKET, stored)
        self.assertEqual(kitchen_changes.parse(stored).lines[pizza.uuid].qty, 1)
        # The next Order sends only real changes: none.
        self.assertEqual(self._ui_sync(order, payload, ui_state([(pizza, 1)])), tickets)

    def test_a_stale_copy_of_the_order_removes_nothing_at_the_kitchen(self):
        order, payload = self._ui_draft([(self.pizza, 2)])
        pizza = self._line(order, self.pizza)
        tickets = self._ui_sync(order, payload, ui_state([(pizza, 2)]))
        # A second POS UI that loaded the order before it was sent syncs its
        # old state back: the order still has both pizzas.
        self.assertEqual(self._ui_sync(order, payload, ui_state([(pizza, 1)])), tickets)
        self.assertEqual(self._ui_sync(order, payload, "{}"), tickets)
        # The kitchen's state stays what it has: the next Order sends nothing.
        sent = kitchen_changes.parse(order.last_order_preparation_change).lines
        self.assertEqual(sent[pizza.uuid].qty, 2)
        self.assertEqual(self._ui_sync(order, payload, ui_state([(pizza, 2)])), tickets)

    def test_garbage_in_the_sent_state_prints_nothing_and_breaks_nothing(self):
        order, payload = self._ui_draft([(self.pizza, 1)])
        for state in ("not json", "[1, 2]", '{"lines": {"x": 5}}', '{"lines": {"y - ": {}}}'):
            self.assertFalse(self._ui_sync(order, payload, state))
        self.assertEqual(order.state, "draft")

    def test_an_order_sent_by_the_api_shows_as_sent_in_the_pos_ui(self):
        order = self._to_kitchen()
        tickets = order.api_ticket_ids
        self.assertEqual(len(tickets), 2)
        sent = kitchen_changes.parse(order.last_order_preparation_change)
        self.assertEqual(
            {(line.uuid, line.product_id, line.qty) for line in sent.lines.values()},
            {(line.uuid, line.product_id.id, line.qty) for line in order.lines},
        )
        # The POS UI's Order button finds nothing to send, and the server
        # prints nothing more when it syncs.
        payload = self._ui_order_payload(self.session, [], paid=False, order_uuid=order.uuid)
        state = ui_state([(line, line.qty) for line in order.lines])
        self.assertEqual(self._ui_sync(order, payload, state), tickets)
        # A cancellation prints what the kitchen was sent.
        order._api_transition(lc.CANCEL, reason="guest left")
        cancel = order.api_ticket_ids - tickets
        self.assertEqual(set(cancel.mapped("kind")), {"cancel"})
        self._print_all(cancel)
        # The station prints its new-order ticket first, then the cancellation.
        new, cancelled = self.kitchen_printer.wait_for(2)
        self.assertIn("NEW ORDER", new.text)
        self.assertIn("CANCELLED", cancelled.text)
        self.assertIn(f"2 x {self.pizza.name}", cancelled.text)

    def test_an_order_paid_without_the_order_button_goes_to_the_kitchen(self):
        # Counter service: paid at once, as Odoo's receipt screen prints it.
        payload = self._ui_order_payload(self.session, [(self.pizza, 1), (self.drink, 2)])
        self.env["pos.order"].sync_from_ui([payload])
        order = self.env["pos.order"].search([("uuid", "=", payload["uuid"])])
        self.assertEqual(order.state, "paid")
        tickets = order.api_ticket_ids
        self.assertEqual(set(tickets.mapped("kind")), {"new"})
        self.assertEqual(len(tickets), 2)
        self._print_all(tickets)
        self.assertIn(f"2 x {self.drink.name}", self.bar_printer.wait_for(1)[0].text)
        # A retry of the same sync prints nothing again.
        self.env["pos.order"].sync_from_ui([payload])
        order.invalidate_recordset()
        self.assertEqual(order.api_ticket_ids, tickets)

    def test_an_order_sent_from_the_pos_ui_enters_preparing_and_is_bumped(self):
        order, payload = self._ui_draft([(self.pizza, 1)])
        self.assertEqual(order.api_state, lc.DRAFT)
        pizza = self._line(order, self.pizza)
        self._ui_sync(order, payload, ui_state([(pizza, 1)]))
        # Dine-in: draft -> validated -> preparing, by the POS UI.
        self.assertEqual(order.api_state, lc.PREPARING)
        history = order.api_state_history_ids.filtered(lambda row: row.source == "pos_ui")
        self.assertEqual(sorted(history.mapped("to_state")), sorted([lc.VALIDATED, lc.PREPARING]))
        status, body = self._call(
            "GET", f"/stations/{self.kitchen_station.id}/tickets", device=self.kitchen
        )
        self.assertEqual(status, 200, body)
        self.assertIn(order.id, [shown["order_id"] for shown in body["orders"]])
        status, body = self._call("POST", f"/orders/{order.id}/ready", {}, device=self.kitchen)
        self.assertEqual(status, 200, body)
        order.invalidate_recordset()
        self.assertEqual(order.api_state, lc.READY)
        self.assertEqual(len(order.api_ticket_ids), 1)

    def test_a_pay_first_order_enters_preparing_once_paid_with_its_first_send_time(self):
        self.config.api_kitchen_flow = lc.PAY_FIRST
        order, payload = self._ui_draft([(self.pizza, 1)])
        pizza = self._line(order, self.pizza)
        (ticket,) = self._ui_sync(order, payload, ui_state([(pizza, 1)]))
        # Not paid yet: the POS UI takes the payment, the lifecycle waits.
        self.assertEqual((order.state, order.api_state), ("draft", lc.DRAFT))
        sent_at = fields.Datetime.now() - timedelta(minutes=5)
        order.with_context(pos_api_transition=True).kitchen_started_at = sent_at
        # Paid in the POS UI: the same order, its line unchanged.
        paid = self._ui_order_payload(self.session, [(self.pizza, 1)], order_uuid=order.uuid)
        paid["lines"] = []
        self.env["pos.order"].sync_from_ui(
            [{**paid, "id": order.id, "last_order_preparation_change": ui_state([(pizza, 1)])}]
        )
        order.invalidate_recordset()
        self.assertEqual((order.state, order.api_state), ("paid", lc.PREPARING))
        self.assertEqual(order.kitchen_started_at, sent_at)
        self.assertEqual(order.api_ticket_ids, ticket)

    def test_a_kitchen_fault_does_not_break_the_pos_ui_sync_and_is_sent_later(self):
        order, payload = self._ui_draft([(self.pizza, 1)])
        pizza = self._line(order, self.pizza)
        tickets = type(self.env["pos.api.print.ticket"])
        announce = tickets._api_announce_tickets

        def announce_then_fail(records):
            announce(records)
            raise ValueError("bug after the tickets were made")

        jobs = self.env["queue.job"].sudo()
        job_count = jobs.search_count([("model_name", "=", tickets._name)])
        with (
            patch.object(tickets, "_api_announce_tickets", announce_then_fail),
            mute_logger(pos_kitchen_ticket.__name__),
        ):
            self.assertFalse(self._ui_sync(order, payload, ui_state([(pizza, 1)])))
        # The order is saved; no ticket, no job, no event of one; the
        # kitchen's state is what it was before.
        self.assertFalse(self.env["pos.api.print.ticket"].search([("order_id", "=", order.id)]))
        self.assertEqual(jobs.search_count([("model_name", "=", tickets._name)]), job_count)
        buffered = self.env.cr.precommit.data.get(EVENTS_KEY, [])
        self.assertNotIn(events.KITCHEN_TICKET, [event[2] for event in buffered])
        self.env.cr.flush()
        self.env.cr.execute(
            "SELECT count(*) FROM pos_sync_log WHERE event_type = %s AND payload->>'order_id' = %s",
            [events.KITCHEN_TICKET, str(order.id)],
        )
        self.assertEqual(self.env.cr.fetchone()[0], 0)
        self.assertEqual(order.lines, pizza)
        self.assertFalse(kitchen_changes.parse(order.last_order_preparation_change).lines)
        self.assertEqual(order.api_state, lc.DRAFT)
        # The next sync sends it.
        tickets = self._ui_sync(order, payload, ui_state([(pizza, 1)]))
        self.assertEqual((tickets.kind, tickets.station_id), ("new", self.kitchen_station))

    def test_a_point_of_sale_without_stations_is_left_as_odoo_has_it(self):
        self.env["pos.api.printer"].search([]).config_ids = False
        payload = self._ui_order_payload(self.session, [(self.pizza, 1)])
        self.env["pos.order"].sync_from_ui([payload])
        order = self.env["pos.order"].search([("uuid", "=", payload["uuid"])])
        self.assertEqual(order.state, "paid")
        self.assertFalse(order.api_ticket_ids)
        self.assertFalse(order.kitchen_started_at)
        self.assertFalse(kitchen_changes.parse(order.last_order_preparation_change).lines)

    def test_a_change_after_the_bump_recalls_the_order_to_the_display(self):
        order, payload = self._ui_draft([(self.pizza, 1)])
        pizza = self._line(order, self.pizza)
        tickets = self._ui_sync(order, payload, ui_state([(pizza, 1)]))
        order._api_transition(lc.READY)
        self.assertTrue(order.kitchen_ready_at)
        # One more pizza, sent from the POS UI: the kitchen has work again.
        lines = [Command.update(pizza.id, {"qty": 2})]
        self._ui_sync(order, payload, ui_state([(pizza, 1)]), lines)
        delta = self._ui_sync(order, payload, ui_state([(pizza, 2)])) - tickets
        self.assertEqual(delta.kind, "delta")
        self.assertEqual(order.api_state, lc.PREPARING)
        self.assertFalse(order.kitchen_ready_at)
        last = order.api_state_history_ids.sorted("id")[-1]
        self.assertEqual((last.from_state, last.source), (lc.READY, "pos_ui"))
        # Synced again with nothing new: it stays where the kitchen puts it.
        order._api_transition(lc.READY)
        self._ui_sync(order, payload, ui_state([(pizza, 2)]))
        self.assertEqual(order.api_state, lc.READY)
