from odoo import api, fields, models
from odoo.exceptions import ValidationError

from ..pos_core import events


class PosApiPrinter(models.Model):
    """An ESC/POS network printer station (kitchen, bar, ...).

    Odoo CE's ``pos.printer`` prints from the browser through an IoT box or
    Epson ePOS; restaurant kitchens mostly run plain ESC/POS printers on TCP
    port 9100, which the server reaches directly.
    """

    _name = "pos.api.printer"
    _description = "Kitchen Printer Station"
    _order = "sequence, id"

    name = fields.Char(required=True)
    sequence = fields.Integer(default=10)
    active = fields.Boolean(default=True)
    company_id = fields.Many2one(
        "res.company", required=True, default=lambda self: self.env.company, index=True
    )
    config_ids = fields.Many2many(
        "pos.config",
        "pos_api_printer_config_rel",
        "printer_id",
        "config_id",
        string="Points of Sale",
        help="Points of sale whose tickets this station prints.",
    )
    host = fields.Char(required=True, help="IP address or host name of the printer.")
    port = fields.Integer(default=9100, required=True)
    timeout = fields.Float(default=5.0, help="Seconds to wait for the printer.")
    category_ids = fields.Many2many(
        "pos.category",
        "pos_api_printer_category_rel",
        "printer_id",
        "category_id",
        string="Routed Categories",
        help="Products of these POS categories are printed on this station.",
    )
    backup_printer_id = fields.Many2one(
        "pos.api.printer",
        help="Takes the tickets while this station is unreachable.",
    )
    product_ids = fields.Many2many(
        "product.product",
        "pos_api_printer_product_rel",
        "printer_id",
        "product_id",
        string="Also Prints",
        help="Products printed here whatever their category.",
    )
    excluded_product_ids = fields.Many2many(
        "product.product",
        "pos_api_printer_excluded_product_rel",
        "printer_id",
        "product_id",
        string="Never Prints",
        help="Products of the routed categories that are not printed here.",
    )
    paper = fields.Selection(
        [("58", "58 mm"), ("80", "80 mm")], default="80", required=True, string="Paper Width"
    )
    health_state = fields.Char(
        string="Health",
        readonly=True,
        default="ok",
        help="ok, degraded (failing), or why it is down: refused, unreachable, timeout, "
        "reset, offline, no_paper. As the print jobs last saw it.",
    )
    health_checked_at = fields.Datetime(readonly=True)
    kds_warn_minutes = fields.Integer(
        string="Display: Late After",
        default=10,
        help="Minutes after it was sent when an order turns amber on the kitchen display.",
    )
    kds_late_minutes = fields.Integer(
        string="Display: Very Late After",
        default=20,
        help="Minutes after it was sent when an order turns red on the kitchen display.",
    )

    _sql_constraints = [
        ("port_range", "CHECK(port > 0 AND port < 65536)", "The printer port must be 1-65535."),
        (
            "backup_not_self",
            "CHECK(backup_printer_id IS NULL OR backup_printer_id != id)",
            "A printer cannot be its own backup.",
        ),
        (
            "kds_minutes",
            "CHECK(kds_warn_minutes > 0 AND kds_late_minutes > kds_warn_minutes)",
            "The display's minutes must be positive, very late after late.",
        ),
    ]

    @api.constrains("backup_printer_id", "company_id")
    def _check_backup_company(self):
        for printer in self:
            backup = printer.backup_printer_id
            if backup and backup.company_id != printer.company_id:
                raise ValidationError(
                    self.env._("The backup printer must belong to the same company.")
                )

    def _api_station_dict(self):
        """The station as devices see it (the config document, a display)."""
        self.ensure_one()
        return {
            "id": self.id,
            "name": self.name,
            "category_ids": self.category_ids.ids,
            "room": events.room(events.STATION, self.id),
            "warn_minutes": self.kds_warn_minutes,
            "late_minutes": self.kds_late_minutes,
        }
