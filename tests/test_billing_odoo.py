"""The billing engine against Odoo 18's own tax computation.

1,000 seeded random orders go through both the engine and ``account.tax``'s
helpers the way the POS uses them (``_prepare_base_line_for_taxes_computation``,
``_add_tax_details_in_base_lines``, ``_round_base_lines_tax_details``), plus
``compute_all`` per line; a few real ``pos.order`` records check the amounts
Odoo stores (``_compute_amount_line_all``, ``_compute_prices``,
``_get_rounded_amount``).

Generated data stay where Odoo's floats are exact to the cent: a
price-included fixed tax is at most a fraction of its line's price (when it
is close to the whole price, ``price - fixed`` loses enough float precision
for ``float_round`` to miss a half-cent, which the Decimal engine does not).
"""

import random
from decimal import Decimal

from odoo import Command
from odoo.tests import TransactionCase, tagged

from odoo.addons.point_of_sale_api.pos_core import billing

from .common import DEMO_CONFIG_XMLID, PosApiFactories

ORDERS_PER_METHOD = 500  # x 2 rounding methods = 1,000 orders
SEED = 180_001


def _dec(value):
    return Decimal(str(value))


@tagged("post_install", "-at_install")
class TestBillingAgainstAccountTax(TransactionCase):
    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.env = cls.env(context=dict(cls.env.context, tracking_disable=True))
        cls.company = cls.env.company
        cls.currency = cls.company.currency_id
        cls.engine_currency = billing.Currency(_dec(cls.currency.rounding))
        cls.AccountTax = cls.env["account.tax"]
        cls.tax_group = cls.env["account.tax.group"].create(
            {"name": "Billing engine test", "company_id": cls.company.id}
        )
        rng = random.Random(SEED)
        specs = [
            # (amount_type, amount, price included, include_base_amount,
            #  is_base_affected, sequence or None for a random one)
            ("percent", 5, False, False, True, None),
            ("percent", 10, False, False, True, None),
            # Three base-affecting percentages in a fixed order, so that both
            # of Odoo's batching rules are met: 4 % and 8.5 % share a batch
            # (8.5 % is not base-affected), 20 % is affected by both.
            ("percent", 4, False, True, True, 1),
            ("percent", 8.5, False, True, False, 2),
            ("percent", 20, False, True, True, 4),
            ("percent", 6, True, False, True, None),
            ("percent", 15, True, False, True, None),
            ("percent", 21, True, False, True, None),
            ("percent", 7.7, True, True, True, None),
            ("fixed", 0.25, False, False, True, None),
            ("fixed", 0.30, False, True, True, None),
            ("fixed", 0.10, True, False, True, None),
            ("fixed", 0.20, True, True, True, None),
            ("division", 8, False, False, True, None),
            ("division", 12, True, False, True, None),
        ]
        cls.tax_pool = [
            cls._make_tax(f"Test {i}", spec[:5], sequence=spec[5] or rng.randint(1, 5))
            for i, spec in enumerate(specs)
        ]
        children = [
            cls._make_tax("Child A", ("percent", 2.5, False, False, True), 1, use="none"),
            cls._make_tax("Child B", ("percent", 3, False, True, True), 2, use="none"),
        ]
        group = cls.AccountTax.create(
            {
                "name": "Test group",
                "amount_type": "group",
                "amount": 0.0,
                "type_tax_use": "sale",
                "company_id": cls.company.id,
                "tax_group_id": cls.tax_group.id,
                "sequence": 3,
                "children_tax_ids": [Command.set([c[0].id for c in children])],
            }
        )
        cls.tax_pool.append(
            (
                group,
                billing.Tax(
                    group.id, billing.GROUP, sequence=3, children=tuple(c[1] for c in children)
                ),
            )
        )
        cls.cash_roundings = [None] + [
            (
                cls.env["account.cash.rounding"].create(
                    {
                        "name": f"Cash {step} {method}",
                        "rounding": step,
                        "rounding_method": method,
                    }
                ),
                billing.CashRounding(_dec(step), method),
            )
            for step, method in ((0.05, "HALF-UP"), (0.10, "UP"), (1.0, "DOWN"))
        ]

    @classmethod
    def _make_tax(cls, name, spec, sequence, use="sale"):
        amount_type, amount, included, iba, affected = spec
        record = cls.AccountTax.create(
            {
                "name": name,
                "amount_type": amount_type,
                "amount": amount,
                "price_include_override": "tax_included" if included else "tax_excluded",
                "include_base_amount": iba,
                "is_base_affected": affected,
                "sequence": sequence,
                "type_tax_use": use,
                "company_id": cls.company.id,
                "tax_group_id": cls.tax_group.id,
            }
        )
        return record, cls._engine_tax(record)

    @staticmethod
    def _engine_tax(record):
        return billing.Tax(
            id=record.id,
            amount_type=record.amount_type,
            amount=_dec(record.amount),
            price_include=record.price_include,
            include_base_amount=record.include_base_amount,
            is_base_affected=record.is_base_affected,
            sequence=record.sequence,
            name=record.name,
        )

    # ------------------------------------------------------------------
    # Random orders
    # ------------------------------------------------------------------

    def _random_order(self, rng, method):
        percent_taxes = [t for t in self.tax_pool if t[1].amount_type != "fixed"]
        fixed_taxes = [t for t in self.tax_pool if t[1].amount_type == "fixed"]
        lines = []
        records = {}
        for i in range(rng.randint(1, 10)):
            chosen = rng.sample(percent_taxes, rng.randint(0, 3))
            if rng.random() < 0.25:
                chosen.append(rng.choice(fixed_taxes))
            price = _dec(rng.randint(200, 15000)) / 100
            if rng.random() < 0.15:
                price = _dec(rng.randint(20000, 1500000)) / 10000  # 4 decimals
            qty = (
                _dec(rng.randint(1, 6))
                if rng.random() < 0.85
                else _dec(rng.randint(1, 3000)) / 1000
            )
            pct = _dec(rng.choice([0, 0, 0, 5, 10, 12.5, 50]))
            off = Decimal(0)
            if rng.random() < 0.1:
                off = (qty * price * (100 - pct) / 500).quantize(Decimal("0.01"), "ROUND_DOWN")
            lines.append(
                billing.Line(
                    key=i,
                    product_id=None,
                    qty=qty,
                    price_unit=price,
                    discount_pct=pct,
                    discount_amount=off,
                    taxes=tuple(t[1] for t in chosen),
                )
            )
            records[i] = self.AccountTax.union(*[t[0] for t in chosen])
        discount = None
        roll = rng.random()
        if roll < 0.2:
            discount = billing.Discount(billing.PERCENT, _dec(rng.choice([5, 10, 12.5, 20])))
        elif roll < 0.4:
            ceiling = sum((ln.qty * ln.price_unit for ln in lines), Decimal(0)) / 10
            discount = billing.Discount(
                billing.AMOUNT,
                (ceiling * _dec(rng.random())).quantize(Decimal("0.01"), "ROUND_DOWN"),
            )
        service = None
        service_taxes = self.AccountTax
        if rng.random() < 0.3:
            service_tax = rng.choice(percent_taxes)
            service_taxes = service_tax[0]
            service = (
                billing.ServiceCharge(
                    billing.PERCENT, _dec(rng.choice([5, 10, 12.5])), taxes=(service_tax[1],)
                )
                if rng.random() < 0.7
                else billing.ServiceCharge(
                    billing.AMOUNT, _dec(rng.randint(100, 900)) / 100, taxes=(service_tax[1],)
                )
            )
        cash = rng.choice(self.cash_roundings)
        order = billing.Order(
            lines=tuple(lines),
            currency=self.engine_currency,
            rounding_method=method,
            discount=discount,
            service_charge=service,
            tip=_dec(rng.choice([0, 0, 0, 150, 275, 1000])) / 100,
            cash_rounding=cash[1] if cash else None,
        )
        return order, records, service_taxes, cash[0] if cash else None

    def _odoo_base_line(self, taxes, price_unit, quantity, discount=0.0):
        return self.AccountTax._prepare_base_line_for_taxes_computation(
            None,
            tax_ids=taxes,
            price_unit=price_unit,
            quantity=quantity,
            discount=discount,
            currency_id=self.currency,
        )

    def _odoo_lines(self, order, records):
        """Odoo base lines taxed like the engine's lines: Odoo's own discount
        when the line has only percentages, else the discounted price."""
        amounts = billing.price_amounts(order)
        order_pct = (
            order.discount.value
            if order.discount is not None and order.discount.kind == billing.PERCENT
            else None
        )
        base_lines = []
        for line, amount in zip(order.lines, amounts):
            taxes = records[line.key]
            if line.discount_amount or (order.discount is not None and order_pct is None):
                base_lines.append(
                    self._odoo_base_line(taxes, float(amount / line.qty), float(line.qty))
                )
                continue
            pct = line.discount_pct
            if order_pct is not None:
                pct = 100 - (100 - pct) * (100 - order_pct) / 100
            base_lines.append(
                self._odoo_base_line(taxes, float(line.price_unit), float(line.qty), float(pct))
            )
        return base_lines

    def _check_order(self, order, records, service_taxes, cash_record, method):
        """Problems found comparing one order; empty when Odoo agrees."""
        cur = self.currency
        problems = []

        def differ(what, odoo_value, engine_value):
            if cur.compare_amounts(odoo_value, float(engine_value)) != 0:
                problems.append(f"{what}: odoo {odoo_value!r} engine {engine_value}")

        bill = billing.compute_bill(order)
        base_lines = self._odoo_lines(order, records)
        self.AccountTax._add_tax_details_in_base_lines(base_lines, self.company)
        if order.service_charge is not None:
            products_untaxed = cur.round(
                sum(bl["tax_details"]["total_excluded_currency"] for bl in base_lines)
            )
            charge = order.service_charge
            price = (
                cur.round(products_untaxed * float(charge.value) / 100)
                if charge.kind == billing.PERCENT
                else float(charge.value)
            )
            service_line = self._odoo_base_line(service_taxes, price, 1.0)
            self.AccountTax._add_tax_details_in_base_line(service_line, self.company)
            base_lines.append(service_line)

        # The POS UI totals (pos_order.js get_total_without_tax / get_total_tax).
        raw_untaxed = sum(bl["tax_details"]["total_excluded_currency"] for bl in base_lines)
        raw_tax_per_tax = {}
        raw_line_tax = 0.0
        for bl in base_lines:
            details = bl["tax_details"]
            raw_line_tax += details["total_included_currency"] - details["total_excluded_currency"]
            for tax_data in details["taxes_data"]:
                tax_id = tax_data["tax"].id
                raw_tax_per_tax[tax_id] = (
                    raw_tax_per_tax.get(tax_id, 0.0) + tax_data["tax_amount_currency"]
                )
        if method == billing.ROUND_GLOBALLY:
            ui_tax = sum(cur.round(amount) for amount in raw_tax_per_tax.values())
        else:
            ui_tax = cur.round(raw_line_tax)
        ui_untaxed = cur.round(raw_untaxed)
        differ("untaxed", ui_untaxed, bill.untaxed)
        differ("tax", ui_tax, bill.tax)
        differ("total", ui_untaxed + ui_tax + float(order.tip), bill.total)

        # Accounting: per-tax totals and per-line amounts after Odoo's rounding.
        self.AccountTax._round_base_lines_tax_details(base_lines, self.company)
        per_tax = {}
        for bl in base_lines:
            for tax_data in bl["tax_details"]["taxes_data"]:
                sums = per_tax.setdefault(tax_data["tax"].id, [0.0, 0.0])
                sums[0] += tax_data["base_amount_currency"]
                sums[1] += tax_data["tax_amount_currency"]
        if set(per_tax) != {t.tax_id for t in bill.taxes}:
            problems.append(
                f"taxes: odoo {sorted(per_tax)} engine {[t.tax_id for t in bill.taxes]}"
            )
        for total in bill.taxes:
            base, amount = per_tax.get(total.tax_id, (0.0, 0.0))
            differ(f"tax {total.tax_id} base", base, total.base)
            differ(f"tax {total.tax_id} amount", amount, total.amount)
        for index, (bl, line) in enumerate(zip(base_lines, bill.lines)):
            odoo_taxes = [
                (d["tax"].id, d["tax_amount_currency"]) for d in bl["tax_details"]["taxes_data"]
            ]
            if [t for t, _a in odoo_taxes] != [t.tax_id for t in line.taxes]:
                problems.append(f"line {index} taxes: odoo {odoo_taxes} engine {line.taxes}")
                continue
            for (tax_id, amount), engine in zip(odoo_taxes, line.taxes):
                differ(f"line {index} tax {tax_id}", amount, engine.amount)

        # Cash rounding as pos.order._get_rounded_amount does it.
        if cash_record:
            differ("total due", cur.round(cash_record.round(float(bill.total))), bill.total_due)
        return problems

    def _check_compute_all(self, order, records):
        """compute_all per product line against billing.compute_taxes."""
        problems = []
        cur = self.currency
        for line, amount in zip(order.lines, billing.price_amounts(order)):
            price = float(amount / line.qty)
            odoo = records[line.key].compute_all(price, cur, float(line.qty))
            engine = billing.compute_taxes(
                line.taxes,
                amount / line.qty,
                line.qty,
                currency=self.engine_currency,
                rounding_method=order.rounding_method,
            )
            pairs = [
                ("total_excluded", odoo["total_excluded"], engine.total_excluded),
                ("total_included", odoo["total_included"], engine.total_included),
            ]
            pairs += [
                (f"tax {t['id']}", t["amount"], e.amount)
                for t, e in zip(odoo["taxes"], engine.taxes)
            ]
            for what, odoo_value, engine_value in pairs:
                if cur.compare_amounts(odoo_value, float(engine_value)) != 0:
                    problems.append(
                        f"line {line.key} {what}: odoo {odoo_value} engine {engine_value}"
                    )
        return problems

    def test_random_orders_agree_with_account_tax(self):
        rng = random.Random(SEED)
        failures = []
        checked = 0
        for method in (billing.ROUND_PER_LINE, billing.ROUND_GLOBALLY):
            self.company.tax_calculation_rounding_method = method
            for number in range(ORDERS_PER_METHOD):
                order, records, service_taxes, cash = self._random_order(rng, method)
                problems = self._check_order(order, records, service_taxes, cash, method)
                if number % 5 == 0:
                    problems += self._check_compute_all(order, records)
                checked += 1
                if problems:
                    failures.append((method, number, order, problems))
        self.assertEqual(checked, 2 * ORDERS_PER_METHOD)
        if failures:
            self.fail(
                "%d of %d orders disagree with Odoo; first ones:\n%s"
                % (
                    len(failures),
                    checked,
                    "\n".join(f"{m} #{n}: {p[:4]}\n  {o}" for m, n, o, p in failures[:5]),
                )
            )


@tagged("post_install", "-at_install")
class TestBillingAgainstPosOrder(PosApiFactories, TransactionCase):
    """Real pos.order records: the amounts Odoo computes and stores."""

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.env = cls.env(
            user=cls.env.ref("base.user_admin"),
            context=dict(cls.env.context, tracking_disable=True),
        )
        # The addon's demo restaurant, else any restaurant POS (Odoo's demo).
        cls.config = cls.env.ref(DEMO_CONFIG_XMLID, raise_if_not_found=False) or cls.env[
            "pos.config"
        ].search([("module_pos_restaurant", "=", True)], limit=1)
        cls.currency = cls.config.currency_id
        cls.company = cls.config.company_id
        cls.tax_group = cls.env["account.tax.group"].create(
            {"name": "Billing engine test", "company_id": cls.company.id}
        )
        cls.taxes = [
            cls._tax("VAT 21 incl", ("percent", 21, True, False)),
            cls._tax("VAT 10", ("percent", 10, False, False)),
            cls._tax("City 3.5", ("percent", 3.5, False, True), sequence=0),
            cls._tax("Deposit", ("fixed", 0.15, True, False)),
            cls._tax("Div 8", ("division", 8, False, False)),
        ]
        cls.cash = cls.env["account.cash.rounding"].create(
            {
                "name": "Billing test 0.05",
                "rounding": 0.05,
                "rounding_method": "HALF-UP",
            }
        )
        cls.config.write(
            {
                "cash_rounding": True,
                "rounding_method": cls.cash.id,
                "only_round_cash_method": False,
            }
        )
        cls.session = cls._open_session()
        cls.product = cls.env["product.product"].search(
            [("available_in_pos", "=", True), ("type", "!=", "combo")], limit=1
        )

    @classmethod
    def _tax(cls, name, spec, sequence=1):
        amount_type, amount, included, iba = spec
        return cls.env["account.tax"].create(
            {
                "name": name,
                "amount_type": amount_type,
                "amount": amount,
                "price_include_override": "tax_included" if included else "tax_excluded",
                "include_base_amount": iba,
                "sequence": sequence,
                "company_id": cls.company.id,
                "tax_group_id": cls.tax_group.id,
            }
        )

    def _make_order(self, specs):
        """A pos.order as the backend computes it: line amounts from
        _compute_amount_line_all, order amounts from _compute_prices."""
        order = self.env["pos.order"].create(
            {
                "session_id": self.session.id,
                "fiscal_position_id": False,
                "amount_tax": 0.0,
                "amount_total": 0.0,
                "amount_paid": 0.0,
                "amount_return": 0.0,
                "lines": [
                    Command.create(
                        {
                            "product_id": self.product.id,
                            "qty": float(qty),
                            "price_unit": float(price),
                            "discount": float(pct),
                            "tax_ids": [Command.set(taxes.ids)],
                            "price_subtotal": 0.0,
                            "price_subtotal_incl": 0.0,
                        }
                    )
                    for qty, price, pct, taxes in specs
                ],
            }
        )
        for line in order.lines:
            line.write(line._compute_amount_line_all())
        order._compute_prices()
        return order

    def test_pos_orders_store_the_engine_amounts(self):
        rng = random.Random(SEED + 1)
        cur = self.currency
        for method in (billing.ROUND_PER_LINE, billing.ROUND_GLOBALLY):
            self.company.tax_calculation_rounding_method = method
            for _number in range(15):
                specs = []
                for _i in range(rng.randint(1, 6)):
                    taxes = self.env["account.tax"].union(
                        *rng.sample(self.taxes, rng.randint(0, 3))
                    )
                    specs.append(
                        (
                            _dec(rng.randint(1, 5)),
                            _dec(rng.randint(150, 9000)) / 100,
                            _dec(rng.choice([0, 0, 10, 15])),
                            taxes,
                        )
                    )
                order = self._make_order(specs)
                lines = tuple(
                    billing.Line(
                        key=i,
                        product_id=self.product.id,
                        qty=qty,
                        price_unit=price,
                        discount_pct=pct,
                        taxes=tuple(TestBillingAgainstAccountTax._engine_tax(t) for t in taxes),
                    )
                    for i, (qty, price, pct, taxes) in enumerate(specs)
                )
                bill = billing.compute_bill(
                    billing.Order(
                        lines=lines,
                        currency=billing.Currency(_dec(cur.rounding)),
                        rounding_method=method,
                        cash_rounding=billing.CashRounding(Decimal("0.05"), "HALF-UP"),
                    )
                )
                # Per line: price_subtotal / price_subtotal_incl (compute_all).
                per_line = [
                    billing.compute_taxes(
                        ln.taxes,
                        ln.price_unit,
                        ln.qty,
                        currency=bill.currency,
                        rounding_method=method,
                        discount_pct=ln.discount_pct,
                    )
                    for ln in lines
                ]
                for record, res in zip(order.lines, per_line):
                    self.assertEqual(
                        cur.compare_amounts(record.price_subtotal, float(res.total_excluded)), 0
                    )
                    self.assertEqual(
                        cur.compare_amounts(record.price_subtotal_incl, float(res.total_included)),
                        0,
                    )
                # Order: _compute_prices sums the per-line compute_all taxes.
                backend_tax = sum((t.amount for res in per_line for t in res.taxes), Decimal(0))
                backend_untaxed = sum((res.total_excluded for res in per_line), Decimal(0))
                self.assertEqual(cur.compare_amounts(order.amount_tax, float(backend_tax)), 0)
                self.assertEqual(
                    cur.compare_amounts(order.amount_total, float(backend_tax + backend_untaxed)), 0
                )
                if method == billing.ROUND_PER_LINE:
                    # Every Odoo path agrees: the bill is what pos.order stores.
                    self.assertEqual(cur.compare_amounts(order.amount_tax, float(bill.tax)), 0)
                    self.assertEqual(cur.compare_amounts(order.amount_total, float(bill.total)), 0)
                    self.assertEqual(
                        cur.compare_amounts(
                            order._get_rounded_amount(order.amount_total), float(bill.total_due)
                        ),
                        0,
                    )
                else:
                    # Rounding globally, pos.order._compute_prices and the POS UI
                    # (the bill) may differ by the per-line rounding of each tax.
                    n_taxes = sum(len(res.taxes) for res in per_line)
                    self.assertLessEqual(
                        abs(_dec(order.amount_tax) - bill.tax), Decimal("0.005") * (n_taxes + 1)
                    )
