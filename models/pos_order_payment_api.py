"""Payments, tips and refunds through the device API, on real ``pos.payment``
records so that Odoo's session closing, accounting and reports see them."""

from odoo import fields, models
from odoo.fields import Command
from odoo.tools import SQL, float_compare, float_is_zero

from ..pos_core import audit
from ..pos_core import lifecycle as lc
from ..pos_core.exceptions import Conflict, InvalidInput, PaymentDeclined


class PosOrder(models.Model):
    _inherit = "pos.order"

    # ------------------------------------------------------------------
    # checks
    # ------------------------------------------------------------------
    def _api_lock_money(self):
        """Serialize whatever moves money on these orders or changes what
        they are worth: payments, tips, captures, refunds, line edits.

        The order rows are updated, not only locked: under REPEATABLE READ a
        transaction that updates a row another one changed and committed
        since its snapshot fails with a serialization error, which Odoo
        retries on a fresh snapshot that sees the other's payments and
        refunds. A mere ``FOR UPDATE`` would wait, then go on reading the
        old snapshot (a partial refund writes nothing else on its order).

        Once the update went through, no transaction that touched these
        orders committed after this one's snapshot began: what this
        transaction has read and cached (amounts paid, refunded quantities,
        held authorizations) is up to date, and needs no second read.
        """
        if not self.ids:
            return
        # A serialization failure here is expected and retried: not logged
        # as a bad query.
        self.env.cr.execute(
            SQL(
                "UPDATE pos_order SET write_date = write_date WHERE id IN %s",
                tuple(self.ids),
            ),
            log_exceptions=False,
        )

    def _api_held_authorizations(self):
        self.ensure_one()
        return (
            self.env["pos.api.authorization"]
            .sudo()
            .search([("order_id", "=", self.id), ("state", "=", "authorized")])
        )

    def _api_check_payable(self):
        self.ensure_one()
        if self.api_state == lc.CANCEL or self.state == "cancel":
            raise Conflict("The order is cancelled.", code="order_cancelled")
        if self.state != "draft":
            raise Conflict(
                "The order is paid already.", code="already_paid", details={"state": self.api_state}
            )

    def _api_check_no_authorization(self, held=None):
        """A card authorization holds an amount for the order as it is: its
        lines do not change until it is captured or voided."""
        held = self._api_held_authorizations() if held is None else held
        if held:
            raise Conflict(
                "A card authorization is held on this order: capture or void it before "
                "changing its lines.",
                code="authorization_held",
                details={"authorization_ids": held.ids},
            )

    def _api_methods(self, method_id):
        method = self.config_id.payment_method_ids.filtered(lambda m: m.id == method_id)
        if not method:
            raise InvalidInput(
                f"Payment method {method_id} is not accepted here.",
                code="unknown_payment_method",
                details={"payment_method_id": method_id},
            )
        return method

    def _api_due(self):
        """What is left to pay, after Odoo's cash rounding when it applies."""
        return self.currency_id.round(self.amount_total - self.amount_paid)

    # ------------------------------------------------------------------
    # pay
    # ------------------------------------------------------------------
    def _api_pay(self, tenders, tip, device):
        """Apply tenders (multi-tender; cash change computed; card reference
        kept); once the bill is covered, the order becomes paid in both the
        lifecycle and Odoo's state."""
        self.ensure_one()
        self._api_lock_money()
        self._api_warm_cache(self.session_id.ids)
        self._api_check_payable()
        currency = self.currency_id
        declined = [tender for tender in tenders if tender.declined]
        if declined:
            self._api_record_declined(declined)
        held = self._api_held_authorizations()
        if tip:
            self._api_check_no_authorization(held)
            self._api_tip_product()
            self._api_check_tip_limit(float(tip))
            self._api_add_tip_line(float(tip))
        due = self._api_due()
        applied = 0.0
        payments, authorizations = [], []
        now = fields.Datetime.now()
        for tender in tenders:
            method = self._api_methods(tender.payment_method_id)
            self._api_check_currency(tender)
            amount = float(tender.amount)
            applied += amount
            if tender.authorize_only:
                if method.is_cash_count:
                    raise InvalidInput("Cash is not pre-authorized.", code="authorize_not_card")
                authorizations.append(
                    {
                        "company_id": self.company_id.id,
                        "order_id": self.id,
                        "payment_method_id": method.id,
                        "amount": amount,
                        "terminal_ref": tender.terminal_ref or False,
                    }
                )
                continue
            paid = amount
            if tender.tendered is not None:
                if not method.is_cash_count:
                    raise InvalidInput(
                        "Only cash is tendered with change.", code="tendered_not_cash"
                    )
                paid = float(tender.tendered)
                if float_compare(paid, amount, precision_rounding=currency.rounding) < 0:
                    raise InvalidInput(
                        "The cash tendered is less than the amount.", code="tendered_below_amount"
                    )
            payments.append(
                {
                    "pos_order_id": self.id,
                    "payment_method_id": method.id,
                    "amount": paid,
                    "payment_date": now,
                    "transaction_id": tender.terminal_ref or False,
                }
            )
            change = currency.round(paid - amount)
            if not float_is_zero(change, precision_rounding=currency.rounding):
                # Odoo's own way: the change is a negative cash payment.
                payments.append(
                    {
                        "pos_order_id": self.id,
                        "payment_method_id": method.id,
                        "amount": -change,
                        "payment_date": now,
                        "is_change": True,
                        "name": "return",
                    }
                )
        held = sum(held.mapped("amount"))
        if float_compare(applied + held, due, precision_rounding=currency.rounding) > 0:
            raise InvalidInput(
                "The payments exceed what is due.",
                code="overpayment",
                details={
                    "due": due,
                    "applied": currency.round(applied),
                    "authorized": currency.round(held),
                },
            )
        if authorizations:
            created = self.env["pos.api.authorization"].sudo().create(authorizations)
            self.env["pos.payment.audit"]._enqueue(
                [authorization._audit(audit.AUTHORIZED) for authorization in created]
            )
        self.env["pos.payment"].create(payments)
        self.amount_paid = sum(self.payment_ids.mapped("amount"))
        self._api_settle_if_paid(device)
        return self

    def _api_check_currency(self, tender):
        currency = self.currency_id
        if tender.currency and tender.currency.upper() != currency.name:
            raise InvalidInput(
                f"The order is in {currency.name}, not {tender.currency.upper()}.",
                code="currency_mismatch",
                details={"order_currency": currency.name, "currency": tender.currency},
            )

    def _api_record_declined(self, tenders):
        """A declined tender pays nothing; it is kept as a ``failed`` audit
        event, which survives the error response (PaymentDeclined keeps the
        request's writes, and nothing else was written)."""
        events = []
        for tender in tenders:
            method = self._api_methods(tender.payment_method_id)
            self._api_check_currency(tender)
            events.append(
                {
                    "company_id": self.company_id.id,
                    "event": audit.FAILED,
                    "order_res_id": self.id,
                    "order_name": self.pos_reference or self.name,
                    "amount": float(tender.amount),
                    "currency_id": self.currency_id.id,
                    "payment_method_id": method.id,
                    "terminal_ref": tender.terminal_ref or None,
                    "order_state_before": self.api_state,
                }
            )
        self.env["pos.payment.audit"]._enqueue(events)
        raise PaymentDeclined(
            "The payment terminal declined the payment.",
            details={"declined": [tender.payment_method_id for tender in tenders]},
        )

    def _api_settle_if_paid(self, device):
        """Once the bill is covered, the order is paid in the lifecycle and
        in Odoo."""
        if not float_is_zero(self._api_due(), precision_rounding=self.currency_id.rounding):
            return
        if self.api_flow == lc.DINE_IN and self.api_state in (lc.DRAFT, lc.VALIDATED):
            # Paid before the kitchen started: a pay-first order after all.
            self.with_context(pos_api_transition=True).api_flow = lc.PAY_FIRST
        path = lc.path_to(self.api_flow, self.api_state, lc.PAID)
        self.with_context(pos_api_defer_followup=True)._api_transition_path(
            path, device=device, reason="paid"
        )

    # ------------------------------------------------------------------
    # tips
    # ------------------------------------------------------------------
    def _api_tip_product(self):
        product = self.config_id.tip_product_id
        if not (self.config_id.iface_tipproduct and product):
            raise Conflict("Tips are not enabled at this point of sale.", code="tips_disabled")
        return product

    def _api_add_tip_line(self, amount):
        """A tip line on the tip product, as the POS UI adds it."""
        product = self._api_tip_product()
        self.write(
            {
                "lines": [
                    Command.create(
                        {
                            "product_id": product.id,
                            "full_product_name": product.display_name,
                            "qty": 1,
                            "price_unit": amount,
                            "price_subtotal": 0.0,
                            "price_subtotal_incl": 0.0,
                            "tax_ids": [
                                Command.set(
                                    product.taxes_id.filtered(
                                        lambda tax: tax.company_id == self.company_id
                                    ).ids
                                )
                            ],
                            "api_price_override": True,
                        }
                    )
                ]
            }
        )
        self._api_recompute_amounts()

    def _api_check_tip_limit(self, amount):
        """Tips, this one included, stay within the point of sale's ceiling:
        a share of the order's total before tips."""
        config = self.config_id
        tip_lines = self.lines.filtered(lambda line: line.product_id == config.tip_product_id)
        base = self.amount_total - sum(tip_lines.mapped("price_subtotal_incl"))
        tipped = sum(tip_lines.mapped("price_subtotal_incl")) + amount
        ceiling = self.currency_id.round(max(base, 0.0) * config.api_tip_limit_percent / 100)
        if float_compare(tipped, ceiling, precision_rounding=self.currency_id.rounding) > 0:
            raise InvalidInput(
                f"Tips may not exceed {config.api_tip_limit_percent:g}% of the order.",
                code="tip_exceeds_limit",
                details={"limit": ceiling, "tips": self.currency_id.round(tipped)},
            )

    def _api_tip(self, amount, method_id, device):
        """A tip before payment joins the bill; after payment (Odoo's "tip
        after payment", pos_restaurant's ``set_tip_after_payment``) it is
        added to the given method's payment, as
        ``pos.payment._update_payment_line_for_tip`` does, on the payments
        pos_restaurant would adjust. Both stay within the tip ceiling; the
        payment's change is audited (the old amount voided, the new one
        captured)."""
        self.ensure_one()
        self._api_lock_money()
        amount = float(amount)
        if self.api_state == lc.CANCEL or self.state == "cancel":
            raise Conflict("The order is cancelled.", code="order_cancelled")
        if self.state == "draft":
            self._api_check_no_authorization()
            self._api_tip_product()
            self._api_check_tip_limit(amount)
            self._api_add_tip_line(amount)
            return self
        if self.state != "paid":
            raise Conflict("The order's session is closed.", code="session_closed")
        if not self.config_id.set_tip_after_payment:
            raise Conflict(
                "Tips after payment are not enabled at this point of sale.",
                code="tip_after_payment_disabled",
            )
        if self.is_tipped:
            raise Conflict("The order was tipped already.", code="already_tipped")
        if not method_id:
            raise InvalidInput(
                "A tip after payment names the payment method it is added to.",
                code="payment_method_required",
            )
        payment = self.payment_ids.filtered(
            lambda p: p.payment_method_id.id == method_id and p.amount > 0 and not p.is_change
        )[:1]
        if not payment:
            raise InvalidInput(
                "The order has no payment with this method.",
                code="unknown_payment",
                details={"payment_method_id": method_id},
            )
        if not payment._api_tip_adjustable():
            raise InvalidInput(
                "This payment cannot be adjusted for a tip.",
                code="tip_not_adjustable",
                details={"payment_method_id": method_id},
            )
        self._api_tip_product()
        self._api_check_tip_limit(amount)
        self._api_add_tip_line(amount)
        payment._update_payment_line_for_tip(amount)
        self.write(
            {
                "is_tipped": True,
                "tip_amount": amount,
                "amount_paid": sum(self.payment_ids.mapped("amount")),
            }
        )
        return self

    # ------------------------------------------------------------------
    # refunds
    # ------------------------------------------------------------------
    def _api_refund(self, lines, method_id, reason, device, cancel=True):
        """Refund some lines, or all: Odoo's own refund order (negative lines,
        linked to the originals), paid back with a negative payment. A full
        refund cancels the order's lifecycle (``cancel``).

        The original order is locked first: what was refunded already
        (``refunded_qty``, computed from the refund lines) and paid is then
        read from a snapshot that has every earlier refund."""
        self.ensure_one()
        self._api_lock_money()
        if self.state not in ("paid", "done", "invoiced"):
            raise Conflict(
                "Only a paid order can be refunded.",
                code="not_paid",
                details={"state": self.api_state},
            )
        method = self._api_methods(method_id)
        refundable = {line.uuid: line for line in self.lines if line.qty - line.refunded_qty > 0}
        if lines is None:
            requested = {key: line.qty - line.refunded_qty for key, line in refundable.items()}
        else:
            requested = {}
            for item in lines:
                key = str(item.line_uuid)
                line = self.lines.filtered(lambda line, key=key: line.uuid == key)
                if not line:
                    raise InvalidInput(
                        "No such line in this order.",
                        code="unknown_line",
                        details={"line_uuid": key},
                    )
                qty = requested.get(key, 0.0) + float(item.qty)
                if (
                    float_compare(
                        qty,
                        line.qty - line.refunded_qty,
                        precision_rounding=line.product_uom_id.rounding,
                    )
                    > 0
                ):
                    raise InvalidInput(
                        "The refund exceeds what was sold and not yet refunded.",
                        code="refund_exceeds_paid",
                        details={"line_uuid": key, "refundable": line.qty - line.refunded_qty},
                    )
                requested[key] = qty
        if not requested:
            raise Conflict("Nothing is left to refund.", code="nothing_to_refund")
        refund = self._refund()
        for line in refund.lines:
            qty = requested.get(line.refunded_orderline_id.uuid)
            if qty:
                line.qty = -qty
            else:
                line.unlink()
        refund._api_recompute_amounts()
        earlier = self.lines.refund_orderline_ids.order_id.filtered(
            lambda order: order != refund and order.state != "draft"
        )
        refunded_before = -sum(earlier.mapped("amount_paid"))
        if (
            float_compare(
                -refund.amount_total + refunded_before,
                self.amount_paid,
                precision_rounding=self.currency_id.rounding,
            )
            > 0
        ):
            raise InvalidInput(
                "The refund exceeds what was paid.",
                code="refund_exceeds_paid",
                details={"paid": self.amount_paid},
            )
        self.env["pos.payment"].create(
            {
                "pos_order_id": refund.id,
                "payment_method_id": method.id,
                "amount": refund.amount_total,
                "payment_date": fields.Datetime.now(),
            }
        )
        refund.amount_paid = refund.amount_total
        refund.api_device_id = device.id if device else False
        # Not inside the cancel transition's context: the refund order's own
        # lifecycle follows its Odoo state (draft → paid) like any order.
        refund.with_context(
            pos_api_defer_followup=True, pos_api_source="api", pos_api_transition=False
        )._api_mark_paid()
        fully = all(line.qty - line.refunded_qty <= 0 for line in self.lines)
        if cancel and fully and self.api_state not in lc.FINAL_STATES:
            self.with_context(pos_api_refunding=True)._api_transition(
                lc.CANCEL, reason=reason or "refunded", device=device
            )
        return refund


# Payment terminals whose authorized amount pos_restaurant's add-on for them
# adjusts after payment, and the card types it adjusts (see their
# ``canBeAdjusted``): (add-on, accepts(card_type)).
ADJUSTABLE_TERMINALS = {
    "adyen": (
        "pos_restaurant_adyen",
        lambda card_type: card_type in {"mc", "visa", "amex", "discover"},
    ),
    "stripe": (
        "pos_restaurant_stripe",
        lambda card_type: bool(card_type) and card_type != "interac" and "eftpos" not in card_type,
    ),
}


class PosPayment(models.Model):
    _inherit = "pos.payment"

    def _api_tip_adjustable(self):
        """pos_restaurant's ``canBeAdjusted``: never cash nor online
        payments; a terminal's payment only where its pos_restaurant add-on
        adjusts it; any other card payment."""
        self.ensure_one()
        method = self.payment_method_id
        if method.is_cash_count or getattr(method, "is_online_payment", False):
            return False
        terminal = method.use_payment_terminal
        if not terminal:
            return True
        module, accepts = ADJUSTABLE_TERMINALS.get(terminal, (None, None))
        return bool(
            module and module in self.env.registry._init_modules and accepts(self.card_type)
        )
