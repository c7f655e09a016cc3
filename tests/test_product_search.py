"""GET /pos_api/v1/products: trigram search of the point of sale's menu."""

from urllib.parse import urlencode

from odoo.tests import tagged

from ..pos_core import limits
from ..pos_core import schemas as s
from .common import PosApiHttpCommon


@tagged("post_install", "-at_install")
class TestProductSearch(PosApiHttpCommon):
    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.category = cls.config.iface_available_categ_ids[:1]
        make = cls._make_product
        cls.burger = make("Burger", default_code="QZ-BURGER", barcode="4006381333931")
        cls.cheese_burger = make("Cheese Burger")
        cls.cheese_plate = make("Cheese Plate")
        cls.wraps = [make(f"Zebrawrap Special {n}") for n in range(7)]
        cls.underscore = make("Code Underscore", default_code="QA_1")
        cls.lookalike = make("Code Lookalike", default_code="QAX1")
        # Outside the menu: another category, not sold at the POS, another company.
        other_category = cls.env["pos.category"].create({"name": "Not On This Menu"})
        cls.off_menu = make("Burger Elsewhere", categories=other_category)
        cls.not_in_pos = make("Burger Backoffice", available_in_pos=False)
        other_company = cls.env["res.company"].create({"name": "Other Restaurant Co"})
        cls.other_company = make("Burger Abroad", company_id=other_company.id)

    @classmethod
    def _make_product(cls, name, categories=None, **values):
        return cls.env["product.product"].create(
            {
                "name": name,
                "available_in_pos": True,
                "sale_ok": True,
                "list_price": 7.25,
                "pos_categ_ids": [(6, 0, (categories or cls.category).ids)],
                **values,
            }
        )

    def _search(self, device=None, **params):
        return self._call("GET", "/products?" + urlencode(params), device=device or self.waiter)

    def _hits(self, **params):
        status, body = self._search(**params)
        self.assertEqual(status, 200, body)
        s.ProductSearchOut.model_validate(body)
        return body["products"]

    def _ids(self, **params):
        return [hit["id"] for hit in self._hits(**params)]

    # ------------------------------------------------------------------
    def test_typos_find_the_word(self):
        self.assertTrue({self.burger.id, self.cheese_burger.id} <= set(self._ids(q="burgr")))
        ids = self._ids(q="chese")
        self.assertIn(self.cheese_plate.id, ids)
        self.assertIn(self.cheese_burger.id, ids)
        self.assertNotIn(self.burger.id, ids)
        self.assertIn(self.cheese_plate.id, self._ids(q="Chees Plat"))

    def test_ranking_best_first_ties_by_id(self):
        hits = self._hits(q="burger")
        self.assertEqual(hits[0]["id"], self.burger.id)
        self.assertEqual(hits[0]["score"], 1.0)
        ids = [hit["id"] for hit in hits]
        self.assertLess(ids.index(self.burger.id), ids.index(self.cheese_burger.id))
        keys = [(-hit["score"], hit["id"]) for hit in hits]
        self.assertEqual(keys, sorted(keys))
        wraps = self._hits(q="zebrawrap special")
        self.assertEqual([hit["id"] for hit in wraps], sorted(w.id for w in self.wraps))
        self.assertEqual(len({hit["score"] for hit in wraps}), 1)

    def test_result_fields_and_price(self):
        hit = self._hits(q="burger")[0]
        pricelist = self.config.pricelist_id
        expected = self.currency.round(pricelist._get_product_price(self.burger, 1.0))
        self.assertEqual(hit["name"], "Burger")
        self.assertEqual(hit["default_code"], "QZ-BURGER")
        self.assertEqual(hit["barcode"], "4006381333931")
        self.assertAlmostEqual(float(hit["price"]), expected, places=6)
        self.assertIsNone(self._hits(q="cheese plate")[0]["barcode"])

    def test_reference_and_barcode_by_q(self):
        self.assertEqual(self._ids(q="QZ-BURGER")[0], self.burger.id)
        self.assertEqual(self._ids(q="qz-burg")[0], self.burger.id)  # a prefix, any case
        hits = self._hits(q="4006381333931")
        self.assertEqual((hits[0]["id"], hits[0]["score"]), (self.burger.id, 1.0))
        self.assertEqual(self._ids(q="400638133")[0], self.burger.id)  # a partial scan

    def test_pagination_walks_every_hit_once_in_order(self):
        everything = self._ids(q="zebrawrap", limit=limits.MAX_PAGE_SIZE)
        self.assertTrue({w.id for w in self.wraps} <= set(everything))
        walked, cursor, pages = [], None, 0
        while True:
            params = {"q": "zebrawrap", "limit": 3, **({"cursor": cursor} if cursor else {})}
            status, body = self._search(**params)
            self.assertEqual(status, 200, body)
            self.assertLessEqual(len(body["products"]), 3)
            walked += [hit["id"] for hit in body["products"]]
            pages += 1
            cursor = body["next_cursor"]
            if not cursor:
                break
        self.assertEqual(walked, everything)
        self.assertEqual(pages, -(-len(everything) // 3))
        # A cursor belongs to its query; a forged one is refused.
        first = self._search(q="zebrawrap", limit=3)[1]["next_cursor"]
        for bad in (first, "bm90IGEgY3Vyc29y", "e30="):
            status, body = self._search(q="burger", cursor=bad)
            self.assertEqual((status, body["error"]["code"]), (422, "invalid_cursor"))

    def test_barcode_scan_is_exact(self):
        status, body = self._search(barcode="4006381333931")
        self.assertEqual(status, 200, body)
        s.ProductSearchOut.model_validate(body)
        self.assertEqual([hit["id"] for hit in body["products"]], [self.burger.id])
        self.assertEqual(body["products"][0]["score"], 1.0)
        self.assertIsNone(body["next_cursor"])
        self.assertEqual(self._ids(barcode="400638133393"), [])  # no partial scans
        self.off_menu.barcode = "4006381333948"
        self.assertEqual(self._ids(barcode="4006381333948"), [])  # not on this menu

    def test_barcode_scan_is_answered_from_the_cached_menu(self):
        self.assertEqual(self.config._api_product_by_barcode("4006381333931", 5), self.burger)
        with self.assertQueryCount(1):  # the menu's version, no catalog table
            found = self.config._api_product_by_barcode("4006381333931", 5)
        self.assertEqual(found, self.burger)
        self.burger.barcode = "4006381333955"  # a new version: the index is rebuilt
        self.assertFalse(self.config._api_product_by_barcode("4006381333931", 5))
        self.assertEqual(self.config._api_product_by_barcode("4006381333955", 5), self.burger)

    def test_only_the_menu_of_the_device_config_and_company(self):
        ids = set(self._ids(q="burger", limit=limits.MAX_PAGE_SIZE))
        self.assertIn(self.burger.id, ids)
        for outside in (self.off_menu, self.not_in_pos, self.other_company):
            self.assertNotIn(outside.id, ids, outside.name)
        # The other config sells the other category: its device finds it.
        other_config = self.config.copy({"name": "Other Menu"})
        other_config.iface_available_categ_ids = self.off_menu.pos_categ_ids
        other_device = self._create_device("waiter", config=other_config)
        other_ids = self._ids(q="burger", device=other_device, limit=limits.MAX_PAGE_SIZE)
        self.assertIn(self.off_menu.id, other_ids)
        self.assertNotIn(self.burger.id, other_ids)

    def test_wildcards_are_plain_characters(self):
        for text in ("%", "_", "%%%", "%_%"):
            self.assertEqual(self._hits(q=text), [], text)
        ids = self._ids(q="QA_", limit=limits.MAX_PAGE_SIZE)
        self.assertIn(self.underscore.id, ids)
        self.assertNotIn(self.lookalike.id, ids)  # "_" would match the "X"

    def test_hostile_input_is_refused_and_changes_nothing(self):
        count = self.env["product.product"].search_count([])
        status, body = self._search(q="'; DROP TABLE product_product; --")
        self.assertEqual(status, 200, body)
        status, body = self._search(q="burger') OR 1=1 --", limit=limits.MAX_PAGE_SIZE)
        self.assertEqual(status, 200, body)
        self.assertNotIn(self.not_in_pos.id, [hit["id"] for hit in body["products"]])
        refused = [
            {},
            {"q": ""},
            {"q": "   "},
            {"q": " \t\n "},
            {"q": "x" * (limits.SEARCH_QUERY_MAX_CHARS + 1)},
            {"q": "burger\x00"},
            {"q": "burger", "limit": 0},
            {"q": "burger", "limit": limits.MAX_PAGE_SIZE + 1},
            {"q": "burger", "limit": "ten"},
            {"q": "burger", "limit": "1e400"},
            {"q": "burger", "barcode": "4006381333931"},
            {"barcode": "4006381333931", "cursor": "e30="},
            {"barcode": "9" * (limits.BARCODE_MAX_CHARS + 1)},
            {"q": "burger", "cursor": "x" * 600},
            {"q": "burger", "unknown": "1"},
        ]
        for params in refused:
            status, body = self._search(**params)
            self.assertEqual(status, 422, params)
            self.assertTrue(body["error"]["code"], params)
            self.assertEqual(set(body["error"]), {"code", "message", "details"})
        self.env.cr.execute("SELECT count(*) FROM product_product")
        self.assertEqual(self.env.cr.fetchone()[0], count)

    def test_trigram_indexes_exist(self):
        self.env.cr.execute("SELECT 1 FROM pg_extension WHERE extname = 'pg_trgm'")
        self.assertTrue(self.env.cr.fetchone())
        self.env.cr.execute(
            "SELECT indexname, indexdef FROM pg_indexes WHERE indexname IN %s",
            [
                (
                    "product_template__name_index",
                    "product_product_default_code_trgm_index",
                    "product_product_barcode_trgm_index",
                )
            ],
        )
        indexes = dict(self.env.cr.fetchall())
        self.assertEqual(len(indexes), 3, indexes)
        for definition in indexes.values():
            self.assertIn("USING gin", definition)
            self.assertIn("gin_trgm_ops", definition)

    def test_every_device_role_may_search_tokens_required(self):
        cashier = self._create_device("cashier")
        for device in (self.waiter, self.kitchen, self.manager, cashier):
            status, body = self._search(device=device, q="burger")
            self.assertEqual(status, 200, (device.role, body))
            self.assertEqual(body["products"][0]["id"], self.burger.id)
        status, body = self._call("GET", "/products?q=burger")
        self.assertEqual((status, body["error"]["code"]), (401, "missing_token"))
        status, body = self._call("GET", "/products?q=burger", token="not-a-token")
        self.assertEqual(status, 401)
