"""Product search of the device API (``GET /products``): trigram matching in
PostgreSQL (the rules are in :mod:`pos_core.search`), within what the point
of sale sells: the domain of its menu (``pos.config._api_build_menu``)."""

import logging
from decimal import Decimal

import psycopg2

from odoo import models
from odoo.modules.db import FunctionStatus, has_trigram
from odoo.tools import SQL, float_repr
from odoo.tools.sql import create_index

from ..pos_core import search
from ..pos_core.exceptions import ServiceUnavailable

_logger = logging.getLogger(__name__)

# The trigram GIN indexes of the search. The name's is Odoo's own
# (product.template.name has index="trigram"), which Odoo creates once
# pg_trgm is there: see _ensure_trigram.
TRIGRAM_INDEXES = {
    "product_product_default_code_trgm_index": ("product_product", "default_code"),
    "product_product_barcode_trgm_index": ("product_product", "barcode"),
}
NAME_INDEX = "product_template__name_index"
# pg_trgm's "word similarity reaches the threshold" operator (indexable); an
# SQL term of its own, as the code of SQL terms with arguments is %-formatted.
_WORD_MATCH = SQL("<%%")


def _ensure_trigram(env):
    """pg_trgm in the database, and the registry told so. The extension is
    trusted since PostgreSQL 13, so the database owner may create it; Odoo
    only creates it with databases made by its database manager, and
    creates its fields' trigram indexes (the product name's) only when the
    registry, loaded before this ran, saw it."""
    registry = env.registry
    if not registry.has_trigram:
        try:
            with env.cr.savepoint(flush=False):
                env.cr.execute(SQL("CREATE EXTENSION IF NOT EXISTS pg_trgm"))
        except psycopg2.Error as exc:
            _logger.error(
                "Product search needs PostgreSQL's pg_trgm extension and it cannot be created "
                "(%s): have a superuser run CREATE EXTENSION pg_trgm in this database, then "
                "upgrade point_of_sale_api",
                exc,
            )
        registry.has_trigram = has_trigram(env.cr)
    return registry.has_trigram


class ProductTemplate(models.Model):
    _inherit = "product.template"

    def init(self):
        result = super().init()
        # Before Odoo checks this model's indexes (after every init of the
        # module): the name's trigram index is then created by Odoo.
        _ensure_trigram(self.env)
        return result


class ProductProduct(models.Model):
    _inherit = "product.product"

    def init(self):
        result = super().init()
        if _ensure_trigram(self.env):
            for index, (table, column) in TRIGRAM_INDEXES.items():
                create_index(self.env.cr, index, table, [f'"{column}" gin_trgm_ops'], "gin")
        return result


class PosConfig(models.Model):
    _inherit = "pos.config"

    def _api_search_products(self, query):
        """One page of the products this point of sale sells matching
        ``query`` (:class:`~pos_core.schemas.ProductSearchQuery`), as the
        ``ProductSearchOut`` payload, in the user's language."""
        self.ensure_one()
        config = self.with_context(lang=self.env.user.lang or self.env.lang)
        if query.barcode is not None:
            products = config._api_product_by_barcode(query.barcode, query.limit)
            return {"products": config._api_product_hits(products, {}), "next_cursor": None}
        if not self.env.registry.has_trigram:
            raise ServiceUnavailable(
                "Product search is not available: the database lacks pg_trgm.",
                code="search_unavailable",
            )
        after = search.decode_cursor(query.q, query.cursor) if query.cursor else None
        rows = config._api_search_rows(query.q, query.limit + 1, after)
        page = rows[: query.limit]
        scores = dict(page)
        products = self.env["product.product"].browse([product_id for product_id, _ in page])
        cursor = None
        if len(rows) > query.limit:
            last_id, last_score = page[-1]
            cursor = search.encode_cursor(query.q, last_score, last_id)
        return {"products": config._api_product_hits(products, scores), "next_cursor": cursor}

    def _api_search_products_query(self):
        """The menu's products as an ORM query (record rules included)."""
        return self.env["product.product"]._search(
            [*self._get_available_product_domain(), ("type", "!=", "combo")]
        )

    def _api_search_rows(self, text, limit, after=None):
        """(product id, score) of the best matches of ``text`` after the
        keyset ``after`` (score, id), best first."""
        Product = self.env["product.product"]
        query = self._api_search_products_query()
        if query.is_empty():
            return []
        alias = Product._table
        unaccent = (
            self.env.registry.unaccent
            if self.env.registry.has_unaccent == FunctionStatus.INDEXABLE
            else lambda sql: sql
        )
        q = unaccent(SQL("%s", text))
        template = SQL.identifier("t", "name")
        # The expression of Odoo's index: every translation of the name.
        indexed_name = unaccent(SQL("(jsonb_path_query_array(%s, '$.*')::text)", template))
        lang_name = unaccent(
            SQL(
                "COALESCE(%s)",
                SQL(", ").join(
                    SQL("%s->>%s", template, lang)
                    for lang in Product._fields["name"].get_translation_fallback_langs(self.env)
                ),
            )
        )
        prefix = unaccent(SQL("%s", search.like_prefix(text)))

        def code_branch(column):
            column = unaccent(SQL.identifier("product_product", column))
            return SQL(
                "SELECT id, similarity(%s, %s) FROM product_product WHERE %s ILIKE %s",
                q,
                column,
                column,
                prefix,
            )

        # Each field's matches with that field's score, through its trigram
        # index (q <% x: word similarity over the threshold; ILIKE: starts
        # with q); a product's score is its best field's.
        matched = SQL(
            """
            SELECT p.id, word_similarity(%s, %s)
                   * (%s + %s * least(char_length(%s), char_length(%s))::float
                               / greatest(char_length(%s), 1))
              FROM product_template t
              JOIN product_product p ON p.product_tmpl_id = t.id
             WHERE %s %s %s
            UNION ALL %s
            UNION ALL %s
            """,
            q,
            lang_name,
            1 - search.LENGTH_WEIGHT,
            search.LENGTH_WEIGHT,
            text,
            lang_name,
            lang_name,
            q,
            _WORD_MATCH,
            indexed_name,
            code_branch("default_code"),
            code_branch("barcode"),
        )
        # Within the menu: the domain's query, for each match (by primary key).
        query.add_where(SQL("%s = best.id", SQL.identifier(alias, "id")))
        keyset = SQL("TRUE")
        if after is not None:
            keyset = SQL(
                "(best.score < %s OR (best.score = %s AND best.id > %s))",
                after[0],
                after[0],
                after[1],
            )
        self.env.cr.execute(
            SQL(
                "SELECT set_config('pg_trgm.word_similarity_threshold', %s, true)",
                str(search.WORD_THRESHOLD),
            )
        )
        # The score as text: Odoo reads numeric columns as floats.
        rows = self.env.execute_query(
            SQL(
                """
                WITH matched (id, score) AS (%s),
                     best AS (
                         SELECT id, round(max(score)::numeric, %s) AS score
                           FROM matched GROUP BY id
                     )
                SELECT best.id, best.score::text FROM best
                 WHERE EXISTS (%s) AND %s
                 ORDER BY best.score DESC, best.id
                 LIMIT %s
                """,
                matched,
                search.SCORE_DIGITS,
                query.select(SQL("1")),
                keyset,
                limit,
            )
        )
        return [(product_id, Decimal(value)) for product_id, value in rows]

    def _api_product_by_barcode(self, barcode, limit):
        """A scan: from the menu's barcode index, cached under its version
        (no catalog query while the menu holds)."""
        product_ids = self._api_menu()["barcodes"].get(barcode, ())
        return self.env["product.product"].browse(product_ids[:limit])

    def _api_product_hits(self, products, scores):
        """The payload of ``products``; a product without a score is an
        exact barcode match (1)."""
        currency = self.currency_id
        pricelist = self.pricelist_id
        if pricelist.item_ids or pricelist.currency_id not in (currency, self.env["res.currency"]):
            prices = pricelist._get_products_price(products, 1.0, currency=currency)
        else:
            # No rule: the pricelist's price is the sales price (what Odoo's
            # rule computation returns then, at a fraction of its cost).
            prices = {product.id: product.lst_price for product in products}
        named = products.with_context(display_default_code=False)
        return [
            {
                "id": product.id,
                "name": product.display_name,
                "default_code": product.default_code or None,
                "barcode": product.barcode or None,
                "price": Decimal(
                    float_repr(currency.round(prices[product.id]), currency.decimal_places)
                ),
                "score": float(scores.get(product.id, 1)),
            }
            for product in named
        ]
