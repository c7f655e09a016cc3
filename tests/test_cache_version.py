"""The menu's version stamps (models/pos_api_cache_version.py) on the test
transaction: one query per check whatever the catalog's size, every model
the menu is built from bumps it, a write rolled back or to another model
does not, and after commit the tiered cache drops what was bumped, in every
process (real Redis).

The test cursor never commits: ``cr.flush()`` runs the precommit hooks (the
bump), and the post-commit hook registered by the bump is called by hand;
the last case commits and rolls back real transactions instead."""

import contextlib
import functools
import time
import uuid
from unittest import SkipTest, mock

from odoo import Command, api
from odoo.tests import TransactionCase, tagged

from ..models import pos_api_cache_version as cache_version
from ..models.pos_api_device import api_settings
from ..pos_core.cache import L1, L3, MENU, PRODUCTS, SETTINGS, TieredCache
from .common import DEMO_CONFIG_XMLID, PosApiCommon, PosApiFactories


class Rollback(Exception):
    pass


class CacheVersionCase(PosApiCommon):
    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.session = cls._open_session()

    def setUp(self):
        super().setUp()
        self.product = self._pos_products(1)
        self.template = self.product.product_tmpl_id
        self.env.cr.flush()
        self.env.cr.postcommit.data.pop(cache_version.BUMPED_KEY, None)

    def _version(self):
        return self.config._api_menu_state()[0]

    def _assert_rebuilt(self, change, message, rebuilt=True):
        """After ``change()`` and a flush (what a commit runs first), the
        version and the menu object are new (``rebuilt``) or the same."""
        version, menu = self._version(), self.config._api_menu()
        change()
        self.env.cr.flush()
        self.assertEqual(self._version() != version, rebuilt, message)
        self.assertEqual(self.config._api_menu()["products"] is not menu["products"], rebuilt)

    def _assert_kept(self, change, message):
        self._assert_rebuilt(change, message, rebuilt=False)

    def _new_pos_products(self, count):
        category = self.config.iface_available_categ_ids[:1]
        return self.env["product.template"].create(
            [
                {
                    "name": f"Cache test dish {n}",
                    "list_price": 5.0 + n,
                    "available_in_pos": True,
                    "pos_categ_ids": [Command.set(category.ids)],
                }
                for n in range(count)
            ]
        )

    def _assert_reads_no_catalog(self):
        """The statement just run (the version check) reads the stamps and
        the sessions, no catalog table."""
        self.env.cr.execute(b"EXPLAIN (FORMAT JSON) " + self.env.cr._obj.query)
        tables = set()

        def walk(node):
            tables.update(filter(None, [node.get("Relation Name")]))
            for child in node.get("Plans", ()):
                walk(child)

        walk(self.env.cr.fetchone()[0][0]["Plan"])
        self.assertEqual(tables, {"pos_api_cache_version", "pos_session"})

    def test_version_check_is_one_query_whatever_the_catalog(self):
        self.config._api_menu()
        with self.assertQueryCount(1):
            menu = self.config._api_menu()
        self._assert_reads_no_catalog()
        self.assertEqual(menu["open_session_id"], self.session.id, "the open session, uncached")
        templates = self._new_pos_products(300)
        self.env.cr.flush()
        rebuilt = self.config._api_menu()
        self.assertLessEqual(set(templates.product_variant_ids.ids), set(rebuilt["products"]))
        with self.assertQueryCount(1):
            again = self.config._api_menu()
        self._assert_reads_no_catalog()
        self.assertIs(again["products"], rebuilt["products"])
        self.assertEqual(again["open_session_id"], self.session.id)

    def test_open_session_is_not_cached(self):
        self.config._api_menu()
        self.env.cr.execute(
            "UPDATE pos_session SET state = 'closing_control' WHERE id = %s", [self.session.id]
        )
        self.assertFalse(self.config._api_menu()["open_session_id"])

    def test_every_dependency_bumps_the_version(self):
        company, currency = self.config.company_id, self.config.currency_id
        tax = self.template.taxes_id[:1] or self.env["account.tax"].search(
            [("company_id", "=", company.id)], limit=1
        )
        ptav = self.env["product.template.attribute.value"].search([], limit=1)
        pricelist = self.env["product.pricelist"].create({"name": "Cache test"})
        position = self.env["account.fiscal.position"].create({"name": "Cache test"})
        other_currency = self.env["res.currency"].search(
            [("id", "!=", currency.id), ("active", "in", (True, False))], limit=1
        )
        changes = {
            "product.template": lambda: self.template.write({"name": "Renamed dish"}),
            "product.product": lambda: self.product.write({"default_code": "CACHE-1"}),
            "product.template.attribute.value": lambda: ptav.write(
                {"price_extra": ptav.price_extra + 1}
            ),
            "product.attribute": lambda: ptav.attribute_id.write({"name": "Renamed"}),
            "product.attribute.value": lambda: ptav.product_attribute_value_id.write(
                {"name": "Renamed"}
            ),
            "product.pricelist": lambda: pricelist.write({"name": "Renamed"}),
            "product.pricelist.item": lambda: self.env["product.pricelist.item"].create(
                {"pricelist_id": pricelist.id, "compute_price": "fixed", "fixed_price": 1.0}
            ),
            "product.category": lambda: self.template.categ_id.write({"name": "Renamed"}),
            "pos.category": lambda: self.config.iface_available_categ_ids[:1].write(
                {"name": "Renamed"}
            ),
            "account.tax": lambda: tax.write({"name": "Renamed tax"}),
            "account.fiscal.position": lambda: position.write({"name": "Renamed"}),
            "account.fiscal.position.tax": lambda: self.env["account.fiscal.position.tax"].create(
                {"position_id": position.id, "tax_src_id": tax.id}
            ),
            "res.company": lambda: company.write(
                {"tax_calculation_rounding_method": "round_globally"}
            ),
            "res.currency": lambda: currency.write({"symbol": currency.symbol}),
            "res.currency.rate": lambda: self.env["res.currency.rate"].create(
                {"currency_id": other_currency.id, "rate": 2.0, "name": "2001-02-03"}
            ),
            "account.cash.rounding": lambda: self.env["account.cash.rounding"].create(
                {"name": "Cache test", "rounding": 0.05}
            ),
            "pos.payment.method": lambda: self.env["pos.payment.method"].create(
                {"name": "Cache test"}
            ),
            "restaurant.floor": lambda: self.config.floor_ids[:1].write({"name": "Renamed"}),
            "pos.config": lambda: self.config.write({"api_kitchen_flow": "dine_in"}),
        }
        self.assertTrue(ptav and tax and other_currency, "the demo data has what this test needs")
        self.env.cr.flush()
        for model, change in changes.items():
            with self.subTest(model=model):
                self._assert_rebuilt(change, f"a write to {model}")

    def test_other_point_of_sale_settings_keep_this_menu(self):
        other = self.env["pos.config"].search([("id", "!=", self.config.id)], limit=1)
        self._assert_kept(
            lambda: other.write({"api_kitchen_flow": "dine_in"}), "another config's settings"
        )
        self._assert_rebuilt(
            lambda: self.config.write({"api_kitchen_flow": "dine_in"}), "this config's settings"
        )

    def test_price_change_is_seen_by_the_next_menu(self):
        orders = self.env["pos.order"]
        menu = self.config._api_menu()
        (before,) = orders._api_menu_unit_prices(menu, [(self.product.id, 1.0, [])])
        self.template.write({"list_price": self.template.list_price + 10})
        self.env.cr.flush()
        (after,) = orders._api_menu_unit_prices(
            self.config._api_menu(), [(self.product.id, 1.0, [])]
        )
        self.assertAlmostEqual(after, before + 10)

    def test_own_uncommitted_change_is_keyed_apart(self):
        """A menu read by the writing transaction before its commit is built
        from its change, under stamps of its own: once they are rolled back
        the menu of the committed state comes back."""
        version = self._version()
        with contextlib.suppress(Rollback), self.env.cr.savepoint():
            self.template.write({"name": "Uncommitted name"})
            menu = self.config._api_menu()
            self.assertEqual(menu["products"][self.product.id]["name"], "Uncommitted name")
            self.assertNotEqual(self._version(), version)
            raise Rollback
        self.assertEqual(self._version(), version)
        self.assertNotEqual(
            self.config._api_menu()["products"][self.product.id]["name"], "Uncommitted name"
        )

    def test_rolled_back_write_changes_nothing(self):
        def rolled_back(flush):
            with contextlib.suppress(Rollback), self.env.cr.savepoint():
                self.template.write({"list_price": 999.0})
                self.env["account.tax"].search([], limit=1).write({"name": "Rolled back"})
                if flush:  # bumped inside the savepoint, then rolled back with it
                    self.env.cr.flush()
                raise Rollback

        self._assert_kept(functools.partial(rolled_back, False), "rolled back before precommit")
        self.assertFalse(self.env.cr.postcommit.data.get(cache_version.BUMPED_KEY))
        self._assert_kept(functools.partial(rolled_back, True), "rolled back after precommit")

    def test_unrelated_write_keeps_the_menu(self):
        def unrelated():
            partner = self.env["res.partner"].create({"name": "Cache test guest"})
            partner.write({"phone": "+32 2 555 01 01"})
            table = self.env.ref("point_of_sale_api.demo_table_dining_room_05")
            table.write({"seats": table.seats + 1})

        self._assert_kept(unrelated, "partners and tables are not in the menu (floors are)")
        self.assertFalse(self.env.cr.postcommit.data.get(cache_version.BUMPED_KEY))

    def test_one_bump_per_namespace_and_flush(self):
        self._new_pos_products(5).write({"list_price": 3.0})
        self.env.flush_all()
        with self.assertQueryCount(1, flush=False):
            cache_version.bump_pending(self.env.cr)
        self.assertEqual(self.env.cr.postcommit.data[cache_version.BUMPED_KEY], {("products", 0)})


class CacheInvalidationCase(PosApiCommon):
    """What the post-commit hook does to the tiered cache of this process and
    of another one (two TieredCache instances on the same Redis prefix)."""

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        url = api_settings().redis_url
        if not url:
            raise SkipTest("no redis_url in [point_of_sale_api]")
        prefix = f"pos_api:test:{uuid.uuid4().hex}:"
        cls.writer = TieredCache(url, prefix=prefix)
        cls.reader = TieredCache(url, prefix=prefix)
        cls.reader.start_listener(poll_timeout=0.05, ping_interval=0.2)
        cls.addClassCleanup(cls.writer.close)
        cls.addClassCleanup(cls.reader.close)
        deadline = time.monotonic() + 5
        while not cls.reader.listener.connected and time.monotonic() < deadline:
            time.sleep(0.02)
        cls.product = cls.env["product.product"].search(
            [("available_in_pos", "=", True), ("type", "!=", "combo")], limit=1
        )
        cls.dbname = cls.env.cr.dbname

    def setUp(self):
        super().setUp()
        self.env.cr.flush()
        self.env.cr.postcommit.data.pop(cache_version.BUMPED_KEY, None)
        self.loads = []
        self.other_key = cache_version.cache_key(self.dbname, 10**6)
        self.key = cache_version.cache_key(self.dbname, self.config.id)
        for namespace in (MENU, PRODUCTS, SETTINGS):
            for key in (self.key, self.other_key):
                self._read(namespace, key)
        self.loads.clear()

    def _read(self, namespace, key, cache=None):
        def load():
            self.loads.append((namespace, key))
            return b"value"

        return (cache or self.reader).fetch(namespace, key, load, validate=False).tier

    def _commit(self):
        """The precommit hooks, then the post-commit hook the bump registered
        (on this process's cache: the writer)."""
        self.env.cr.flush()
        hooks = [
            func
            for func in self.env.cr.postcommit._funcs
            if getattr(func, "func", None) is cache_version._invalidate_after_commit
        ]
        self.assertTrue(hooks, "the bump registers its post-commit invalidation")
        self.assertIs(hooks[-1].args[1], self.env.cr.postcommit.data[cache_version.BUMPED_KEY])
        with mock.patch.object(cache_version, "tiered_cache", return_value=self.writer):
            hooks[-1]()

    def _wait_dropped(self, namespace, key):
        deadline = time.monotonic() + 5
        while self.reader.l1.get(namespace, key, count=False) and time.monotonic() < deadline:
            time.sleep(0.01)

    def test_catalog_write_drops_every_menu_everywhere(self):
        self.product.product_tmpl_id.write({"list_price": 42.0})
        self._commit()
        self._wait_dropped(MENU, self.key)
        self.assertEqual(self._read(MENU, self.key), L3)
        self.assertEqual(self._read(MENU, self.other_key), L3)
        self.assertEqual(self._read(PRODUCTS, self.key), L3)
        self.assertEqual(self._read(SETTINGS, self.key), L1, "settings were not written")

    def test_config_write_drops_its_own_keys_only(self):
        self.config.write({"api_kitchen_flow": "dine_in"})
        self._commit()
        self._wait_dropped(MENU, self.key)
        self.assertEqual(self._read(MENU, self.key), L3)
        self.assertEqual(self._read(SETTINGS, self.key), L3)
        self.assertEqual(self._read(MENU, self.other_key), L1, "another point of sale's menu")
        self.assertEqual(self._read(PRODUCTS, self.key), L1)

    def test_process_cache_is_shared_and_listening(self):
        cache = cache_version.tiered_cache()
        self.assertIs(cache_version.tiered_cache(), cache)
        self.assertIsNotNone(cache.l2)
        deadline = time.monotonic() + 5
        while not cache.listener.connected and time.monotonic() < deadline:
            time.sleep(0.02)
        self.assertTrue(cache.listener.connected, "its listener is subscribed")


@tagged("post_install", "-at_install")
class CommittedCacheVersionCase(PosApiFactories, TransactionCase):
    """Real transactions (cursors of their own, committed): what a commit,
    a rollback and an older snapshot see. Committed data is restored."""

    def setUp(self):
        super().setUp()
        self.admin_id = self.env.ref("base.user_admin").id
        with self._cursor() as env:
            self.config_id = env.ref(DEMO_CONFIG_XMLID).id
            self.product_id = self._menu_product(env).id
            self.price = self._menu_product(env).list_price
        self.addCleanup(self._set_price, self.price)

    @contextlib.contextmanager
    def _cursor(self):
        with self.registry.cursor() as cr:
            yield api.Environment(cr, self.admin_id, {})

    def _menu_product(self, env):
        config = env.ref(DEMO_CONFIG_XMLID)
        return env["product.product"].search(
            [*config._get_available_product_domain(), ("type", "!=", "combo")], limit=1
        )

    def _set_price(self, price):
        with self._cursor() as env:
            env["product.product"].browse(self.product_id).product_tmpl_id.list_price = price

    def _menu(self, env):
        menu = env["pos.config"].browse(self.config_id)._api_menu()
        (price,) = env["pos.order"]._api_menu_unit_prices(menu, [(self.product_id, 1.0, [])])
        return menu, price

    def test_commit_rollback_and_snapshots(self):
        key = cache_version.cache_key(self.env.cr.dbname, self.config_id)
        shared = cache_version.tiered_cache()
        if shared.listener is not None:  # (L1 is flushed when it subscribes)
            deadline = time.monotonic() + 5
            while not shared.listener.connected and time.monotonic() < deadline:
                time.sleep(0.02)
        shared.fetch(MENU, key, lambda: b"menu")
        self.assertIsNotNone(shared.l1.get(MENU, key))
        with self._cursor() as before:
            old_menu, old_price = self._menu(before)  # this snapshot predates the write
            self._set_price(self.price + 10)  # committed: post-commit invalidation
            self.assertIsNone(shared.l1.get(MENU, key), "dropped from L1 after the commit")
            with self._cursor() as after:
                menu, price = self._menu(after)
            self.assertAlmostEqual(price, old_price + 10)
            self.assertIsNot(menu["products"], old_menu["products"])
            self.assertAlmostEqual(self._menu(before)[1], old_price, "its own snapshot's menu")
        with self._cursor() as env:
            env["product.product"].browse(self.product_id).product_tmpl_id.list_price = 1000.0
            env.cr.flush()  # bumped, then rolled back
            env.cr.rollback()
        with self._cursor() as env:
            menu_again, price_again = self._menu(env)
        with self._cursor() as env:
            self.assertIs(self._menu(env)[0]["products"], menu_again["products"], "no rebuild")
        self.assertAlmostEqual(price_again, old_price + 10, "the rollback changed nothing")
