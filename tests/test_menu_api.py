"""The catalog routes: the menu (ETag, gzip, since), 86-ing a product,
the floor plan with its live state and the point of sale's settings; and
the menu's version, bumped by what the menu is built from only."""

import json
from datetime import timedelta
from decimal import Decimal
from unittest.mock import patch

import odoo
from odoo import fields
from odoo.tests import new_test_user, tagged
from odoo.tools import config as odoo_config

from ..models import pos_api_cache_version as cache_version
from ..models import pos_config_menu, pos_menu_warming
from ..pos_core.cache import MENU
from .common import API, PosApiHttpCommon


@tagged("post_install", "-at_install")
class TestMenuApi(PosApiHttpCommon):
    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.product = cls.env["product.product"].search(
            [*cls.config._get_available_product_domain(), ("type", "!=", "combo")], limit=1
        )

    def setUp(self):
        super().setUp()
        # Each test starts from an empty menu cache: a test's rolled-back
        # catalog shares its menu version with the next test's.
        self._empty_menu_cache()
        self.addCleanup(self._empty_menu_cache)

    @staticmethod
    def _empty_menu_cache():
        cache_version.tiered_cache().invalidate(MENU)
        pos_config_menu._MENU_CACHE.clear()

    def _get(self, path, device=None, headers=None):
        """(status, headers, raw body) of a GET."""
        response = self.opener.get(
            self.base_url() + API + path,
            headers={
                "Authorization": f"Bearer {self._token(device or self.waiter)}",
                "Accept-Encoding": "identity",
                **(headers or {}),
            },
            timeout=60,
        )
        return response.status_code, response.headers, response.content

    def _menu(self, **headers):
        status, response_headers, body = self._get("/menu", headers=headers)
        self.assertEqual(status, 200, body)
        return response_headers, json.loads(body)

    def _item(self, menu, product):
        return next(item for item in menu["products"] if item["id"] == product.id)

    def test_menu_prices_are_what_orders_charge(self):
        _headers, menu = self._menu()
        self.assertEqual(menu["config_id"], self.config.id)
        item = self._item(menu, self.product)
        status, created = self._call(
            "POST",
            "/orders",
            {
                "uuid": "0f6d2a52-6a53-4a43-8a3c-6d1a1b0e0001",
                "lines": [{"product_id": self.product.id, "qty": "1"}],
            },
            device=self.waiter,
        )
        self.assertEqual(status, 201, created)
        self.assertEqual(
            Decimal(item["price"]), Decimal(created["order"]["lines"][0]["price_unit"])
        )
        order_menu = self.config._api_menu()["products"][self.product.id]
        self.assertEqual(tuple(item["tax_ids"]), tuple(tax.id for tax in order_menu["taxes"]))
        self.assertTrue(item["available"])
        self.assertLessEqual(set(item["tax_ids"]), {tax["id"] for tax in menu["taxes"]})
        self.assertNotIn(
            self.env["product.product"].search([("available_in_pos", "=", False)], limit=1).id,
            {product["id"] for product in menu["products"]},
        )

    def test_etag_answers_304_and_changes_with_a_price(self):
        headers, menu = self._menu()
        etag = headers["ETag"]
        self.assertEqual(etag.strip('"'), menu["version"])
        status, again, body = self._get("/menu", headers={"If-None-Match": etag})
        self.assertEqual((status, body), (304, b""))
        self.assertEqual(again["ETag"], etag)
        self.product.product_tmpl_id.list_price += 7
        status, new_headers, body = self._get("/menu", headers={"If-None-Match": etag})
        self.assertEqual(status, 200)
        self.assertNotEqual(new_headers["ETag"], etag)
        new_item = self._item(json.loads(body), self.product)
        self.assertAlmostEqual(
            float(new_item["price"]), float(self._item(menu, self.product)["price"]) + 7
        )

    def test_x_cache_says_where_the_menu_came_from(self):
        statuses = []
        for headers in ({}, {}, {"Accept-Encoding": "gzip"}):
            status, response_headers, _body = self._get("/menu", headers=headers)
            statuses.append((status, response_headers["X-Cache"]))
        # Built, then this process's; the gzip bytes are made once.
        self.assertEqual(statuses, [(200, "miss"), (200, "hit-l1"), (200, "miss")])
        status, response_headers, _body = self._get("/menu", headers={"Accept-Encoding": "gzip"})
        self.assertEqual((status, response_headers["X-Cache"]), (200, "hit-l1"))
        # Another process finds it in Redis.
        cache_version.tiered_cache().flush_local()
        status, response_headers, _body = self._get("/menu")
        self.assertEqual((status, response_headers["X-Cache"]), (200, "hit-l2"))

    def test_gzip_when_accepted(self):
        _headers, plain = self._menu()
        status, headers, body = self._get("/menu", headers={"Accept-Encoding": "gzip"})
        self.assertEqual(status, 200)
        self.assertEqual(headers.get("Content-Encoding"), "gzip")
        # (requests decodes it; the bytes on the wire are smaller)
        self.assertEqual(json.loads(body), plain)
        self.assertIn("Accept-Encoding", headers["Vary"])
        # A strong ETag names one byte sequence: the gzip one has its own,
        # and either answers 304.
        self.assertEqual(headers["ETag"], f'"{plain["version"]}-gzip"')
        for tag in (headers["ETag"], f'"{plain["version"]}"'):
            status, again, body = self._get(
                "/menu", headers={"Accept-Encoding": "gzip", "If-None-Match": tag}
            )
            self.assertEqual((status, body), (304, b""), tag)
            self.assertEqual(again["ETag"], headers["ETag"])

    def test_etag_names_the_content_even_when_a_version_bump_is_lost(self):
        """A change that does not move the version (a bump lost after commit)
        shows once the cached entries end: the ETag is the content's hash,
        never a version's, so a device never keeps a 304 for a menu that
        changed."""
        headers, menu = self._menu()
        self.env.cr.execute(
            "UPDATE product_template SET list_price = list_price + 3 WHERE id = %s",
            [self.product.product_tmpl_id.id],
        )
        self.env.invalidate_all()
        status, _again, _body = self._get("/menu", headers={"If-None-Match": headers["ETag"]})
        self.assertEqual(status, 304, "the version did not move: served from the cache")
        self._empty_menu_cache()  # the namespace TTL has ended
        status, new_headers, body = self._get("/menu", headers={"If-None-Match": headers["ETag"]})
        self.assertEqual(status, 200)
        self.assertNotEqual(new_headers["ETag"], headers["ETag"])
        self.assertAlmostEqual(
            float(self._item(json.loads(body), self.product)["price"]),
            float(self._item(menu, self.product)["price"]) + 3,
        )

    def test_since_the_current_version_is_an_empty_change_set(self):
        _headers, menu = self._menu()
        status, headers, body = self._get(f"/menu?since={menu['version']}")
        self.assertEqual(status, 200, body)
        changes = json.loads(body)
        self.assertEqual((changes["full"], changes["version"]), (False, menu["version"]))
        self.assertEqual(headers["ETag"], f'W/"{menu["version"]}"')
        for section in ("categories", "products", "taxes", "combos"):
            self.assertEqual((changes[section], changes[f"deleted_{section}"]), ([], []))

    def test_since_returns_changes_and_deletions(self):
        _headers, menu = self._menu()
        products = self._pos_products(2)
        changed, gone = products
        changed.product_tmpl_id.name = "Renamed for since"
        gone.product_tmpl_id.available_in_pos = False
        status, _headers, body = self._get(f"/menu?since={menu['version']}")
        self.assertEqual(status, 200, body)
        changes = json.loads(body)
        self.assertFalse(changes["full"])
        self.assertEqual(changes["since"], menu["version"])
        self.assertEqual([item["id"] for item in changes["products"]], [changed.id])
        self.assertEqual(changes["products"][0]["name"], "Renamed for since")
        self.assertEqual(changes["deleted_products"], [gone.id])
        # An unknown version: the whole menu; a malformed one: 422.
        status, _headers, body = self._get("/menu?since=m" + "0" * 32)
        self.assertEqual(status, 200)
        self.assertTrue(json.loads(body)["full"])
        for bad in ("x", "m" + "g" * 32, "m" + "0" * 40):
            status, _headers, body = self._get(f"/menu?since={bad}")
            self.assertEqual(status, 422, bad)
            self.assertEqual(json.loads(body)["error"]["code"], "invalid_input")

    def test_86_by_the_kitchen_reaches_menu_orders_and_events(self):
        path = f"/products/{self.product.id}/availability"
        status, body = self._call("POST", path, {"available": False}, device=self.waiter)
        self.assertEqual(status, 403, body)
        self.assertFalse(self.product.product_tmpl_id.api_sold_out)
        status, body = self._call("POST", path, {"available": False}, device=self.kitchen)
        self.assertEqual((status, body["available"]), (200, False), body)
        self.assertTrue(self.product.product_tmpl_id.api_sold_out)
        # 86'd in the point of sale's company only: another company selling
        # the same (shared) product still has it.
        self.assertFalse(self.product.company_id)
        other_company = self.env["res.company"].create({"name": "Other branch"})
        self.assertFalse(self.product.product_tmpl_id.with_company(other_company).api_sold_out)
        # The backend's "Sold Out (86)" filter finds it in its company only.
        sold_out = [("api_sold_out", "=", True)]
        self.assertIn(self.product.product_tmpl_id, self.env["product.template"].search(sold_out))
        self.assertNotIn(
            self.product.product_tmpl_id,
            self.env["product.template"].with_company(other_company).search(sold_out),
        )
        self.assertFalse(self._item(self._menu()[1], self.product)["available"])
        status, body = self._call(
            "POST",
            "/orders",
            {
                "uuid": "0f6d2a52-6a53-4a43-8a3c-6d1a1b0e0002",
                "lines": [{"product_id": self.product.id, "qty": "1"}],
            },
            device=self.waiter,
        )
        self.assertEqual((status, body["error"]["code"]), (409, "product_sold_out"))
        event = self.env["pos.sync.log"].search(
            [("config_id", "=", self.config.id), ("event_type", "=", "menu.updated")], limit=1
        )
        self.assertIn(self.product.id, event.payload["sold_out_product_ids"])
        status, body = self._call("POST", path, {"available": True}, device=self.manager)
        self.assertEqual(status, 200, body)
        self.assertTrue(self._item(self._menu()[1], self.product)["available"])
        # Not on this menu, bad bodies: refused, nothing changed.
        other = self.env["product.product"].search([("available_in_pos", "=", False)], limit=1)
        status, body = self._call(
            "POST", f"/products/{other.id}/availability", {"available": False}, device=self.kitchen
        )
        self.assertEqual(status, 404, body)
        self.assertFalse(other.product_tmpl_id.api_sold_out)
        for bad in ({}, {"available": "maybe"}, {"available": False, "extra": 1}):
            status, body = self._call("POST", path, bad, device=self.kitchen)
            self.assertEqual(status, 422, bad)
        self.assertFalse(self.product.product_tmpl_id.api_sold_out)

    def test_floors_show_live_table_state(self):
        status, headers, body = self._get("/floors")
        self.assertEqual(status, 200, body)
        floors = json.loads(body)["floors"]
        self.assertEqual({floor["id"] for floor in floors}, set(self.config.floor_ids.ids))
        table = self.config.floor_ids.table_ids.filtered("active")[:1]
        before = next(t for f in floors for t in f["tables"] if t["id"] == table.id)
        self.assertFalse(before["occupied"])
        status, created = self._call(
            "POST",
            "/orders",
            {
                "uuid": "0f6d2a52-6a53-4a43-8a3c-6d1a1b0e0003",
                "table_id": table.id,
                "customer_count": 3,
                "lines": [{"product_id": self.product.id, "qty": "1"}],
            },
            device=self.waiter,
        )
        self.assertEqual(status, 201, created)
        status, again, body = self._get("/floors", headers={"If-None-Match": headers["ETag"]})
        self.assertEqual(status, 200, "the table's state changed: a new ETag")
        after = next(
            t for f in json.loads(body)["floors"] for t in f["tables"] if t["id"] == table.id
        )
        self.assertEqual(after["order_ids"], [created["order"]["id"]])
        self.assertEqual((after["occupied"], after["guests"]), (True, 3))
        self.assertTrue(after["seated_at"])
        status, _headers, body = self._get("/floors", headers={"If-None-Match": again["ETag"]})
        self.assertEqual((status, body), (304, b""))

    def test_config_document(self):
        status, headers, body = self._get("/config", device=self.manager)
        self.assertEqual(status, 200, body)
        document = json.loads(body)
        self.assertEqual(document["config_id"], self.config.id)
        self.assertEqual(document["currency"]["name"], self.config.currency_id.name)
        self.assertEqual(
            {method["id"] for method in document["payment_methods"]},
            set(self.config.payment_method_ids.ids),
        )
        self.assertEqual(document["kitchen_flow"], self.config.api_kitchen_flow)
        self.assertIsNone(document["discounts"]["limit_percent"], "managers are exempt")
        self.assertEqual(document["open_session_id"], self.session.id)
        status, _headers, _body = self._get(
            "/config", device=self.manager, headers={"If-None-Match": headers["ETag"]}
        )
        self.assertEqual(status, 304)
        status, _headers, body = self._get("/config", device=self.waiter)
        self.assertEqual(json.loads(body)["discounts"]["limit_percent"], 100.0)

    def test_catalog_routes_need_a_device(self):
        for path in ("/menu", "/floors", "/config"):
            response = self.opener.get(self.base_url() + API + path, timeout=30)
            self.assertEqual(response.status_code, 401, path)

    def _assert_warmed(self, cache, lang):
        """The menu in ``lang`` is in this process's L1: its ETag under the
        menu version's pointer, its plain and gzip bytes under the ETag."""
        config = self.config.with_context(lang=lang)
        version, _session_id = cache_version.menu_version(self.env.cr, config.id)
        entry = cache.l1.get(MENU, config._api_menu_pointer(version), count=False)
        self.assertIsNotNone(entry, f"the menu's ETag in {lang}")
        key = cache_version.cache_key(self.env.cr.dbname, self.config.id, entry.value.decode())
        self.assertIsNotNone(cache.l1.get(MENU, key, count=False))
        self.assertIsNotNone(cache.l1.get(MENU, key + ":gzip", count=False))

    def test_warming_cron_fills_the_cache_within_its_budget(self):
        cron = self.env.ref("point_of_sale_api.ir_cron_cache_warm")
        self.assertEqual((cron.interval_number, cron.interval_type), (15, "minutes"))
        # A device user without a language is warmed in the default one.
        self.kitchen.user_id = new_test_user(
            self.env, login="no_lang", groups="base.group_user,point_of_sale_api.group_pos_api_user"
        )
        self.kitchen.user_id.partner_id.lang = False
        self.env["res.lang"]._activate_lang("fr_FR")
        self.manager.user_id = new_test_user(
            self.env,
            login="gerant",
            lang="fr_FR",
            groups="base.group_user,point_of_sale.group_pos_manager",
        )
        cache = cache_version.tiered_cache()
        cache.flush_local()
        done, remaining = self.env["pos.config"]._cron_warm_menu_cache()
        self.assertGreaterEqual(done, 2)
        self.assertEqual(remaining, 0)
        self._assert_warmed(cache, self.waiter.user_id.lang or "en_US")
        self._assert_warmed(cache, "fr_FR")
        done, remaining = self.env["pos.config"]._cron_warm_menu_cache(budget=0)
        self.assertEqual(done, 0)
        self.assertGreaterEqual(remaining, 1)

    def test_warming_at_start_only_where_requests_are_served(self):
        class Registry:
            test_mode = False

            def in_test_mode(self):
                return self.test_mode

        registry = Registry()
        serving = {"test_enable": False, "stop_after_init": False}
        with patch.dict(odoo_config.options, serving), patch.object(odoo, "evented", False):
            self.assertTrue(pos_menu_warming.warms_at_start(registry))
            registry.test_mode = True  # pytest-odoo's HttpCase
            self.assertFalse(pos_menu_warming.warms_at_start(registry))
            registry.test_mode = False
            with patch.object(odoo, "evented", True):  # the gevent process
                self.assertFalse(pos_menu_warming.warms_at_start(registry))
            with patch.dict(odoo_config.options, {"stop_after_init": True}):  # -i / -u
                self.assertFalse(pos_menu_warming.warms_at_start(registry))
        self.assertFalse(pos_menu_warming.warms_at_start(self.registry))  # this test run
        self.assertIsNone(pos_menu_warming.warm_once(self.registry))

    def test_worker_start_warming_runs_in_the_background(self):
        """What a worker starts at its first request: a thread of its own
        that fills this process's cache with the menus, after which the
        device's first menu request is a hit of this process."""
        cache = cache_version.tiered_cache()
        cache.flush_local()
        thread = pos_menu_warming.start_menu_warming(self.env.cr.dbname)
        thread.join(120)
        self.assertFalse(thread.is_alive())
        self._assert_warmed(cache, self.waiter.user_id.lang or "en_US")
        for encoding in ("identity", "gzip"):
            status, headers, _body = self._get("/menu", headers={"Accept-Encoding": encoding})
            self.assertEqual((status, headers["X-Cache"]), (200, "hit-l1"), encoding)

    def test_names_are_in_the_device_users_language(self):
        self.env["res.lang"]._activate_lang("fr_FR")
        self.product.product_tmpl_id.with_context(lang="fr_FR").name = "Nom en français"
        french_waiter = self._create_device("waiter", name="Tablette")
        french_waiter.user_id = new_test_user(
            self.env,
            login="serveur",
            lang="fr_FR",
            groups="base.group_user,point_of_sale_api.group_pos_api_user",
        )
        # The client's Accept-Language does not change it.
        status, _headers, body = self._get(
            "/menu", device=french_waiter, headers={"Accept-Language": "en-US"}
        )
        self.assertEqual(status, 200, body)
        self.assertEqual(self._item(json.loads(body), self.product)["name"], "Nom en français")
        # Another device's user reads it in theirs.
        self.assertNotEqual(self.waiter.user_id.lang, "fr_FR")
        status, _headers, body = self._get("/menu", headers={"Accept-Language": "fr-FR"})
        self.assertEqual(status, 200, body)
        self.assertNotEqual(self._item(json.loads(body), self.product)["name"], "Nom en français")


@tagged("post_install", "-at_install")
class TestMenuVersion(PosApiHttpCommon):
    """What moves the menu's version (bumped inline on the test cursor)."""

    def _version(self):
        return cache_version.menu_version(self.env.cr, self.config.id)[0]

    def _assert_bumps(self, change, bumps=True):
        before = self._version()
        change()
        self.env.flush_all()
        self.assertEqual(self._version() != before, bumps)

    def test_version_check_reads_no_catalog_table(self):
        self._version()
        with self.assertQueryCount(1):
            self._version()
        self.env.cr.execute(b"EXPLAIN (FORMAT JSON) " + self.env.cr._obj.query)
        tables = set()

        def walk(node):
            tables.update(filter(None, [node.get("Relation Name")]))
            for child in node.get("Plans", ()):
                walk(child)

        walk(self.env.cr.fetchone()[0][0]["Plan"])
        self.assertEqual(
            tables,
            {
                "pos_api_cache_version",
                "pos_session",
                "product_pricelist_item",
                "pos_config",
                "res_currency_rate",  # its date index, backwards: the latest rate in force
            },
        )

    def test_a_translation_written_apart_bumps(self):
        self.env["res.lang"]._activate_lang("fr_FR")
        template = self._pos_products(1).product_tmpl_id
        self._assert_bumps(
            lambda: template.update_field_translations("name", {"fr_FR": "Traduit à part"})
        )
        partner = self.env["res.partner"].create({"name": "Not on a menu"})
        self._assert_bumps(
            lambda: (
                self.env["res.partner.category"]
                .create({"name": "Tag", "partner_ids": [(4, partner.id)]})
                .update_field_translations("name", {"fr_FR": "Étiquette"})
            ),
            bumps=False,
        )

    def test_a_rate_entered_ahead_of_its_date_counts_from_that_date(self):
        today = fields.Date.today()
        # Rolled back with the test: every rate of the database is older.
        self.env.cr.execute(
            "UPDATE res_currency_rate SET name = name - 1000 WHERE name >= %s",
            [today - timedelta(days=1)],
        )
        self.env.invalidate_all()
        rate = self.env["res.currency.rate"].create(
            {
                "currency_id": self.env.ref("base.EUR").id,
                "name": today + timedelta(days=1),
                "rate": 1.25,
                "company_id": self.config.company_id.id,
            }
        )
        self.env.flush_all()
        before = self._version()
        # The day comes (no write: the date the query compares with moves).
        self.env.cr.execute(
            "UPDATE res_currency_rate SET name = %s WHERE id = %s", [today, rate.id]
        )
        self.assertNotEqual(self._version(), before)

    def test_what_bumps_and_what_does_not(self):
        product = self._pos_products(1)
        method = self.env["pos.payment.method"].create({"name": "Cache test"})
        other = self.env["pos.config"].search([("id", "!=", self.config.id)], limit=1)
        self._assert_bumps(lambda: product.product_tmpl_id.write({"list_price": 3.5}))
        self._assert_bumps(lambda: self.env["account.tax"].search([], limit=1).write({"name": "T"}))
        self._assert_bumps(lambda: self.config.write({"api_kitchen_flow": "dine_in"}))
        self._assert_bumps(lambda: method.write({"name": "Renamed method"}))
        self._assert_bumps(lambda: product.write({"standard_price": 1.25}), bumps=False)
        self._assert_bumps(lambda: method.write({"image": False}), bumps=False)
        self._assert_bumps(lambda: other.write({"api_kitchen_flow": "dine_in"}), bumps=False)
        self._assert_bumps(
            lambda: self.env["res.partner"].create({"name": "Not on a menu"}), bumps=False
        )
        # Taxes' price_include follows the company's default (a company
        # without journal entries may change it).
        company = self.env["res.company"].create({"name": "Cache test company"})
        self._assert_bumps(lambda: company.write({"account_price_include": "tax_included"}))
        # A cost counts once a pricelist rule prices from it.
        self.env["product.pricelist.item"].create(
            {
                "pricelist_id": self.env["product.pricelist"].create({"name": "Cost plus"}).id,
                "applied_on": "3_global",
                "compute_price": "formula",
                "base": "standard_price",
            }
        )
        self._assert_bumps(lambda: product.write({"standard_price": 2.5}))

    def test_order_path_menu_is_rebuilt_after_a_bump_only(self):
        menu = self.config._api_menu()
        self.assertIs(self.config._api_menu()["products"], menu["products"])
        # Names are in the reader's language: one entry per language.
        self.env["res.lang"]._activate_lang("fr_FR")
        in_french = self.config.with_context(lang="fr_FR")._api_menu()
        self.assertIsNot(in_french["products"], menu["products"])
        self.env["res.partner"].create({"name": "Not on a menu"}).write({"phone": "+32 2 555"})
        self.assertIs(self.config._api_menu()["products"], menu["products"])
        self._pos_products(1).product_tmpl_id.write({"name": "Rebuilt"})
        self.env.flush_all()
        self.assertIsNot(self.config._api_menu()["products"], menu["products"])
