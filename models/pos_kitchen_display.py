"""What a kitchen display reads: a station's open orders with their tickets
(``GET /pos_api/v1/stations/<id>/tickets``) and each new ticket as a
``kitchen.ticket`` event in the station's room, so that a display loads the
document once, then follows the sync log from its ``last_seq``. A bump is
the order's ``ready`` transition, which takes it off every display."""

from collections import defaultdict

from odoo import fields, models

from ..pos_core import events, kitchen_ticket
from ..pos_core import lifecycle as lc
from ..pos_core.exceptions import NotFound
from .pos_sync_log import event_at


class PosConfig(models.Model):
    _inherit = "pos.config"

    def _api_station(self, station_id):
        """The station ``station_id`` if it prints for this point of sale."""
        self.ensure_one()
        station = (
            self.env["pos.api.printer"]
            .sudo()
            .search([("id", "=", station_id), ("config_ids", "in", self.ids)])
        )
        if not station:
            raise NotFound(
                "No such station at this point of sale.", details={"station_id": station_id}
            )
        return station


class PosApiPrinter(models.Model):
    _inherit = "pos.api.printer"

    def _api_kds_document(self, config):
        """The station's orders in the kitchen (``preparing``), oldest
        first, each with the tickets the station got for it, and the
        all-day count of each product still to make."""
        self.ensure_one()
        # The head first: an event after it may repeat what is read below
        # (a display keys tickets by id), none is missed.
        last_seq = self.env["pos.sync.log"].sudo()._heads(config.ids)[config.id][0]
        tickets = (
            self.env["pos.api.print.ticket"]
            .sudo()
            .search(
                [
                    ("station_id", "=", self.id),
                    ("config_id", "=", config.id),
                    ("reprint", "=", False),
                    ("order_id.api_state", "=", lc.PREPARING),
                ],
                order="id",
            )
        )
        by_order = defaultdict(list)
        all_day = defaultdict(float)
        for ticket in tickets:
            by_order[ticket.order_id].append(ticket)
            if ticket.kind != kitchen_ticket.CANCEL:
                for line in ticket.content["lines"]:
                    if not line.get("note_changed"):
                        all_day[line["name"]] += line["qty"]
        orders = sorted(by_order, key=lambda order: (order.kitchen_started_at, order.id))
        return {
            "station": {
                "id": self.id,
                "name": self.name,
                "category_ids": self.category_ids.ids,
                "room": events.room(events.STATION, self.id),
            },
            "last_seq": last_seq,
            "orders": [
                {
                    "order_id": order.id,
                    "order_ref": by_order[order][0].content["order_ref"],
                    "table": by_order[order][0].content["table"],
                    "seat": by_order[order][-1].content["seat"],
                    "guests": order.customer_count or 0,
                    "waiter": order.user_id.name or "",
                    "note": order.general_note or "",
                    "api_state": order.api_state,
                    "kitchen_started_at": order.kitchen_started_at or None,
                    "tickets": [ticket._api_kds_dict() for ticket in by_order[order]],
                }
                for order in orders
            ],
            "all_day": [
                {"name": name, "qty": qty} for name, qty in sorted(all_day.items()) if qty > 0
            ],
        }


class PosApiPrintTicket(models.Model):
    _inherit = "pos.api.print.ticket"

    def _api_kds_dict(self):
        self.ensure_one()
        return {
            "id": self.id,
            "kind": self.kind,
            "state": self.state,
            "reprint": self.reprint,
            "created_at": self.create_date or fields.Datetime.now(),
            "lines": [
                {
                    "name": line["name"],
                    "qty": line["qty"],
                    "attributes": line.get("attributes", []),
                    "modifiers": line.get("modifiers", []),
                    "note": line.get("note", ""),
                    "note_changed": line.get("note_changed", False),
                    "combo": line.get("combo", []),
                }
                for line in self.content["lines"]
            ],
        }

    def _api_announce_tickets(self):
        """A ``kitchen.ticket`` event per ticket, in its station's room (and
        its table's), in the transaction that made them."""
        log = self.env["pos.sync.log"]
        for ticket in self:
            order = ticket.order_id
            rooms = [events.room(events.STATION, ticket.station_id.id)]
            payload = {
                "ticket_id": ticket.id,
                "order_id": order.id,
                "station_id": ticket.station_id.id,
                "kind": ticket.kind,
                "reprint": ticket.reprint,
                "table": ticket.content.get("table", ""),
                "order_ref": ticket.content.get("order_ref", ""),
                "at": event_at(fields.Datetime.now()),
                "lines": ticket._api_kds_dict()["lines"],
            }
            log._emit(order.config_id, events.KITCHEN_TICKET, rooms, payload, record=ticket)
