from odoo import fields, models

from ..pos_core import lifecycle


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
