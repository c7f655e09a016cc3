"""The kitchen print queue in Odoo: tickets enqueued as queue_job jobs by the
lifecycle, printed by the job over TCP to real printers on 127.0.0.1 (the
emulator), failures, dead-lettering, backup stations and reprints. Every
ticket is checked by parsing the bytes the printer received.

HttpCase: the job records its state in cursors of its own, which the test
registry serves from the test transaction."""

import time
import uuid
from datetime import timedelta
from unittest.mock import patch

from odoo import fields, sql_db
from odoo.exceptions import AccessError
from odoo.tests import new_test_user, tagged
from odoo.tools import mute_logger

from odoo.addons.queue_job.exception import RetryableJobError
from odoo.addons.queue_job.tests.common import trap_jobs

from ..models import pos_kitchen_ticket
from ..pos_core import kitchen_routing, print_retry
from ..pos_core import lifecycle as lc
from ..pos_core import schemas as s
from ..pos_core.printer_emulator import PrinterEmulator
from .common import PosApiHttpCommon
from .server import free_port

PRINT = "pos.api.print.ticket"


class KitchenPrintCase(PosApiHttpCommon):
    """The demo stations on printers of the test's own (emulators on
    127.0.0.1), and the config's kitchen working before payment."""

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        # The kitchen works before payment: validated -> preparing.
        cls.config.api_kitchen_flow = lc.DINE_IN
        cls.kitchen_station = cls.env.ref("point_of_sale_api.demo_printer_kitchen")
        cls.bar_station = cls.env.ref("point_of_sale_api.demo_printer_bar")
        cls.table = cls.env.ref("point_of_sale_api.demo_table_dining_room_05")
        product = cls.env["product.product"]
        cls.pizza = product.search(
            [("pos_categ_ids", "in", cls.env.ref("point_of_sale_api.demo_categ_pizza").ids)],
            limit=1,
        )
        cls.drink = product.search(
            [("pos_categ_ids", "in", cls.env.ref("point_of_sale_api.demo_categ_soft_drinks").ids)],
            limit=1,
        )

    def setUp(self):
        super().setUp()
        # Each test starts with stations this process has never seen fail.
        failover = kitchen_routing.Failover()
        for target, value in (("FAILOVER", failover), ("PROBE_INTERVAL", 0)):
            patcher = patch.object(pos_kitchen_ticket, target, value)
            patcher.start()
            self.addCleanup(patcher.stop)
        pos_kitchen_ticket._STATUS_SILENT.clear()
        self.kitchen_printer = self._printer(self.kitchen_station)
        self.bar_printer = self._printer(self.bar_station)

    def _printer(self, station, mode="normal", port=0):
        emulator = PrinterEmulator(port=port, mode=mode).start()
        self.addCleanup(emulator.stop)
        station.write({"host": "127.0.0.1", "port": emulator.port, "timeout": 2})
        return emulator

    def _to_kitchen(self, lines=None, **extra):
        lines = lines or [
            {"product_id": self.pizza.id, "qty": "2", "note": "no basil", "seat": 2},
            {"product_id": self.drink.id, "qty": "1"},
        ]
        body = {
            "uuid": str(uuid.uuid4()),
            "lines": lines,
            "state": "validated",
            "table_id": self.table.id,
            "customer_count": 3,
            **extra,
        }
        order = self.env["pos.order"]._api_create(s.OrderCreate(**body), self.waiter)
        order._api_transition(lc.PREPARING)
        return order

    def _ticket(self, order, station):
        return order.api_ticket_ids.filtered(lambda ticket: ticket.station_id == station)

    def _print(self, ticket):
        """Run the job as queue_job runs it; returns the error it raised."""
        try:
            ticket._api_print()
        except RetryableJobError as exc:
            return exc
        finally:
            ticket.invalidate_recordset()
        return None

    def _print_all(self, tickets):
        for ticket in tickets:
            self.assertIsNone(self._print(ticket))
        self.assertEqual(set(tickets.mapped("state")), {"printed"})


@tagged("post_install", "-at_install")
class TestKitchenPrint(KitchenPrintCase):
    def test_order_sent_to_the_kitchen_prints_one_ticket_per_station(self):
        self.env.user.tz = "Asia/Kolkata"  # UTC+5:30, the time printed
        with trap_jobs() as trap:
            order = self._to_kitchen()
            trap.assert_jobs_count(2)
            tickets = order.api_ticket_ids
            for job in trap.enqueued_jobs:
                self.assertEqual(job.func.__name__, "_api_print")
                self.assertIn(job.func.__self__, tickets)
                self.assertEqual(job.channel, "root.pos_api.print")
                self.assertEqual(job.priority, print_retry.PRIORITY["new"])
            self.assertEqual(sorted(tickets.mapped("state")), ["queued", "queued"])
            self.assertEqual(set(tickets.mapped("kind")), {"new"})
            trap.perform_enqueued_jobs()
        tickets.invalidate_recordset()
        self.assertEqual(set(tickets.mapped("state")), {"printed"})
        self.assertEqual(tickets.mapped("attempts"), [1, 1])
        (kitchen,) = self.kitchen_printer.wait_for(1)
        (bar,) = self.bar_printer.wait_for(1)
        self.assertTrue(kitchen.cut)
        self.assertIn("NEW ORDER", kitchen.text)
        self.assertIn(f"TABLE {self.table.table_number} / SEAT 2", kitchen.text)
        self.assertIn(f"2 x {self.pizza.name}", kitchen.text)
        self.assertIn("! no basil", kitchen.text)
        self.assertIn("3 guests", kitchen.text)
        sent = fields.Datetime.to_datetime(tickets[0].content["at"])
        self.assertIn((sent + timedelta(hours=5, minutes=30)).strftime("%H:%M -"), kitchen.text)
        self.assertNotIn(self.drink.name, kitchen.text)
        self.assertIn(f"1 x {self.drink.name}", bar.text)
        self.assertNotIn(self.pizza.name, bar.text)
        kitchen_ticket = self._ticket(order, self.kitchen_station)
        self.assertEqual(kitchen_ticket.printed_by_id, self.kitchen_station)
        self.assertTrue(kitchen_ticket.printed_at)
        self.assertGreater(kitchen_ticket.print_seconds, 0)

    def test_a_rolled_back_order_enqueues_nothing(self):
        jobs = self.env["queue.job"].sudo()
        before = jobs.search_count([("model_name", "=", PRINT)])
        tickets = self.env[PRINT].search_count([])
        with self.assertRaises(RuntimeError), self.env.cr.savepoint():
            self._to_kitchen()
            self.assertEqual(jobs.search_count([("model_name", "=", PRINT)]), before + 2)
            raise RuntimeError("the request failed after the order went to the kitchen")
        self.assertEqual(jobs.search_count([("model_name", "=", PRINT)]), before)
        self.assertEqual(self.env[PRINT].search_count([]), tickets)
        # The same order committed is two jobs on the print channel.
        self._to_kitchen()
        created = jobs.search([("model_name", "=", PRINT)], order="id desc", limit=2)
        self.assertEqual(set(created.mapped("channel")), {"root.pos_api.print"})
        self.assertEqual(set(created.mapped("state")), {"pending"})

    def test_the_retry_pattern_and_channel_are_data(self):
        config = self.env["queue.job.function"].job_config(
            self.env["queue.job.function"].job_function_name(PRINT, "_api_print")
        )
        self.assertEqual(config.channel, "root.pos_api.print")
        self.assertEqual(config.retry_pattern, print_retry.retry_pattern())

    def test_a_ticket_not_printed_fails_then_dies_announced_and_reprints(self):
        self.kitchen_station.port = free_port()
        order = self._to_kitchen()
        ticket = self._ticket(order, self.kitchen_station)
        error = self._print(ticket)
        self.assertIsInstance(error, RetryableJobError)
        self.assertEqual((ticket.state, ticket.attempts), ("failed", 1))
        self.assertIn("refused", ticket.last_error)
        self.assertEqual(self.kitchen_station.health_state, "degraded")
        # 15 minutes after its first try, it is given up on.
        ticket.first_try_at = fields.Datetime.now() - timedelta(seconds=print_retry.DEAD_AFTER)
        self.assertIsNone(self._print(ticket))
        self.assertEqual((ticket.state, ticket.attempts), ("dead", 2))
        self.env.cr.flush()
        self.env.cr.execute(
            "SELECT payload FROM pos_sync_log WHERE event_type = 'print.failed'"
            " AND res_model = %s AND res_id = %s",
            [PRINT, ticket.id],
        )
        (payload,) = [row[0] for row in self.env.cr.fetchall()]
        self.assertEqual((payload["order_id"], payload["attempts"]), (order.id, 2))
        self.assertEqual(payload["station_id"], self.kitchen_station.id)
        # A dead ticket runs no more; by hand, it prints again, marked REPRINT,
        # after the new orders and changes.
        self.assertIsNone(self._print(ticket))
        self.assertEqual(ticket.attempts, 2)
        self.kitchen_station.port = self.kitchen_printer.port
        with trap_jobs() as trap:
            ticket.action_reprint()
            (job,) = trap.enqueued_jobs
            self.assertEqual(job.priority, print_retry.PRIORITY["reprint"])
            trap.perform_enqueued_jobs()
        copy = order.api_ticket_ids - ticket - self._ticket(order, self.bar_station)
        self.assertEqual((copy.reprint, copy.reprint_of_id, copy.state), (True, ticket, "printed"))
        (printout,) = self.kitchen_printer.wait_for(1)
        self.assertIn("REPRINT", printout.text)
        self.assertIn(self.pizza.name, printout.text)

    def test_the_backup_prints_while_the_primary_is_down_then_work_returns(self):
        port = self.bar_printer.port
        self.bar_printer.stop()
        order = self._to_kitchen()
        ticket = self._ticket(order, self.bar_station)
        for attempt in range(kitchen_routing.DEFAULT_FAILOVER_THRESHOLD):
            self.assertIsInstance(self._print(ticket), RetryableJobError, attempt)
        self.assertEqual(self.bar_station.health_state, "refused")
        self.assertIsNone(self._print(ticket))
        self.assertEqual((ticket.state, ticket.printed_by_id), ("printed", self.kitchen_station))
        (printout,) = self.kitchen_printer.wait_for(1)
        self.assertIn("FOR BAR (BACKUP)", printout.text)
        self.assertIn(self.drink.name, printout.text)
        # The bar printer is back: its status answers, the next ticket is its own.
        self.bar_printer = self._printer(self.bar_station, port=port)
        later = self._ticket(self._to_kitchen(), self.bar_station)
        self.assertIsNone(self._print(later))
        self.assertEqual(later.printed_by_id, self.bar_station)
        (printout,) = self.bar_printer.wait_for(1)
        self.assertNotIn("BACKUP", printout.text)
        self.assertEqual(self.bar_station.health_state, "ok")

    def test_an_archived_backup_takes_no_tickets(self):
        self.bar_printer.stop()
        self.kitchen_station.active = False
        ticket = self._ticket(self._to_kitchen(), self.bar_station)
        for attempt in range(kitchen_routing.DEFAULT_FAILOVER_THRESHOLD + 1):
            self.assertIsInstance(self._print(ticket), RetryableJobError, attempt)
        self.assertEqual((ticket.state, ticket.printed_by_id.id), ("failed", False))
        self.assertEqual(self.kitchen_printer.wait_for(1, timeout=0.5), [])

    def test_a_printer_out_of_paper_sends_its_tickets_to_the_backup(self):
        self.bar_printer = self._printer(self.bar_station, mode="no_paper")
        ticket = self._ticket(self._to_kitchen(), self.bar_station)
        self.assertIsNone(self._print(ticket))
        self.assertEqual(ticket.printed_by_id, self.kitchen_station)
        self.assertEqual(self.bar_station.health_state, "no_paper")
        self.assertFalse(self.bar_printer.wait_for(1, timeout=0.2))
        self.assertIn("FOR BAR (BACKUP)", self.kitchen_printer.wait_for(1)[0].text)

    def test_a_printer_that_never_reads_times_out_and_holds_up_no_other_station(self):
        self.kitchen_printer = self._printer(self.kitchen_station, mode="stalled")
        self.kitchen_station.timeout = 0.5
        order = self._to_kitchen()
        started = time.monotonic()
        error = self._print(self._ticket(order, self.kitchen_station))
        self.assertLess(time.monotonic() - started, 3)
        self.assertIsInstance(error, RetryableJobError)
        self.assertIn("timeout", self._ticket(order, self.kitchen_station).last_error)
        self.assertIsNone(self._print(self._ticket(order, self.bar_station)))
        self.assertEqual(len(self.bar_printer.wait_for(1)), 1)

    def test_a_ticket_whose_worker_died_mid_print_prints_again_marked(self):
        order = self._to_kitchen()
        ticket = self._ticket(order, self.kitchen_station)
        # What a worker killed between "printing" and "printed" leaves.
        ticket.write({"state": "printing", "attempts": 1, "first_try_at": fields.Datetime.now()})
        self.assertIsNone(self._print(ticket))
        self.assertEqual((ticket.state, ticket.attempts), ("printed", 2))
        self.assertTrue(ticket.possible_duplicate)
        self.assertIn("POSSIBLE DUPLICATE", self.kitchen_printer.wait_for(1)[0].text)

    def test_a_cancelled_order_prints_a_cancellation_where_it_was_sent(self):
        order = self._to_kitchen([{"product_id": self.pizza.id, "qty": "1"}])
        with trap_jobs() as trap:
            order._api_transition(lc.CANCEL, reason="guest left")
            (job,) = trap.enqueued_jobs
            self.assertEqual(job.priority, print_retry.PRIORITY["cancel"])
            trap.perform_enqueued_jobs()
        cancel = order.api_ticket_ids.filtered(lambda ticket: ticket.kind == "cancel")
        self.assertEqual((cancel.station_id, cancel.state), (self.kitchen_station, "printed"))
        # In their order: the new order (not printed yet here), then its
        # cancellation.
        new, cancelled = self.kitchen_printer.wait_for(2)
        self.assertIn("NEW ORDER", new.text)
        self.assertIn("CANCELLED", cancelled.text)
        # An order cancelled before it reached the kitchen prints nothing.
        body = {"uuid": str(uuid.uuid4()), "lines": [{"product_id": self.pizza.id, "qty": "1"}]}
        draft = self.env["pos.order"]._api_create(s.OrderCreate(**body), self.waiter)
        draft._api_transition(lc.CANCEL)
        self.assertFalse(draft.api_ticket_ids)

    def test_a_badly_configured_station_is_a_health_state_not_an_error(self):
        self.kitchen_station.port = free_port()
        status, body = self._call(
            "POST",
            "/orders",
            {
                "uuid": str(uuid.uuid4()),
                "lines": [{"product_id": self.pizza.id, "qty": "1"}],
                "state": "validated",
                "table_id": self.table.id,
            },
            device=self.waiter,
        )
        self.assertEqual(status, 201, body)
        order = self.env["pos.order"].browse(body["order"]["id"])
        status, body = self._call("POST", f"/orders/{order.id}/prepare", {}, device=self.kitchen)
        self.assertEqual(status, 200, body)
        ticket = self._ticket(order, self.kitchen_station)
        self.assertEqual(ticket.state, "queued")
        self.assertIsInstance(self._print(ticket), RetryableJobError)
        self.kitchen_station.action_check_health()
        self.assertEqual(self.kitchen_station.health_state, "refused")
        self.assertTrue(self.kitchen_station.health_checked_at)

    def test_any_error_while_printing_is_retried_not_lost(self):
        ticket = self._ticket(self._to_kitchen(), self.kitchen_station)
        with patch.object(
            pos_kitchen_ticket.kitchen_ticket, "render", side_effect=ValueError("bad layout")
        ):
            error = self._print(ticket)
        self.assertIsInstance(error, RetryableJobError)
        self.assertEqual(ticket.state, "failed")
        self.assertIn("ValueError: bad layout", ticket.last_error)
        self.assertIsNone(self._print(ticket))
        self.assertEqual((ticket.state, ticket.attempts), ("printed", 2))

    def test_a_print_job_whose_worker_died_goes_back_in_the_queue(self):
        self._to_kitchen()
        jobs = (
            self.env["queue.job"]
            .sudo()
            .search([("model_name", "=", PRINT)], order="id desc", limit=2)
        )
        now = fields.Datetime.now()
        self.env.cr.execute(
            "UPDATE queue_job SET state = 'started', date_started = %s WHERE id IN %s",
            [now - timedelta(minutes=pos_kitchen_ticket.STUCK_MINUTES + 1), tuple(jobs.ids)],
        )
        self.env.cr.execute(
            "UPDATE queue_job SET date_started = %s WHERE id = %s", [now, jobs[1].id]
        )
        jobs.invalidate_recordset()
        self.assertEqual(self.env[PRINT]._cron_requeue_stuck(), 1)
        self.assertEqual(jobs.mapped("state"), ["pending", "started"])

    def test_only_managers_reprint_and_check_printers(self):
        ticket = self._ticket(self._to_kitchen(), self.kitchen_station)
        waiter = new_test_user(
            self.env, login="kitchen_print_user", groups="point_of_sale.group_pos_user"
        )
        with self.assertRaises(AccessError):
            ticket.with_user(waiter).action_reprint()
        with self.assertRaises(AccessError):
            self.kitchen_station.with_user(waiter).action_check_health()
        self.assertEqual(len(ticket.order_id.api_ticket_ids), 2)

    def test_a_backend_cancel_of_an_order_in_the_kitchen_prints_a_cancellation(self):
        order = self._to_kitchen([{"product_id": self.pizza.id, "qty": "1"}])
        self.assertEqual(order.state, "draft")
        order.action_pos_order_cancel()
        self.assertEqual((order.state, order.api_state), ("cancel", "cancel"))
        cancel = order.api_ticket_ids.filtered(lambda ticket: ticket.kind == "cancel")
        self.assertEqual(cancel.station_id, self.kitchen_station)

    def test_a_station_back_wakes_its_waiting_tickets_in_order(self):
        port = self.kitchen_printer.port
        self.kitchen_printer.stop()
        orders = [self._to_kitchen([{"product_id": self.pizza.id, "qty": "1"}]) for _ in range(3)]
        tickets = [order.api_ticket_ids for order in orders]
        jobs = self.env["queue.job"].sudo()
        for ticket in tickets[1:]:
            self.assertIsInstance(self._print(ticket), RetryableJobError)
            # As queue_job postpones a retried job.
            jobs.search([("uuid", "=", ticket.job_uuid)]).write(
                {"eta": fields.Datetime.now() + timedelta(seconds=60)}
            )
        self.kitchen_printer = self._printer(self.kitchen_station, port=port)
        self.assertIsNone(self._print(tickets[0]))
        waiting = jobs.search([("uuid", "in", [ticket.job_uuid for ticket in tickets[1:]])])
        self.assertEqual(len(waiting), 2)
        waiting.invalidate_recordset()  # written in the job's own cursor
        self.assertEqual(waiting.mapped("eta"), [False, False])
        self.assertEqual(waiting.mapped("state"), ["pending", "pending"])
        # The runner takes them by priority, creation time, then id: as sent.
        self.assertEqual(set(waiting.mapped("priority")), {print_retry.PRIORITY["new"]})
        self.assertEqual(
            waiting.sorted(lambda job: (job.date_created, job.id)).mapped("uuid"),
            [ticket.job_uuid for ticket in tickets[1:]],
        )

    def test_a_station_prints_its_tickets_in_their_order_whichever_job_runs_first(self):
        port = self.kitchen_printer.port
        self.kitchen_printer.stop()
        orders = [self._to_kitchen([{"product_id": self.pizza.id, "qty": "1"}]) for _ in range(3)]
        tickets = [order.api_ticket_ids for order in orders]
        # The printer is down: the newest job tries the oldest ticket first,
        # and records its own try as failed behind it.
        error = self._print(tickets[2])
        self.assertIsInstance(error, pos_kitchen_ticket.StationDown)
        self.assertIn(f"waiting for ticket {tickets[0].id}", str(error))
        self.assertEqual([ticket.state for ticket in tickets], ["failed", "queued", "failed"])
        self.assertEqual([ticket.attempts for ticket in tickets], [1, 0, 0])
        self.assertEqual(tickets[2].last_error, str(error))
        # Back: whichever job runs first prints them all, oldest first.
        self.kitchen_printer = self._printer(self.kitchen_station, port=port)
        self.assertIsNone(self._print(tickets[2]))
        for ticket in tickets:
            ticket.invalidate_recordset()
        self.assertEqual([ticket.state for ticket in tickets], ["printed"] * 3)
        printed = self.kitchen_printer.wait_for(3)
        self.assertEqual(len(printed), 3)
        refs = [order.pos_reference or order.name for order in orders]
        self.assertEqual(
            [next(ref for ref in refs if ref in printout.text) for printout in printed], refs
        )
        # Their own jobs find them printed.
        self.assertEqual(tickets[0]._api_print(), "already printed")

    def test_a_ticket_waiting_behind_a_down_station_dies_on_its_own_clock(self):
        self.kitchen_printer.stop()
        first, second = (
            self._to_kitchen([{"product_id": self.pizza.id, "qty": "1"}]).api_ticket_ids
            for _ in range(2)
        )
        self.assertIsInstance(self._print(first), RetryableJobError)
        self.assertIsInstance(self._print(second), pos_kitchen_ticket.StationDown)
        self.assertEqual((second.state, second.attempts), ("failed", 0))
        self.assertTrue(second.first_try_at)
        # Fifteen minutes after its own first try, it is given up on with
        # the station's error, even though it never reached the printer.
        past = fields.Datetime.now() - timedelta(seconds=print_retry.DEAD_AFTER)
        second.first_try_at = past
        self.assertIsNone(self._print(second))
        self.assertEqual(second.state, "dead")
        first.invalidate_recordset()
        self.assertEqual(second.last_error, f"waiting for ticket {first.id}: {first.last_error}")
        self.env.cr.execute(
            "SELECT count(*) FROM pos_sync_log WHERE event_type = 'print.failed'"
            " AND res_model = %s AND res_id = %s",
            [PRINT, second.id],
        )
        self.assertEqual(self.env.cr.fetchone()[0], 1)

    def test_a_ticket_printed_meanwhile_is_not_marked_failed_behind_a_down_station(self):
        self.kitchen_printer.stop()
        first, second = (
            self._to_kitchen([{"product_id": self.pizza.id, "qty": "1"}]).api_ticket_ids
            for _ in range(2)
        )
        self.assertEqual(second.state, "queued")  # what this job's snapshot says
        self.env.cr.execute(
            "UPDATE pos_api_print_ticket SET state = 'printed' WHERE id = %s", [second.id]
        )
        self.assertEqual(second._api_print(), "already printed or dead")
        second.invalidate_recordset()
        self.assertEqual(second.state, "printed")
        first.invalidate_recordset()
        self.assertEqual(first.state, "failed")

    def test_a_ticket_failing_for_its_own_reason_holds_up_no_later_ticket(self):
        first, second = (
            self._to_kitchen([{"product_id": self.pizza.id, "qty": "1"}]).api_ticket_ids
            for _ in range(2)
        )
        original = pos_kitchen_ticket.PosApiPrintTicket._api_ticket_fields

        def fields_or_bug(ticket):
            if ticket.id == first.id:
                raise KeyError("lines")
            return original(ticket)

        with (
            patch.object(pos_kitchen_ticket.PosApiPrintTicket, "_api_ticket_fields", fields_or_bug),
            mute_logger(pos_kitchen_ticket.__name__),
        ):
            self.assertIsNone(self._print(second))
            first.invalidate_recordset()
            self.assertEqual((first.state, second.state), ("failed", "printed"))
            self.assertIn("KeyError", first.last_error)
        # Its own job prints it once the fault is gone.
        self.assertIsNone(self._print(first))
        self.assertEqual(len(self.kitchen_printer.wait_for(2)), 2)

    def test_a_job_drains_at_most_a_batch_of_earlier_tickets_then_comes_back(self):
        tickets = [
            self._to_kitchen([{"product_id": self.pizza.id, "qty": "1"}]).api_ticket_ids
            for _ in range(4)
        ]
        with patch.object(pos_kitchen_ticket, "DRAIN_BATCH", 2):
            error = self._print(tickets[3])
            self.assertIsInstance(error, RetryableJobError)
            self.assertTrue(error.ignore_retry)
            for ticket in tickets:
                ticket.invalidate_recordset()
            self.assertEqual(
                [ticket.state for ticket in tickets], ["printed", "printed", "queued", "queued"]
            )
            self.assertIsNone(self._print(tickets[3]))
        self.assertEqual({ticket.state for ticket in tickets}, {"printed"})
        self.assertEqual(len(self.kitchen_printer.wait_for(4)), 4)

    def test_a_ticket_printed_since_the_job_started_is_not_printed_again(self):
        ticket = self._ticket(self._to_kitchen(), self.kitchen_station)
        self.assertEqual(ticket.state, "queued")  # what this job's snapshot says
        # Another job printed it and committed after this job's snapshot.
        self.env.cr.execute(
            "UPDATE pos_api_print_ticket SET state = 'printed' WHERE id = %s", [ticket.id]
        )
        self.assertEqual(ticket._api_print(), "already printed or dead")
        self.assertEqual(self.kitchen_printer.tickets, [])

    def test_one_job_prints_a_station_at_a_time(self):
        order = self._to_kitchen([{"product_id": self.pizza.id, "qty": "1"}])
        ticket = order.api_ticket_ids
        # Another worker holds the station (its own connection to the database).
        with sql_db.db_connect(self.env.cr.dbname).cursor() as other:
            other.execute(
                "SELECT pg_advisory_lock(%s, %s)",
                [pos_kitchen_ticket.STATION_LOCK, self.kitchen_station.id],
            )
            try:
                error = self._print(ticket)
            finally:
                other.execute(
                    "SELECT pg_advisory_unlock(%s, %s)",
                    [pos_kitchen_ticket.STATION_LOCK, self.kitchen_station.id],
                )
        self.assertIsInstance(error, RetryableJobError)
        self.assertTrue(error.ignore_retry)
        self.assertEqual((ticket.state, ticket.attempts), ("queued", 0))
        self.assertIsNone(self._print(ticket))
        self.assertEqual(ticket.state, "printed")
