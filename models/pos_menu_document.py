"""What a device reads before it takes orders: the menu, the floor plan and
the point of sale's settings, as documents of the API.

The menu is built from the order path's own menu (``pos.config._api_menu``)
and priced by the same code that prices order lines: what a device is shown
is what it is charged. Its serialised bytes (and their gzip) are kept in the
tiered cache under a key holding the menu's version, so an entry never goes
stale: a new version is a new key (:mod:`.pos_api_cache_version`).
"""

import gzip
import hashlib
import json

from odoo import api, models
from odoo.tools import SQL, float_repr

from ..pos_core import cache as cache_engine
from .pos_api_cache_version import cache_key, cache_settings, menu_version, tiered_cache
from .pos_config_menu import VersionedLRU
from .pos_sync_log import event_at

# The sections of a menu that ``since`` answers item by item.
MENU_SECTIONS = ("categories", "products", "taxes", "combos")
GZIP_LEVEL = 6

# Per worker: floor plans (without their live state), under the menu's version.
_LAYOUTS = VersionedLRU(max_entries=64, max_age=cache_settings().cache_ttl_menu)


def dumps(document):
    """The one byte form of the documents: compact JSON, UTF-8."""
    return json.dumps(document, separators=(",", ":"), ensure_ascii=False).encode()


def etag_of(data):
    return hashlib.sha256(data).hexdigest()[:32]


class PosConfig(models.Model):
    _inherit = "pos.config"

    # ------------------------------------------------------------------
    # Menu
    # ------------------------------------------------------------------
    def _api_menu_etag(self):
        """The menu's ETag in this snapshot, or None when it cannot be cached
        (this transaction changed the catalog itself). The ETag is the hash
        of the menu's bytes, so that it names one content only; the menu's
        version (one query) finds it in the cache without building the menu."""
        self.ensure_one()
        version, _session_id = menu_version(self.env.cr, self.id)
        if version is None:
            return None
        cache = tiered_cache()
        pointer = self._api_menu_pointer(version)

        def build():
            etag, _data = self._api_menu_store(cache)
            return etag.encode()

        hit = cache.fetch(cache_engine.MENU, pointer, build, stable=True)
        return hit.value.decode()

    def _api_menu_pointer(self, version):
        """The cache key under which the ETag of the menu at ``version`` is
        kept, per language."""
        lang = self.env.lang or "en_US"
        return cache_key(self.env.cr.dbname, self.id, "v" + etag_of(repr((lang, version)).encode()))

    def _api_menu_build(self):
        """``(etag, bytes)`` of the menu built now: the ETag is the hash of
        the document, which then carries it as its version."""
        document = self._api_menu_document()
        etag = document["version"] = "m" + etag_of(dumps(document))
        return etag, dumps(document)

    def _api_menu_store(self, cache):
        """Build the menu and keep its bytes in ``cache`` under its ETag."""
        etag, data = self._api_menu_build()
        cache.fetch(
            cache_engine.MENU,
            cache_key(self.env.cr.dbname, self.id, etag),
            lambda: data,
            stable=True,
        )
        return etag, data

    def _api_menu_bytes(self, etag, compressed=False):
        """``(etag, bytes)`` of the menu: from the cache under ``etag``, else
        built now (under the ETag of what was built)."""
        self.ensure_one()
        if etag is None:
            etag, data = self._api_menu_build()
            return etag, gzip.compress(data, GZIP_LEVEL, mtime=0) if compressed else data
        cache = tiered_cache()
        data = cache.fetch(
            cache_engine.MENU,
            cache_key(self.env.cr.dbname, self.id, etag),
            lambda: None,
            stable=True,
        ).value
        if data is None:
            etag, data = self._api_menu_store(cache)
        if not compressed:
            return etag, data
        packed = cache.fetch(
            cache_engine.MENU,
            cache_key(self.env.cr.dbname, self.id, etag, "gzip"),
            lambda: gzip.compress(data, GZIP_LEVEL, mtime=0),
            stable=True,
        )
        return etag, packed.value

    def _api_menu_changes(self, since, etag):
        """The menu's changes from version ``since`` to ``etag``: per section,
        the items added or changed and the ids removed; None when ``since``
        is no longer known (the device reads the whole menu)."""
        self.ensure_one()
        cache = tiered_cache()
        old = cache.fetch(
            cache_engine.MENU,
            cache_key(self.env.cr.dbname, self.id, since),
            lambda: None,
            stable=True,
        ).value
        if old is None:
            return None
        etag, new = self._api_menu_bytes(etag)
        before, after = json.loads(old), json.loads(new)
        changes = {"version": etag, "since": since, "full": False}
        for section in MENU_SECTIONS:
            old_items = {item["id"]: item for item in before[section]}
            new_items = {item["id"]: item for item in after[section]}
            changes[section] = [
                item for item_id, item in new_items.items() if old_items.get(item_id) != item
            ]
            changes[f"deleted_{section}"] = sorted(set(old_items) - set(new_items))
        for name, value in after.items():
            if name not in MENU_SECTIONS and name not in changes:
                changes[name] = value
        return changes

    def _api_menu_document(self):
        """The menu as a device reads it: categories, products priced under
        the point of sale's pricelist (rules and attribute extras), their
        taxes after the default fiscal position, attributes, combos, and
        what is sold out."""
        self.ensure_one()
        menu = self._api_menu()
        config = self.sudo()
        order_model = self.env["pos.order"].sudo()
        digits = menu["digits"]
        product_ids = sorted(menu["products"])
        products = self.env["product.product"].sudo().browse(product_ids)
        prices = order_model._api_menu_unit_prices(menu, [(pid, 1.0, ()) for pid in product_ids])
        attributes = self._api_menu_attributes(products.product_tmpl_id, digits)
        categories = config._api_menu_categories()
        category_ids = {category["id"] for category in categories}
        taxes = {}
        product_items = []
        for product, price in zip(products, prices):
            entry = menu["products"][product.id]
            for tax in entry["taxes"]:
                taxes.setdefault(tax.id, tax)
            product_items.append(
                {
                    "id": product.id,
                    "template_id": product.product_tmpl_id.id,
                    "name": entry["name"],
                    "default_code": product.default_code or None,
                    "barcode": product.barcode or None,
                    "category_ids": [c for c in product.pos_categ_ids.ids if c in category_ids],
                    "price": float_repr(price, digits),
                    "tax_ids": [tax.id for tax in entry["taxes"]],
                    "attributes": attributes.get(product.product_tmpl_id.id, []),
                    "available": not entry["sold_out"],
                    "sequence": product.product_tmpl_id.sequence,
                }
            )
        return {
            "version": None,
            "config_id": self.id,
            "full": True,
            "currency": {
                "id": menu["currency_id"],
                "name": config.currency_id.name,
                "symbol": config.currency_id.symbol,
                "decimal_places": digits,
            },
            "pricelist_id": menu["pricelist_id"] or None,
            "fiscal_position_id": menu["fiscal_position_id"] or None,
            "categories": categories,
            "products": product_items,
            "taxes": [
                {
                    "id": tax.id,
                    "name": tax.name,
                    "amount_type": tax.amount_type,
                    "amount": str(tax.amount),
                    "price_include": tax.price_include,
                }
                for tax in sorted(taxes.values(), key=lambda tax: tax.id)
            ],
            "combos": config._api_menu_combos(digits),
        }

    def _api_menu_categories(self):
        """The point of sale's categories as its own UI loads them: the chosen
        ones with their subcategories, or all when none is chosen."""
        categories = self.sudo()._get_available_categories().sorted(lambda c: (c.sequence, c.id))
        return [
            {
                "id": category.id,
                "name": category.name,
                "parent_id": category.parent_id.id or None,
                "sequence": category.sequence,
            }
            for category in categories
        ]

    @api.model
    def _api_menu_attributes(self, templates, digits):
        """Each template's attributes (modifiers) and their values with the
        price extras orders add: {template_id: [attribute, ...]}."""
        result = {}
        for line in templates.attribute_line_ids.sorted(lambda line: (line.sequence, line.id)):
            values = line.product_template_value_ids.filtered("ptav_active")
            result.setdefault(line.product_tmpl_id.id, []).append(
                {
                    "id": line.attribute_id.id,
                    "name": line.attribute_id.name,
                    "display_type": line.attribute_id.display_type,
                    "create_variant": line.attribute_id.create_variant,
                    "values": [
                        {
                            "id": value.id,
                            "name": value.name,
                            "price_extra": float_repr(value.price_extra, digits),
                        }
                        for value in values
                    ],
                }
            )
        return result

    def _api_menu_combos(self, digits):
        """Combo products of the menu, with their choices. Shown to devices;
        orders of the API take no combo products."""
        combos = (
            self.env["product.product"]
            .sudo()
            .search([*self._get_available_product_domain(), ("type", "=", "combo")], order="id")
        )
        return [
            {
                "id": product.id,
                "name": product.display_name,
                "price": float_repr(product.lst_price, digits),
                "orderable": False,
                "choices": [
                    {
                        "id": combo.id,
                        "name": combo.name,
                        "items": [
                            {
                                "product_id": item.product_id.id,
                                "extra_price": float_repr(item.extra_price, digits),
                            }
                            for item in combo.combo_item_ids
                        ],
                    }
                    for combo in product.combo_ids
                ],
            }
            for product in combos
        ]

    # ------------------------------------------------------------------
    # Floors
    # ------------------------------------------------------------------
    def _api_floors_document(self):
        """The floor plan with each table's live state (as ``table.updated``
        sends it): the layout from a cache under the menu's version, the
        state from one query."""
        self.ensure_one()
        version, _session_id = menu_version(self.env.cr, self.id)
        build = self.sudo()._api_floor_layout
        layout = (
            build()
            if version is None
            else _LAYOUTS.get((self.env.cr.dbname, self.id, self.env.lang), version, build)
        )
        table_ids = [table["id"] for floor in layout for table in floor["tables"]]
        live = self.env["restaurant.table"].sudo()._api_live_state(table_ids)
        return {
            "config_id": self.id,
            "floors": [
                dict(
                    floor,
                    tables=[dict(table, **live[table["id"]]) for table in floor["tables"]],
                )
                for floor in layout
            ],
        }

    def _api_floor_layout(self):
        return [
            {
                "id": floor.id,
                "name": floor.name,
                "sequence": floor.sequence,
                "tables": [
                    {
                        "id": table.id,
                        "table_number": table.table_number,
                        "seats": table.seats,
                        "shape": table.shape,
                        "position": {
                            "h": table.position_h,
                            "v": table.position_v,
                            "width": table.width,
                            "height": table.height,
                        },
                    }
                    for table in floor.table_ids.filtered("active").sorted("id")
                ],
            }
            for floor in self.floor_ids.sorted(lambda floor: (floor.sequence, floor.id))
        ]

    # ------------------------------------------------------------------
    # Settings
    # ------------------------------------------------------------------
    def _api_config_document(self, device):
        """What a device needs to know of its point of sale to take orders:
        currency and rounding, payment methods, tip, discount and
        service-charge rules, the kitchen flow and the stations."""
        self.ensure_one()
        menu = self._api_menu()
        config = self.sudo()
        currency = config.currency_id
        rounding = config.rounding_method
        stations = self.env["pos.api.printer"].sudo().search([("config_ids", "in", self.ids)])
        return {
            "config_id": self.id,
            "name": config.name,
            "company": {"id": config.company_id.id, "name": config.company_id.name},
            "open_session_id": menu["open_session_id"] or None,
            "currency": {
                "id": currency.id,
                "name": currency.name,
                "symbol": currency.symbol,
                "decimal_places": currency.decimal_places,
                "rounding": float_repr(currency.rounding, 6),
            },
            "tax_rounding": menu["rounding_method"],
            "cash_rounding": {
                "rounding": float_repr(rounding.rounding, 6),
                "method": rounding.rounding_method,
                "only_cash": config.only_round_cash_method,
            }
            if menu["cash_rounding"]
            else None,
            "payment_methods": [
                {
                    "id": method.id,
                    "name": method.name,
                    "type": method.type,
                    "is_cash": method.is_cash_count,
                    "terminal": method.use_payment_terminal or None,
                }
                for method in config.payment_method_ids.sorted(lambda m: (m.sequence, m.id))
            ],
            "tips": {
                "enabled": config.iface_tipproduct,
                "product_id": config.tip_product_id.id or None,
                "limit_percent": config.api_tip_limit_percent,
            },
            "discounts": {
                "limit_percent": config._api_discount_limit(device.role),
                "global_discount": config.module_pos_discount,
            },
            "service_charge": {"taxable": True},
            "kitchen_flow": config.api_kitchen_flow,
            "restaurant": config.module_pos_restaurant,
            "floor_ids": sorted(menu["floor_ids"]),
            "stations": [station._api_station_dict() for station in stations],
        }


class RestaurantTable(models.Model):
    _inherit = "restaurant.table"

    @api.model
    def _api_live_state(self, table_ids):
        """Each table's live state, in one query: occupied, its open orders,
        guests, and since when (the first open order's date)."""
        order_model = self.env["pos.order"]
        order_model.flush_model(["table_id", "state", "customer_count", "date_order"])
        self.env.cr.execute(
            SQL(
                """
                SELECT table_id, array_agg(id ORDER BY id), COALESCE(sum(customer_count), 0),
                       min(date_order)
                  FROM pos_order
                 WHERE table_id = ANY(%s) AND state = 'draft'
                 GROUP BY table_id
                """,
                list(table_ids),
            )
        )
        live = {row[0]: row[1:] for row in self.env.cr.fetchall()}
        result = {}
        for table_id in table_ids:
            order_ids, guests, seated = live.get(table_id, ([], 0, None))
            result[table_id] = {
                "occupied": bool(order_ids),
                "order_ids": order_ids,
                "guests": guests,
                "seated_at": event_at(seated),
            }
        return result
