from odoo.exceptions import ValidationError
from odoo.tests import HttpCase, tagged

from ..pos_core import tokens
from .common import PosApiCommon


@tagged("post_install", "-at_install")
class TestFoundation(PosApiCommon):
    def test_module_is_installed_with_its_models(self):
        module = self.env["ir.module.module"].search([("name", "=", "point_of_sale_api")])
        self.assertEqual(module.state, "installed")
        self.assertIn("pos.api.device", self.env)
        self.assertIn("pos.api.printer", self.env)
        self.assertTrue(self.config.module_pos_restaurant)

    def test_demo_config_opens_a_session(self):
        session = self._open_session()
        self.assertEqual(session.state, "opened")
        self.assertEqual(session.config_id, self.config)

    def test_order_pushed_through_sync_from_ui_is_accepted(self):
        session = self._open_session()
        products = self._pos_products(3)
        payload = self._ui_order_payload(
            session, [(products[0], 2), (products[1], 1), (products[2], 3)]
        )
        result = self.env["pos.order"].sync_from_ui([payload])
        order = self.env["pos.order"].search([("uuid", "=", payload["uuid"])])
        self.assertEqual(len(order), 1)
        self.assertEqual([o["id"] for o in result["pos.order"]], order.ids)
        self.assertEqual(order.state, "paid")
        self.assertEqual(len(order.lines), 3)
        self.assertAlmostEqual(order.amount_total, payload["amount_total"], places=2)
        self.assertAlmostEqual(order.amount_paid, order.amount_total, places=2)
        self.assertEqual(order.session_id, session)
        # Odoo's own replay guard (a search by uuid) keeps a sequential retry single.
        self.env["pos.order"].sync_from_ui([payload])
        self.assertEqual(self.env["pos.order"].search_count([("uuid", "=", payload["uuid"])]), 1)

    def test_device_tokens_and_revocation(self):
        device = self.env["pos.api.device"].create(
            {
                "name": "Test tablet",
                "config_id": self.config.id,
                "role": "waiter",
            }
        )
        pair = device._issue_tokens()
        secret = device._jwt_secret()
        claims = tokens.decode(secret, pair.access_token, tokens.ACCESS, device._jwt_audience())
        self.assertEqual((claims.device_id, claims.config_id), (device.id, self.config.id))
        self.assertEqual(claims.company_id, self.config.company_id.id)
        self.assertEqual(device.refresh_jti, pair.refresh_jti)
        device.action_revoke_tokens()
        self.assertEqual(device.token_version, claims.version + 1)
        self.assertFalse(device.refresh_jti)

    def test_device_role_needs_the_mapped_odoo_group(self):
        waiter_user = self.env["res.users"].create(
            {
                "name": "Waiter Wendy",
                "login": "wendy",
                "groups_id": [
                    (
                        6,
                        0,
                        [
                            self.env.ref("base.group_user").id,
                            self.env.ref("point_of_sale_api.group_pos_api_user").id,
                        ],
                    )
                ],
            }
        )
        device = self.env["pos.api.device"].create(
            {
                "name": "Wendy's phone",
                "config_id": self.config.id,
                "role": "waiter",
                "user_id": waiter_user.id,
            }
        )
        with self.assertRaises(ValidationError):
            device.role = "manager"
        with self.assertRaises(ValidationError):
            self.env["pos.api.device"].create(
                {
                    "name": "Till",
                    "config_id": self.config.id,
                    "role": "cashier",
                    "user_id": self.env.ref("base.public_user").id,
                }
            )


@tagged("post_install", "-at_install")
class TestFoundationHttp(HttpCase):
    def test_health_endpoint_answers_json(self):
        response = self.url_open("/pos_api/v1/health")
        self.assertEqual(response.status_code, 200)
        self.assertEqual(response.json(), {"status": "ok", "api": "v1"})
