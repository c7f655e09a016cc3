from odoo import fields, models
from odoo.tools import float_compare

from ..pos_core import audit
from ..pos_core.exceptions import Conflict


class PosApiAuthorization(models.Model):
    """A card pre-authorization taken by a terminal: money held, not yet
    captured. Capture makes the real ``pos.payment``; void releases it. Each
    step is an event of the payment audit trail."""

    _name = "pos.api.authorization"
    _description = "POS API Card Authorization"
    _order = "id"

    company_id = fields.Many2one("res.company", required=True, index=True)
    order_id = fields.Many2one("pos.order", required=True, index=True, ondelete="restrict")
    payment_method_id = fields.Many2one("pos.payment.method", required=True, ondelete="restrict")
    amount = fields.Float(required=True, digits=(16, 4))
    terminal_ref = fields.Char()
    state = fields.Selection(
        [("authorized", "Authorized"), ("captured", "Captured"), ("voided", "Voided")],
        required=True,
        default="authorized",
    )
    payment_id = fields.Many2one("pos.payment", readonly=True, ondelete="set null")

    def _audit(self, event):
        order = self.order_id
        return {
            "company_id": self.company_id.id,
            "event": event,
            "order_res_id": order.id,
            "order_name": order.pos_reference or order.name,
            "amount": self.amount,
            "currency_id": order.currency_id.id,
            "payment_method_id": self.payment_method_id.id,
            "terminal_ref": self.terminal_ref or None,
            "order_state_before": order.api_state,
        }

    def _check_open(self):
        self.ensure_one()
        if self.state != "authorized":
            raise Conflict(
                f"The authorization is {self.state} already.",
                code="authorization_closed",
                details={"authorization_id": self.id, "state": self.state},
            )

    def _capture(self, device):
        """Capture the held amount, if the order still owes it: the order is
        locked first (see ``pos.order._api_lock_money``), so that concurrent
        payments and captures see each other."""
        self.ensure_one()
        order = self.order_id
        order._api_lock_money()
        self._check_open()
        order._api_check_payable()
        due = order._api_due()
        currency = order.currency_id
        if float_compare(self.amount, due, precision_rounding=currency.rounding) > 0:
            raise Conflict(
                "The authorization exceeds what the order still owes.",
                code="overpayment",
                details={"due": due, "authorized": currency.round(self.amount)},
            )
        payment = self.env["pos.payment"].create(
            {
                "pos_order_id": order.id,
                "payment_method_id": self.payment_method_id.id,
                "amount": self.amount,
                "payment_date": fields.Datetime.now(),
                "transaction_id": self.terminal_ref or False,
            }
        )
        # Written only here and in _void, audited: POS users read authorizations.
        self.sudo().write({"state": "captured", "payment_id": payment.id})
        order.amount_paid = sum(order.payment_ids.mapped("amount"))
        order._api_settle_if_paid(device)

    def _void(self):
        self.ensure_one()
        self.order_id._api_lock_money()
        self._check_open()
        self.sudo().state = "voided"
        self.env["pos.payment.audit"]._enqueue([self._audit(audit.VOIDED)])
