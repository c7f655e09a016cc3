"""Kitchen tickets printed by the server: one ``pos.api.print.ticket`` per
order and station, enqueued as an OCA queue_job job in the transaction of
the change that causes it (a rolled-back order prints nothing), printed
over ESC/POS by the job (:mod:`..pos_core.escpos_transport`).

The job records what happens to its ticket in a short transaction of its
own (queue_job rolls the job's transaction back before it retries), so the
backend shows every attempt: ``printing`` before the bytes go out (a job
found in ``printing`` at its start died mid-print: it prints again, marked
as a possible duplicate), then ``printed``, or ``failed`` until the retry
pattern of the job function (``data/queue_job_print.xml``) gives up after
15 minutes: ``dead``, announced as ``print.failed`` and reprintable by hand.
"""

import logging
import time
from types import SimpleNamespace

from odoo import api, fields, models
from odoo.service.model import PG_CONCURRENCY_EXCEPTIONS_TO_RETRY

from odoo.addons.queue_job.exception import RetryableJobError

from ..pos_core import (
    escpos_transport,
    events,
    kitchen_changes,
    kitchen_routing,
    kitchen_ticket,
    print_retry,
)
from ..pos_core import lifecycle as lc
from .pos_sync_log import event_at

_logger = logging.getLogger(__name__)

# Per process: the stations' recent failures (kitchen_routing.Failover).
FAILOVER = kitchen_routing.Failover()
# A print takes seconds (the station's timeout): a job started this long ago
# lost its worker.
STUCK_MINUTES = 2
PROBE_INTERVAL = 10  # seconds between two status probes of a station that is down
SILENT_RECHECK = 300  # seconds before asking again a printer that answered no status query
# pg_try_advisory_xact_lock(STATION_LOCK, station id): the job printing the
# station's tickets.
STATION_LOCK = 0x50505254  # "PPRT"
# Earlier tickets of its station a job prints before its own, at most.
DRAIN_BATCH = 20
# Per process: station id -> when to ask its status again (printers that do
# not answer status queries).
_STATUS_SILENT = {}


class StationDown(RetryableJobError):
    """The station's printer (and its backup) could not print: its later
    tickets wait."""


STATES = [
    ("queued", "Queued"),
    ("printing", "Printing"),
    ("printed", "Printed"),
    ("failed", "Failed"),
    ("dead", "Dead"),
]


class PosApiPrintTicket(models.Model):
    _name = "pos.api.print.ticket"
    _description = "Kitchen Ticket"
    _order = "id desc"

    order_id = fields.Many2one("pos.order", required=True, index=True, ondelete="cascade")
    config_id = fields.Many2one(related="order_id.config_id", store=True, index=True)
    company_id = fields.Many2one(related="order_id.company_id", store=True, index=True)
    station_id = fields.Many2one("pos.api.printer", required=True, ondelete="restrict", index=True)
    printed_by_id = fields.Many2one("pos.api.printer", readonly=True, ondelete="set null")
    kind = fields.Selection(
        [
            (kitchen_ticket.NEW, "New order"),
            (kitchen_ticket.DELTA, "Changes"),
            (kitchen_ticket.CANCEL, "Cancellation"),
        ],
        required=True,
        readonly=True,
    )
    reprint_of_id = fields.Many2one("pos.api.print.ticket", readonly=True, ondelete="set null")
    reprint = fields.Boolean(readonly=True)
    possible_duplicate = fields.Boolean(
        readonly=True, help="An attempt died while printing: the kitchen may have it twice."
    )
    content = fields.Json(required=True, readonly=True)
    state = fields.Selection(STATES, default="queued", required=True, readonly=True, index=True)
    attempts = fields.Integer(readonly=True)
    first_try_at = fields.Datetime(readonly=True)
    last_try_at = fields.Datetime(readonly=True)
    printed_at = fields.Datetime(readonly=True)
    print_seconds = fields.Float(readonly=True, digits=(16, 6))
    last_error = fields.Char(readonly=True)
    job_uuid = fields.Char(readonly=True, index="btree_not_null", copy=False)

    # ------------------------------------------------------------------
    # Enqueueing
    # ------------------------------------------------------------------
    @api.model
    def _api_enqueue(self, order, kind, items, note_changed=False):
        """The tickets of ``order`` for its stations, each as a job, in the
        caller's transaction. ``items`` are what the router takes (see
        ``pos.order._api_kitchen_items``); with ``note_changed`` (the
        order's note), the stations that have its earlier tickets get one
        even without lines of theirs."""
        stations = self.env["pos.api.printer"]._api_stations(order)
        if not stations:
            return self.browse()
        routed, _unrouted = kitchen_routing.route(
            items, [station._api_rule() for station in stations]
        )
        told = set(order.sudo().api_ticket_ids.station_id.ids) if note_changed else set()
        vals = [
            {
                "order_id": order.id,
                "station_id": station.id,
                "kind": kind,
                "content": order._api_ticket_content(kind, station, routed.get(station.id, [])),
            }
            for station in stations
            if routed.get(station.id) or station.id in told
        ]
        tickets = self.sudo().create(vals)
        for ticket in tickets:
            ticket._api_delay()
        tickets._api_announce_tickets()
        return tickets

    def _api_delay(self):
        self.ensure_one()
        priority = print_retry.PRIORITY["reprint" if self.reprint else self.kind]
        # queue.job is a mail.thread: no creation message, no follower.
        quiet = self.with_context(tracking_disable=True, mail_create_nosubscribe=True)
        job = quiet.with_delay(
            priority=priority,
            max_retries=0,  # forever: the job gives up by time (dead-letter)
            description=f"Kitchen ticket {self.id}: {self.station_id.name}",
        )._api_print()
        self.job_uuid = job.uuid

    def action_reprint(self):
        """Print the ticket again, marked REPRINT (after the new orders and
        changes waiting). Managers only."""
        self.check_access("write")
        copies = self.browse()
        for ticket in self:
            copies |= self.sudo().create(
                {
                    "order_id": ticket.order_id.id,
                    "station_id": ticket.station_id.id,
                    "kind": ticket.kind,
                    "content": ticket.content,
                    "reprint": True,
                    "reprint_of_id": ticket.id,
                }
            )
        for copy in copies:
            copy._api_delay()
        copies._api_announce_tickets()
        return True

    # ------------------------------------------------------------------
    # The job
    # ------------------------------------------------------------------
    def _api_print(self):
        """Print the ticket on its station, or its backup while the station
        is down, after the station's earlier tickets still waiting (a
        station's tickets print in their order). Raises RetryableJobError
        to be tried again."""
        self.ensure_one()
        # Printing is the system's work, whoever sent the order.
        ticket = self.sudo()
        if ticket.state in ("printed", "dead"):
            return f"already {ticket.state}"
        # One job prints a station at a time; another job of the station
        # comes back in a second, without spending a retry.
        self.env.cr.execute(
            "SELECT pg_try_advisory_xact_lock(%s, %s)", [STATION_LOCK, ticket.station_id.id]
        )
        if not self.env.cr.fetchone()[0]:
            raise RetryableJobError("the station is printing another ticket", 1, True)
        earlier = ticket.search(
            [
                ("station_id", "=", ticket.station_id.id),
                ("state", "in", ("queued", "printing", "failed")),
                ("id", "<", ticket.id),
            ],
            order="id",
            limit=DRAIN_BATCH + 1,
        )
        for waiting in earlier[:DRAIN_BATCH]:
            try:
                waiting._api_print_now()
            except StationDown as exc:
                # The station is down: this ticket waits behind that one,
                # and is given up on DEAD_AFTER after its own first try.
                return ticket._api_blocked(waiting, exc)
            except RetryableJobError:
                continue  # that ticket's own problem: its job tries it again
        if len(earlier) > DRAIN_BATCH:
            raise RetryableJobError("more earlier tickets of the station first", 1, True)
        printed, result = ticket._api_print_now()
        if printed:
            ticket._api_wake_waiting()
        return result

    def _api_print_now(self):
        """Print this ticket now (the caller holds its station's lock):
        (whether it printed, what happened), or RetryableJobError."""
        claim = self._api_claim()
        if claim is None:
            return False, "already printed or dead"
        first, duplicate = claim
        station = self.station_id
        target = station
        try:
            target = station._api_print_target()
            ticket = kitchen_ticket.Ticket(
                **self._api_ticket_fields(),
                station=target.name,
                intended_station=station.name,
                reprint=self.reprint,
                possible_duplicate=duplicate,
            )
            data = kitchen_ticket.render(ticket, int(target.paper))
            seconds = escpos_transport.send(target.host, target.port, data, target.timeout)
        except escpos_transport.PrinterUnavailable as exc:
            FAILOVER.failed(target.id, exc.reason)
            target._api_record_health()
            error = f"{target.name}: {exc.reason}: {exc}"
            return False, self._api_failed(first, error, exc, StationDown)
        except Exception as exc:
            _logger.exception("Kitchen ticket %s: not printed", self.id)
            return False, self._api_failed(first, f"{type(exc).__name__}: {exc}", exc)
        FAILOVER.succeeded(target.id)
        target._api_record_health()
        self._api_record(
            state="printed",
            printed_by_id=target.id,
            printed_at=fields.Datetime.now(),
            print_seconds=seconds,
            last_error=False,
        )
        return True, f"printed on {target.name} in {seconds:.3f} s"

    def _api_claim(self):
        """Mark the ticket ``printing``, in a transaction of its own that
        reads it afresh: another job may have printed it since this job's
        snapshot was taken (before the station's lock). Returns its first
        try and whether the kitchen may get it twice, or None when it is
        printed or dead already."""
        self.env.flush_all()
        with self.env.registry.cursor() as cr:
            ticket = self.with_env(self.env(cr=cr))
            claim = ticket._api_fresh_try()
            if claim is not None:
                ticket.write(
                    {
                        "state": "printing",
                        "attempts": ticket.attempts + 1,
                        "first_try_at": claim[0],
                        "last_try_at": fields.Datetime.now(),
                        "possible_duplicate": claim[1],
                    }
                )
                ticket.env.flush_all()
        self.invalidate_recordset()
        return claim

    def _api_fresh_try(self):
        """Of this ticket as its (fresh) cursor reads it: when it was first
        tried (now for a first try) and whether the kitchen may get it twice
        (a try died printing it), or None when it is printed or dead."""
        if self.state in ("printed", "dead"):
            return None
        return (
            self.first_try_at or fields.Datetime.now(),
            self.possible_duplicate or self.state == "printing",
        )

    def _api_blocked(self, waiting, exc):
        """This ticket's turn did not come: ``waiting``, an earlier ticket of
        its station, could not print (``exc``). Recorded as a failed try of
        its own, read afresh as ``_api_claim`` does (another job may have
        printed it since this job's snapshot; a try that died printing it
        still marks it as a possible duplicate)."""
        self.env.flush_all()
        with self.env.registry.cursor() as cr:
            fresh = self.with_env(self.env(cr=cr))._api_fresh_try()
        if fresh is None:
            return "already printed or dead"
        first, duplicate = fresh
        return self._api_failed(
            first,
            f"waiting for ticket {waiting.id}: {exc}",
            exc,
            StationDown,
            first_try_at=first,
            last_try_at=fields.Datetime.now(),
            possible_duplicate=duplicate,
        )

    def _api_wake_waiting(self):
        """The station prints again (itself or through its backup): its
        tickets that failed (the printer's failure, or an earlier ticket's)
        go now, instead of at their retry time, up to 25 s away."""
        waiting = self.search([("station_id", "=", self.station_id.id), ("state", "=", "failed")])
        if not waiting:
            return
        with self.env.registry.cursor() as cr:
            jobs = self.env(cr=cr)["queue.job"].sudo()
            jobs.search(
                [
                    ("uuid", "in", waiting.mapped("job_uuid")),
                    ("state", "=", "pending"),
                    ("eta", "!=", False),
                ]
            ).write({"eta": False})

    def _api_failed(self, since, error, exc, retry=RetryableJobError, **vals):
        """Record a failed attempt (with ``vals``): dead (announced) once the
        ticket has been tried for DEAD_AFTER ``since`` its first try, else
        failed, raising ``retry`` to be tried again."""
        if print_retry.is_dead(since.timestamp(), time.time()):
            self._api_record(state="dead", last_error=error, announce=True, **vals)
            return f"dead: {error}"
        self._api_record(state="failed", last_error=error, **vals)
        raise retry(error) from exc

    @api.model
    def _cron_requeue_stuck(self, minutes=STUCK_MINUTES):
        """Print jobs that stayed started for ``minutes`` lost their worker
        (killed mid-print, the server restarted): put them back in the
        queue. Their ticket, found ``printing``, prints again marked as a
        possible duplicate. Only this addon's print jobs are touched."""
        stuck = (
            self.env["queue.job"]
            .sudo()
            .search(
                [
                    ("model_name", "=", self._name),
                    ("method_name", "=", "_api_print"),
                    ("state", "=", "started"),
                    (
                        "date_started",
                        "<",
                        fields.Datetime.subtract(fields.Datetime.now(), minutes=minutes),
                    ),
                ]
            )
        )
        stuck.requeue()
        return len(stuck)

    def _api_ticket_fields(self):
        content = dict(self.content)
        content["lines"] = tuple(
            kitchen_ticket.TicketLine.from_json(line) for line in content["lines"]
        )
        # Printed in the time zone of the waiter who sent it (else the
        # company's), as Odoo's own receipts are.
        order = self.order_id
        tz = order.user_id.tz or order.company_id.partner_id.tz or "UTC"
        content["at"] = fields.Datetime.context_timestamp(
            self.with_context(tz=tz), fields.Datetime.to_datetime(content["at"])
        )
        content.pop("station", None)
        return content

    def _api_record(self, announce=False, **vals):
        """Write ``vals`` in a transaction of its own, committed now; with
        ``announce``, emit ``print.failed`` in it."""
        # Nothing is pending in a job run by queue_job; a caller's pending
        # writes (a test, a shell) must not be applied after this commit.
        self.env.flush_all()
        with self.env.registry.cursor() as cr:
            ticket = self.with_env(self.env(cr=cr))
            ticket.write(vals)
            if announce:
                ticket._api_announce_failure()
            ticket.env.flush_all()
        self.invalidate_recordset()

    def _api_announce_failure(self):
        order = self.order_id
        rooms = [events.room(events.STATION, self.station_id.id)]
        if order.table_id:
            rooms.append(events.room(events.TABLE, order.table_id.id))
        self.env["pos.sync.log"]._emit(
            order.config_id,
            events.PRINT_FAILED,
            rooms,
            {
                "ticket_id": self.id,
                "order_id": order.id,
                "station_id": self.station_id.id,
                "kind": self.kind,
                "attempts": self.attempts,
                "error": self.last_error,
                "at": event_at(fields.Datetime.now()),
            },
            record=self,
        )


class PosApiPrinter(models.Model):
    _inherit = "pos.api.printer"

    @api.model
    def _api_stations(self, order):
        """The stations that print ``order``'s tickets."""
        return self.sudo().search(
            [("config_ids", "in", order.config_id.ids), ("company_id", "=", order.company_id.id)]
        )

    def _api_rule(self):
        self.ensure_one()
        return kitchen_routing.StationRule(
            self.id,
            category_ids=frozenset(self.category_ids.ids),
            product_ids=frozenset(self.product_ids.ids),
            excluded_product_ids=frozenset(self.excluded_product_ids.ids),
        )

    def _api_print_target(self):
        """This station, or its backup while this one is down. A station
        that is up is asked for its status first, where it answers status
        queries (offline or out of paper: down); one that is down is probed
        at most every PROBE_INTERVAL seconds, and is back when it answers."""
        self.ensure_one()
        backup = self.backup_printer_id.filtered("active")  # an archived one is out of service
        now = time.monotonic()
        if FAILOVER.down(self.id):
            if FAILOVER.due_probe(self.id, now, PROBE_INTERVAL):
                self._api_ask_status(count_failure=True)
        elif _STATUS_SILENT.get(self.id, float("-inf")) <= now:
            self._api_ask_status(count_failure=False)
        return self.browse(FAILOVER.target(self.id, backup.id or None))

    def _api_ask_status(self, count_failure):
        """Ask the printer whether it is online and has paper. A printer
        that answers no status query is not asked again for
        SILENT_RECHECK seconds; one that cannot be reached counts as a
        failure only when ``count_failure`` (the ticket's own delivery
        counts it otherwise)."""
        try:
            answer = escpos_transport.status(self.host, self.port, timeout=min(self.timeout, 0.5))
        except escpos_transport.PrinterUnavailable as exc:
            if count_failure:
                FAILOVER.failed(self.id, exc.reason)
                self._api_record_health()
            return
        if answer.online is None:
            _STATUS_SILENT[self.id] = time.monotonic() + SILENT_RECHECK
        FAILOVER.observed(self.id, answer.refusal)
        self._api_record_health()

    def _api_record_health(self):
        """The station's health as this process last saw it, on its record
        (in a short transaction of its own; best effort)."""
        self.ensure_one()
        state = FAILOVER.state(self.id)
        if self.health_state == state:
            return
        self.env.flush_all()
        try:
            with self.env.registry.cursor() as cr:
                station = self.with_env(self.env(cr=cr))
                station.write({"health_state": state, "health_checked_at": fields.Datetime.now()})
                station.env.flush_all()
        except Exception:
            _logger.info("Station %s: health not recorded this time", self.id, exc_info=True)
        self.invalidate_recordset(["health_state", "health_checked_at"])

    def action_check_health(self):
        """The backend's "Check" button: ask each printer for its status
        (managers only), then record what they said."""
        self.check_access("write")
        for station in self:
            try:
                answer = escpos_transport.status(
                    station.host, station.port, timeout=station.timeout
                )
                FAILOVER.observed(station.id, answer.refusal)
            except escpos_transport.PrinterUnavailable as exc:
                FAILOVER.unreachable(station.id, exc.reason)
        now = fields.Datetime.now()
        for station in self:
            station.write({"health_state": FAILOVER.state(station.id), "health_checked_at": now})
        return True


class PosOrder(models.Model):
    _inherit = "pos.order"

    api_ticket_ids = fields.One2many("pos.api.print.ticket", "order_id", string="Kitchen Tickets")

    # ------------------------------------------------------------------
    # What the kitchen has: Odoo's last_order_preparation_change
    # ------------------------------------------------------------------
    def _api_kitchen_sent(self):
        """What the kitchen was last sent, as the POS UI records it."""
        self.ensure_one()
        return kitchen_changes.parse(self.last_order_preparation_change)

    def _api_kitchen_now(self):
        """The order's lines as they would be sent now (lines the POS UI
        marks as not for the kitchen left out, as Odoo's Order button does)."""
        self.ensure_one()
        return [
            kitchen_changes.Sent(
                uuid=line.uuid,
                product_id=line.product_id.id,
                name=line.full_product_name or line.product_id.display_name,
                note=(line.note or "").strip(),
                qty=line.qty,
                combo_item=bool(line.combo_parent_id),
            )
            for line in self.lines
            if line.qty and line.uuid and not line.skip_change
        ]

    def _api_kitchen_state(self):
        """The order as it would be sent now, as a kitchen state."""
        self.ensure_one()
        return kitchen_changes.State(
            {sent.uuid: sent for sent in self._api_kitchen_now()},
            (self.general_note or "").strip(),
        )

    def _api_record_sent(self, sent, general_note=None):
        """Record ``sent`` as what the kitchen has, in the POS UI's form (the
        POS UI then shows no change to send)."""
        if general_note is None:
            general_note = self.general_note or ""
        self.last_order_preparation_change = kitchen_changes.dump(sent, general_note, self.takeaway)

    def _api_send_to_kitchen(self):
        """The lifecycle enters preparing: print what the kitchen does not
        have yet (everything, or what changed since the POS UI sent the
        order), and record the order as sent."""
        tickets = self.env["pos.api.print.ticket"]
        for order in self:
            after = order._api_kitchen_state()
            tickets |= order._api_print_changes(order._api_kitchen_sent(), after)
            order._api_record_sent(list(after.lines.values()))
        return tickets

    def _api_kitchen_cancel(self):
        """The order is cancelled after the kitchen had it: a cancellation
        ticket with what the kitchen was sent."""
        tickets = self.env["pos.api.print.ticket"]
        for order in self:
            sent = order._api_kitchen_sent()
            if not sent.lines:  # sent before the kitchen's state was recorded
                sent = order._api_kitchen_state()
            changes = kitchen_changes.changes(sent, kitchen_changes.EMPTY)
            items = order._api_kitchen_items(changes)
            if items:
                tickets |= tickets._api_enqueue(order, kitchen_ticket.CANCEL, items)
        return tickets

    def _api_print_changes(self, before, after):
        """Tickets for what ``after`` sends on top of ``before``: a new order
        when nothing was sent before, else the changes."""
        self.ensure_one()
        changes = kitchen_changes.changes(before, after)
        # A line the POS UI says has fewer or none, but that the order still
        # has (a stale copy of the order synced back), did not change: the
        # kitchen keeps it, and so does the recorded state.
        current = {line.uuid: line.qty for line in self.lines}
        stale = {
            change.uuid
            for change in changes
            if change.delta < 0 and current.get(change.uuid, 0.0) > change.qty
        }
        if stale:
            kept = {**after.lines, **{uuid: before.lines[uuid] for uuid in stale}}
            self._api_record_sent(list(kept.values()))
            changes = [change for change in changes if change.uuid not in stale]
        items = self._api_kitchen_items(changes)
        note_changed = bool(before.lines) and before.general_note != after.general_note
        if not items and not note_changed:
            return self.env["pos.api.print.ticket"]
        kind = kitchen_ticket.DELTA if before.lines else kitchen_ticket.NEW
        tickets = self.env["pos.api.print.ticket"]._api_enqueue(
            self, kind, items, note_changed=note_changed
        )
        if tickets and not self.kitchen_started_at:
            self.with_context(pos_api_transition=True).kitchen_started_at = fields.Datetime.now()
        return tickets

    def _api_kitchen_items(self, changes):
        """The router's items for ``changes`` (a combo's items go with their
        combo line)."""
        self.ensure_one()
        by_uuid = {line.uuid: line for line in self.lines}
        products = self.env["product.product"].browse(
            [change.product_id for change in changes if change.uuid not in by_uuid]
        )
        products = {product.id: product for product in products.exists()}
        items = []
        for change in changes:
            line = by_uuid.get(change.uuid, self.env["pos.order.line"])
            if change.combo_item or line.combo_parent_id:
                continue
            product = line.product_id or products.get(change.product_id)
            if not product:
                continue
            items.append(
                SimpleNamespace(
                    product_id=product.id,
                    category_ids=tuple(product.pos_categ_ids.ids),
                    line=line,
                    change=change,
                )
            )
        return items

    # ------------------------------------------------------------------
    # The POS UI's Order button
    # ------------------------------------------------------------------
    @api.model
    def _process_order(self, order, existing_order):
        before = existing_order._api_kitchen_sent() if existing_order else kitchen_changes.EMPTY
        order_id = super()._process_order(order, existing_order)
        self.browse(order_id)._api_after_ui_sync(before)
        return order_id

    def _api_after_ui_sync(self, before):
        """The POS UI synced the order: print what its Order button sent
        (the change of last_order_preparation_change), and the order enters
        the kitchen's lifecycle (preparing) where its flow allows. An order
        paid with lines never sent (counter service: no Order button) sends
        them, as Odoo's receipt screen does.

        A fault here must not lose the cashier's order: it is logged, and
        the kitchen's state is put back as it was, so that the POS UI shows
        those lines as not sent yet, for its next Order (or a prepare) to
        send. Concurrency errors go up, for Odoo to retry the whole
        request."""
        self.ensure_one()
        if self.state == "cancel" or not self.env["pos.api.printer"]._api_stations(self):
            return
        # The savepoint flushes first (the sync's own events are inserted);
        # its rollback drops the tickets, their jobs and the events buffered
        # since.
        try:
            with self.env.cr.savepoint():
                self._api_ui_sent(before)
        except PG_CONCURRENCY_EXCEPTIONS_TO_RETRY:
            raise
        except Exception:
            _logger.exception("Order %s: the kitchen's part of the POS UI sync failed", self.id)
            self.invalidate_recordset()
            self.last_order_preparation_change = kitchen_changes.dump(
                list(before.lines.values()), before.general_note, self.takeaway
            )

    def _api_ui_sent(self, before):
        after = self._api_kitchen_sent()
        tickets = self.env["pos.api.print.ticket"]
        if after.no_ticket:
            # A split bill moved lines the kitchen has: recorded, not printed;
            # the mark is honoured once.
            self._api_record_sent(list(after.lines.values()), after.general_note)
        else:
            tickets |= self._api_print_changes(before, after)
        if self.state in ("paid", "done", "invoiced"):
            unsent = kitchen_changes.changes(after, self._api_kitchen_state())
            if any(change.delta > 0 for change in unsent):
                tickets |= self._api_send_to_kitchen()
        if self.kitchen_started_at:
            self._api_enter_kitchen(tickets)

    def _api_enter_kitchen(self, tickets):
        """The POS UI sent the order to the kitchen: it enters preparing,
        through the states its flow passes (a dine-in order from draft, a
        pay-first one once paid), as a prepare through the API would, so
        that the kitchen display shows it and a bump moves it on; a ready
        order that gets new ``tickets`` is recalled to preparing. An order
        whose flow cannot get there (a dine-in order already paid or served,
        an order the kitchen has, a pay-first order not paid yet: the POS UI
        takes the payment) stays where it is."""
        if self.api_state == lc.READY and tickets:
            # Changed after the kitchen bumped it: back on its display.
            self._api_recall(reason="changed in the POS UI", source="pos_ui")
            return
        try:
            path = lc.path_to(self.api_flow, self.api_state, lc.PREPARING)
        except lc.IllegalTransition:
            return
        if any(transition.needs_payment for transition in path):
            return
        self.with_context(pos_api_prevalidated=True)._api_transition_path(
            path, reason="sent from the POS UI", source="pos_ui", send=False
        )

    # ------------------------------------------------------------------
    # Ticket content
    # ------------------------------------------------------------------
    def _api_ticket_content(self, kind, station, routed):
        """What a ticket prints, as plain JSON: kept on the ticket, so that a
        reprint is the same ticket."""
        self.ensure_one()
        lang = self.config_id.company_id.partner_id.lang or self.env.lang
        order = self.with_context(lang=lang)
        lines = [order._api_ticket_line(kind, item) for item in routed]
        seats = {item.line.api_seat for item in routed if item.line.api_seat}
        return {
            "kind": kind,
            **order._api_kitchen_label(),
            "station": station.name,
            "at": fields.Datetime.to_string(fields.Datetime.now()),
            "seat": ", ".join(str(seat) for seat in sorted(seats)),
            "guests": order.customer_count or 0,
            "waiter": order.user_id.name or "",
            "note": order.general_note or "",
            "lines": lines,
        }

    def _api_kitchen_label(self):
        """How the kitchen names the order: its reference and its table."""
        self.ensure_one()
        table = self.table_id.table_number
        return {"order_ref": self.pos_reference or self.name, "table": str(table) if table else ""}

    def _api_ticket_line(self, kind, item):
        change = item.change
        qty = abs(change.delta) if kind == kitchen_ticket.CANCEL else change.delta
        if change.note_changed:
            qty = change.qty
        line = item.line.with_context(lang=self.env.lang)
        if not line:  # removed from the order: what the kitchen was sent
            return kitchen_ticket.TicketLine(change.name, qty, note=change.note).as_json()
        scale = abs(qty) / line.qty if line.qty else 1
        return kitchen_ticket.TicketLine(
            name=line.product_id.with_context(display_default_code=False).display_name,
            qty=qty,
            attributes=tuple(
                f"{value.attribute_id.name}: {value.name}" for value in line.attribute_value_ids
            ),
            modifiers=tuple(
                f"{value.custom_product_template_attribute_value_id.name}: {value.custom_value}"
                for value in line.custom_attribute_value_ids
                if value.custom_value
            ),
            note=" / ".join(note for note in (change.note, line.customer_note) if note),
            note_changed=change.note_changed,
            combo=tuple(
                (child.qty * scale, child.product_id.display_name) for child in line.combo_line_ids
            ),
        ).as_json()
