"""The demo restaurant must be a usable restaurant, not just loadable XML.

These tests only make sense on a database where ``point_of_sale_api`` was
installed with demo data; elsewhere they are skipped.
"""

from unittest import SkipTest

from odoo.tests import TransactionCase, tagged

MODULE = "point_of_sale_api"


@tagged("post_install", "-at_install")
class TestDemoData(TransactionCase):
    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        module = cls.env["ir.module.module"].search([("name", "=", MODULE)])
        if not module.demo:
            raise SkipTest("point_of_sale_api was installed without demo data")
        cls.config = cls.env.ref(f"{MODULE}.demo_pos_config")
        cls.products = cls.env["product.product"].search(cls.config._get_available_product_domain())
        cls.admin = cls.env.ref("base.user_admin")

    def _ref(self, name):
        return self.env.ref(f"{MODULE}.{name}")

    def test_restaurant_floors_and_tables(self):
        self.assertTrue(self.config.module_pos_restaurant)
        self.assertEqual(sorted(self.config.floor_ids.mapped("name")), ["Dining Room", "Terrace"])
        for floor in self.config.floor_ids:
            self.assertGreaterEqual(len(floor.table_ids), 4, floor.name)
            self.assertTrue(all(table.seats > 0 for table in floor.table_ids), floor.name)
        numbers = self.config.floor_ids.table_ids.mapped("table_number")
        self.assertEqual(len(numbers), len(set(numbers)), "table numbers must be unique")

    def test_menu_in_categories(self):
        self.assertTrue(self.config.limit_categories)
        categories = self.config.iface_available_categ_ids
        self.assertGreaterEqual(len(categories), 6)
        self.assertTrue(38 <= len(self.products) <= 45, len(self.products))
        for product in self.products:
            self.assertTrue(product.pos_categ_ids & categories, product.display_name)
            self.assertGreater(product.lst_price, 0, product.display_name)
        # every category of the menu actually holds something
        self.assertEqual(self.products.pos_categ_ids, categories)

    def test_tax_included_and_excluded(self):
        food_tax = self._ref("demo_tax_10_incl")
        drink_tax = self._ref("demo_tax_20_excl")
        self.assertTrue(food_tax.price_include)
        self.assertFalse(drink_tax.price_include)
        taxes = self.products.taxes_id
        self.assertEqual(taxes, food_tax | drink_tax)
        for tax in taxes:
            used_by = self.products.filtered(lambda p, tax=tax: tax in p.taxes_id)
            self.assertGreaterEqual(len(used_by), 5, tax.name)
            tax_lines = tax.invoice_repartition_line_ids.filtered(
                lambda line: line.repartition_type == "tax"
            )
            # without an account the session closing cannot post the tax
            self.assertTrue(tax_lines.account_id, tax.name)
        # 11.00 tax-included at 10% is 10.00 + 1.00 of tax
        res = food_tax.compute_all(11.0)
        self.assertAlmostEqual(res["total_excluded"], 10.0)
        self.assertAlmostEqual(res["total_included"], 11.0)
        res = drink_tax.compute_all(10.0)
        self.assertAlmostEqual(res["total_excluded"], 10.0)
        self.assertAlmostEqual(res["total_included"], 12.0)

    def test_modifiers(self):
        lines = self.products.attribute_line_ids
        self.assertTrue(lines)
        self.assertTrue(
            all(line.attribute_id.create_variant == "no_variant" for line in lines),
            "modifiers must not multiply variants",
        )
        pizza = self._ref("demo_product_pizza_margherita")
        extras = pizza.attribute_line_ids.filtered(
            lambda line: line.attribute_id == self._ref("demo_attr_pizza_extras")
        )
        self.assertEqual(extras.attribute_id.display_type, "multi")
        self.assertGreaterEqual(len(extras.product_template_value_ids), 3)
        self.assertTrue(all(value.price_extra > 0 for value in extras.product_template_value_ids))
        steak = self._ref("demo_product_ribeye_steak")
        self.assertIn(self._ref("demo_attr_cooking"), steak.attribute_line_ids.attribute_id)
        self.assertEqual(len(pizza.product_tmpl_id.product_variant_ids), 1)

    def test_combo(self):
        combo_products = self.products.filtered(lambda p: p.type == "combo")
        self.assertEqual(combo_products, self._ref("demo_product_lunch_menu"))
        self.assertEqual(len(combo_products.combo_ids), 3)
        for combo in combo_products.combo_ids:
            self.assertGreaterEqual(len(combo.combo_item_ids), 2, combo.name)
            # a choice the POS cannot show would make the combo unorderable
            self.assertLessEqual(combo.combo_item_ids.product_id, self.products, combo.name)

    def test_printer_stations(self):
        printers = self.env["pos.api.printer"].search([("config_ids", "in", self.config.ids)])
        self.assertEqual(sorted(printers.mapped("name")), ["Bar", "Kitchen"])
        kitchen = printers.filtered(lambda p: p.name == "Kitchen")
        bar = printers - kitchen
        self.assertEqual((kitchen.host, kitchen.port), ("127.0.0.1", 9100))
        self.assertEqual((bar.host, bar.port), ("127.0.0.1", 9101))
        self.assertTrue(kitchen.category_ids)
        self.assertTrue(bar.category_ids)
        self.assertFalse(kitchen.category_ids & bar.category_ids)
        # every dish and drink prints somewhere; the combo prints through its items
        for product in self.products.filtered(lambda p: p.type != "combo"):
            self.assertTrue(product.pos_categ_ids & printers.category_ids, product.display_name)
        self.assertIn(self._ref("demo_categ_pizza"), kitchen.category_ids)
        self.assertIn(self._ref("demo_categ_wine_bar"), bar.category_ids)

    def test_payment_methods(self):
        methods = self.config.payment_method_ids
        cash = methods.filtered("is_cash_count")
        other = methods - cash
        self.assertEqual(len(cash), 1)
        self.assertEqual(cash.journal_id.type, "cash")
        self.assertTrue(other)
        self.assertEqual(set(other.journal_id.mapped("type")), {"bank"})

    def test_session_opens_and_loads(self):
        config = self.config.with_user(self.admin)
        if not config.current_session_id:
            config.open_ui()
        session = config.current_session_id
        self.assertTrue(session)
        if session.state == "opening_control":
            session.set_opening_control(0, "")
        self.assertEqual(session.state, "opened")

        data = session.load_data([])
        loaded_ids = {p["id"] for p in data["product.product"]["data"]}
        self.assertLessEqual(set(self.products.ids), loaded_ids)
        self.assertEqual(
            {f["id"] for f in data["restaurant.floor"]["data"]}, set(self.config.floor_ids.ids)
        )
        combo_ids = {c["id"] for c in data["product.combo"]["data"]}
        self.assertEqual(combo_ids, set(self._ref("demo_product_lunch_menu").combo_ids.ids))
