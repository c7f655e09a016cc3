"""The kitchen display's page (/pos_api/kds/): who may open it and with
what, the short tokens of a logged-in user, and the recall of a bumped
order. The page in a browser is tests/test_kds_browser.py."""

from odoo.tests import new_test_user, tagged
from odoo.tests.common import JsonRpcException

from ..pos_core import lifecycle as lc
from .test_kitchen_print import KitchenPrintCase


@tagged("post_install", "-at_install")
class TestKdsPage(KitchenPrintCase):
    def test_the_page_is_served_to_anyone_and_bad_addresses_are_not_found(self):
        for path in ("/pos_api/kds", f"/pos_api/kds/{self.kitchen_station.id}"):
            response = self.url_open(path)
            self.assertEqual(response.status_code, 200, path)
            self.assertIn("/web/assets/", response.text)
            self.assertIn("pos_api_kds", response.text)
            # No token in the page: a device brings its own.
            self.assertIn('"user_tokens": false', response.text)
        for path in (
            "/pos_api/kds/0",
            f"/pos_api/kds/{2**31}",
            f"/pos_api/kds/{self.kitchen_station.id}?config_id=x",
            f"/pos_api/kds/{self.kitchen_station.id}?config_id=-3",
        ):
            self.assertEqual(self.url_open(path).status_code, 404, path)

    def test_a_logged_in_api_user_gets_short_tokens_of_a_kitchen_device(self):
        cook = new_test_user(
            self.env,
            login="kds_cook",
            groups="base.group_user,point_of_sale_api.group_pos_api_user",
        )
        self.session = None  # HttpCase's browser session (PosApiHttpCommon's is a pos.session)
        self.authenticate("kds_cook", "kds_cook")
        page = self.url_open(f"/pos_api/kds/{self.kitchen_station.id}")
        self.assertIn('"user_tokens": true', page.text)
        result = self.make_jsonrpc_request("/pos_api/kds/token", {"config_id": self.config.id})
        self.assertEqual(result["config_id"], self.config.id)
        token = result["access_token"]
        device = self.env["pos.api.device"].search([("user_id", "=", cook.id)])
        self.assertEqual((device.role, device.kds_browser), ("kitchen", True))
        self.assertFalse(device.refresh_jti)  # no refresh token lives anywhere
        status, body = self._call(
            "GET", f"/stations/{self.kitchen_station.id}/tickets", token=token
        )
        self.assertEqual(status, 200, body)
        # Again: the same device.
        self.make_jsonrpc_request("/pos_api/kds/token", {})
        self.assertEqual(self.env["pos.api.device"].search([("user_id", "=", cook.id)]), device)
        # The user loses the group: no token, and the one given stops working.
        cook.groups_id -= self.env.ref("point_of_sale_api.group_pos_api_user")
        result = self.make_jsonrpc_request("/pos_api/kds/token", {})
        self.assertEqual(result["error"]["code"], "kds_user_forbidden")
        status, _body = self._call(
            "GET",
            f"/stations/{self.kitchen_station.id}/tickets",
            token=token,
        )
        self.assertEqual(status, 403)

    def test_only_logged_in_users_ask_for_tokens(self):
        self.session = None
        with self.assertRaises(JsonRpcException):
            self.make_jsonrpc_request("/pos_api/kds/token", {})
        self.assertFalse(self.env["pos.api.device"].search([("kds_browser", "=", True)]))

    def test_a_bumped_order_is_recalled_to_preparing(self):
        order = self._to_kitchen([{"product_id": self.pizza.id, "qty": "1"}])
        started = order.kitchen_started_at
        tickets = order.api_ticket_ids
        status, body = self._call("POST", f"/orders/{order.id}/recall", {}, device=self.kitchen)
        self.assertEqual((status, body["error"]["code"]), (409, "illegal_transition"))
        status, body = self._call("POST", f"/orders/{order.id}/ready", {}, device=self.kitchen)
        self.assertEqual(status, 200, body)
        status, document = self._call(
            "GET", f"/stations/{self.kitchen_station.id}/tickets", device=self.kitchen
        )
        self.assertEqual(status, 200, document)
        self.assertEqual([recent["order_id"] for recent in document["recent"]], [order.id])
        self.assertNotIn(order.id, [shown["order_id"] for shown in document["orders"]])
        self.assertEqual(document["config_id"], self.config.id)
        self.assertEqual(
            (document["station"]["warn_minutes"], document["station"]["late_minutes"]), (10, 20)
        )

        status, body = self._call(
            "POST", f"/orders/{order.id}/recall", {"reason": "not plated"}, device=self.kitchen
        )
        self.assertEqual(status, 200, body)
        order.invalidate_recordset()
        self.assertEqual(order.api_state, lc.PREPARING)
        self.assertFalse(order.kitchen_ready_at)
        self.assertEqual(order.kitchen_started_at, started)
        self.assertEqual(order.api_ticket_ids, tickets)  # nothing printed again
        last = order.api_state_history_ids.sorted("id")[-1]
        self.assertEqual(
            (last.from_state, last.to_state, last.reason), (lc.READY, lc.PREPARING, "not plated")
        )
        status, document = self._call(
            "GET", f"/stations/{self.kitchen_station.id}/tickets", device=self.kitchen
        )
        self.assertIn(order.id, [shown["order_id"] for shown in document["orders"]])
        self.assertFalse(document["recent"])
