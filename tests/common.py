"""Shared set-up of the Odoo tier: the demo restaurant and order factories."""

import contextlib
import json
import threading
import uuid
from unittest.mock import patch

from odoo import fields
from odoo.tests import HttpCase, TransactionCase

from odoo.addons.bus.models.bus import channel_with_db, dispatch, hashable
from odoo.addons.bus.websocket import WebsocketConnectionHandler

DEMO_CONFIG_XMLID = "point_of_sale_api.demo_pos_config"
API = "/pos_api/v1"


class PosApiFactories:
    """Factories shared by the model and HTTP tests of the Odoo tier."""

    @classmethod
    def _setup_restaurant(cls):
        # Orders are made by the demo admin, a POS manager, as in the POS UI.
        cls.env = cls.env(
            user=cls.env.ref("base.user_admin"),
            context=dict(cls.env.context, tracking_disable=True),
        )
        cls.config = cls.env.ref(DEMO_CONFIG_XMLID)
        cls.currency = cls.config.currency_id
        cls.cash_method = cls.config.payment_method_ids.filtered("is_cash_count")[:1]
        cls.card_method = cls.config.payment_method_ids.filtered(lambda m: not m.is_cash_count)[:1]

    @classmethod
    def _create_device(cls, role="waiter", config=None, name=None):
        config = config or cls.config
        return (
            config.env["pos.api.device"]
            .sudo()
            .create(
                {
                    "name": name or f"Test {role}",
                    "config_id": config.id,
                    "role": role,
                    "user_id": config.env.ref("base.user_admin").id,
                }
            )
        )

    @classmethod
    def _open_session(cls, config=None):
        config = config or cls.config
        if not config.current_session_id:
            config.open_ui()
        session = config.current_session_id
        if session.state == "opening_control":
            session.set_opening_control(0, None)
        return session

    def _session_in_opening_control(self):
        """A fresh session, as the cashier finds it before opening the register."""
        config = self.config
        if config.current_session_id:
            # The tour opens the register itself; close what an earlier test
            # (or a developer's database) left open. Rolled back with the test.
            session = config.current_session_id
            if session.state == "opening_control":
                return session
            session.order_ids.filtered(lambda o: o.state == "draft").action_pos_order_cancel()
            session.action_pos_session_closing_control()
        config.open_ui()
        session = config.current_session_id
        self.assertEqual(session.state, "opening_control")
        return session

    def _ui_order_payload(self, session, lines, paid=True, order_uuid=None, payment_method=None):
        """An order as the POS UI sends it to ``pos.order.sync_from_ui``.

        ``lines`` are ``(product, qty)`` pairs; prices come from the session's
        pricelist and taxes from Odoo's own ``compute_all``.
        """
        config = session.config_id
        pricelist = config.pricelist_id
        fiscal_position = config.default_fiscal_position_id
        order_lines = []
        for product, qty in lines:
            price_unit = pricelist._get_product_price(product, qty)
            taxes = fiscal_position.map_tax(
                product.taxes_id.filtered(lambda tax: tax.company_id == config.company_id)
            )
            amounts = taxes.compute_all(price_unit, config.currency_id, qty, product=product)
            order_lines.append(
                fields.Command.create(
                    {
                        "product_id": product.id,
                        "qty": qty,
                        "price_unit": price_unit,
                        "discount": 0.0,
                        "price_subtotal": amounts["total_excluded"],
                        "price_subtotal_incl": amounts["total_included"],
                        "tax_ids": [fields.Command.set(taxes.ids)],
                        "pack_lot_ids": [],
                        "uuid": str(uuid.uuid4()),
                    }
                )
            )
        total = sum(line[2]["price_subtotal_incl"] for line in order_lines)
        untaxed = sum(line[2]["price_subtotal"] for line in order_lines)
        method = payment_method or config.payment_method_ids.filtered("is_cash_count")[:1]
        payments = []
        if paid:
            payments = [
                fields.Command.create(
                    {
                        "amount": total,
                        "name": fields.Datetime.now(),
                        "payment_method_id": method.id,
                    }
                )
            ]
        order_uuid = order_uuid or str(uuid.uuid4())
        return {
            "uuid": order_uuid,
            "name": f"Order {order_uuid}",
            "session_id": session.id,
            "user_id": session.env.uid,
            "pricelist_id": pricelist.id,
            "fiscal_position_id": fiscal_position.id,
            "sequence_number": 1,
            "date_order": fields.Datetime.to_string(fields.Datetime.now()),
            "lines": order_lines,
            "payment_ids": payments,
            "amount_paid": total if paid else 0.0,
            "amount_return": 0.0,
            "amount_tax": total - untaxed,
            "amount_total": total,
            "state": "paid" if paid else "draft",
            "last_order_preparation_change": "{}",
            "to_invoice": False,
        }

    def _order_body(self, products, state="draft", pay=None, **extra):
        """An ``OrderCreate`` body: ``products`` as (product, qty) pairs."""
        body = {
            "uuid": str(uuid.uuid4()),
            "lines": [{"product_id": product.id, "qty": str(qty)} for product, qty in products],
            "state": state,
            **extra,
        }
        if pay is not None:
            body["payments"] = [
                {"payment_method_id": method.id, "amount": str(amount)} for method, amount in pay
            ]
        return body

    def _pos_products(self, count, config=None):
        config = config or self.config
        domain = [("available_in_pos", "=", True), ("type", "!=", "combo")]
        if config.limit_categories and config.iface_available_categ_ids:
            domain.append(("pos_categ_ids", "in", config.iface_available_categ_ids.ids))
        products = self.env["product.product"].search(domain, limit=count)
        self.assertEqual(len(products), count, "the demo menu has too few products")
        return products


class PosApiCommon(PosApiFactories, TransactionCase):
    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls._setup_restaurant()


class PosApiHttpCommon(PosApiFactories, HttpCase):
    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls._setup_restaurant()
        cls.session = cls._open_session()
        cls.waiter = cls._create_device("waiter")
        cls.kitchen = cls._create_device("kitchen")
        cls.manager = cls._create_device("manager")

    def _token(self, device):
        return device._issue_tokens().access_token

    def _call(self, method, path, body=None, *, device=None, token=None, raw=None, headers=None):
        """One API request; returns (status, decoded JSON body)."""
        all_headers = {"Content-Type": "application/json"}
        if device is not None or token is not None:
            all_headers["Authorization"] = f"Bearer {token or self._token(device)}"
        all_headers.update(headers or {})
        data = raw if raw is not None else (json.dumps(body) if body is not None else None)
        response = self.opener.request(
            method, self.base_url() + API + path, data=data, headers=all_headers, timeout=60
        )
        return response.status_code, response.json()


class BusRelayMixin:
    """For tours that need Odoo's bus live in the browser. Two things of
    Odoo's test mode are undone, as Odoo's own bus tests do
    (addons/bus/tests/common.py): websockets are refused while a test runs
    (``WebsocketConnectionHandler.websocket_allowed``), and the test cursor
    drops post-commit hooks, where the bus NOTIFYs its listeners; so a
    thread wakes the browser's websocket (``trigger_notification_dispatching``)
    every 200 ms while the tour runs, and the websocket reads the bus rows."""

    @classmethod
    def _allow_websockets(cls):
        cls.startClassPatcher(
            patch.object(WebsocketConnectionHandler, "websocket_allowed", return_value=True)
        )

    @contextlib.contextmanager
    def _bus_relayed(self, channel):
        key = hashable(channel_with_db(self.registry.db_name, channel))
        stop = threading.Event()

        def pump():
            while not stop.wait(0.2):
                for websocket in list(dispatch._channels_to_ws.get(key, ())):
                    websocket.trigger_notification_dispatching()

        thread = threading.Thread(target=pump, daemon=True)
        thread.start()
        try:
            yield
        finally:
            stop.set()
            thread.join(timeout=5)
