from odoo import fields, models


class ProductTemplate(models.Model):
    _inherit = "product.template"

    api_sold_out = fields.Boolean(
        string="Sold Out (86)",
        company_dependent=True,
        copy=False,
        help="Temporarily unavailable in this company: its devices show it as sold out and "
        "orders cannot take it. Set by a manager or the kitchen, reset when it is back.",
    )

    def _api_set_availability(self, available):
        """86 the products (or bring them back) in the environment's company;
        the change reaches devices as ``menu.updated`` and the menus'
        versions move after commit."""
        to_write = self.filtered(lambda template: template.api_sold_out == available)
        if to_write:
            to_write.sudo().write({"api_sold_out": not available})
        return self
