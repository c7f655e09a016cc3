"""The kitchen display's page in headless Chromium, against an Odoo server
of the test's own (prefork, with its gevent process, as in production), the
page opened on the gevent port with a kitchen device's tokens in the
address's fragment. An order sent to the kitchen appears, a bump takes it
off (the order is ready in the database), the page says it is offline while
the server is down, and once the server is back the order sent meanwhile
appears, once, and is bumped too. Data is committed: the test cleans up
after itself."""

import threading
import time
import uuid

from odoo import api
from odoo.tests import HttpCase, tagged

from ..pos_core import lifecycle as lc
from ..pos_core import schemas as s
from .common import DEMO_CONFIG_XMLID, PosApiFactories
from .server import OwnServerMixin, SyncLogMark
from .threads import thread_env

TIMEOUT = 120  # seconds for each step of the server side

# Runs in the page: each step waits for what the display shows.
PAGE_STEPS = """
(async () => {
    const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));
    const wait = async (what, predicate, timeout = 90000) => {
        const start = Date.now();
        while (Date.now() - start < timeout) {
            const value = predicate();
            if (value) {
                return value;
            }
            await sleep(100);
        }
        throw new Error(`timed out waiting for ${what}`);
    };
    const link = (online) =>
        document.querySelector(`.o_pos_api_kds_link[data-online="${online ? 1 : 0}"]`);
    const cards = () => [...document.querySelectorAll(".o_pos_api_kds_order")];
    const card = (id) => cards().filter((element) => element.dataset.orderId === id);
    // Orders of the point of sale already in the kitchen are left alone.
    const newCard = (what, known) =>
        wait(what, () => cards().find((element) => !known.has(element.dataset.orderId)));
    try {
        await wait("the display to be live", () => link(true));
        const known = new Set(cards().map((element) => element.dataset.orderId));
        const first = (await newCard("the first order", known)).dataset.orderId;
        if (!card(first)[0].textContent.includes("Table")) {
            throw new Error(`the card shows no table: ${card(first)[0].textContent}`);
        }
        card(first)[0].querySelector(".o_pos_api_kds_bump").click();
        await wait("the bumped order to leave", () => card(first).length === 0);
        await wait("the recall list to show it", () =>
            document.querySelector(`.o_pos_api_kds_recent[data-order-id="${first}"]`)
        );
        await wait("the display to say it is offline", () => link(false));
        await wait("the display to be live again", () => link(true));
        known.add(first);
        const second = (await newCard("the order sent while it was down", known)).dataset.orderId;
        // Let a replayed event or a second read show a duplicate, if any.
        await sleep(1500);
        const shown = card(second);
        const tickets = shown.length && shown[0].querySelectorAll(".o_pos_api_kds_ticket").length;
        if (shown.length !== 1 || tickets !== 1) {
            throw new Error(`expected one card with one ticket, got ${shown.length}, ${tickets}`);
        }
        shown[0].querySelector(".o_pos_api_kds_bump").click();
        await wait("the second order to leave", () => card(second).length === 0);
        console.log("test successful");
    } catch (error) {
        console.error(`kitchen display: ${error.message}`);
    }
})();
"""


@tagged("post_install", "-at_install")
class TestKdsBrowser(OwnServerMixin, PosApiFactories, HttpCase):
    # Committed data, for a server of the test's own to see.
    registry_test_mode = False

    def setUp(self):
        super().setUp()
        self.uuids = []
        self.errors = []
        self.admin_id = self.env.ref("base.user_admin").id
        with self.registry.cursor() as cr:
            env = thread_env(self.registry, cr, self.admin_id)
            config = env.ref(DEMO_CONFIG_XMLID)
            self.config_id = config.id
            self.flow = config.api_kitchen_flow
            config.api_kitchen_flow = lc.DINE_IN
            # Orders need an open session: opened here when none is, and
            # removed afterwards.
            self.opened_session_id = None
            if not config.current_session_id:
                self.opened_session_id = self._open_session(config).id
            self.log_mark = SyncLogMark(cr, config.id)
            self.waiter_id = self._create_device("waiter", config, name="Test KDS waiter").id
            kitchen = self._create_device("kitchen", config, name="Test KDS kitchen")
            self.kitchen_id = kitchen.id
            self.pair = kitchen._issue_tokens()
            self.station_id = env.ref("point_of_sale_api.demo_printer_kitchen").id
            self.table_id = env.ref("point_of_sale_api.demo_table_dining_room_05").id
            self.pizza_id = (
                env["product.product"]
                .search(
                    [("pos_categ_ids", "in", env.ref("point_of_sale_api.demo_categ_pizza").ids)],
                    limit=1,
                )
                .id
            )
        self.addCleanup(self._cleanup)

    def _cleanup(self):
        with self.registry.cursor() as cr:
            env = thread_env(self.registry, cr, api.SUPERUSER_ID)
            orders = env["pos.order"].search([("uuid", "in", self.uuids)])
            jobs = orders.api_ticket_ids.mapped("job_uuid")
            orders.filtered(lambda order: order.state == "draft").action_pos_order_cancel()
            jobs += orders.api_ticket_ids.mapped("job_uuid")
            orders.unlink()
            if self.opened_session_id:
                env["pos.session"].browse(self.opened_session_id).unlink()
            if jobs:
                cr.execute("DELETE FROM queue_job WHERE uuid IN %s", [tuple(filter(None, jobs))])
            # With their connection rows (the killed server's among them).
            env["pos.api.device"].browse([self.waiter_id, self.kitchen_id]).unlink()
            env["pos.config"].browse(self.config_id).api_kitchen_flow = self.flow
            self.log_mark.restore(cr)

    # ------------------------------------------------------------------
    # the server side, in a thread while the page runs
    # ------------------------------------------------------------------
    def _until(self, what, predicate):
        deadline = time.monotonic() + TIMEOUT
        while time.monotonic() < deadline and not self.page_done.is_set():
            with self.registry.cursor() as cr:
                if predicate(thread_env(self.registry, cr, api.SUPERUSER_ID)):
                    return
            time.sleep(0.2)
        raise AssertionError(f"timed out or stopped waiting for {what}")

    def _send_order(self):
        """A waiter's order for the table, sent to the kitchen: committed."""
        order_uuid = str(uuid.uuid4())
        self.uuids.append(order_uuid)
        with self.registry.cursor() as cr:
            env = thread_env(self.registry, cr, self.admin_id)
            body = s.OrderCreate(
                uuid=order_uuid,
                lines=[{"product_id": self.pizza_id, "qty": "1"}],
                state="validated",
                table_id=self.table_id,
            )
            order = env["pos.order"]._api_create(body, env["pos.api.device"].browse(self.waiter_id))
            order._api_transition(lc.PREPARING)
            return order.id

    def _ready(self, order_id):
        def check(env):
            return env["pos.order"].browse(order_id).api_state == lc.READY

        return check

    def _kitchen_connected(self, env):
        env.cr.execute(
            "SELECT count(*) FROM pos_websocket_connection WHERE device_id = %s",
            [self.kitchen_id],
        )
        return env.cr.fetchone()[0] > 0

    def _server_side(self):
        try:
            self._until("the display's WebSocket", self._kitchen_connected)
            first = self._send_order()
            self._until("the first order's bump", self._ready(first))
            ports = (self.http_port, self.gevent_port)
            self._stop_server()
            time.sleep(2)  # the page notices
            second = self._send_order()
            self._start_server(ports=ports)
            self._until("the second order's bump", self._ready(second))
        except Exception as exc:  # noqa: BLE001 - reported by the test
            self.errors.append(exc)

    # ------------------------------------------------------------------
    def test_the_display_shows_bumps_and_recovers_from_a_dropped_connection(self):
        self._start_server()
        url = (
            f"http://127.0.0.1:{self.gevent_port}/pos_api/kds/{self.station_id}"
            f"#access={self.pair.access_token}&refresh={self.pair.refresh_token}"
        )
        self.page_done = threading.Event()
        server = threading.Thread(target=self._server_side, daemon=True)
        server.start()
        try:
            self.browser_js(url, PAGE_STEPS, timeout=360)
        except AssertionError as exc:
            # Nothing of the server side may outlive the test.
            self.page_done.set()
            server.join(TIMEOUT)
            raise AssertionError(
                f"{exc}\nserver side: {self.errors!r}\nserver log:\n{self._server_output()}"
            ) from exc
        server.join(TIMEOUT)
        self.assertFalse(server.is_alive(), "the server side did not finish")
        if self.errors:
            raise self.errors[0]
        with self.registry.cursor() as cr:
            env = thread_env(self.registry, cr, api.SUPERUSER_ID)
            orders = env["pos.order"].search([("uuid", "in", self.uuids)])
            self.assertEqual(orders.mapped("api_state"), [lc.READY, lc.READY])
            sources = orders.api_state_history_ids.filtered(lambda row: row.to_state == lc.READY)
            self.assertEqual(sources.device_id.ids, [self.kitchen_id])
