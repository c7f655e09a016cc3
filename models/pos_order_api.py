"""The device API's order operations: glue between request shapes, the
billing engine and Odoo's ``pos.order`` records."""

import base64
import json
import logging
import uuid
from decimal import ROUND_HALF_UP, Decimal

from odoo import api, fields, models
from odoo.fields import Command
from odoo.tools import SQL

from ..pos_core import billing, limits
from ..pos_core import lifecycle as lc
from ..pos_core.exceptions import Conflict, InvalidInput, NotFound
from .pos_config_menu import _dec

_logger = logging.getLogger(__name__)

# The pos.config fields an API order's creation reads (of hundreds).
CONFIG_FIELDS = [
    "name",
    "company_id",
    "journal_id",
    "sequence_id",
    "sequence_line_id",
    "pricelist_id",
    "default_fiscal_position_id",
    "cash_rounding",
    "only_round_cash_method",
    "rounding_method",
    "api_kitchen_flow",
    # what validation and the discount check read
    "tip_product_id",
    "api_check_stock",
    "manual_discount",
    "api_discount_limit_waiter",
    "api_discount_limit_cashier",
    # pos_online_payment_self_order, when installed (a missing field costs
    # one read of the rest, as without this list)
    "self_order_online_payment_method_id",
]


# The pos.payment.method fields a payment's creation checks.
METHOD_FIELDS = ["is_cash_count", "is_online_payment"]


class PosOrder(models.Model):
    _inherit = "pos.order"

    api_followup_pending = fields.Boolean(
        string="Stock Follow-up Pending",
        copy=False,
        readonly=True,
        index="btree_not_null",
        help="Paid through the API; its picking and costs are made by a batched background "
        "step (and always before its session closes).",
    )

    api_chatter_pending = fields.Boolean(
        string="Chatter Pending",
        copy=False,
        readonly=True,
        index="btree_not_null",
        help="Created through the API; the creation message and the creator's subscription "
        "are written by the batched background step.",
    )

    api_request_hash = fields.Char(copy=False, readonly=True)
    api_response = fields.Text(
        copy=False, readonly=True, help="The first API response, replayed to retries."
    )

    # ------------------------------------------------------------------
    # Bill arithmetic through the engine
    # ------------------------------------------------------------------
    @api.model
    def _api_engine_taxes(self, taxes, cache):
        result = []
        for tax in taxes:
            if tax.id not in cache:
                cache[tax.id] = billing.Tax(
                    id=tax.id,
                    amount_type=tax.amount_type,
                    amount=_dec(tax.amount, 4),
                    price_include=tax.price_include,
                    include_base_amount=tax.include_base_amount,
                    is_base_affected=tax.is_base_affected,
                    sequence=tax.sequence,
                    children=tuple(self._api_engine_taxes(tax.children_tax_ids, cache)),
                    name=tax.name,
                )
            result.append(cache[tax.id])
        return tuple(result)

    @api.model
    def _api_compute_bill(self, menu, lines, request=None):
        """The engine's bill for ``lines``: dicts with key, product_id, qty,
        price_unit, discount, taxes (engine taxes, after fiscal position), seat."""
        digits = max(menu["digits"], 4)
        engine_lines = tuple(
            billing.Line(
                key=line["key"],
                product_id=line["product_id"],
                qty=_dec(line["qty"], 3),
                price_unit=_dec(line["price_unit"], digits),
                discount_pct=_dec(line["discount"] or 0.0, 4),
                taxes=line["taxes"],
                seat=line.get("seat"),
            )
            for line in lines
        )
        request = request or {}
        service = request.get("service_charge")
        discount = request.get("discount")
        service_taxes = ()
        if service and service.get("tax_ids"):
            taxes = self.env["account.tax"].browse(service["tax_ids"]).exists()
            if len(taxes) != len(set(service["tax_ids"])) or any(
                tax.company_id.id != menu["company_id"] for tax in taxes
            ):
                raise InvalidInput(
                    "Unknown service charge tax.",
                    code="unknown_tax",
                    details={"tax_ids": service["tax_ids"]},
                )
            service_taxes = self._api_engine_taxes(taxes, menu["engine_taxes"])
        order = billing.Order(
            lines=engine_lines,
            currency=menu["currency"],
            rounding_method=menu["rounding_method"],
            discount=billing.Discount(discount["kind"], discount["value"]) if discount else None,
            service_charge=billing.ServiceCharge(service["kind"], service["value"], service_taxes)
            if service
            else None,
            tip=request.get("tip") or Decimal(0),
            cash_rounding=menu["cash_rounding"],
            # Refund orders have negative lines; API input is positive by schema.
            allow_negative=True,
        )
        try:
            return billing.compute_bill(order)
        except billing.BillingError as exc:
            raise InvalidInput(exc.message, code=exc.code, details=exc.details) from exc

    def _api_line_dicts(self, menu):
        self.ensure_one()
        fiscal_position = self.fiscal_position_id
        return [
            {
                "key": line.uuid,
                "product_id": line.product_id.id,
                "qty": line.qty,
                "price_unit": line.price_unit,
                "discount": line.discount,
                "taxes": self._api_engine_taxes(
                    fiscal_position.map_tax(line.tax_ids), menu["engine_taxes"]
                ),
                "seat": line.api_seat or None,
            }
            for line in self.lines
        ]

    def _api_bill(self, request):
        """The bill with discounts, service charge, tip and an optional split.
        Reads only: nothing is written."""
        self.ensure_one()
        menu = self.config_id._api_menu()
        bill = self._api_compute_bill(menu, self._api_line_dicts(menu), request)
        split = request.get("split")
        parts = ()
        try:
            if split and split["mode"] == "equal":
                if not split.get("parts"):
                    raise InvalidInput("An equal split needs 'parts'.", code="split_parts_missing")
                parts = billing.split_equal(bill, split["parts"])
            elif split and split["mode"] == "seats":
                parts = billing.split_by_seats(bill)
            elif split and split["mode"] == "items":
                if not split.get("groups"):
                    raise InvalidInput("An item split needs 'groups'.", code="split_groups_missing")
                groups = [[str(key) for key in group] for group in split["groups"]]
                parts = billing.split_by_items(bill, groups)
        except billing.BillingError as exc:
            raise InvalidInput(exc.message, code=exc.code, details=exc.details) from exc
        # Amounts in the currency's decimals, as everywhere in the API (the
        # engine computes with the rounding step's own exponent).
        exponent = Decimal(1).scaleb(-self.currency_id.decimal_places)

        def money(value):
            return Decimal(value).quantize(exponent, ROUND_HALF_UP)

        return {
            "currency": self.currency_id.name,
            "lines": [
                {
                    "uuid": line.key,
                    "untaxed": money(line.untaxed),
                    "tax": money(line.tax),
                    "total": money(line.total),
                    "discount": money(line.discount),
                }
                for line in bill.lines
            ],
            "taxes": [
                {**tax._asdict(), "base": money(tax.base), "amount": money(tax.amount)}
                for tax in bill.taxes
            ],
            **{
                key: money(getattr(bill, key))
                for key in (
                    "subtotal",
                    "discount",
                    "service_charge",
                    "untaxed",
                    "tax",
                    "tip",
                    "total",
                    "rounding",
                    "total_due",
                )
            },
            "parts": [
                {
                    "label": str(part.label),
                    "line_uuids": [str(key) for key in part.line_keys],
                    "untaxed": money(part.untaxed),
                    "tax": money(part.tax),
                    "tip": money(part.tip),
                    "total": money(part.total),
                    "total_due": money(part.total_due),
                }
                for part in parts
            ],
        }

    def _api_recompute_amounts(self):
        """Write line and order amounts from the engine (exact, Odoo-equal)."""
        for order in self:
            menu = order.config_id._api_menu()
            bill = self._api_compute_bill(menu, order._api_line_dicts(menu))
            by_key = {line.key: line for line in bill.lines}
            for line in order.lines:
                amounts = by_key[line.uuid]
                line.write(
                    {
                        "price_subtotal": float(amounts.untaxed),
                        "price_subtotal_incl": float(amounts.total),
                    }
                )
            order.write({"amount_tax": float(bill.tax), "amount_total": float(bill.total)})

    # ------------------------------------------------------------------
    # Create
    # ------------------------------------------------------------------
    @api.model
    def _api_menu_prices(self, menu, items):
        """Pricelist prices of (product_id, qty) items, from the menu's cache."""
        cache = menu["prices"]
        missing = [item for item in items if cache is None or item not in cache]
        if missing:
            products = self.env["product.product"].browse([pid for pid, _qty in missing])
            computed = self._api_pricelist_prices(
                self.env["product.pricelist"].browse(menu["pricelist_id"]),
                self.env["res.currency"].browse(menu["currency_id"]),
                [
                    (product, qty, self.env["product.template.attribute.value"])
                    for product, (_pid, qty) in zip(products, missing)
                ],
            )
            found = dict(zip(missing, computed))
            if cache is not None:
                cache.update(found)
        else:
            found = {}
        return [
            cache[item] if cache is not None and item in cache else found[item] for item in items
        ]

    @api.model
    def _api_menu_unit_prices(self, menu, items):
        """Unit prices of (product_id, qty, attribute value ids) items: the
        pricelist's price plus the attributes' extras, rounded to the
        currency. What lines are priced with at creation and checked against
        at validation."""
        prices = self._api_menu_prices(menu, [(pid, qty) for pid, qty, _values in items])
        currency_round = menu["currency"].round
        return [
            float(
                currency_round(
                    _dec(price + sum(menu["attributes"][value][1] for value in values), 6)
                )
            )
            for price, (_pid, _qty, values) in zip(prices, items)
        ]

    @api.model
    def _api_lines_vals(self, menu, lines, device, refuse_sold_out=True):
        """Order line values from ``LineIn`` items, priced and taxed from the
        menu: pricelist prices plus attribute extras unless a permitted
        override; sold-out products refused unless not ``refuse_sold_out``.
        Returns (vals, bill line) pairs."""
        products = menu["products"]
        for data in lines:
            if data.product_id not in products:
                raise InvalidInput(
                    f"Product {data.product_id} is not sold at this point of sale.",
                    code="unknown_product",
                    details={"product_id": data.product_id},
                )
            if refuse_sold_out and products[data.product_id]["sold_out"]:
                raise Conflict(
                    f"Product {data.product_id} is sold out.",
                    code="product_sold_out",
                    details={"product_id": data.product_id},
                )
            template_id = products[data.product_id]["template_id"]
            if any(
                menu["attributes"].get(value_id, (None,))[0] != template_id
                for value_id in data.attribute_value_ids
            ) or len(set(data.attribute_value_ids)) != len(data.attribute_value_ids):
                raise InvalidInput(
                    "Attribute values do not belong to the product.",
                    code="unknown_attribute_value",
                    details={"product_id": data.product_id, "values": data.attribute_value_ids},
                )
            if data.price_unit is not None:
                self.env["pos.order.line"]._api_check_price_override(device)
        self.env["pos.order.line"]._api_check_discount(
            device.config_id, device, [float(data.discount) for data in lines]
        )
        prices = iter(
            self._api_menu_unit_prices(
                menu,
                [
                    (data.product_id, float(data.qty), data.attribute_value_ids)
                    for data in lines
                    if data.price_unit is None
                ],
            )
        )
        result = []
        for data in lines:
            product = products[data.product_id]
            override = data.price_unit is not None
            price_unit = float(data.price_unit) if override else next(prices)
            vals = {
                "uuid": str(data.uuid or uuid.uuid4()),
                "product_id": data.product_id,
                "full_product_name": product["name"],
                "qty": float(data.qty),
                "price_unit": price_unit,
                "discount": float(data.discount),
                "tax_ids": [Command.set(product["tax_ids"])],
                "attribute_value_ids": [Command.set(data.attribute_value_ids)],
                "customer_note": data.note or False,
                "api_seat": data.seat or 0,
                "api_price_override": override,
            }
            result.append(
                (
                    vals,
                    {
                        "key": vals["uuid"],
                        "product_id": data.product_id,
                        "qty": vals["qty"],
                        "price_unit": price_unit,
                        "discount": vals["discount"],
                        "taxes": product["taxes"],
                        "seat": data.seat,
                    },
                )
            )
        return result

    @api.model
    def _api_open_session_id(self, device, menu):
        if not menu["open_session_id"]:
            raise Conflict(
                f"{device.config_id.name} has no open session.",
                code="no_open_session",
                details={"config_id": device.config_id.id},
            )
        return menu["open_session_id"]

    @api.model
    def _api_create(self, payload, device):
        """Create an order from an ``OrderCreate``; the caller handles replays."""
        menu = device.config_id._api_menu()
        session_id = self._api_open_session_id(device, menu)
        return self._api_create_prepared(
            [self._api_prepare(payload, device, menu, session_id)], device, menu=menu
        )

    @api.model
    def _api_prepare(self, payload, device, menu, session_id):
        """Check an ``OrderCreate`` against the menu and return (vals, state).

        Everything the request alone decides is checked before anything is
        written; an order created in a later state then goes through the
        checks of the transitions it skips (``_api_create_prepared``).
        """
        if payload.table_id:
            table = self.env["restaurant.table"].browse(payload.table_id).exists()
            if not table or table.floor_id.id not in menu["floor_ids"]:
                raise InvalidInput(
                    f"Table {payload.table_id} is not in this restaurant.",
                    code="unknown_table",
                    details={"table_id": payload.table_id},
                )
        if payload.partner_id and not self.env["res.partner"].search_count(
            [("id", "=", payload.partner_id)], limit=1
        ):
            raise InvalidInput(
                "Unknown customer.",
                code="unknown_partner",
                details={"partner_id": payload.partner_id},
            )
        # A sale already paid for happened: it is recorded even when the
        # product has been sold out since.
        prepared = self._api_lines_vals(
            menu, payload.lines, device, refuse_sold_out=payload.state != lc.PAID
        )
        if len({vals["uuid"] for vals, _line in prepared}) != len(prepared):
            raise InvalidInput("Two lines have the same uuid.", code="duplicate_line_uuid")
        bill = self._api_compute_bill(menu, [line for _vals, line in prepared])
        line_vals = []
        for (vals, _line), amounts in zip(prepared, bill.lines):
            vals["price_subtotal"] = float(amounts.untaxed)
            vals["price_subtotal_incl"] = float(amounts.total)
            line_vals.append(Command.create(vals))
        for payment in payload.payments:
            if payment.payment_method_id not in menu["payment_method_ids"]:
                raise InvalidInput(
                    f"Payment method {payment.payment_method_id} is not accepted here.",
                    code="unknown_payment_method",
                    details={"payment_method_id": payment.payment_method_id},
                )
        if payload.payments and payload.state != lc.PAID:
            raise InvalidInput("Payments come with state 'paid' only.", code="payment_not_final")
        if payload.state == lc.PAID and not payload.payments and bill.total:
            raise InvalidInput(
                "A paid order needs its payments, unless its total is zero.",
                code="payment_required",
                details={"amount_total": float(bill.total)},
            )
        now = fields.Datetime.now()
        company_id = device.company_id.id
        for command in line_vals:
            # Stored related fields given at creation are not written again
            # by a recompute at flush: one UPDATE less per table.
            command[2]["company_id"] = company_id
        vals = {
            "uuid": str(payload.uuid),
            "session_id": session_id,
            "user_id": device.user_id.id,
            "pricelist_id": menu["pricelist_id"],
            "fiscal_position_id": menu["fiscal_position_id"],
            "table_id": payload.table_id or False,
            "customer_count": payload.customer_count or 0,
            "partner_id": payload.partner_id or False,
            "general_note": payload.note or False,
            "lines": line_vals,
            "payment_ids": [
                Command.create(
                    {
                        "payment_method_id": payment.payment_method_id,
                        "amount": float(payment.amount),
                        "payment_date": now,
                        "session_id": session_id,
                        "company_id": company_id,
                    }
                )
                for payment in payload.payments
            ],
            "amount_tax": float(bill.tax),
            "amount_total": float(bill.total),
            "amount_paid": float(sum(payment.amount for payment in payload.payments)),
            "amount_return": 0.0,
            "api_device_id": device.id,
            # An order that arrives paid is a pay-first order, whatever the
            # restaurant's usual flow.
            "api_flow": lc.PAY_FIRST if payload.state == lc.PAID else menu["flow"],
            # Paid on creation: its picking is made by the batched follow-up.
            "api_followup_pending": payload.state == lc.PAID,
        }
        if not payload.partner_id:
            # What pos.order's _compute_contact_details gives an order
            # without customer, without its look-up.
            vals.update(email="", mobile=False)
        return vals, payload.state

    @api.model
    def _api_create_prepared(self, prepared, device, menu=None):
        """Create prepared orders in one ORM call, then move each group of
        orders that share a target state along its path in one go.

        Orders that arrive paid leave the chatter mail.thread writes at
        creation (the creator as follower, the creation message) to the
        batched follow-up step that makes their picking and writes them
        anyway (``api_chatter_pending``); other orders, which devices go on
        editing, get it at once. A caller's own chatter context is kept.
        ``menu``: the snapshot the orders were prepared with, if at hand.
        """
        context = self.env.context
        deferrable = not any(
            context.get(key)
            for key in ("tracking_disable", "mail_create_nolog", "mail_create_nosubscribe")
        )
        vals_list = [
            dict(vals, api_chatter_pending=deferrable and state == lc.PAID)
            for vals, state in prepared
        ]
        self._api_warm_cache({vals["session_id"] for vals in vals_list})
        self._api_name_lines(device.config_id, vals_list)
        for vals in vals_list:
            # Every order the POS UI makes has a receipt number, and the POS
            # UI reads orders expecting one: pos_self_order's order setup
            # calls pos_reference.startsWith, and a failing setup leaves the
            # order's lines without their UI state (the floor screen breaks).
            vals.setdefault("pos_reference", vals.get("name") or "/")
        quiet = [vals for vals in vals_list if vals["api_chatter_pending"]]
        others = [vals for vals in vals_list if not vals["api_chatter_pending"]]
        created_quiet = iter(
            self.with_context(mail_create_nolog=True, mail_create_nosubscribe=True).create(quiet)
            if quiet
            else ()
        )
        created_others = iter(self.create(others) if others else ())
        orders = self.browse(  # in the caller's context and order
            [
                next(created_quiet if vals["api_chatter_pending"] else created_others).id
                for vals in vals_list
            ]
        )
        by_path = {}
        for order, (_vals, state) in zip(orders, prepared):
            if state != lc.DRAFT:
                by_path.setdefault((order.api_flow, state), self.browse())
                by_path[order.api_flow, state] |= order
        for (flow, state), group in by_path.items():
            path = lc.path_to(flow, lc.DRAFT, state)
            if any(transition.target == lc.VALIDATED for transition in path):
                # An order created in a later state goes through the checks
                # of the transitions it skips (empty orders, stock, prices),
                # here with one menu snapshot and one read of the lines'
                # attributes for the whole batch.
                menu = menu or device.config_id._api_menu()
                group.lines.mapped("attribute_value_ids")
                for order in group:
                    order._api_check_validation(device, menu=menu)
            group.with_context(
                pos_api_defer_followup=True, pos_api_prevalidated=True
            )._api_transition_path(path, device=device)
        return orders

    @api.model
    def _api_warm_cache(self, session_ids):
        """Read the few fields Odoo's order and payment creation use from
        wide records (the payment's currency goes through the config's
        journal and company; its method is checked against the config's),
        so that they are not read with their hundreds of other columns."""
        sessions = self.env["pos.session"].sudo().browse(session_ids)
        sessions.fetch(["config_id", "company_id", "state", "name", "user_id"])
        config = sessions.config_id
        config.fetch([name for name in CONFIG_FIELDS if name in config._fields])
        config.journal_id.fetch(["currency_id", "company_id"])
        companies = config.company_id | config.journal_id.company_id
        companies.fetch(["currency_id"])
        companies.currency_id.fetch(["name", "rounding", "decimal_places", "active"])
        methods = config.payment_method_ids
        # is_online_payment comes with pos_online_payment, installed or not.
        methods.fetch([name for name in METHOD_FIELDS if name in methods._fields])

    @api.model
    def _api_name_lines(self, config, vals_list):
        """Give new orders their reference at creation, as the POS UI does:
        the name Odoo would draw from the config's order sequence when the
        order is paid (Odoo keeps a name it finds). Give new lines the names
        pos.order.line's create would draw from the config's line sequence.
        Both in one query instead of one per record."""
        config = config.sudo()
        order_sequence, line_sequence = config.sequence_id, config.sequence_line_id
        # One read of both sequences.
        (order_sequence | line_sequence).mapped("implementation")
        unnamed_orders = [vals for vals in vals_list if not vals.get("name")]
        unnamed_lines = [
            command[2]
            for vals in vals_list
            for command in vals.get("lines", ())
            if command[0] == Command.CREATE and not command[2].get("name")
        ]
        draws = []
        for sequence, targets in ((order_sequence, unnamed_orders), (line_sequence, unnamed_lines)):
            if not sequence or not targets:
                continue
            if sequence.implementation == "standard" and not sequence.use_date_range:
                draws.append((sequence, targets))
            elif sequence == order_sequence:
                # A no-gap or dated sequence is locked and drawn by Odoo, one by one.
                for vals in targets:
                    vals["name"] = sequence._next()
            # (lines: pos.order.line's create draws such a sequence itself)
        if not draws:
            return
        self.env.cr.execute(
            SQL(
                "SELECT %s",
                SQL(", ").join(
                    SQL(
                        "ARRAY(SELECT nextval(%s) FROM generate_series(1, %s) ORDER BY 1)",
                        f"ir_sequence_{sequence.id:03d}",
                        len(targets),
                    )
                    for sequence, targets in draws
                ),
            )
        )
        for (sequence, targets), numbers in zip(draws, self.env.cr.fetchone()):
            for vals, number in zip(targets, numbers):
                vals["name"] = sequence.get_next_char(number)

    # ------------------------------------------------------------------
    # Lines of a draft order
    # ------------------------------------------------------------------
    def _api_check_editable(self):
        self.ensure_one()
        self._api_lock_money()
        if self.api_state != lc.DRAFT or self.state != "draft":
            raise Conflict(
                "Lines can only change while the order is draft.",
                code="order_not_draft",
                details={"state": self.api_state},
            )
        self._api_check_no_authorization()

    def _api_add_lines(self, lines, device):
        self._api_check_editable()
        if len(self.lines) + len(lines) > limits.MAX_LINES_PER_ORDER:
            raise InvalidInput(
                f"An order holds at most {limits.MAX_LINES_PER_ORDER} lines.",
                code="too_many_lines",
                details={"limit": limits.MAX_LINES_PER_ORDER, "lines": len(self.lines)},
            )
        existing = set(self.lines.mapped("uuid"))
        commands = []
        for vals, _line in self._api_lines_vals(self.config_id._api_menu(), lines, device):
            if vals["uuid"] in existing:
                raise Conflict(
                    "A line with this uuid exists already.",
                    code="duplicate_line_uuid",
                    details={"line_uuid": vals["uuid"]},
                )
            existing.add(vals["uuid"])
            # Amounts are placeholders until the engine recomputes the order below.
            commands.append(
                Command.create({**vals, "price_subtotal": 0.0, "price_subtotal_incl": 0.0})
            )
        self.write({"lines": commands})
        self._api_recompute_amounts()

    def _api_line(self, line_uuid):
        line = self.lines.filtered(lambda line: line.uuid == line_uuid)
        if not line:
            raise NotFound("No such line in this order.", details={"line_uuid": line_uuid})
        return line

    def _api_update_line(self, line_uuid, patch, device):
        self._api_check_editable()
        line = self._api_line(line_uuid)
        vals = {}
        if patch.qty is not None:
            vals["qty"] = float(patch.qty)
        if patch.discount is not None:
            vals["discount"] = float(patch.discount)
            self.env["pos.order.line"]._api_check_discount(
                self.config_id, device, [vals["discount"]]
            )
        if patch.note is not None:
            vals["customer_note"] = patch.note
        if patch.seat is not None:
            vals["api_seat"] = patch.seat
        if patch.price_unit is not None:
            self.env["pos.order.line"]._api_check_price_override(device)
            vals.update(price_unit=float(patch.price_unit), api_price_override=True)
        if not vals:
            raise InvalidInput("Nothing to change.", code="empty_patch")
        line.write(vals)
        if "qty" in vals and not line.api_price_override:
            line.price_unit = self._api_pricelist_prices(
                self.pricelist_id,
                self.currency_id,
                [(line.product_id, line.qty, line.attribute_value_ids)],
            )[0]
        self._api_recompute_amounts()

    def _api_remove_line(self, line_uuid):
        self._api_check_editable()
        self._api_line(line_uuid).unlink()
        self.has_deleted_line = True
        self._api_recompute_amounts()

    # ------------------------------------------------------------------
    # Read
    # ------------------------------------------------------------------
    def _api_to_dict(self, with_history=False, fresh=False):
        """The API's view of the order; ``fresh``: created in this very
        transaction, so it has no card authorization yet."""
        self.ensure_one()
        digits = self.currency_id.decimal_places
        result = {
            "id": self.id,
            "uuid": self.uuid,
            "name": self.name,
            "config_id": self.config_id.id,
            "session_id": self.session_id.id,
            "table_id": self.table_id.id or None,
            "state": self.api_state,
            "odoo_state": self.state,
            "flow": self.api_flow,
            "amount_tax": _dec(self.amount_tax, digits),
            "amount_total": _dec(self.amount_total, digits),
            "amount_paid": _dec(self.amount_paid, digits),
            "currency": self.currency_id.name,
            "lines": [
                {
                    "id": line.id,
                    "uuid": line.uuid,
                    "product_id": line.product_id.id,
                    "product_name": line.full_product_name or line.product_id.display_name,
                    "qty": _dec(line.qty, 3),
                    "price_unit": _dec(line.price_unit, max(digits, 4)),
                    "discount": _dec(line.discount, 2),
                    "price_subtotal": _dec(line.price_subtotal, digits),
                    "price_subtotal_incl": _dec(line.price_subtotal_incl, digits),
                    "note": line.customer_note or None,
                    "seat": line.api_seat or None,
                    "price_override": line.api_price_override,
                }
                for line in self.lines
            ],
            "payments": [
                {
                    "id": pay.id,
                    "payment_method_id": pay.payment_method_id.id,
                    "amount": _dec(pay.amount, digits),
                    "is_change": pay.is_change,
                    "terminal_ref": pay.transaction_id or None,
                }
                for pay in self.payment_ids
            ],
            "write_date": self.write_date,
            "kitchen_started_at": self.kitchen_started_at or None,
            "kitchen_ready_at": self.kitchen_ready_at or None,
            "served_at": self.served_at or None,
        }
        authorizations = self.env["pos.api.authorization"].sudo()
        if not fresh:
            authorizations = authorizations.search([("order_id", "=", self.id)])
        result["authorizations"] = [
            {
                "id": auth.id,
                "payment_method_id": auth.payment_method_id.id,
                "amount": _dec(auth.amount, digits),
                "terminal_ref": auth.terminal_ref or None,
                "state": auth.state,
            }
            for auth in authorizations
        ]
        if with_history:
            result["history"] = [
                {
                    "from_state": row.from_state,
                    "to_state": row.to_state,
                    "at": row.changed_at,
                    "source": row.source,
                    "reason": row.reason or None,
                    "device_id": row.device_id.id or None,
                }
                for row in self.api_state_history_ids
            ]
        return result

    @api.model
    def _api_list(self, device, params):
        """Orders of the device's point of sale in id order, with an opaque
        cursor (the last id seen) so that pages never skip or repeat a row."""
        domain = [("config_id", "=", device.config_id.id)]
        state = params.get("state")
        if state:
            if state not in lc.STATES:
                raise InvalidInput(
                    f"Unknown state {state!r}.",
                    code="invalid_filter",
                    details={"state": state, "allowed": list(lc.STATES)},
                )
            domain.append(("api_state", "=", state))
        if params.get("table_id"):
            domain.append(("table_id", "=", _int_param(params, "table_id")))
        if params.get("updated_since"):
            domain.append(("write_date", ">=", _datetime_param(params, "updated_since")))
        limit = _int_param(params, "limit", limits.DEFAULT_PAGE_SIZE)
        if not 1 <= limit <= limits.MAX_PAGE_SIZE:
            raise InvalidInput(
                f"limit must be within 1-{limits.MAX_PAGE_SIZE}.", code="invalid_filter"
            )
        if params.get("cursor"):
            domain.append(("id", ">", _decode_cursor(params["cursor"])))
        orders = self.search(domain, order="id asc", limit=limit + 1)
        page = orders[:limit]
        cursor = _encode_cursor(page[-1].id) if len(orders) > limit else None
        return page, cursor

    # ------------------------------------------------------------------
    # Follow-up (pickings, costs) in batches, off the request path
    # ------------------------------------------------------------------
    def _api_run_followup(self):
        """What ``sync_from_ui`` does after payment: picking, then costs;
        and the chatter mail.thread writes at creation."""
        self._api_write_chatter()
        for order in self.filtered("api_followup_pending"):
            order._create_order_picking()
            order._compute_total_cost_in_real_time()
            order.api_followup_pending = False

    def _api_write_chatter(self):
        """mail.thread's create, done later: the creator follows the order,
        and the creation message is logged in the creator's name, dated when
        the order was created."""
        pending = self.filtered("api_chatter_pending").sudo()
        if not pending:
            return
        # First: the messages below go through _message_create (see there).
        pending.api_chatter_pending = False
        for user, created in pending.grouped("create_uid").items():
            if user.active:
                self.env["mail.followers"].sudo()._insert_followers(
                    created._name,
                    created.ids,
                    user.partner_id.ids,
                    subtypes=None,
                    customer_ids=[],
                    check_existing=True,
                )
            as_creator = created.with_user(user).with_context(lang=user.lang)
            messages = as_creator._message_log_batch(
                bodies={order.id: order._creation_message() for order in as_creator}
            )
            for message in messages:
                message.date = created.browse(message.res_id).create_date

    def _message_create(self, values_list):
        # A message posted on an API order before the follow-up step ran
        # comes after its creation message, and reaches its creator.
        self.filtered("api_chatter_pending")._api_write_chatter()
        return super()._message_create(values_list)

    @api.model
    def _api_followup_domain(self):
        return ["|", ("api_followup_pending", "=", True), ("api_chatter_pending", "=", True)]

    @api.model
    def _cron_api_followup(self, batch_size=200):
        domain = self._api_followup_domain()
        orders = self.search(domain, order="id", limit=batch_size)
        for order in orders:
            order.with_company(order.company_id)._api_run_followup()
        remaining = self.search_count(domain)
        self.env["ir.cron"]._notify_progress(done=len(orders), remaining=remaining)


class PosOrderLine(models.Model):
    _inherit = "pos.order.line"

    api_seat = fields.Integer(string="Seat", help="Guest seat, for splitting the bill by seats.")


class PosSession(models.Model):
    _inherit = "pos.session"

    def _validate_session(
        self, balancing_account=False, amount_to_balance=0, bank_payment_method_diffs=None
    ):
        # Pickings of API orders must exist before the session's accounting.
        self.env["pos.order"].search(
            [("session_id", "in", self.ids), *self.env["pos.order"]._api_followup_domain()]
        )._api_run_followup()
        return super()._validate_session(
            balancing_account, amount_to_balance, bank_payment_method_diffs
        )


def _int_param(params, name, default=None):
    raw = params.get(name)
    if raw in (None, ""):
        return default
    try:
        value = int(raw)
    except ValueError:
        value = None
    if value is None or abs(value) > limits.MAX_INT:
        raise InvalidInput(
            f"{name} must be an integer.", code="invalid_filter", details={name: raw[:40]}
        )
    return value


def _datetime_param(params, name):
    try:
        return fields.Datetime.to_datetime(params[name].replace("T", " ")[:19])
    except ValueError:
        raise InvalidInput(
            f"{name} must be an ISO datetime.", code="invalid_filter", details={name: params[name]}
        ) from None


def _encode_cursor(record_id):
    return base64.urlsafe_b64encode(json.dumps({"after": record_id}).encode()).decode()


def _decode_cursor(cursor):
    try:
        after = json.loads(base64.urlsafe_b64decode(cursor.encode()))["after"]
    except (ValueError, TypeError, KeyError, RecursionError):
        after = None
    # An int of PostgreSQL's range only: not 1e400 (inf), 1.5, true or "1".
    if type(after) is not int or not 0 <= after <= limits.MAX_INT:
        raise InvalidInput("The cursor is not valid.", code="invalid_cursor")
    return after
