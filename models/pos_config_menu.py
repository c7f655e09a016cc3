from decimal import Decimal

from odoo import models
from odoo.tools import float_repr

from ..pos_core import billing
from ..pos_core.cache import VersionedLRU
from .pos_api_cache_version import cache_settings, menu_version

# Per worker process: what an order needs to know of a point of sale's menu,
# under its version (pos_api_cache_version); the TTL bounds what a bump lost
# with a dying process could leave stale.
_MENU_CACHE = VersionedLRU(max_entries=64, max_age=cache_settings().cache_ttl_menu)


def _dec(value, digits):
    return Decimal(float_repr(value, digits))


class PosConfig(models.Model):
    _inherit = "pos.config"

    def _api_menu(self):
        """A plain snapshot of what orders of this point of sale are priced and
        taxed with: sellable products, their taxes after the default fiscal
        position (as engine taxes), attribute extras, payment methods,
        currency and rounding. Cached per worker, rebuilt when any of it
        changes anywhere. The same query gives the open session's id, which
        is not cached (``open_session_id``)."""
        self.ensure_one()
        version, session_id = menu_version(self.env.cr, self.id)
        # In its own company: what is 86'd is per company.
        builder = self.sudo().with_company(self.company_id)._api_build_menu
        if version is None:
            menu = builder()
        else:
            key = (self.env.cr.dbname, self.id, self.env.lang)
            menu = _MENU_CACHE.get(key, version, builder)
        return dict(menu, open_session_id=session_id)

    def _api_build_menu(self):
        products = self.env["product.product"].search(
            [*self._get_available_product_domain(), ("type", "!=", "combo")]
        )
        fiscal_position = self.default_fiscal_position_id
        engine_taxes = {}
        tax_model = self.env["pos.order"]
        entries = {}
        for product in products:
            taxes = product.taxes_id.filtered(lambda tax: tax.company_id == self.company_id)
            mapped = fiscal_position.map_tax(taxes)
            entries[product.id] = {
                "name": product.display_name,
                "template_id": product.product_tmpl_id.id,
                "tax_ids": tuple(taxes.ids),
                "sold_out": product.product_tmpl_id.api_sold_out,
                "taxes": tax_model._api_engine_taxes(mapped, engine_taxes),
            }
        barcodes = {}
        for product in products.filtered("barcode").sorted("id"):
            barcodes.setdefault(product.barcode, []).append(product.id)
        attributes = self.env["product.template.attribute.value"].search(
            [("product_tmpl_id", "in", products.product_tmpl_id.ids)]
        )
        pricelist = self.pricelist_id
        currency = self.currency_id
        rounding = self.rounding_method
        timed_rules = pricelist.item_ids.filtered(lambda item: item.date_start or item.date_end)
        return {
            "config_id": self.id,
            "company_id": self.company_id.id,
            "pricelist_id": pricelist.id,
            "fiscal_position_id": fiscal_position.id,
            "flow": self.api_kitchen_flow,
            "products": entries,
            "barcodes": {barcode: tuple(ids) for barcode, ids in barcodes.items()},
            "attributes": {
                value.id: (value.product_tmpl_id.id, value.price_extra) for value in attributes
            },
            "payment_method_ids": frozenset(self.payment_method_ids.ids),
            "floor_ids": frozenset(self.floor_ids.ids),
            "currency_id": currency.id,
            "digits": currency.decimal_places,
            "currency": billing.Currency(rounding=_dec(currency.rounding, 6)),
            "rounding_method": self.company_id.tax_calculation_rounding_method,
            "cash_rounding": billing.CashRounding(
                _dec(rounding.rounding, 6), rounding.rounding_method
            )
            if self.cash_rounding and rounding
            else None,
            "engine_taxes": engine_taxes,
            # Rules bounded in time make a price depend on the clock: no cache.
            "prices": None if timed_rules else {},
        }
