"""What a kitchen display reads: a station's open orders with their tickets
(``GET /pos_api/v1/stations/<id>/tickets``) and each new ticket as a
``kitchen.ticket`` event in the station's room, so that a display loads the
document once, then follows the sync log from its ``last_seq``. A bump is
the order's ``ready`` transition, which takes it off every display."""

from collections import defaultdict

from odoo import api, fields, models

from ..pos_core import events, kitchen_ticket
from ..pos_core import lifecycle as lc
from ..pos_core.exceptions import Forbidden, InvalidInput, NotFound
from .pos_api_device import ROLE_GROUPS
from .pos_sync_log import event_at

# A display can recall an order it bumped this many minutes ago, at most
# RECALL_LIMIT of them.
RECALL_MINUTES = 15
RECALL_LIMIT = 10


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
            "station": self._api_station_dict(),
            "config_id": config.id,
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
            "recent": self._api_kds_recent(config),
        }

    def _api_kds_recent(self, config):
        """The station's orders bumped in the last RECALL_MINUTES, newest
        first: what a display can recall."""
        since = fields.Datetime.subtract(fields.Datetime.now(), minutes=RECALL_MINUTES)
        orders = (
            self.env["pos.order"]
            .sudo()
            .search(
                [
                    ("config_id", "=", config.id),
                    ("api_state", "=", lc.READY),
                    ("kitchen_ready_at", ">=", since),
                    ("api_ticket_ids.station_id", "=", self.id),
                ],
                order="kitchen_ready_at desc, id desc",
                limit=RECALL_LIMIT,
            )
        )
        return [
            {
                "order_id": order.id,
                **order._api_kitchen_label(),
                "kitchen_ready_at": order.kitchen_ready_at,
            }
            for order in orders
        ]


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
                kitchen_ticket.TicketLine.from_json(line).as_json()
                for line in self.content["lines"]
            ],
        }

    def _api_announce_tickets(self):
        """A ``kitchen.ticket`` event per ticket, in its station's room, in
        the transaction that made them."""
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


class PosApiDevice(models.Model):
    _inherit = "pos.api.device"

    kds_browser = fields.Boolean(
        readonly=True,
        help="Made for a logged-in user's kitchen display page, which gets short "
        "access tokens from the user's session.",
    )

    def init(self):
        result = super().init()
        # One display device per user and point of sale, even when two first
        # requests race.
        self.env.cr.execute(
            "CREATE UNIQUE INDEX IF NOT EXISTS pos_api_device_kds_browser_unique"
            " ON pos_api_device (config_id, user_id) WHERE kds_browser"
        )
        return result

    @api.model
    def _api_kds_user_token(self, config_id=None):
        """A short access token (no refresh token: the page asks again) of
        the current user's display device for ``config_id``, or the first
        point of sale with stations the user may read."""
        stations = self.env["pos.api.printer"].sudo().search([])
        domain = [("id", "=", config_id)] if config_id else []
        config = self.env["pos.config"].search(
            [*domain, ("id", "in", stations.config_ids.ids)], order="id", limit=1
        )
        if not config:
            raise InvalidInput(
                "No point of sale with kitchen stations that this user may open.",
                code="no_kitchen_config",
            )
        device = self._api_kds_user_device(config)
        refusal = device._user_refusal()
        if refusal:
            raise refusal
        pair = device._sign_pair()
        return {
            "access_token": pair.access_token,
            "expires_at": pair.access_expires_at,
            "config_id": config.id,
        }

    @api.model
    def _api_kds_user_device(self, config):
        """The kitchen device through which the current user's browser opens
        the kitchen display of ``config`` (made the first time): the page
        then uses the device API as any kitchen display does, and stops
        working when the user may no longer act (archived, group removed).
        The user needs the addon's user group."""
        user = self.env.user
        if not user.has_group(ROLE_GROUPS["kitchen"]):
            raise Forbidden(
                "Only users of the POS API open the kitchen display without a device token.",
                code="kds_user_forbidden",
            )
        config.check_access("read")
        devices = self.sudo().with_context(active_test=False)
        device = devices.search(
            [
                ("config_id", "=", config.id),
                ("user_id", "=", user.id),
                ("role", "=", "kitchen"),
                ("kds_browser", "=", True),
            ],
            limit=1,
        )
        if not device:
            device = devices.create(
                {
                    "name": self.env._("Kitchen display of %s", user.name),
                    "config_id": config.id,
                    "user_id": user.id,
                    "role": "kitchen",
                    "kds_browser": True,
                }
            )
        elif not device.active:
            raise Forbidden(
                "This user's kitchen display was archived by a manager.",
                code="kds_user_forbidden",
            )
        return device
