"""Version stamps of what the cache serves, kept in PostgreSQL by the writing
transaction, and the invalidation of the tiered cache after commit.

Why counters in the database: they are the truth the cache is checked
against, with or without Redis. A reader compares its cached entry with one
indexed read of a handful of rows (``pos_api_cache_version``: one row per
(namespace, scope); scope 0 is the whole database, a point of sale's id the
settings of that point of sale alone), whatever the size of the catalog.

The rules:

1. ORM writes (create, write, unlink) of the models a cached value is built
   from only *mark* their namespace in ``cr.precommit.data``; the marks are
   turned into one upsert at precommit (one statement per flush, one row lock
   per namespace and transaction, not per record). A write rolled back, with
   its transaction or with a savepoint (Odoo clears the precommit marks on
   both), bumps nothing.
2. A bump sets the row to a fresh ``nextval`` of one sequence: a number is
   never used twice, not even by a transaction that rolled back after taking
   it. A reader's version is the tuple of its rows, so a value cached under
   the version of a transaction that later rolled back can never match a
   committed state.
3. The bump commits with the data: a reader's snapshot sees both or neither,
   so a reader that compares the version read in its own snapshot with the
   version its entry was built under is exact under PostgreSQL's snapshots.
   A transaction reading while it has marks of its own bumps them first
   (:func:`bump_pending`): what it builds from its uncommitted changes is
   then keyed by numbers nobody else sees unless it commits.
4. After commit (``cr.postcommit``), the namespaces bumped are invalidated in
   the process's :class:`~pos_core.cache.TieredCache`, which drops them from
   Redis and, through its pub/sub, from the other workers' L1. A namespace
   bumped inside a savepoint rolled back afterwards is still invalidated:
   one entry reloaded for nothing, never a stale one.

Readers: the order path keeps its menu, a Python object, in a per-worker
:class:`~pos_core.cache.VersionedLRU` under this version (``pos.config._api_menu``).
A value put in the tiered cache (pre-serialised bytes, e.g. the menu
endpoint's) is keyed with :func:`cache_key` and must carry the version it
was built under, checked against these stamps when served, so that it stays
exact without Redis too: the stamps are the truth, Redis and its pub/sub
only save the other workers a rebuild and a check.

Two concurrent writers of the same namespace serialise on its row from their
first flush with marks (precommit, or a savepoint) to their commit; under
REPEATABLE READ the second one gets a serialisation failure, which Odoo's
request loop retries (``cr.flush()`` runs the precommit hooks inside it).
Writes of catalog data are rare next to orders, which write none of it.
"""

import functools
import logging
import os
import threading

from odoo import api, models
from odoo.tools import SQL, config

from ..pos_core import cache as cache_engine
from ..pos_core import settings as settings_engine
from .pos_api_device import api_settings

_logger = logging.getLogger(__name__)

MARKS_KEY = "point_of_sale_api.cache_version.marks"
BUMPED_KEY = "point_of_sale_api.cache_version.bumped"

# The namespaces the order path's menu (pos.config._api_build_menu, with the
# pricelist prices it fills) is built from; scope 0 of each, plus the
# settings of its own point of sale.
MENU_NAMESPACES = (
    cache_engine.PRODUCTS,
    cache_engine.CATEGORIES,
    cache_engine.TAXES,
    cache_engine.SETTINGS,
)

_CACHES = {}
_CACHES_LOCK = threading.Lock()


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
                settings = settings_engine.load_settings(
                    config.misc.get("point_of_sale_api", {}),
                    os.environ,
                    settings_engine.CacheSettings,
                )
                cache = _CACHES[url] = cache_engine.TieredCache(url, settings=settings)
    cache.start_listener()
    return cache


def cache_key(dbname, config_id):
    """The key of a point of sale's entries (one cache serves every
    database of the Redis server)."""
    return f"{dbname}:{config_id}"


def invalidate(cache, dbname, bumped):
    """Drop from ``cache`` what the (namespace, scope) pairs ``bumped``
    affect: a whole namespace for scope 0, the point of sale's keys
    otherwise; the menu, built from all of them, with either."""
    everywhere = {namespace for namespace, scope in bumped if not scope}
    if everywhere:
        everywhere.add(cache_engine.MENU)
    keys = {}
    for namespace, scope in bumped:
        if scope:
            for name in (namespace, cache_engine.MENU):
                keys.setdefault(name, set()).add(cache_key(dbname, scope))
    for namespace in sorted(everywhere):
        cache.invalidate(namespace)
    for namespace, namespace_keys in sorted(keys.items()):
        if namespace not in everywhere:
            cache.invalidate(namespace, namespace_keys)


def _invalidate_after_commit(dbname, bumped):
    try:
        invalidate(tiered_cache(), dbname, bumped)
    except Exception:
        # Committed; the readers' PostgreSQL version check still sees it.
        _logger.warning("Cache: invalidation after commit failed", exc_info=True)


def mark(cr, pairs):
    """Note (namespace, scope) pairs changed by this transaction; bumped at
    precommit."""
    marks = cr.precommit.data.get(MARKS_KEY)
    if marks is None:
        marks = cr.precommit.data[MARKS_KEY] = set()
        cr.precommit.add(functools.partial(bump_pending, cr))
    marks.update(pairs)


def bump_pending(cr):
    """Bump what this transaction marked and not bumped yet: one statement,
    rows in a fixed order (no deadlock between two writers)."""
    marks = cr.precommit.data.pop(MARKS_KEY, None)
    if not marks:
        return
    pairs = sorted(marks)
    cr.execute(
        SQL(
            """
            INSERT INTO pos_api_cache_version (namespace, scope, version)
            SELECT u.namespace, u.scope, nextval('pos_api_cache_version_seq')
              FROM unnest(%s::varchar[], %s::int4[]) WITH ORDINALITY AS u(namespace, scope, n)
             ORDER BY u.n
            ON CONFLICT (namespace, scope) DO UPDATE SET version = EXCLUDED.version
            """,
            [namespace for namespace, _scope in pairs],
            [scope for _namespace, scope in pairs],
        )
    )
    bumped = cr.postcommit.data.get(BUMPED_KEY)
    if bumped is None:
        bumped = cr.postcommit.data[BUMPED_KEY] = set()
        cr.postcommit.add(functools.partial(_invalidate_after_commit, cr.dbname, bumped))
    bumped.update(pairs)


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
    """Marks ``_pos_api_cache_namespace`` on every create, write and unlink."""

    _name = "pos.api.cache.mixin"
    _description = "POS API Cache Version Marks"

    _pos_api_cache_namespace = None

    def _pos_api_cache_scopes(self):
        return [0]

    def _pos_api_cache_mark(self, scopes):
        mark(self.env.cr, {(self._pos_api_cache_namespace, scope) for scope in scopes})

    @api.model_create_multi
    def create(self, vals_list):
        records = super().create(vals_list)
        if records:
            records._pos_api_cache_mark(records._pos_api_cache_scopes())
        return records

    def write(self, vals):
        result = super().write(vals)
        if self and vals:
            self._pos_api_cache_mark(self._pos_api_cache_scopes())
        return result

    def unlink(self):
        scopes = self._pos_api_cache_scopes() if self else []
        result = super().unlink()
        if scopes:
            self._pos_api_cache_mark(scopes)
        return result


# What pos.config._api_build_menu and the pricelist prices it caches read,
# model by model (product combos are not part of it: the menu leaves combo
# products out). Display names read attributes and their values; pricelist
# rules read product categories and, across currencies, the rates.
class ProductTemplate(models.Model):
    _name = "product.template"
    _inherit = ["product.template", "pos.api.cache.mixin"]
    _pos_api_cache_namespace = cache_engine.PRODUCTS


class ProductProduct(models.Model):
    _name = "product.product"
    _inherit = ["product.product", "pos.api.cache.mixin"]
    _pos_api_cache_namespace = cache_engine.PRODUCTS


class ProductTemplateAttributeValue(models.Model):
    _name = "product.template.attribute.value"
    _inherit = ["product.template.attribute.value", "pos.api.cache.mixin"]
    _pos_api_cache_namespace = cache_engine.PRODUCTS


class ProductAttribute(models.Model):
    _name = "product.attribute"
    _inherit = ["product.attribute", "pos.api.cache.mixin"]
    _pos_api_cache_namespace = cache_engine.PRODUCTS


class ProductAttributeValue(models.Model):
    _name = "product.attribute.value"
    _inherit = ["product.attribute.value", "pos.api.cache.mixin"]
    _pos_api_cache_namespace = cache_engine.PRODUCTS


class ProductPricelist(models.Model):
    _name = "product.pricelist"
    _inherit = ["product.pricelist", "pos.api.cache.mixin"]
    _pos_api_cache_namespace = cache_engine.PRODUCTS


class ProductPricelistItem(models.Model):
    _name = "product.pricelist.item"
    _inherit = ["product.pricelist.item", "pos.api.cache.mixin"]
    _pos_api_cache_namespace = cache_engine.PRODUCTS


class ProductCategory(models.Model):
    _name = "product.category"
    _inherit = ["product.category", "pos.api.cache.mixin"]
    _pos_api_cache_namespace = cache_engine.PRODUCTS


class PosCategory(models.Model):
    _name = "pos.category"
    _inherit = ["pos.category", "pos.api.cache.mixin"]
    _pos_api_cache_namespace = cache_engine.CATEGORIES


class AccountTax(models.Model):
    _name = "account.tax"
    _inherit = ["account.tax", "pos.api.cache.mixin"]
    _pos_api_cache_namespace = cache_engine.TAXES


class AccountFiscalPosition(models.Model):
    _name = "account.fiscal.position"
    _inherit = ["account.fiscal.position", "pos.api.cache.mixin"]
    _pos_api_cache_namespace = cache_engine.TAXES


class AccountFiscalPositionTax(models.Model):
    _name = "account.fiscal.position.tax"
    _inherit = ["account.fiscal.position.tax", "pos.api.cache.mixin"]
    _pos_api_cache_namespace = cache_engine.TAXES


class ResCompany(models.Model):
    _name = "res.company"
    _inherit = ["res.company", "pos.api.cache.mixin"]
    _pos_api_cache_namespace = cache_engine.SETTINGS


class ResCurrency(models.Model):
    _name = "res.currency"
    _inherit = ["res.currency", "pos.api.cache.mixin"]
    _pos_api_cache_namespace = cache_engine.SETTINGS


class ResCurrencyRate(models.Model):
    _name = "res.currency.rate"
    _inherit = ["res.currency.rate", "pos.api.cache.mixin"]
    _pos_api_cache_namespace = cache_engine.SETTINGS


class AccountCashRounding(models.Model):
    _name = "account.cash.rounding"
    _inherit = ["account.cash.rounding", "pos.api.cache.mixin"]
    _pos_api_cache_namespace = cache_engine.SETTINGS


class PosPaymentMethod(models.Model):
    _name = "pos.payment.method"
    _inherit = ["pos.payment.method", "pos.api.cache.mixin"]
    _pos_api_cache_namespace = cache_engine.SETTINGS


class RestaurantFloor(models.Model):
    _name = "restaurant.floor"
    _inherit = ["restaurant.floor", "pos.api.cache.mixin"]
    _pos_api_cache_namespace = cache_engine.SETTINGS


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
