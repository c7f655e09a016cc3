"""Shared set-up of the Odoo tier: the demo restaurant and order factories."""

import uuid

from odoo import fields
from odoo.tests import TransactionCase

DEMO_CONFIG_XMLID = "point_of_sale_api.demo_pos_config"


class PosApiCommon(TransactionCase):
    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.env = cls.env(context=dict(cls.env.context, tracking_disable=True))
        cls.config = cls.env.ref(DEMO_CONFIG_XMLID)
        cls.currency = cls.config.currency_id
        cls.cash_method = cls.config.payment_method_ids.filtered("is_cash_count")[:1]

    @classmethod
    def _open_session(cls, config=None):
        config = config or cls.config
        config.open_ui()
        session = config.current_session_id
        session.set_opening_control(0, None)
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
            taxes = fiscal_position.map_tax(product.taxes_id.filtered(
                lambda tax: tax.company_id == config.company_id
            ))
            amounts = taxes.compute_all(price_unit, config.currency_id, qty, product=product)
            order_lines.append(fields.Command.create({
                "product_id": product.id,
                "qty": qty,
                "price_unit": price_unit,
                "discount": 0.0,
                "price_subtotal": amounts["total_excluded"],
                "price_subtotal_incl": amounts["total_included"],
                "tax_ids": [fields.Command.set(taxes.ids)],
                "pack_lot_ids": [],
                "uuid": str(uuid.uuid4()),
            }))
        total = sum(line[2]["price_subtotal_incl"] for line in order_lines)
        untaxed = sum(line[2]["price_subtotal"] for line in order_lines)
        method = payment_method or config.payment_method_ids.filtered("is_cash_count")[:1]
        payments = []
        if paid:
            payments = [fields.Command.create({
                "amount": total,
                "name": fields.Datetime.now(),
                "payment_method_id": method.id,
            })]
        order_uuid = order_uuid or str(uuid.uuid4())
        return {
            "uuid": order_uuid,
            "name": f"Order {order_uuid}",
            "session_id": session.id,
            "user_id": self.env.uid,
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

    def _pos_products(self, count, config=None):
        config = config or self.config
        domain = [("available_in_pos", "=", True), ("type", "!=", "combo")]
        if config.limit_categories and config.iface_available_categ_ids:
            domain.append(("pos_categ_ids", "in", config.iface_available_categ_ids.ids))
        products = self.env["product.product"].search(domain, limit=count)
        self.assertEqual(len(products), count, "the demo menu has too few products")
        return products
