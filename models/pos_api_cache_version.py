"""Versions of what the cache serves, kept in PostgreSQL, bumped after the
writing transaction commits, and the process's tiered cache.

``pos_api_cache_version`` has one row per (namespace, scope): scope 0 is the
whole database, a point of sale's id that point of sale's own settings. A
reader's version is one indexed read of a handful of those rows, whatever the
size of the catalog (:func:`menu_version`).

The rules:

1. ORM writes (create, write, unlink) of the models a cached value is built
   from *mark* their (namespace, scope) in ``cr.postcommit.data``; a write
   rolled back with its transaction marks nothing (Odoo drops the post-commit
   data on rollback). Writes that only touch fields no cached value reads
   (stock valuation's ``standard_price``, a card terminal's last response)
   mark nothing.
2. After commit, the marks become one upsert of a fresh ``nextval`` per row,
   in a transaction of its own (:mod:`.autocommit_connection`: autocommit,
   READ COMMITTED). Its row locks last that one statement: writers of the
   catalog never hold them across their own transaction, and order
   transactions, which read the rows, never write them.
3. A reader reads the rows in its own snapshot, as it reads the data: if the
   bump is visible, so is the commit before it. A reader whose snapshot saw
   the commit but not yet its bump builds the new data under the old
   version, which only ends sooner. The one stale window is between a
   writer's commit and its bump, both before the writer's request answers;
   should the process die in between, the namespace TTL bounds the
   staleness.
4. A transaction with marks of its own reads through no cache: what it
   would build holds changes nobody else sees unless it commits
   (:func:`has_pending_marks`).
5. After the bump, the tiered cache drops the namespaces' entries, in Redis
   and, through its pub/sub, in the other workers' L1. Values built under a
   version carry it in their keys instead (the menu's): they never go stale
   and are left to the LRU and the TTL.

On a test cursor, which never commits and drops post-commit hooks, or with
``pos_sync_log_inline`` in the context (tests on their own transaction), the
bump runs in the transaction at once.
"""

import functools
import logging
import os
import threading

import psycopg2

from odoo import api, models
from odoo.tools import SQL, config

from ..pos_core import cache as cache_engine
from ..pos_core import settings as settings_engine
from . import autocommit_connection
from .pos_api_device import api_settings
from .pos_sync_log import _inline

_logger = logging.getLogger(__name__)

MARKS_KEY = "point_of_sale_api.cache_version.marks"

# The namespaces the menus are built from (scope 0 of each), plus the
# settings of the point of sale itself.
MENU_NAMESPACES = (
    cache_engine.PRODUCTS,
    cache_engine.CATEGORIES,
    cache_engine.TAXES,
    cache_engine.SETTINGS,
)

_BUMP_SQL = """
    INSERT INTO pos_api_cache_version (namespace, scope, version)
    SELECT u.namespace, u.scope, nextval('pos_api_cache_version_seq')
      FROM unnest(%s::varchar[], %s::int4[]) AS u(namespace, scope)
     ORDER BY u.namespace, u.scope
    ON CONFLICT (namespace, scope) DO UPDATE SET version = EXCLUDED.version
"""

_CACHES = {}
_CACHES_LOCK = threading.Lock()
_TABLE_READY = set()  # (pid, dbname) where the version table exists


def cache_settings():
    """The ``cache_*`` settings of odoo.conf's ``[point_of_sale_api]`` section
    and the environment."""
    return settings_engine.load_settings(
        config.misc.get("point_of_sale_api", {}), os.environ, settings_engine.CacheSettings
    )


def tiered_cache():
    """This process's tiered cache for the configured Redis URL (L1 alone
    without one), created at first use with the ``cache_*`` settings of the
    ``[point_of_sale_api]`` section, its invalidation listener started."""
    url = api_settings().redis_url
    cache = _CACHES.get(url)
    if cache is None:
        with _CACHES_LOCK:
            cache = _CACHES.get(url)
            if cache is None:
                cache = _CACHES[url] = cache_engine.TieredCache(url, settings=cache_settings())
    if url:
        cache.start_listener()
    return cache


def cache_key(dbname, config_id, *parts):
    """The key of a point of sale's entries (one cache serves every
    database of the Redis server)."""
    return ":".join(str(part) for part in (dbname, config_id, *parts))


def invalidate(cache, dbname, pairs):
    """Drop from ``cache`` what the (namespace, scope) pairs affect: a whole
    namespace for scope 0, the point of sale's keys otherwise. The menu's
    entries are keyed by its version and never go stale: they stay, for
    ``since`` to answer from the version a device holds."""
    everywhere = {namespace for namespace, scope in pairs if not scope}
    for namespace in sorted(everywhere):
        cache.invalidate(namespace)
    scoped = {}
    for namespace, scope in pairs:
        if scope and namespace not in everywhere:
            scoped.setdefault(namespace, set()).add(cache_key(dbname, scope))
    for namespace, keys in sorted(scoped.items()):
        cache.invalidate(namespace, keys)


def _bump(cr_execute, pairs):
    pairs = sorted(pairs)
    cr_execute(_BUMP_SQL, ([namespace for namespace, _ in pairs], [scope for _, scope in pairs]))


def _bump_after_commit(dbname, pairs):
    """After commit: bump the versions, then drop what the other tiers hold.
    A dropped dedicated connection is retried once on a fresh one; what still
    fails leaves readers on the old version until the namespace TTL ends, and
    never escapes into the committed request."""
    for attempt in (1, 2):
        try:
            _bump(
                lambda query, params: autocommit_connection.execute(
                    dbname, query, params, fetch=False
                ),
                pairs,
            )
            break
        except (psycopg2.OperationalError, psycopg2.InterfaceError):
            if attempt == 2:
                _logger.warning("Cache: version bump after commit failed", exc_info=True)
        except Exception:
            # The module is not upgraded yet, the database went away, or
            # Odoo's pool is exhausted.
            _logger.warning("Cache: version bump after commit failed", exc_info=True)
            break
    try:
        invalidate(tiered_cache(), dbname, pairs)
    except Exception:
        _logger.warning("Cache: invalidation after commit failed", exc_info=True)


def mark(env, pairs):
    """Note (namespace, scope) pairs this transaction changes: bumped after
    it commits (at once on a test cursor, or when the sync log works inline)."""
    cr = env.cr
    if _inline(env):
        if table_ready(cr):
            _bump(cr.execute, pairs)
            invalidate(tiered_cache(), cr.dbname, pairs)
        return
    marks = cr.postcommit.data.get(MARKS_KEY)
    if marks is None:
        marks = cr.postcommit.data[MARKS_KEY] = set()
        cr.postcommit.add(functools.partial(_bump_after_commit, cr.dbname, marks))
    marks.update(pairs)


def has_pending_marks(cr):
    """Whether this transaction changed what the caches are built from."""
    return bool(cr.postcommit.data.get(MARKS_KEY))


def table_ready(cr):
    """Whether the version table exists (the module's code may run before
    its upgrade); remembered once it does."""
    key = (os.getpid(), cr.dbname)
    if key in _TABLE_READY:
        return True
    cr.execute("SELECT to_regclass('pos_api_cache_version') IS NOT NULL")
    if cr.fetchone()[0]:
        _TABLE_READY.add(key)
        return True
    return False


def menu_version(cr, config_id):
    """``(version, open_session_id)`` of a point of sale's menu in this
    transaction's snapshot, in one query: the rows of its namespaces, the
    pricelist rules bounded in time that hold now (a price changes when one
    starts or ends), and the date of the latest currency rate in force (a
    rate entered ahead of its date takes effect then, without a write).
    ``version`` is None when it cannot be cached: the table is missing, or
    this transaction has marks of its own."""
    pairs = [(namespace, 0) for namespace in MENU_NAMESPACES]
    pairs.append((cache_engine.SETTINGS, config_id))
    ready = table_ready(cr)
    cr.execute(
        SQL(
            """
            SELECT %(versions)s,
                   (SELECT id FROM pos_session
                     WHERE config_id = %(config_id)s AND state = 'opened'
                     ORDER BY id DESC LIMIT 1),
                   (SELECT array_agg(item.id ORDER BY item.id)
                      FROM product_pricelist_item item
                      JOIN pos_config pos ON pos.pricelist_id = item.pricelist_id
                     WHERE pos.id = %(config_id)s
                       AND (item.date_start IS NOT NULL OR item.date_end IS NOT NULL)
                       AND (item.date_start IS NULL OR item.date_start <= now() AT TIME ZONE 'UTC')
                       AND (item.date_end IS NULL OR item.date_end >= now() AT TIME ZONE 'UTC')),
                   (SELECT max(name) FROM res_currency_rate
                     WHERE name <= (now() AT TIME ZONE 'UTC')::date)
            """,
            versions=SQL(
                """(SELECT array_agg(namespace || '.' || scope || '=' || version
                                     ORDER BY namespace, scope)
                      FROM pos_api_cache_version
                     WHERE (namespace, scope) IN %s)""",
                tuple(pairs),
            )
            if ready
            else SQL("NULL"),
            config_id=config_id,
        )
    )
    versions, session_id, timed_rules, rate_date = cr.fetchone()
    if not ready or has_pending_marks(cr):
        return None, session_id
    return (tuple(versions or ()), tuple(timed_rules or ()), str(rate_date)), session_id


def init_versions(cr):
    cr.execute(
        SQL(
            """
            CREATE SEQUENCE IF NOT EXISTS pos_api_cache_version_seq;
            CREATE TABLE IF NOT EXISTS pos_api_cache_version (
                namespace varchar NOT NULL,
                scope integer NOT NULL,
                version bigint NOT NULL,
                PRIMARY KEY (namespace, scope)
            );
            INSERT INTO pos_api_cache_version (namespace, scope, version)
            SELECT n, 0, nextval('pos_api_cache_version_seq') FROM unnest(%s::varchar[]) AS n
            ON CONFLICT DO NOTHING;
            """,
            list(MENU_NAMESPACES),
        )
    )


class PosApiCacheMixin(models.AbstractModel):
    """Marks ``_pos_api_cache_namespace`` on create, unlink, and writes of
    the fields cached values read: ``_pos_api_cache_fields`` when set (what
    the cache reads of a model written often by other flows), else all but
    ``_pos_api_cache_ignored``."""

    _name = "pos.api.cache.mixin"
    _description = "POS API Cache Version Marks"

    _pos_api_cache_namespace = None
    _pos_api_cache_fields = None
    _pos_api_cache_ignored = frozenset(
        {"message_main_attachment_id", "message_follower_ids", "message_ids", "activity_ids"}
    )

    def _pos_api_cache_scopes(self):
        return [0]

    def _pos_api_cache_mark(self, scopes):
        mark(self.env, {(self._pos_api_cache_namespace, scope) for scope in scopes})

    def _pos_api_cache_reads(self, vals):
        if self._pos_api_cache_fields is not None:
            return not self._pos_api_cache_fields.isdisjoint(vals)
        return not self._pos_api_cache_ignored.issuperset(vals)

    @api.model_create_multi
    def create(self, vals_list):
        records = super().create(vals_list)
        if records:
            records._pos_api_cache_mark(records._pos_api_cache_scopes())
        return records

    def write(self, vals):
        result = super().write(vals)
        if self and vals and self._pos_api_cache_reads(vals):
            self._pos_api_cache_mark(self._pos_api_cache_scopes())
        return result

    def _update_field_translations(self, field_name, translations, digest=None, source_lang=None):
        # A translation written apart from write() (the backend's language
        # dialog) changes what a device reads in that language.
        result = super()._update_field_translations(
            field_name, translations, digest=digest, source_lang=source_lang
        )
        if self and self._pos_api_cache_reads({field_name}):
            self._pos_api_cache_mark(self._pos_api_cache_scopes())
        return result

    def unlink(self):
        scopes = self._pos_api_cache_scopes() if self else []
        result = super().unlink()
        if scopes:
            self._pos_api_cache_mark(scopes)
        return result


_PRODUCT_IGNORED = PosApiCacheMixin._pos_api_cache_ignored | {"standard_price"}


def _product_cache_reads(self, vals):
    """A product's cost (written by stock valuation all day) counts only
    while a pricelist rule prices from it."""
    if PosApiCacheMixin._pos_api_cache_reads(self, vals):
        return True
    return "standard_price" in vals and bool(
        self.env["product.pricelist.item"]
        .sudo()
        .search_count([("base", "=", "standard_price")], limit=1)
    )


def _watch(model_name, namespace, **attributes):
    """The class that marks ``namespace`` on writes of ``model_name``."""
    return type(
        model_name.title().replace(".", ""),
        (models.Model,),
        {
            "_name": model_name,
            "_inherit": [model_name, "pos.api.cache.mixin"],
            "_pos_api_cache_namespace": namespace,
            "__module__": __name__,
            **attributes,
        },
    )


# What the menus read, model by model. Display names read attributes and
# their values; pricelist rules read product categories and, across
# currencies, the rates.
ProductTemplate = _watch(
    "product.template",
    cache_engine.PRODUCTS,
    _pos_api_cache_ignored=_PRODUCT_IGNORED,
    _pos_api_cache_reads=_product_cache_reads,
)
ProductProduct = _watch(
    "product.product",
    cache_engine.PRODUCTS,
    _pos_api_cache_ignored=_PRODUCT_IGNORED,
    _pos_api_cache_reads=_product_cache_reads,
)
ProductTemplateAttributeLine = _watch("product.template.attribute.line", cache_engine.PRODUCTS)
ProductTemplateAttributeValue = _watch("product.template.attribute.value", cache_engine.PRODUCTS)
ProductAttribute = _watch("product.attribute", cache_engine.PRODUCTS)
ProductAttributeValue = _watch("product.attribute.value", cache_engine.PRODUCTS)
ProductCombo = _watch("product.combo", cache_engine.PRODUCTS)
ProductComboItem = _watch("product.combo.item", cache_engine.PRODUCTS)
ProductPricelist = _watch("product.pricelist", cache_engine.PRODUCTS)
ProductPricelistItem = _watch("product.pricelist.item", cache_engine.PRODUCTS)
ProductCategory = _watch("product.category", cache_engine.PRODUCTS)
PosCategory = _watch("pos.category", cache_engine.CATEGORIES)
AccountTax = _watch("account.tax", cache_engine.TAXES)
AccountTaxRepartitionLine = _watch("account.tax.repartition.line", cache_engine.TAXES)
AccountFiscalPosition = _watch("account.fiscal.position", cache_engine.TAXES)
AccountFiscalPositionTax = _watch("account.fiscal.position.tax", cache_engine.TAXES)
ResCurrency = _watch("res.currency", cache_engine.SETTINGS)
ResCurrencyRate = _watch("res.currency.rate", cache_engine.SETTINGS)
AccountCashRounding = _watch("account.cash.rounding", cache_engine.SETTINGS)
RestaurantFloor = _watch("restaurant.floor", cache_engine.SETTINGS)
RestaurantTable = _watch("restaurant.table", cache_engine.SETTINGS)
# Companies and payment methods are written by other flows (onboarding,
# accounting, card terminals' last responses): only the fields read count.
ResCompany = _watch(
    "res.company",
    cache_engine.SETTINGS,
    _pos_api_cache_fields=frozenset(
        {
            "name",
            "currency_id",
            "tax_calculation_rounding_method",
            "country_id",
            "active",
            # taxes' price_include is computed from it
            "account_price_include",
        }
    ),
)
PosPaymentMethod = _watch(
    "pos.payment.method",
    cache_engine.SETTINGS,
    _pos_api_cache_fields=frozenset(
        {
            "name",
            "sequence",
            "is_cash_count",
            "journal_id",
            "split_transactions",
            "config_ids",
            "company_id",
            "use_payment_terminal",
            "active",
            "type",
            "payment_method_type",
        }
    ),
)


class PosConfig(models.Model):
    """A point of sale's own settings: scoped to it."""

    _name = "pos.config"
    _inherit = ["pos.config", "pos.api.cache.mixin"]
    _pos_api_cache_namespace = cache_engine.SETTINGS

    def init(self):
        result = super().init()
        init_versions(self.env.cr)
        return result

    def _pos_api_cache_scopes(self):
        return self.ids
