import logging
import time

import psycopg2
from psycopg2 import errorcodes

from odoo import api, fields, models
from odoo.exceptions import UserError
from odoo.tools import float_compare

from ..pos_core import lifecycle as lc
from ..pos_core.exceptions import Conflict, Forbidden, InvalidInput
from .pos_order_state_history import STATE_SELECTION

_logger = logging.getLogger(__name__)

FOLLOWUP_WAKE_INTERVAL = 5.0
_FOLLOWUP_WOKEN = {}

# Roles allowed to sell at a price other than the pricelist's.
PRICE_OVERRIDE_ROLES = frozenset({"manager"})


class UuidCommittedConcurrently(psycopg2.errors.SerializationFailure):
    """A serialization failure of our own: Odoo's retry loop
    (``odoo.service.model.retrying``, around every RPC and HTTP request)
    retries the request in a new snapshot. ``pgcode`` is what the loop logs."""

    pgcode = errorcodes.SERIALIZATION_FAILURE


class PosOrder(models.Model):
    _inherit = "pos.order"

    api_state = fields.Selection(
        STATE_SELECTION,
        string="Restaurant State",
        default=lc.DRAFT,
        required=True,
        index=True,
        copy=False,
        readonly=True,
        help="The restaurant lifecycle, kept consistent with the Odoo state.",
    )
    api_flow = fields.Selection(
        [(lc.PAY_FIRST, "Pay first"), (lc.DINE_IN, "Dine-in")],
        string="Kitchen Flow",
        default=lc.PAY_FIRST,
        required=True,
        copy=False,
        readonly=True,
    )
    api_device_id = fields.Many2one(
        "pos.api.device",
        string="Created by Device",
        readonly=True,
        copy=False,
        index="btree_not_null",
    )
    kitchen_started_at = fields.Datetime(readonly=True, copy=False)
    kitchen_ready_at = fields.Datetime(readonly=True, copy=False)
    served_at = fields.Datetime(readonly=True, copy=False)
    api_refunded = fields.Boolean(
        string="Cancelled by Refund",
        readonly=True,
        copy=False,
        help="Cancelled after payment: Odoo keeps it paid and holds the refund as another order.",
    )
    api_state_history_ids = fields.One2many(
        "pos.order.state.history", "order_id", string="Lifecycle History", readonly=True
    )

    _sql_constraints = [
        (
            "pos_api_uuid_unique",
            "UNIQUE(uuid)",
            "An order with this uuid already exists: a client retried a creation.",
        ),
    ]

    # ------------------------------------------------------------------
    # Odoo's own flows enter the lifecycle
    # ------------------------------------------------------------------
    @api.model_create_multi
    def create(self, vals_list):
        session_ids = {vals["session_id"] for vals in vals_list if vals.get("session_id")}
        flows = {
            session.id: session.config_id.api_kitchen_flow
            for session in self.env["pos.session"].browse(session_ids)
        }
        for vals in vals_list:
            if "api_flow" not in vals and vals.get("session_id") in flows:
                vals["api_flow"] = flows[vals["session_id"]]
        orders = super().create(vals_list)
        orders.filtered(lambda order: order.state != "draft")._api_follow_odoo_state()
        return orders

    def write(self, vals):
        result = super().write(vals)
        if "state" in vals and not self.env.context.get("pos_api_transition"):
            self._api_follow_odoo_state()
        return result

    @api.model
    def _process_order(self, order, existing_order):
        # The POS UI loads every pos.order field and sends them all back, the
        # addon's ones empty (api_state null would break the insert): they
        # belong to the server, never to the UI.
        for name in [key for key in order if key in self._fields]:
            if self._fields[name]._module == "point_of_sale_api":
                order.pop(name)
        if existing_order:
            if existing_order._api_held_authorizations():
                # The amount a card authorization holds is for the order as it
                # is: the POS UI may not change it either (the API says 409).
                raise UserError(
                    self.env._(
                        "Order %s has a card authorization held on it: capture or void it "
                        "before changing the order.",
                        existing_order.pos_reference or existing_order.name,
                    )
                )
            return super()._process_order(order, existing_order)
        try:
            return super()._process_order(order, existing_order)
        except psycopg2.errors.UniqueViolation as exc:
            if exc.diag.constraint_name != f"{self._table}_pos_api_uuid_unique":
                raise
            # A concurrent push of this order committed it after this
            # transaction's snapshot was taken: Odoo's retry loop replays the
            # request, whose own search then finds it (a sequential retry).
            raise UuidCommittedConcurrently(
                f"The order with uuid {order.get('uuid')} was just created by a concurrent request."
            ) from exc

    @api.model
    def sync_from_ui(self, orders):
        """Odoo's sync, and a retry of an order already past draft (whose
        first response was lost, or that a concurrent push created) is
        answered with that order's server data instead of nothing, so that
        every retry gets the answer the first push got."""
        pos_ui = self.with_context(pos_api_source="pos_ui")
        result = super(PosOrder, pos_ui).sync_from_ui(orders)
        uuids = [order.get("uuid") for order in orders if order.get("uuid")]
        answered = {values["id"] for values in result.get("pos.order", [])}
        skipped = pos_ui.search([("uuid", "in", uuids), ("id", "not in", list(answered))])
        if not skipped:
            return result
        synced = pos_ui.browse(list(answered)) | skipped
        config_id = synced.config_id.ids[0]
        lines = synced.lines
        for model, records in (
            ("pos.order", synced),
            ("pos.payment", synced.payment_ids),
            ("pos.order.line", lines),
            ("pos.pack.operation.lot", lines.pack_lot_ids),
            ("product.attribute.custom.value", lines.custom_attribute_value_ids),
        ):
            result[model] = records.read(records._load_pos_data_fields(config_id), load=False)
        return result

    def _api_follow_odoo_state(self):
        """Move the lifecycle where Odoo's state says the order is.

        Orders paid, cancelled or invoiced by Odoo itself (the POS UI, the
        backend, session closing) take the matching lifecycle state, with a
        history row naming the source.
        """
        source = self.env.context.get("pos_api_source", "backend")
        history = []
        for order in self:
            if order.state in lc.odoo_states_for(
                order.api_flow, order.api_state, refunded=order.api_refunded
            ):
                continue
            target = lc.state_from_odoo(order.api_flow, order.state)
            if target == order.api_state:
                continue
            history.append(
                order._api_history_vals(
                    order.api_state, target, source=source, reason=f"odoo state {order.state}"
                )
            )
            order.with_context(pos_api_transition=True).write({"api_state": target})
            if target == lc.CANCEL and order.kitchen_started_at:
                order._api_kitchen_cancel()
        if history:
            self.env["pos.order.state.history"].sudo().create(history)

    def _api_history_vals(self, from_state, to_state, source, reason=None, device=None):
        return {
            "order_id": self.id,
            "company_id": self.company_id.id,
            "from_state": from_state,
            "to_state": to_state,
            "source": source,
            "reason": reason,
            "device_id": device.id if device else False,
            "user_id": self.env.uid,
        }

    # ------------------------------------------------------------------
    # The lifecycle
    # ------------------------------------------------------------------
    def _api_transition(self, target, reason=None, device=None, source="api"):
        """Move the order to ``target`` if the table allows it, or raise."""
        self.ensure_one()
        transition = lc.check_transition(self.api_flow, self.api_state, target)
        return self._api_transition_path([transition], reason, device, source)

    def _api_recall(self, reason=None, device=None, source="api"):
        """The kitchen takes the order back from ready (a bump by mistake):
        preparing again, its ready time cleared; nothing prints."""
        self.ensure_one()
        recall = lc.check_recall(self.api_flow, self.api_state)
        return self._api_transition_path([recall], reason, device, source, send=False)

    def _api_transition_path(self, transitions, reason=None, device=None, source="api", send=True):
        """Apply a chain of checked transitions to orders that are all in its
        first state, with one write and one history insert. Odoo's side
        effects run first (validation, payment, cancel, invoice), so an error
        leaves nothing written once the caller rolls back. Entering preparing
        sends the order to the kitchen, unless ``send`` is false (it was sent
        already). A kitchen timestamp already set (the POS UI sent the order
        first) is kept."""
        if not transitions or any(order.api_state != transitions[0].current for order in self):
            raise lc.IllegalTransition(
                self[:1].api_flow,
                self[:1].api_state,
                transitions[-1].target if transitions else self[:1].api_state,
            )
        orders = self.with_context(pos_api_transition=True)
        in_kitchen = self.filtered("kitchen_started_at")
        now = fields.Datetime.now()
        stamps = []
        for transition in transitions:
            for order in orders:
                order._api_side_effects(transition, device)
            if transition.timestamp_field:
                stamps.append(transition.timestamp_field)
        vals = {"api_state": transitions[-1].target}
        if any(transition.is_recall for transition in transitions):
            vals["kitchen_ready_at"] = False
        kept = [field for field in stamps if any(order[field] for order in orders)]
        vals.update((field, now) for field in stamps if field not in kept)
        orders.write(vals)
        for field in kept:
            orders.filtered(lambda order, field=field: not order[field]).write({field: now})
        self.env["pos.order.state.history"].sudo().create(
            [
                order._api_history_vals(
                    transition.current, transition.target, source, reason, device
                )
                for order in self
                for transition in transitions
            ]
        )
        targets = {transition.target for transition in transitions}
        if lc.CANCEL in targets:
            in_kitchen._api_kitchen_cancel()
        elif lc.PREPARING in targets and send:
            self._api_send_to_kitchen()
        return True

    def _api_side_effects(self, transition, device):
        """What Odoo must do before the lifecycle enters ``transition.target``."""
        target = transition.target
        if target == lc.VALIDATED and not self.env.context.get("pos_api_prevalidated"):
            # (prevalidated: checked just before, by _api_create_prepared)
            self._api_check_validation(device)
        if transition.needs_payment and self.state == "draft":
            self._api_mark_paid()
        if target == lc.CANCEL and transition.needs_refund:
            # A paid order is cancelled by refunding it in full (unless the
            # refund flow itself is cancelling it); Odoo keeps it paid.
            if not self.env.context.get("pos_api_refunding"):
                method = self.payment_ids.filtered(lambda p: p.amount > 0 and not p.is_change)[:1]
                self._api_refund(
                    None, method.payment_method_id.id, "cancelled", device, cancel=False
                )
            self.api_refunded = True
        elif target == lc.CANCEL:
            self.action_pos_order_cancel()
        if target == lc.INVOICED and self.state != "invoiced":
            if not self.partner_id:
                raise InvalidInput(
                    "An order needs a customer to be invoiced.", code="customer_required"
                )
            self.action_pos_order_invoice()

    def _api_mark_paid(self):
        """Odoo's own payment completion, then the stock follow-up that
        ``sync_from_ui`` runs: at once, or batched off the request path when
        the context asks for it (``pos_api_defer_followup``)."""
        try:
            self.action_pos_order_paid()
        except UserError as exc:
            raise Conflict(
                str(exc.args[0]) if exc.args else "The order is not fully paid.",
                code="not_fully_paid",
                details={"amount_total": self.amount_total, "amount_paid": self.amount_paid},
            ) from exc
        if not self.api_followup_pending:
            self.api_followup_pending = True
        if self.env.context.get("pos_api_defer_followup"):
            self._api_wake_followup()
        else:
            self._api_run_followup()

    def _api_wake_followup(self):
        """Wake the follow-up cron, at most every few seconds per worker: the
        flag on the order is what guarantees the work, the cron's own
        schedule catches up on any wake-up lost with a rolled back request."""
        now = time.monotonic()
        key = self.env.cr.dbname
        if now - _FOLLOWUP_WOKEN.get(key, -FOLLOWUP_WAKE_INTERVAL) >= FOLLOWUP_WAKE_INTERVAL:
            _FOLLOWUP_WOKEN[key] = now
            self.env.ref("point_of_sale_api.ir_cron_order_followup")._trigger()

    # ------------------------------------------------------------------
    # Validation at "validated"
    # ------------------------------------------------------------------
    def _api_check_validation(self, device=None, menu=None):
        """Sellable products, pricelist prices, positive quantities, stock."""
        self.ensure_one()
        problems = []
        config = self.config_id
        if not self.lines:
            problems.append({"code": "empty_order", "message": "The order has no line."})
        menu = menu or config._api_menu()
        # The menu snapshot knows the sellable products (combos aside) and
        # caches pricelist prices: the ORM is asked only about the rest.
        products = self.lines.product_id
        sellable = products.filtered(lambda product: product.id in menu["products"])
        if products - sellable:
            sellable |= self.env["product.product"].search(
                [("id", "in", (products - sellable).ids), *config._get_available_product_domain()]
            )
        currency = self.currency_id
        priced = self.lines.filtered(
            lambda line: (
                not (line.combo_parent_id or line.combo_line_ids or line.api_price_override)
            )
        )
        pricelist = self.pricelist_id or config.pricelist_id
        if pricelist.id == menu["pricelist_id"] and all(
            line.product_id.id in menu["products"]
            and all(value in menu["attributes"] for value in line.attribute_value_ids.ids)
            for line in priced
        ):
            prices = self._api_menu_unit_prices(
                menu,
                [(line.product_id.id, line.qty, line.attribute_value_ids.ids) for line in priced],
            )
        else:
            prices = self._api_pricelist_prices(
                pricelist,
                currency,
                [(line.product_id, line.qty, line.attribute_value_ids) for line in priced],
            )
        expected_prices = dict(zip(priced, prices))
        for line in self.lines:
            ref = {"line_uuid": line.uuid, "product_id": line.product_id.id}
            if line.qty <= 0:
                problems.append(
                    {
                        **ref,
                        "code": "quantity_not_positive",
                        "message": "Quantities must be positive.",
                    }
                )
            if line.product_id not in sellable and line.product_id != config.tip_product_id:
                problems.append(
                    {
                        **ref,
                        "code": "product_not_sellable",
                        "message": f"{line.product_id.display_name} is not sold here.",
                    }
                )
                continue
            expected = expected_prices.get(line)
            if expected is not None and float_compare(
                line.price_unit, expected, precision_rounding=currency.rounding
            ):
                problems.append(
                    {
                        **ref,
                        "code": "price_mismatch",
                        "expected": expected,
                        "message": "The price differs from the pricelist.",
                    }
                )
        if config.api_check_stock:
            problems += self._api_stock_problems()
        if problems:
            raise InvalidInput(
                "The order cannot be validated.",
                code="order_invalid",
                details={"problems": problems},
            )

    @api.model
    def _api_pricelist_prices(self, pricelist, currency, items):
        """Unit prices of (product, qty, attribute values) items: the
        pricelist's price plus the attributes' extras, one rule lookup per
        distinct quantity."""
        by_qty = {}
        for product, qty, _attributes in items:
            by_qty.setdefault(qty or 1.0, self.env["product.product"])
            by_qty[qty or 1.0] |= product
        prices = {
            qty: pricelist._get_products_price(products, qty, currency=currency)
            for qty, products in by_qty.items()
        }
        return [
            currency.round(prices[qty or 1.0][product.id] + sum(attributes.mapped("price_extra")))
            for product, qty, attributes in items
        ]

    def _api_stock_problems(self):
        location = self.config_id.picking_type_id.default_location_src_id
        needed = {}
        for line in self.lines.filtered(lambda line: line.product_id.is_storable):
            needed[line.product_id] = needed.get(line.product_id, 0.0) + line.qty
        problems = []
        for product, qty in needed.items():
            available = product.with_context(location=location.id).qty_available
            if float_compare(available, qty, precision_rounding=product.uom_id.rounding) < 0:
                problems.append(
                    {
                        "product_id": product.id,
                        "code": "insufficient_stock",
                        "message": f"Only {available:g} {product.display_name} in stock.",
                        "available": available,
                        "requested": qty,
                    }
                )
        return problems


class PosOrderLine(models.Model):
    _inherit = "pos.order.line"

    api_price_override = fields.Boolean(
        string="Price Overridden",
        readonly=True,
        copy=False,
        help="The price was set by a role allowed to depart from the pricelist.",
    )

    @api.model
    def _api_check_price_override(self, device):
        """Only some roles may depart from the pricelist."""
        if device and device.role not in PRICE_OVERRIDE_ROLES:
            raise Forbidden(
                f"A {device.role} device cannot override prices.", code="price_override_forbidden"
            )
        if not device and not self.env.user.has_group("point_of_sale.group_pos_manager"):
            raise Forbidden(
                "Only POS managers can override prices.", code="price_override_forbidden"
            )

    @api.model
    def _api_check_discount(self, config, device, discounts):
        """Line discounts follow the point of sale: none when its "Line
        Discounts" (``manual_discount``) is off, and within the device
        role's ceiling (managers are exempt)."""
        given = [discount for discount in discounts if discount > 0]
        if not given:
            return
        if not config.manual_discount:
            raise Forbidden(
                "Line discounts are not allowed at this point of sale.",
                code="discount_disabled",
            )
        if not device:
            return
        limit = config._api_discount_limit(device.role)
        if limit is not None and float_compare(max(given), limit, precision_digits=4) > 0:
            raise Forbidden(
                f"A {device.role} device may give line discounts of at most {limit:g}%.",
                code="discount_exceeds_limit",
                details={"limit": limit, "discount": max(given)},
            )
