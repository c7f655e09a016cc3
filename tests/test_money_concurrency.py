"""Money never leaves beyond what came in, under real concurrent transactions.

Each thread runs the model method in a transaction of its own (its own
registry cursor, committed), with a snapshot taken before any other thread
commits, and retries on serialization failures as Odoo's request loop does.
Data is committed, so every test cleans up after itself.
"""

import random
import threading
import time
import uuid
from decimal import Decimal

from odoo import api
from odoo.service.model import PG_CONCURRENCY_EXCEPTIONS_TO_RETRY
from odoo.tests import TransactionCase, tagged

from ..pos_core import schemas as s
from ..pos_core.exceptions import PosApiError
from .common import DEMO_CONFIG_XMLID, PosApiFactories
from .threads import thread_env

K = 10
MAX_TRIES = 30


@tagged("post_install", "-at_install")
class TestMoneyConcurrency(PosApiFactories, TransactionCase):
    def setUp(self):
        super().setUp()
        self.admin_id = self.env.ref("base.user_admin").id
        self.order_ids = []
        with self.registry.cursor() as cr:
            env = api.Environment(cr, self.admin_id, {"tracking_disable": True})
            config = env.ref(DEMO_CONFIG_XMLID)
            self._open_session(config)
            self.device_id = self._create_device("cashier", config).id
            product = env["product.product"].search(
                [
                    *config._get_available_product_domain(),
                    ("type", "!=", "combo"),
                    ("list_price", ">", 1),
                ],
                limit=1,
            )
            self.product_id = product.id
            self.card_id = config.payment_method_ids.filtered(lambda m: not m.is_cash_count)[:1].id
        self.addCleanup(self._cleanup)

    def _cleanup(self):
        with self.registry.cursor() as cr:
            env = api.Environment(cr, api.SUPERUSER_ID, {"tracking_disable": True})
            orders = env["pos.order"].browse(self.order_ids).exists()
            orders |= orders.lines.refund_orderline_ids.order_id
            env["pos.api.authorization"].search([("order_id", "in", orders.ids)]).unlink()
            orders.payment_ids.unlink()
            orders.picking_ids.unlink()
            orders.write({"state": "cancel"})
            orders.unlink()
            # Audit rows keep referring to the device: archive it, as in production.
            env["pos.api.device"].browse(self.device_id).active = False

    # ------------------------------------------------------------------
    # helpers
    # ------------------------------------------------------------------
    def _env(self, cr):
        return thread_env(self.registry, cr, self.admin_id, {"tracking_disable": True})

    def _committed(self, func):
        """``func(env)`` in a transaction of its own, committed."""
        with self.registry.cursor() as cr:
            return func(self._env(cr))

    def _in_parallel(self, func):
        """``func(env, device, index)`` in K concurrent transactions whose snapshots
        all predate the first commit; serialization failures are retried on
        a fresh transaction, as Odoo retries a request. Returns each call's
        result, or the PosApiError (or other exception) it ended with."""
        barrier = threading.Barrier(K)
        results = [None] * K

        def run(index):
            for attempt in range(MAX_TRIES):
                try:
                    with self.registry.cursor() as cr:
                        env = self._env(cr)
                        device = env["pos.api.device"].browse(self.device_id)
                        device.fetch(["config_id"])  # the snapshot starts here
                        if attempt == 0:
                            barrier.wait(timeout=60)
                        results[index] = func(env, device, index)
                    return
                except PG_CONCURRENCY_EXCEPTIONS_TO_RETRY:
                    time.sleep(random.uniform(0.0, 0.05 * (attempt + 1)))
                except Exception as exc:  # noqa: BLE001 - the outcome is what is tested
                    results[index] = exc
                    return
            results[index] = RuntimeError("too many serialization failures")

        threads = [threading.Thread(target=run, args=(i,)) for i in range(K)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=300)
        unexpected = [
            result
            for result in results
            if isinstance(result, Exception) and not isinstance(result, PosApiError)
        ]
        self.assertFalse(unexpected, results)
        return results

    def _create(self, qty=2, paid=True):
        def create(env):
            device = env["pos.api.device"].browse(self.device_id)
            body = {
                "uuid": str(uuid.uuid4()),
                "lines": [{"product_id": self.product_id, "qty": str(qty)}],
            }
            order = env["pos.order"]._api_create(s.OrderCreate.model_validate(body), device)
            self.order_ids.append(order.id)
            if paid:
                self._pay(order, device, order.amount_total)
                self.assertEqual(order.state, "paid")
            return order.id, order.lines.uuid, order.amount_total

        return self._committed(create)

    def _tenders(self, env, amount, **extra):
        currency = env["pos.api.device"].browse(self.device_id).config_id.currency_id
        return s.PaymentsIn.model_validate(
            {
                "payments": [
                    {
                        "payment_method_id": self.card_id,
                        "amount": str(Decimal(str(currency.round(amount)))),
                        **extra,
                    }
                ]
            }
        ).payments

    def _pay(self, order, device, amount, **extra):
        order._api_pay(self._tenders(order.env, amount, **extra), Decimal(0), device)

    # ------------------------------------------------------------------
    # refunds
    # ------------------------------------------------------------------
    def test_concurrent_partial_refunds_never_refund_more_than_sold_or_paid(self):
        order_id, line_uuid, paid = self._create(qty=2)

        def refund(env, device, _index):
            body = s.RefundIn.model_validate(
                {
                    "payment_method_id": self.card_id,
                    "lines": [{"line_uuid": line_uuid, "qty": "1"}],
                }
            )
            order = env["pos.order"].browse(order_id)
            return order._api_refund(body.lines, body.payment_method_id, None, device).id

        results = self._in_parallel(refund)
        accepted = [result for result in results if isinstance(result, int)]
        refused = [result for result in results if isinstance(result, PosApiError)]
        self.assertTrue(accepted, results)
        self.assertEqual(
            {error.code for error in refused} - {"refund_exceeds_paid", "nothing_to_refund"},
            set(),
        )

        def totals(env):
            order = env["pos.order"].browse(order_id)
            refunds = order.lines.refund_orderline_ids.order_id.filtered(
                lambda refund: refund.state != "draft"
            )
            return (
                -sum(refunds.lines.mapped("qty")),
                -sum(refunds.payment_ids.mapped("amount")),
                sorted(refunds.ids),
                order.api_state,
            )

        refunded_qty, refunded_amount, refund_ids, state = self._committed(totals)
        self.assertLessEqual(refunded_qty, 2.0, "more was refunded than was sold")
        self.assertLessEqual(refunded_amount, paid + 0.001, "more was refunded than was paid")
        self.assertEqual(refund_ids, sorted(accepted))
        self.assertEqual(len(accepted), 2, "both units are refundable, once each")
        self.assertEqual(state, "cancel", "refunded in full")

    # ------------------------------------------------------------------
    # payments and captures
    # ------------------------------------------------------------------
    def test_concurrent_authorizations_with_different_keys_never_hold_more_than_due(self):
        order_id, _line_uuid, total = self._create(qty=2, paid=False)

        def authorize(env, device, _index):
            order = env["pos.order"].browse(order_id)
            self._pay(order, device, total * 0.6, authorize_only=True)
            return True

        results = self._in_parallel(authorize)
        self.assertEqual(results.count(True), 1, results)
        self.assertEqual(
            {result.code for result in results if isinstance(result, PosApiError)},
            {"overpayment"},
        )

        def held(env):
            return sum(
                env["pos.api.authorization"]
                .search([("order_id", "=", order_id), ("state", "=", "authorized")])
                .mapped("amount")
            )

        self.assertLessEqual(self._committed(held), total + 0.001)

    def test_concurrent_payments_and_captures_never_pay_more_than_the_total(self):
        order_id, _line_uuid, total = self._create(qty=2, paid=False)

        def authorizations(env):
            # Two holds that together exceed the bill (as a terminal may
            # report them): each capture must check what is still due.
            order = env["pos.order"].browse(order_id)
            return (
                env["pos.api.authorization"]
                .sudo()
                .create(
                    [
                        {
                            "company_id": order.company_id.id,
                            "order_id": order.id,
                            "payment_method_id": self.card_id,
                            "amount": order.currency_id.round(total * 0.6),
                        }
                        for _index in range(3)
                    ]
                )
                .ids
            )

        authorization_ids = self._committed(authorizations)

        def pay_or_capture(env, device, index):
            if index < len(authorization_ids):
                authorization = env["pos.api.authorization"].browse(authorization_ids[index])
                authorization._capture(device)
            else:
                self._pay(env["pos.order"].browse(order_id), device, total * 0.3)
            return True

        results = self._in_parallel(pay_or_capture)
        self.assertIn(True, results)

        def paid(env):
            order = env["pos.order"].browse(order_id)
            return sum(order.payment_ids.mapped("amount")), order.amount_paid

        amount, amount_paid = self._committed(paid)
        self.assertLessEqual(amount, total + 0.001, results)
        self.assertAlmostEqual(amount, amount_paid, places=2)
