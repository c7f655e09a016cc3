"""The connection registry: the channel's one-statement API, the cleaning
cron (stale rows and rows of processes that are gone go, live ones stay,
bounded with progress), the company rule and the backend views."""

import os
import subprocess
import sys
import threading

from odoo import SUPERUSER_ID, Command
from odoo.exceptions import AccessError
from odoo.tests import TransactionCase, tagged

from ..models.pos_websocket_connection import worker_name
from ..pos_core import limits
from .common import PosApiFactories
from .threads import thread_env

API_MANAGER_GROUP = "point_of_sale_api.group_pos_api_manager"


def _dead_pid():
    """The pid of a process that has exited (and been reaped)."""
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait(timeout=30)
    return child.pid


@tagged("post_install", "-at_install")
class TestWebsocketConnection(PosApiFactories, TransactionCase):
    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls._setup_restaurant()
        cls.Connection = cls.env["pos.websocket.connection"].sudo()
        cls.device = cls._create_device("waiter")
        cls.kitchen = cls._create_device("kitchen")

    def _age(self, connections, seconds):
        """Move ``last_seen`` back by ``seconds``."""
        self.env.cr.execute(
            "UPDATE pos_websocket_connection"
            "   SET last_seen = (now() AT TIME ZONE 'UTC') - make_interval(secs => %s)"
            " WHERE id = ANY(%s)",
            (seconds, connections.ids),
        )
        connections.invalidate_recordset()

    def _set_worker(self, connection, worker):
        self.env.cr.execute(
            "UPDATE pos_websocket_connection SET worker = %s WHERE id = %s",
            (worker, connection.id),
        )
        connection.invalidate_recordset()

    def _existing(self, connections):
        return connections.exists()

    # ------------------------------------------------------------ the API
    def test_open_records_device_config_company_and_worker(self):
        connection = self.Connection._api_open(
            self.device, ["table:3", "config:1"], "websocket", "192.0.2.7"
        )
        self.assertEqual(len(connection), 1)
        self.assertEqual(connection.device_id, self.device)
        self.assertEqual(connection.config_id, self.config)
        self.assertEqual(connection.company_id, self.config.company_id)
        self.assertEqual(connection.rooms, "table:3,config:1")
        self.assertEqual(connection.transport, "websocket")
        self.assertEqual(connection.remote_addr, "192.0.2.7")
        self.assertEqual(connection.worker, worker_name())
        self.assertTrue(connection.worker.endswith(f":{os.getpid()}"))
        self.assertTrue(connection.connected_at)
        self.assertEqual(connection.last_seen, connection.connected_at)

    def test_each_call_is_one_statement(self):
        with self.assertQueryCount(1):
            connection = self.Connection._api_open(self.device, [], "longpoll", None)
        self.assertEqual(connection.transport, "longpoll")
        self.assertFalse(connection.rooms)
        self.assertFalse(connection.remote_addr)
        with self.assertQueryCount(1):
            connection._api_subscribed(["config:1", "session:2"])
        self.assertEqual(connection.rooms, "config:1,session:2")
        with self.assertQueryCount(1):
            connection._api_close()
        self.assertFalse(connection.exists())

    def test_seen_marks_a_whole_set_in_one_update(self):
        connections = self.Connection.browse(
            [
                self.Connection._api_open(self.device, ["config:1"], "websocket", "::1").id
                for _index in range(50)
            ]
        )
        self._age(connections, 3600)
        before = connections.mapped("last_seen")
        with self.assertQueryCount(1):
            connections._api_seen()
        after = connections.mapped("last_seen")
        self.assertTrue(all(new > old for new, old in zip(after, before, strict=True)))
        with self.assertQueryCount(0):
            self.Connection.browse()._api_seen()

    def test_seen_does_not_fail_on_a_row_another_transaction_just_changed(self):
        """The dispatcher's batch and a new connection's subscribe meet on
        the same row: under REPEATABLE READ the batch would fail with a
        serialization error and mark no connection seen."""
        registry = self.env.registry
        device_id = self.env.ref("point_of_sale_api.demo_device_waiter").id
        with registry.cursor() as cr:
            env = thread_env(registry, cr, SUPERUSER_ID)
            device = env["pos.api.device"].browse(device_id)
            connection_id = (
                env["pos.websocket.connection"]._api_open(device, [], "websocket", None).id
            )
            cr.execute(
                "UPDATE pos_websocket_connection SET last_seen = last_seen - interval '1 hour'"
                " WHERE id = %s",
                (connection_id,),
            )
        errors, done = [], threading.Event()

        def seen():
            try:
                with registry.cursor() as cr:
                    env = thread_env(registry, cr, SUPERUSER_ID)
                    env["pos.websocket.connection"].browse(connection_id)._api_seen()
            except Exception as exc:  # noqa: BLE001 - the assertion below reports it
                errors.append(exc)
            finally:
                done.set()

        try:
            with registry.cursor() as cr_sub:
                env = thread_env(registry, cr_sub, SUPERUSER_ID)
                env["pos.websocket.connection"].browse(connection_id)._api_subscribed(["config:1"])
                thread = threading.Thread(target=seen)
                thread.start()
                # The batch's UPDATE now waits for the subscribe's row lock.
                self.assertFalse(done.wait(0.5))
            thread.join(30)
            self.assertEqual(errors, [])
            with registry.cursor() as cr:
                cr.execute(
                    "SELECT rooms, last_seen > (now() AT TIME ZONE 'UTC') - interval '1 minute'"
                    "  FROM pos_websocket_connection WHERE id = %s",
                    (connection_id,),
                )
                self.assertEqual(cr.fetchone(), ("config:1", True))
        finally:
            with registry.cursor() as cr:
                cr.execute("DELETE FROM pos_websocket_connection WHERE id = %s", (connection_id,))

    def test_unknown_transport_is_refused(self):
        with self.assertRaises(ValueError):
            self.Connection._api_open(self.device, [], "carrier-pigeon", None)

    def test_rows_go_with_their_device(self):
        device = self._create_device("waiter", name="Short-lived tablet")
        connection = self.Connection._api_open(device, [], "websocket", None)
        device.unlink()
        self.assertFalse(connection.exists())

    # ------------------------------------------------------------- the cron
    def test_cron_removes_stale_and_gone_workers_and_keeps_live_ones(self):
        live = self.Connection._api_open(self.device, ["config:1"], "websocket", None)
        quiet = self.Connection._api_open(self.kitchen, ["config:1"], "websocket", None)
        stale = self.Connection._api_open(self.device, ["config:1"], "longpoll", None)
        gone = self.Connection._api_open(self.device, ["config:1"], "websocket", None)
        elsewhere = self.Connection._api_open(self.kitchen, ["config:1"], "websocket", None)
        # Seen a while ago, but within the limit: kept.
        self._age(quiet, limits.WS_STALE_AFTER - 60)
        self._age(stale, limits.WS_STALE_AFTER + 60)
        self._set_worker(gone, worker_name(_dead_pid()))
        # A process of another host cannot be checked: its fresh rows stay.
        self._set_worker(elsewhere, "another-host.invalid:1")
        removed = self.Connection._cron_remove_stale()
        self.assertEqual(removed, 2)
        self.assertEqual(
            self._existing(live | quiet | stale | gone | elsewhere), live | quiet | elsewhere
        )

    def test_cron_is_bounded_and_reports_progress(self):
        connections = self.Connection.browse(
            [self.Connection._api_open(self.device, [], "websocket", None).id for _i in range(5)]
        )
        self._age(connections, limits.WS_STALE_AFTER + 1)
        cron = self.env.ref("point_of_sale_api.ir_cron_websocket_connection_cleanup")
        progress = self.env["ir.cron.progress"].create({"cron_id": cron.id, "done": 0})
        model = self.Connection.with_context(ir_cron_progress_id=progress.id)
        self.assertEqual(model._cron_remove_stale(batch_size=2), 2)
        self.assertEqual((progress.done, progress.remaining), (2, 3))
        self.assertEqual(len(connections.exists()), 3)
        model._cron_remove_stale(batch_size=10)
        self.assertEqual((progress.done, progress.remaining), (3, 0))
        self.assertFalse(connections.exists())

    def test_cron_record_runs_every_five_minutes(self):
        cron = self.env.ref("point_of_sale_api.ir_cron_websocket_connection_cleanup")
        self.assertEqual((cron.interval_number, cron.interval_type), (5, "minutes"))
        self.assertEqual(cron.model_id.model, "pos.websocket.connection")
        self.assertTrue(cron.active)
        stale = self.Connection._api_open(self.device, [], "websocket", None)
        self._age(stale, limits.WS_STALE_AFTER + 1)
        cron.method_direct_trigger()
        self.assertFalse(stale.exists())

    # ------------------------------------------------- security and views
    def test_managers_read_only_their_companies_rows_and_nobody_writes(self):
        other_company = self.env["res.company"].create({"name": "Other Grill Co"})
        other_config = (
            self.env["pos.config"]
            .sudo()
            .with_company(other_company)
            .create(
                {
                    "name": "Other Grill",
                    "company_id": other_company.id,
                    "payment_method_ids": [(6, 0, [])],
                }
            )
        )
        other_device = self._create_device("waiter", config=other_config)
        ours = self.Connection._api_open(self.device, [], "websocket", None)
        theirs = self.Connection._api_open(other_device, [], "websocket", None)
        self.assertEqual(theirs.company_id, other_company)
        manager = (
            self.env["res.users"]
            .sudo()
            .create(
                {
                    "name": "Ops Manager",
                    "login": "ops_manager",
                    "company_id": self.config.company_id.id,
                    "company_ids": [Command.set(self.config.company_id.ids)],
                    "groups_id": [
                        Command.set(
                            [self.env.ref("base.group_user").id, self.env.ref(API_MANAGER_GROUP).id]
                        )
                    ],
                }
            )
        )
        as_manager = self.env["pos.websocket.connection"].with_user(manager)
        self.assertEqual(as_manager.search([]), as_manager.browse(ours.id))
        with self.assertRaises(AccessError):
            as_manager.browse(theirs.id).read(["device_id"])
        with self.assertRaises(AccessError):
            as_manager.browse(ours.id).write({"rooms": "config:1"})
        with self.assertRaises(AccessError):
            as_manager.browse(ours.id).unlink()
        with self.assertRaises(AccessError):
            as_manager.create(
                {
                    "device_id": self.device.id,
                    "config_id": self.config.id,
                    "transport": "websocket",
                    "connected_at": "2026-01-01 00:00:00",
                    "last_seen": "2026-01-01 00:00:00",
                }
            )
        cashier = (
            self.env["res.users"]
            .sudo()
            .create(
                {
                    "name": "Cashier",
                    "login": "ws_cashier",
                    "groups_id": [
                        Command.set(
                            [
                                self.env.ref("base.group_user").id,
                                self.env.ref("point_of_sale.group_pos_user").id,
                            ]
                        )
                    ],
                }
            )
        )
        with self.assertRaises(AccessError):
            self.env["pos.websocket.connection"].with_user(cashier).search([])

    def test_backend_views_load(self):
        self.Connection._api_open(self.device, ["config:1"], "websocket", "127.0.0.1")
        views = self.env["pos.websocket.connection"].get_views(
            [(False, "list"), (False, "graph"), (False, "search")]
        )
        self.assertEqual(set(views["views"]), {"list", "graph", "search"})
        self.assertIn('field name="config_id"', views["views"]["graph"]["arch"])
        action = self.env.ref("point_of_sale_api.pos_websocket_connection_action")
        self.assertEqual(action.res_model, "pos.websocket.connection")
        menu = self.env.ref("point_of_sale_api.menu_pos_websocket_connection")
        self.assertEqual(menu.parent_id, self.env.ref("point_of_sale_api.menu_pos_api_root"))
        groups = self.env["pos.websocket.connection"].read_group(
            [], ["config_id"], ["config_id"], lazy=False
        )
        self.assertIn(self.config.id, [group["config_id"][0] for group in groups])
