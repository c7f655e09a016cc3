import re

from odoo.tests import tagged

from ..pos_core import lifecycle as lc
from ..pos_core import schemas as s
from ..pos_core.exceptions import Conflict, InvalidInput
from .common import PosApiCommon


@tagged("post_install", "-at_install")
class TestLifecycle(PosApiCommon):
    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.session = cls._open_session()

    def _draft_order(self, lines=None):
        products = self._pos_products(2)
        payload = self._ui_order_payload(
            self.session, lines or [(products[0], 1), (products[1], 2)], paid=False
        )
        self.env["pos.order"].sync_from_ui([payload])
        return self.env["pos.order"].search([("uuid", "=", payload["uuid"])])

    def _pay(self, order):
        order.add_payment(
            {
                "pos_order_id": order.id,
                "amount": order.amount_total,
                "payment_method_id": self.cash_method.id,
            }
        )

    def test_pos_ui_orders_enter_the_lifecycle(self):
        products = self._pos_products(2)
        payload = self._ui_order_payload(self.session, [(products[0], 1), (products[1], 1)])
        self.env["pos.order"].sync_from_ui([payload])
        order = self.env["pos.order"].search([("uuid", "=", payload["uuid"])])
        # Paid, and printed for the kitchen (pay first: the kitchen has it).
        self.assertEqual((order.state, order.api_state), ("paid", "preparing"))
        self.assertEqual(order.api_flow, self.config.api_kitchen_flow)
        history = order.api_state_history_ids.sorted("id")
        self.assertEqual(
            [(row.from_state, row.to_state, row.source) for row in history],
            [("draft", "paid", "pos_ui"), ("paid", "preparing", "pos_ui")],
        )
        self.assertTrue(order.api_ticket_ids)
        # From there the kitchen bumps it like any other order.
        order._api_transition(lc.READY)
        self.assertEqual(order.api_state, "ready")

    def test_illegal_transition_raises_and_writes_nothing(self):
        order = self._draft_order()
        with self.assertRaises(lc.IllegalTransition) as caught:
            order._api_transition(lc.READY)
        self.assertEqual(caught.exception.status, 409)
        self.assertEqual(order.api_state, "draft")
        self.assertFalse(order.api_state_history_ids)
        self.assertFalse(order.kitchen_ready_at)

    def test_cancel_maps_to_odoo_and_paid_orders_are_refunded(self):
        order = self._draft_order()
        order._api_transition(lc.VALIDATED)
        order._api_transition(lc.CANCEL, reason="guest left")
        self.assertEqual((order.api_state, order.state), ("cancel", "cancel"))
        self.assertEqual(order.api_state_history_ids[-1].reason, "guest left")
        paid = self._draft_order()
        paid._api_transition(lc.VALIDATED)
        self._pay(paid)
        paid._api_transition(lc.PAID)
        self.assertEqual(paid.state, "paid")
        paid._api_transition(lc.CANCEL, reason="wrong table")
        refund = paid.lines.refund_orderline_ids.order_id
        self.assertEqual(len(refund), 1)
        self.assertEqual((refund.state, refund.api_state), ("paid", "paid"))
        self.assertAlmostEqual(refund.amount_total, -paid.amount_total, places=2)
        self.assertAlmostEqual(sum(refund.payment_ids.mapped("amount")), -paid.amount_paid, 2)
        # Odoo keeps the original paid; the lifecycle says cancelled by refund.
        self.assertEqual((paid.api_state, paid.state, paid.api_refunded), ("cancel", "paid", True))
        paid.write({"state": "done"})  # as session closing does
        self.assertEqual(paid.api_state, "cancel")

    def test_dine_in_cooks_before_payment(self):
        self.config.api_kitchen_flow = lc.DINE_IN
        order = self._draft_order()
        self.assertEqual(order.api_flow, lc.DINE_IN)
        for state in (lc.VALIDATED, lc.PREPARING, lc.READY, lc.SERVED):
            order._api_transition(state)
            self.assertEqual(order.state, "draft", "the kitchen works before payment")
        self.assertTrue(order.served_at)
        with self.assertRaises(Conflict):
            order._api_transition(lc.PAID)  # not paid yet
        self._pay(order)
        order._api_transition(lc.PAID)
        order._api_transition(lc.DONE)
        self.assertEqual((order.api_state, order.state), ("done", "paid"))
        self.assertEqual(len(order.api_state_history_ids), 6)

    def test_backend_payment_moves_the_lifecycle(self):
        order = self._draft_order()
        self._pay(order)
        order.action_pos_order_paid()
        self.assertEqual(order.api_state, "paid")
        self.assertEqual(order.api_state_history_ids.source, "backend")

    def test_history_is_append_only(self):
        order = self._draft_order()
        order._api_transition(lc.VALIDATED)
        with self.assertRaises(Exception):  # noqa: B017 - UserError from write
            order.api_state_history_ids.write({"to_state": "done"})


@tagged("post_install", "-at_install")
class TestValidation(PosApiCommon):
    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.session = cls._open_session()

    def _draft(self, lines):
        payload = self._ui_order_payload(self.session, lines, paid=False)
        self.env["pos.order"].sync_from_ui([payload])
        return self.env["pos.order"].search([("uuid", "=", payload["uuid"])])

    def _problems(self, order):
        with self.assertRaises(InvalidInput) as caught:
            order._api_transition(lc.VALIDATED)
        self.assertEqual(order.api_state, "draft")
        return {problem["code"] for problem in caught.exception.details["problems"]}

    def test_valid_order_validates(self):
        order = self._draft([(self._pos_products(1), 2)])
        order._api_transition(lc.VALIDATED)
        self.assertEqual(order.api_state, "validated")

    def test_unsellable_product_wrong_price_and_bad_quantity_are_refused(self):
        product = self._pos_products(1)
        order = self._draft([(product, 1)])
        order.lines.price_unit += 1
        self.assertEqual(self._problems(order), {"price_mismatch"})
        order.lines.price_unit -= 1
        order.lines.qty = 0
        self.assertIn("quantity_not_positive", self._problems(order))
        order.lines.qty = 1
        product.available_in_pos = False
        self.assertEqual(self._problems(order), {"product_not_sellable"})

    def test_manager_price_override_is_accepted(self):
        order = self._draft([(self._pos_products(1), 1)])
        order.lines.write({"price_unit": 0.5, "api_price_override": True})
        order._api_transition(lc.VALIDATED)
        self.assertEqual(order.api_state, "validated")

    def test_stock_is_checked_when_the_config_asks(self):
        product = self.env["product.product"].create(
            {
                "name": "Truffle",
                "is_storable": True,
                "available_in_pos": True,
                "list_price": 9,
                "pos_categ_ids": [(6, 0, self.config.iface_available_categ_ids[:1].ids)],
            }
        )
        order = self._draft([(product, 2)])
        self.config.api_check_stock = True
        self.assertEqual(self._problems(order), {"insufficient_stock"})
        location = self.config.picking_type_id.default_location_src_id
        self.env["stock.quant"]._update_available_quantity(product, location, 5)
        order._api_transition(lc.VALIDATED)
        self.assertEqual(order.api_state, "validated")


@tagged("post_install", "-at_install")
class TestOdooFlowStillWorks(PosApiCommon):
    def test_pos_ui_and_api_orders_paid_and_session_closed(self):
        session = self._open_session()
        products = self._pos_products(3)
        payload = self._ui_order_payload(session, [(products[0], 1), (products[1], 2)])
        self.env["pos.order"].sync_from_ui([payload])
        ui_order = self.env["pos.order"].search([("uuid", "=", payload["uuid"])])
        self.assertEqual(ui_order.state, "paid")
        self.assertTrue(ui_order.picking_ids, "stock is updated in real time for UI orders")

        device = self._create_device("cashier")
        body = s.OrderCreate.model_validate(self._order_body([(products[2], 1)]))
        draft = self.env["pos.order"]._api_create(body, device)
        paid_body = s.OrderCreate.model_validate(
            self._order_body(
                [(products[2], 1)],
                state="paid",
                pay=[(self.cash_method, f"{draft.amount_total:.2f}")],
            )
        )
        draft.action_pos_order_cancel()
        api_order = self.env["pos.order"]._api_create(paid_body, device)
        self.assertEqual((api_order.state, api_order.api_state), ("paid", "paid"))
        self.assertTrue(api_order.api_followup_pending)
        self.assertFalse(api_order.picking_ids)

        # Drafts a device left open elsewhere would block the closing.
        session.order_ids.filtered(lambda order: order.state == "draft").action_pos_order_cancel()
        result = session.action_pos_session_closing_control()
        self.assertNotIsInstance(result, dict, result)
        self.assertEqual(session.state, "closed")
        self.assertEqual(session.move_id.state, "posted")
        self.assertFalse(api_order.api_followup_pending, "closing runs the pending follow-up")
        self.assertTrue(api_order.picking_ids)
        self.assertEqual(api_order.picking_ids.move_ids.product_id, products[2])
        self.assertEqual({ui_order.state, api_order.state}, {"done"})
        # Odoo moving orders to done at closing keeps the lifecycle where it was.
        self.assertEqual(api_order.api_state, "paid")

    def test_api_order_after_followup_is_what_sync_from_ui_makes(self):
        """The batched follow-up (picking, costs, chatter) leaves an API order
        as the stock flow leaves the same order pushed by the POS UI."""
        env = self.env(
            context={key: val for key, val in self.env.context.items() if key != "tracking_disable"}
        )
        session = self._open_session()
        products = self._pos_products(2)
        lines = [(products[0], 1), (products[1], 2)]
        payload = self._ui_order_payload(session, lines)
        env["pos.order"].sync_from_ui([payload])
        ui_order = env["pos.order"].search([("uuid", "=", payload["uuid"])])
        device = self._create_device("cashier").with_env(env)
        self.assertEqual(device.user_id, env.user, "both orders are made by the same user")
        body = s.OrderCreate.model_validate(
            self._order_body(
                lines, state="paid", pay=[(self.cash_method, f"{ui_order.amount_total:.2f}")]
            )
        )
        api_order = env["pos.order"]._api_create(body, device)
        self.assertTrue(api_order.api_followup_pending)
        self.assertTrue(api_order.api_chatter_pending)
        self.assertFalse(api_order.message_ids, "the chatter waits for the follow-up")
        self.assertFalse(api_order.picking_ids, "the picking waits for the follow-up")
        api_order._api_run_followup()  # what the cron runs for each pending order
        self.assertFalse(api_order.api_followup_pending or api_order.api_chatter_pending)

        def unnumbered(name):
            return re.sub(r"\d+", "#", name or "")

        def shape(order):
            return {
                "state": (order.state, order.company_id, order.session_id, order.user_id),
                "amounts": tuple(
                    order.currency_id.round(amount)
                    for amount in (
                        order.amount_total,
                        order.amount_tax,
                        order.amount_paid,
                        order.amount_return,
                    )
                ),
                "contact": (order.email, order.mobile),
                "lines": sorted(
                    (
                        line.product_id.id,
                        line.qty,
                        line.price_unit,
                        line.price_subtotal,
                        line.price_subtotal_incl,
                        tuple(line.tax_ids.ids),
                        line.company_id.id,
                        unnumbered(line.name),
                        line.total_cost,
                        line.is_total_cost_computed,
                    )
                    for line in order.lines
                ),
                "payments": [
                    (pay.amount, pay.payment_method_id, pay.company_id, pay.session_id)
                    for pay in order.payment_ids
                ],
                "picking": (
                    order.picking_ids.picking_type_id,
                    order.picking_ids.state,
                    order.picking_ids.location_id,
                    order.picking_ids.location_dest_id,
                ),
                "moves": sorted(
                    (move.product_id.id, move.product_uom_qty, move.quantity, move.state)
                    for move in order.picking_ids.move_ids
                ),
                "followers": order.message_follower_ids.partner_id,
                "messages": [
                    (message.body, message.author_id, message.message_type, message.subtype_id)
                    for message in order.message_ids
                ],
            }

        self.maxDiff = None
        self.assertEqual(shape(api_order), shape(ui_order))
        self.assertTrue(ui_order.message_ids, "the comparison covers the chatter")
        self.assertEqual(api_order.message_ids.date, api_order.create_date, "dated as at creation")
        # Lines are numbered from the config's line sequence, one after the
        # other, as pos.order.line's create numbers them.
        numbers = [int(re.search(r"(\d+)\D*$", line.name).group(1)) for line in api_order.lines]
        self.assertEqual(numbers, list(range(numbers[0], numbers[0] + len(numbers))))
        ui_numbers = [int(re.search(r"(\d+)\D*$", line.name).group(1)) for line in ui_order.lines]
        self.assertLess(max(ui_numbers), numbers[0], "the same sequence, drawn later")

    def test_message_before_the_followup_comes_after_the_creation_message(self):
        env = self.env(
            context={key: val for key, val in self.env.context.items() if key != "tracking_disable"}
        )
        self._open_session()
        products = self._pos_products(1)
        device = self._create_device("cashier").with_env(env)
        draft = env["pos.order"]._api_create(
            s.OrderCreate.model_validate(self._order_body([(products, 1)])), device
        )
        self.assertFalse(draft.api_chatter_pending, "a draft gets its chatter at once")
        self.assertEqual(len(draft.message_ids), 1)
        self.assertIn(env.user.partner_id, draft.message_partner_ids)
        body = self._order_body(
            [(products, 1)], state="paid", pay=[(self.cash_method, f"{draft.amount_total:.2f}")]
        )
        order = env["pos.order"]._api_create(s.OrderCreate.model_validate(body), device)
        self.assertTrue(order.api_chatter_pending)
        self.assertFalse(order.message_ids)
        order.message_post(body="Moved to the terrace")
        self.assertFalse(order.api_chatter_pending)
        first, second = order.message_ids.sorted("id")
        self.assertEqual(first.body, draft.message_ids.body, "the creation message comes first")
        self.assertIn("Moved to the terrace", second.body)
        self.assertIn(env.user.partner_id, order.message_partner_ids)
        order._api_run_followup()
        self.assertEqual(len(order.message_ids), 2, "the follow-up does not log it twice")

    def test_done_order_is_invoiced_in_both_states(self):
        session = self._open_session()
        partner = self.env["res.partner"].create({"name": "Invoice Guest"})
        products = self._pos_products(1)
        payload = self._ui_order_payload(session, [(products, 1)])
        payload["partner_id"] = partner.id
        self.env["pos.order"].sync_from_ui([payload])
        order = self.env["pos.order"].search([("uuid", "=", payload["uuid"])])
        self.assertEqual(order.api_state, lc.PREPARING)  # paid, printed for the kitchen
        order._api_transition(lc.READY)
        order._api_transition(lc.DONE)
        order._api_transition(lc.INVOICED)
        self.assertEqual((order.api_state, order.state), ("invoiced", "invoiced"))
        self.assertTrue(order.account_move)
