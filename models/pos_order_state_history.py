from odoo import fields, models
from odoo.exceptions import UserError

from ..pos_core import lifecycle

STATE_SELECTION = [(state, state.capitalize()) for state in lifecycle.STATES]


class PosOrderStateHistory(models.Model):
    """One row per lifecycle move of an order: who, when, from, to, why.

    Append-only: rows are written by the lifecycle and never edited.
    """

    _name = "pos.order.state.history"
    _description = "POS Order Lifecycle History"
    _order = "order_id, id"
    _log_access = False

    order_id = fields.Many2one("pos.order", required=True, index=True, ondelete="cascade")
    company_id = fields.Many2one(related="order_id.company_id", store=True, index=True)
    from_state = fields.Selection(STATE_SELECTION, required=True)
    to_state = fields.Selection(STATE_SELECTION, required=True)
    changed_at = fields.Datetime(required=True, default=fields.Datetime.now)
    user_id = fields.Many2one("res.users", required=True, default=lambda self: self.env.uid)
    device_id = fields.Many2one("pos.api.device", ondelete="set null")
    source = fields.Selection(
        [("api", "Device API"), ("pos_ui", "Odoo POS UI"), ("backend", "Backend")],
        required=True,
        default="backend",
    )
    reason = fields.Char()

    def write(self, vals):  # pylint: disable=method-required-super
        raise UserError(self.env._("The lifecycle history cannot be changed."))
