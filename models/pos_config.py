from odoo import fields, models

from ..pos_core import lifecycle

# Roles whose line discounts are not capped, as Odoo's price control exempts managers.
DISCOUNT_EXEMPT_ROLES = frozenset({"manager"})


class PosConfig(models.Model):
    _inherit = "pos.config"

    api_kitchen_flow = fields.Selection(
        [
            (lifecycle.PAY_FIRST, "Pay first, then cook"),
            (lifecycle.DINE_IN, "Dine-in: cook, serve, then pay"),
        ],
        string="Kitchen Flow",
        default=lifecycle.PAY_FIRST,
        required=True,
        help="Dine-in lets the kitchen work before payment: validated → preparing → "
        "ready → served → paid → done. New orders take the flow of their point of sale.",
    )
    api_check_stock = fields.Boolean(
        string="Check Stock on Validation",
        help="Refuse to validate API orders whose storable products are not in stock.",
    )
    api_tip_limit_percent = fields.Float(
        string="Tip After Payment Ceiling (%)",
        default=100.0,
        help="The largest tip a device may add, as a percentage of the order's total before "
        "the tip.",
    )
    api_discount_limit_waiter = fields.Float(
        string="Waiter Line Discount Ceiling (%)",
        default=100.0,
        help="The largest line discount a waiter device may give. Manager devices are exempt.",
    )
    api_discount_limit_cashier = fields.Float(
        string="Cashier Line Discount Ceiling (%)",
        default=100.0,
        help="The largest line discount a cashier device may give. Manager devices are exempt.",
    )

    _sql_constraints = [
        (
            "api_limits_percent",
            "CHECK(api_tip_limit_percent >= 0 AND api_discount_limit_waiter BETWEEN 0 AND 100"
            " AND api_discount_limit_cashier BETWEEN 0 AND 100)",
            "Tip and discount ceilings are percentages.",
        ),
    ]

    def _api_discount_limit(self, role):
        """The largest line discount (%) a device of ``role`` may give; None
        when the role is exempt (managers, as in Odoo's price control)."""
        self.ensure_one()
        if role in DISCOUNT_EXEMPT_ROLES:
            return None
        field = f"api_discount_limit_{role}"
        return self[field] if field in self._fields else 0.0
