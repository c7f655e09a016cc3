"""The sync log on the test transaction: which events each source of change
writes (device API, POS UI ``sync_from_ui``, backend), their rooms and
payloads, the payload bound, sequencing, reading, retention, the bus relay
and the company rule.

The test cursor never commits: each test flushes (precommit: the INSERT of
the buffered events) and calls the sequencer itself, as the post-commit hook
would. Retention and the backstop run with ``pos_sync_log_inline`` so that
they work on this transaction instead of a fresh one."""

import contextlib
import uuid

from odoo import fields
from odoo.exceptions import AccessError
from odoo.tests import new_test_user, tagged

from ..models.pos_sync_log import BUS_NOTIFICATION, TX_KEY
from ..pos_core import events, limits
from ..pos_core import lifecycle as lc
from ..pos_core import schemas as s
from .common import PosApiCommon


class SyncLogCase(PosApiCommon):
    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.session = cls._open_session()
        cls.device = cls._create_device("waiter")
        cls.table = cls.env.ref("point_of_sale_api.demo_table_dining_room_05")
        cls.log = cls.env["pos.sync.log"].sudo()
        # The events of orders, tables and sessions: no kitchen stations
        # (their kitchen.ticket events are tested with the print queue).
        cls.env["pos.api.printer"].search([]).config_ids = False

    def setUp(self):
        super().setUp()
        self._mark()

    def _mark(self):
        """What a commit does: precommit, the sequencer, and the end of the
        transaction's own bookkeeping (post-commit data)."""
        self.env.cr.flush()
        self.log._sequence_pending()
        self.env.cr.flush()  # (the bus rows of the relay)
        self.env.cr.postcommit.data.pop(TX_KEY, None)
        self.env.cr.execute("SELECT COALESCE(max(id), 0) FROM pos_sync_log")
        self.since = self.env.cr.fetchone()[0]

    def _events(self, sequence=True):
        """The events written since the last mark, in id order; marks again."""
        self.env.cr.flush()
        if sequence:
            self.log._sequence_pending()
        self.env.cr.execute(
            "SELECT event_type, rooms, payload, res_model, res_id, seq, config_id"
            " FROM pos_sync_log WHERE id > %s ORDER BY id",
            [self.since],
        )
        rows = [
            {
                "type": row[0],
                "rooms": row[1],
                "payload": row[2],
                "record": (row[3], row[4]),
                "seq": row[5],
                "config_id": row[6],
            }
            for row in self.env.cr.fetchall()
        ]
        self._mark()
        return rows

    def _types(self, rows):
        return sorted(row["type"] for row in rows)

    def _api_order(self, products=None, **extra):
        products = products or [(product, 1) for product in self._pos_products(2)]
        body = self._order_body(products, **extra)
        return self.env["pos.order"]._api_create(s.OrderCreate(**body), self.device)

    def _ui_draft(self, products=None, **extra):
        products = products or [(product, 1) for product in self._pos_products(2)]
        payload = dict(self._ui_order_payload(self.session, products, paid=False), **extra)
        self.env["pos.order"].sync_from_ui([payload])
        return self.env["pos.order"].search([("uuid", "=", payload["uuid"])]), payload


@tagged("post_install", "-at_install")
class TestSyncLogEvents(SyncLogCase):
    def test_a_table_on_a_shared_floor_updates_every_point_of_sale(self):
        # From the config's side: a floor whose point of sale has an open
        # session refuses to be written itself.
        bar = self.env["pos.config"].create(
            {
                "name": "Terrace bar",
                "module_pos_restaurant": True,
                "floor_ids": [(4, self.table.floor_id.id)],
            }
        )
        # The floor's side of the same relation table is cached on its own.
        self.table.floor_id.invalidate_recordset(["pos_config_ids"])
        order = self._api_order(table_id=self.table.id, customer_count=2)
        rows = self._events()
        tables = {row["config_id"]: row for row in rows if row["type"] == "table.updated"}
        self.assertEqual(set(tables), {self.config.id, bar.id})
        # The bar has no open session: no session room.
        self.assertEqual(tables[bar.id]["rooms"], f"table:{self.table.id},config:{bar.id}")
        for row in tables.values():
            self.assertEqual(
                {key: row["payload"][key] for key in ("id", "occupied", "order_ids", "guests")},
                {"id": self.table.id, "occupied": True, "order_ids": [order.id], "guests": 2},
            )
        self.assertEqual(
            [row["config_id"] for row in rows if row["type"] != "table.updated"], [self.config.id]
        )

    def test_api_order_at_a_table(self):
        order = self._api_order(table_id=self.table.id, customer_count=3)
        rows = self._events()
        self.assertEqual(self._types(rows), ["order.created", "table.updated"])
        created, table = rows
        config, session = self.config.id, self.session.id
        rooms = f"table:{self.table.id},session:{session},config:{config}"
        self.assertEqual(created["rooms"], rooms)
        self.assertEqual(created["record"], ("pos.order", order.id))
        payload = created["payload"]
        self.assertEqual(
            {key: payload[key] for key in ("id", "uuid", "name", "state", "odoo_state")},
            {
                "id": order.id,
                "uuid": order.uuid,
                "name": order.name,
                "state": "draft",
                "odoo_state": "draft",
            },
        )
        self.assertEqual((payload["table_id"], payload["customer_count"]), (self.table.id, 3))
        self.assertEqual(payload["amount_total"], f"{order.amount_total:.2f}")
        self.assertEqual(
            [(line["product_id"], line["qty"], line["price_unit"]) for line in payload["lines"]],
            [(line.product_id.id, "1.000", f"{line.price_unit:.4f}") for line in order.lines],
        )
        self.assertEqual(payload["payments"], [])
        self.assertEqual(table["rooms"], rooms)
        self.assertEqual(table["record"], ("restaurant.table", self.table.id))
        self.assertTrue(table["payload"]["occupied"])
        self.assertIn(order.id, table["payload"]["order_ids"])
        self.assertGreaterEqual(table["payload"]["guests"], 3)
        # Gap-free, in id order, per config.
        self.assertEqual(rows[1]["seq"], rows[0]["seq"] + 1)
        self.assertEqual(self.log._heads([config])[config][0], rows[1]["seq"])

    def test_one_event_per_record_and_type(self):
        order = self._api_order()
        self._events()
        for index in range(5):
            order.write({"general_note": f"note {index}"})
        order._api_add_lines([s.LineIn(product_id=self._pos_products(1).id, qty=2)], self.device)
        rows = self._events()
        self.assertEqual(self._types(rows), ["line.updated", "order.updated"])
        updated = next(row for row in rows if row["type"] == "order.updated")
        self.assertEqual(updated["payload"]["note"], "note 4")
        self.assertEqual(len(updated["payload"]["lines"]), 3)
        line = next(row for row in rows if row["type"] == "line.updated")
        self.assertEqual(line["payload"]["order_id"], order.id)
        self.assertEqual(line["payload"]["qty"], "2.000")
        self.assertEqual(line["payload"]["amount_total"], f"{order.amount_total:.2f}")
        # Removing a line: the line, deleted, and the order.
        order._api_remove_line(order.lines[-1].uuid)
        rows = self._events()
        self.assertEqual(self._types(rows), ["line.updated", "order.updated"])
        self.assertTrue(next(r for r in rows if r["type"] == "line.updated")["payload"]["deleted"])

    def test_same_events_from_api_pos_ui_and_backend(self):
        def shape(rows):
            return sorted((row["type"], tuple(sorted(row["payload"]))) for row in rows)

        api_order = self._api_order(table_id=self.table.id, customer_count=2)
        api_created = self._events()
        ui_order, ui_payload = self._ui_draft(table_id=self.table.id, customer_count=2)
        ui_created = self._events()
        self.assertEqual(shape(api_created), shape(ui_created))
        self.assertEqual(self._types(api_created), ["order.created", "table.updated"])
        self.assertEqual(ui_created[0]["rooms"], api_created[0]["rooms"])

        # Paying: API payments vs the POS UI pushing the order paid.
        api_order._api_transition(lc.VALIDATED, device=self.device)
        self._events()
        amount = f"{api_order.amount_total:.2f}"
        tender = s.TenderIn(payment_method_id=self.cash_method.id, amount=amount)
        api_order._api_pay([tender], 0, self.device)
        api_paid = self._events()
        paid_payload = self._ui_order_payload(self.session, [], paid=True)
        total = ui_order.amount_total
        ui_payload = dict(
            ui_payload,
            id=ui_order.id,
            lines=[],
            state="paid",
            amount_paid=total,
            payment_ids=[
                fields.Command.create(
                    dict(paid_payload["payment_ids"][0][2], amount=total),
                )
            ],
        )
        self.env["pos.order"].sync_from_ui([ui_payload])
        ui_paid = self._events()
        self.assertEqual(ui_order.state, "paid")
        self.assertEqual(self._types(api_paid), self._types(ui_paid))
        self.assertIn("payment.processed", self._types(api_paid))
        self.assertIn("order.state_changed", self._types(api_paid))
        self.assertIn("table.updated", self._types(api_paid))
        state = next(row for row in api_paid if row["type"] == "order.state_changed")
        self.assertEqual(state["payload"]["state"], "paid")
        self.assertEqual(state["payload"]["previous"]["state"], "validated")
        payment = next(row for row in ui_paid if row["type"] == "payment.processed")
        self.assertEqual(payment["payload"]["processed_ids"], ui_order.payment_ids.ids)

        # Cancelling: the device API vs a manager in the backend.
        api_draft = self._api_order(table_id=self.table.id)
        backend_draft = self._api_order(table_id=self.table.id)
        self._events()
        api_draft._api_transition(lc.CANCEL, device=self.device)
        api_cancel = self._events()
        backend_draft.action_pos_order_cancel()
        backend_cancel = self._events()
        self.assertEqual(shape(api_cancel), shape(backend_cancel))
        self.assertEqual(self._types(api_cancel), ["order.state_changed", "table.updated"])
        table = next(row for row in backend_cancel if row["type"] == "table.updated")
        self.assertNotIn(backend_draft.id, table["payload"]["order_ids"])

    def test_kitchen_ready(self):
        products = self._pos_products(2)
        payload = self._ui_order_payload(self.session, [(products[0], 1), (products[1], 1)])
        self.env["pos.order"].sync_from_ui([payload])
        order = self.env["pos.order"].search([("uuid", "=", payload["uuid"])])
        self.assertEqual(self._types(self._events()), ["order.created", "payment.processed"])
        order._api_transition(lc.PREPARING)
        self.assertEqual(self._types(self._events()), ["order.state_changed"])
        order._api_transition(lc.READY)
        rows = self._events()
        self.assertEqual(self._types(rows), ["kitchen.order_ready", "order.state_changed"])
        self.assertEqual(rows[0]["payload"]["state"], "ready")

    def test_session_opened_and_closed_in_the_backend(self):
        session = self.config.current_session_id
        session.order_ids.filtered(lambda o: o.state == "draft").action_pos_order_cancel()
        session.order_ids.filtered(lambda o: o.state == "paid").write({"state": "done"})
        session.action_pos_session_closing_control()
        self._events()
        self.config.open_ui()
        new = self.config.current_session_id
        rows = self._events()
        self.assertEqual(self._types(rows), ["session.updated"])
        self.assertEqual(rows[0]["rooms"], f"session:{new.id},config:{self.config.id}")
        self.assertEqual(rows[0]["payload"]["state"], "opening_control")
        new.set_opening_control(0, None)
        new.action_pos_session_closing_control()
        rows = self._events()
        self.assertEqual(self._types(rows), ["session.updated"])
        self.assertEqual(
            (rows[0]["payload"]["previous_state"], rows[0]["payload"]["state"]),
            ("opening_control", "closed"),
        )

    def test_menu_updated(self):
        product = self._pos_products(1)
        product.product_tmpl_id.list_price += 1
        rows = self._events()
        self.assertIn("menu.updated", self._types(rows))
        menu = [row for row in rows if row["config_id"] == self.config.id]
        self.assertEqual(len(menu), 1)
        self.assertIn(product.id, menu[0]["payload"]["product_ids"])
        self.assertEqual(menu[0]["rooms"], f"config:{self.config.id}")

    def test_payload_bound_references_lines_by_id(self):
        product = self._pos_products(1)
        order = self._api_order([(product, 1)] * limits.MAX_LINES_PER_ORDER)
        (created,) = self._events()
        payload = created["payload"]
        self.assertTrue(payload["truncated"])
        self.assertNotIn("lines", payload)
        self.assertEqual(payload["line_ids"], order.lines.ids)
        self.assertEqual(len(payload["line_ids"]), 300)
        self.assertLessEqual(events.payload_size(payload), events.PAYLOAD_MAX_BYTES)
        self.assertEqual(payload["id"], order.id)

    def test_rollback_leaves_no_row_and_no_gap(self):
        head = self.log._heads([self.config.id])[self.config.id][0]
        with contextlib.suppress(ValueError), self.env.cr.savepoint():
            self._api_order()
            self.env.cr.flush()
            self.env.cr.execute("SELECT count(*) FROM pos_sync_log WHERE id > %s", [self.since])
            self.assertEqual(self.env.cr.fetchone()[0], 1, "inserted at precommit")
            raise ValueError("rolled back")
        self.assertEqual(self._events(), [])
        self.assertEqual(self.log._heads([self.config.id])[self.config.id][0], head)
        self._api_order()
        (row,) = self._events()
        self.assertEqual(row["seq"], head + 1)

    def test_emit_checks_type_and_rooms(self):
        with self.assertRaises(ValueError):
            self.log._emit(self.config, "order.exploded", [], {})
        with self.assertRaises(Exception) as caught:
            self.log._emit(self.config, events.PRINT_FAILED, ["kitchen:1"], {})
        self.assertEqual(getattr(caught.exception, "code", None), "invalid_room")
        self.log._emit(self.config, events.PRINT_FAILED, ["station:4"], {"ticket_id": 1})
        (row,) = self._events()
        self.assertEqual(row["rooms"], f"station:4,config:{self.config.id}")


@tagged("post_install", "-at_install")
class TestSyncLogReadAndKeep(SyncLogCase):
    def _emit_n(self, count, rooms=()):
        for index in range(count):
            self.log._emit(self.config, events.ORDER_UPDATED, list(rooms), {"id": index})
        return self._events()

    def test_read_since_rooms_limit_and_resume(self):
        config = self.config.id
        before = self.log._heads([config])[config][0]
        rows = self._emit_n(2, ["table:7", "session:3"]) + self._emit_n(1, ["table:8"])
        seqs = [row["seq"] for row in rows]
        self.assertEqual(seqs, [before + 1, before + 2, before + 3])
        envelopes, last, resync = self.log._read_since(config, before, ["table:7"], 10)
        self.assertEqual([env["seq"] for env in envelopes], seqs[:2])
        self.assertEqual({env["room"] for env in envelopes}, {"table:7"})
        self.assertEqual((last, resync), (seqs[2], False))
        self.assertTrue(envelopes[0]["at"].endswith("Z"))
        self.assertEqual(envelopes[0]["type"], "order.updated")
        envelopes, _last, _resync = self.log._read_since(config, before, ["session:3"], 10)
        self.assertEqual({env["room"] for env in envelopes}, {"session:3"})
        # No rooms: the config's room sees all; a limit stops at the last row read.
        envelopes, last, _resync = self.log._read_since(config, before, None, 2)
        self.assertEqual(
            ([env["room"] for env in envelopes], last), ([f"config:{config}"] * 2, seqs[1])
        )
        # Beyond the head (another database's cursor): resync from the head.
        self.assertEqual(self.log._read_since(config, seqs[2] + 50, None, 10), ([], seqs[2], True))
        # No cursor: from now.
        self.assertEqual(self.log._read_since(config, None, None, 10), ([], seqs[2], False))

    def test_retention_prunes_in_batches_and_raises_the_floor(self):
        config = self.config.id
        rows = self._emit_n(5)
        old = [row["seq"] for row in rows[:3]]
        self.env.cr.execute(
            "UPDATE pos_sync_log SET create_date = create_date - interval '40 days'"
            " WHERE config_id = %s AND seq BETWEEN %s AND %s",
            [config, old[0], old[-1]],
        )
        cron = self.env.ref("point_of_sale_api.ir_cron_sync_log_prune")
        self.assertEqual(cron.interval_type, "days")
        progress = self.env["ir.cron.progress"].sudo().create({"cron_id": cron.id})
        log = self.log.with_context(pos_sync_log_inline=True, ir_cron_progress_id=progress.id)
        # Out of time after the first batch: progress says what is left.
        self.assertEqual(log._cron_prune(batch_size=1, budget=0), (1, 2))
        self.assertEqual((progress.done, progress.remaining), (1, 2))
        self.assertEqual(log._cron_prune(batch_size=2), (2, 0))
        self.assertEqual((progress.done, progress.remaining), (2, 0))
        self.assertEqual(self.log._heads([config])[config][1], old[-1])
        self.env.cr.execute(
            "SELECT seq FROM pos_sync_log WHERE config_id = %s AND seq >= %s ORDER BY seq",
            [config, old[0]],
        )
        self.assertEqual([row[0] for row in self.env.cr.fetchall()], [r["seq"] for r in rows[3:]])
        # A cursor below the floor must resync; at the floor it resumes.
        self.assertEqual(self.log._read_since(config, old[0], None, 10)[2], True)
        envelopes, _last, resync = self.log._read_since(config, old[-1], None, 10)
        self.assertFalse(resync)
        self.assertEqual([env["seq"] for env in envelopes], [r["seq"] for r in rows[3:]])

    def test_retention_is_configurable(self):
        self.assertEqual(self.log._retention_days(), limits.SYNC_LOG_RETENTION_DAYS)
        rows = self._emit_n(1)
        self.env.cr.execute(
            "UPDATE pos_sync_log SET create_date = create_date - interval '40 days'"
            " WHERE config_id = %s AND seq = %s",
            [self.config.id, rows[0]["seq"]],
        )
        self.env["ir.config_parameter"].sudo().set_param(
            "point_of_sale_api.sync_log_retention_days", "60"
        )
        log = self.log.with_context(pos_sync_log_inline=True)
        self.assertEqual(log._cron_prune()[0], 0)
        self.env["ir.config_parameter"].sudo().set_param(
            "point_of_sale_api.sync_log_retention_days", "30"
        )
        self.assertEqual(log._cron_prune()[0], 1)

    def test_orphans_are_sequenced_by_the_backstop(self):
        self.log._emit(self.config, events.ORDER_UPDATED, [], {"id": 1})
        self.env.cr.flush()
        log = self.log.with_context(pos_sync_log_inline=True)
        self.assertEqual(log._sequence_orphans(), {}, "too young: its writer sequences it")
        self.env.cr.execute(
            "UPDATE pos_sync_log SET create_date = create_date - interval '1 minute' WHERE id > %s",
            [self.since],
        )
        heads = log._sequence_orphans()
        (row,) = self._events(sequence=False)
        self.assertEqual(heads, {self.config.id: row["seq"]})
        cron = self.env.ref("point_of_sale_api.ir_cron_sync_log_orphans")
        self.assertEqual((cron.interval_number, cron.interval_type), (1, "minutes"))

    def test_relayed_to_the_pos_ui_bus(self):
        self.config._ensure_access_token()
        self.env.cr.execute("SELECT COALESCE(max(id), 0) FROM bus_bus")
        bus_since = self.env.cr.fetchone()[0]
        order = self._api_order(table_id=self.table.id)
        rows = self._events()
        token = self.config.access_token
        # As the POS UI's websocket reads its channel: the bus matches the
        # channel's JSON text exactly.
        relayed = [
            notification["message"]
            for notification in self.env["bus.bus"]._poll([token], last=bus_since)
        ]
        self.assertEqual(
            [message["type"] for message in relayed], [f"{token}-{BUS_NOTIFICATION}"] * 2
        )
        envelope = relayed[0]["payload"]
        self.assertEqual(
            (envelope["seq"], envelope["type"], envelope["room"]),
            (rows[0]["seq"], "order.created", f"config:{self.config.id}"),
        )
        self.assertEqual(envelope["payload"]["id"], order.id)


@tagged("post_install", "-at_install")
class TestSyncLogSecurity(SyncLogCase):
    def test_company_rule_and_access(self):
        self.log._emit(self.config, events.ORDER_UPDATED, [], {"id": 1})
        (row,) = self._events()
        mine = self.log.search([("config_id", "=", self.config.id), ("seq", "=", row["seq"])])
        self.assertEqual(len(mine), 1)
        other = self.env["res.company"].sudo().create({"name": f"Other {uuid.uuid4().hex[:6]}"})
        manager_b = new_test_user(
            self.env,
            login=f"mgr-b-{uuid.uuid4().hex[:6]}",
            groups="point_of_sale.group_pos_manager",
            company_id=other.id,
            company_ids=[(6, 0, other.ids)],
        )
        manager_a = new_test_user(
            self.env,
            login=f"mgr-a-{uuid.uuid4().hex[:6]}",
            groups="point_of_sale.group_pos_manager",
            company_id=self.config.company_id.id,
            company_ids=[(6, 0, self.config.company_id.ids)],
        )
        self.assertEqual(
            self.env["pos.sync.log"].with_user(manager_a).search([("id", "=", mine.id)]), mine
        )
        as_b = self.env["pos.sync.log"].with_user(manager_b)
        self.assertFalse(as_b.search([("id", "=", mine.id)]))
        with self.assertRaises(AccessError):
            as_b.browse(mine.id).read(["payload"])
        # Nobody writes the log through RPC, managers included.
        with self.assertRaises(AccessError):
            self.env["pos.sync.log"].with_user(manager_a).create(
                {
                    "config_id": self.config.id,
                    "company_id": self.config.company_id.id,
                    "event_type": "order.updated",
                    "rooms": f"config:{self.config.id}",
                }
            )
        with self.assertRaises(AccessError):
            mine.with_user(manager_a).write({"payload": {}})
        cashier = new_test_user(
            self.env,
            login=f"cashier-{uuid.uuid4().hex[:6]}",
            groups="point_of_sale.group_pos_user",
            company_id=self.config.company_id.id,
        )
        with self.assertRaises(AccessError):
            self.env["pos.sync.log"].with_user(cashier).search([])

    def test_backend_view_and_menu(self):
        action = self.env.ref("point_of_sale_api.pos_sync_log_action")
        self.assertEqual(action.res_model, "pos.sync.log")
        menu = self.env.ref("point_of_sale_api.menu_pos_sync_log")
        self.assertEqual(menu.parent_id, self.env.ref("point_of_sale_api.menu_pos_api_root"))
        views = self.env["pos.sync.log"].get_views([(False, "list"), (False, "search")])
        self.assertIn("event_type", views["views"]["list"]["arch"])
