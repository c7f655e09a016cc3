"""The payment audit trail: coverage of Odoo's own payments, the chain, the
refusals of the ORM and of PostgreSQL, and verification of tampered rows."""

import threading
import uuid
from decimal import Decimal

import psycopg2

from odoo import api, fields
from odoo.exceptions import AccessError, UserError
from odoo.tests import TransactionCase, tagged
from odoo.tools import SQL, mute_logger

from ..pos_core import audit
from .common import PosApiCommon, PosApiHttpCommon
from .threads import thread_env

TABLE = "pos_payment_audit"
ROW_TRIGGER, TRUNCATE_TRIGGER = audit.trigger_names(TABLE)


class AuditFactories:
    def _event(self, company=None, **values):
        return {
            "company_id": (company or self.env.company).id,
            "event": audit.CAPTURED,
            "amount": Decimal("10.50"),
            "payment_method_id": self.cash_method.id,
            "order_state_before": "validated",
            "order_state_after": "paid",
            **values,
        }

    def _chain_of(self, company):
        return self.env["pos.payment.audit"].search([("company_id", "=", company.id)])

    def _rows_of_order(self, order):
        return self.env["pos.payment.audit"].search([("order_res_id", "=", order.id)])

    def _disable_trigger(self):
        self.env.cr.execute(
            SQL(
                "ALTER TABLE %s DISABLE TRIGGER %s",
                SQL.identifier(TABLE),
                SQL.identifier(ROW_TRIGGER),
            )
        )
        self.addCleanup(
            self.env.cr.execute,
            SQL(
                "ALTER TABLE %s ENABLE TRIGGER %s",
                SQL.identifier(TABLE),
                SQL.identifier(ROW_TRIGGER),
            ),
        )


@tagged("post_install", "-at_install")
class TestPaymentAudit(AuditFactories, PosApiCommon):
    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.session = cls._open_session()
        cls.Audit = cls.env["pos.payment.audit"]

    def _sync(self, payload):
        self.env["pos.order"].sync_from_ui([payload])
        self.env.cr.precommit.run()  # audit rows are appended when the transaction commits
        return self.env["pos.order"].search([("uuid", "=", payload["uuid"])])

    # ------------------------------------------------------------------
    # Coverage: payments taken in the POS UI, change, voids, the API context
    # ------------------------------------------------------------------
    def test_pos_ui_payment_is_audited_with_its_content(self):
        products = self._pos_products(2)
        payload = self._ui_order_payload(self.session, [(products[0], 1), (products[1], 2)])
        head = self._chain_of(self.env.company)[-1:]
        order = self._sync(payload)
        payment = order.payment_ids
        row = self._rows_of_order(order)
        self.assertEqual(len(row), 1)
        self.assertEqual(
            (row.event, row.payment_id, row.order_id, row.order_name),
            (audit.CAPTURED, payment, order, order.pos_reference),
        )
        self.assertEqual(row.company_id, order.company_id)
        self.assertAlmostEqual(row.amount, order.amount_total)
        self.assertEqual(row.currency_id, order.currency_id)
        self.assertEqual(row.payment_method_id, self.cash_method)
        self.assertEqual(row.actor_user_id, self.env.user)
        self.assertFalse(row.actor_device_id)
        self.assertFalse(row.idempotency_key)
        self.assertFalse(row.is_change)
        self.assertEqual((row.order_state_before, row.order_state_after), ("draft", "paid"))
        self.assertEqual(row.sequence, (head.sequence or 0) + 1)
        self.assertEqual(row.previous_hash, head.hash or audit.GENESIS_HASH)
        report = self.Audit._verify()
        self.assertTrue(report["ok"], report)
        self.assertGreaterEqual(report["checked"], 1)

    def test_change_given_back_is_a_negative_captured_amount(self):
        products = self._pos_products(1)
        payload = self._ui_order_payload(self.session, [(products, 1)])
        total = payload["amount_total"]
        payload["payment_ids"][0][2]["amount"] = total + 5
        payload.update(amount_paid=total + 5, amount_return=5.0)
        order = self._sync(payload)
        rows = self._rows_of_order(order)
        self.assertEqual(rows.mapped("event"), [audit.CAPTURED, audit.CAPTURED])
        self.assertEqual(rows.mapped("is_change"), [False, True])
        self.assertAlmostEqual(rows[0].amount, total + 5)
        self.assertAlmostEqual(rows[1].amount, -5.0)
        self.assertEqual(rows[1].sequence, rows[0].sequence + 1)
        self.assertEqual(rows[1].previous_hash, rows[0].hash)

    def test_api_payments_carry_device_and_idempotency_key_and_voids_are_audited(self):
        device = self._create_device("cashier")
        products = self._pos_products(1)
        order = self._sync(self._ui_order_payload(self.session, [(products, 2)], paid=False))
        order.with_context(
            pos_api_device_id=device.id, pos_api_idempotency_key="pay-1"
        ).add_payment(
            {
                "pos_order_id": order.id,
                "amount": 3.0,
                "payment_method_id": self.card_method.id,
                "transaction_id": "TERM-42",
            }
        )
        payment = order.payment_ids
        payment.write({"amount": 4.0})
        payment_id = payment.id
        payment.unlink()
        self.env.cr.precommit.run()
        rows = self._rows_of_order(order)
        self.assertEqual(
            rows.mapped("event"),
            [audit.CAPTURED, audit.VOIDED, audit.CAPTURED, audit.VOIDED],
        )
        self.assertEqual([row.amount for row in rows], [3.0, 3.0, 4.0, 4.0])
        self.assertEqual(set(rows.mapped("payment_res_id")), {payment_id})
        self.assertFalse(rows.payment_id, "the deleted payment is gone, its audit is not")
        first = rows[0]
        self.assertEqual(first.actor_device_id, device)
        self.assertEqual(first.idempotency_key, "pay-1")
        self.assertEqual(first.terminal_ref, "TERM-42")
        self.assertEqual(first.payment_method_id, self.card_method)
        self.assertFalse(rows[1].actor_device_id, "the void was not made by the device")
        self.assertEqual(set(rows.mapped("order_state_after")), {"draft"})
        report = self.Audit._verify(order.company_id)
        self.assertTrue(report["ok"], report)

    def test_a_refund_order_payment_is_refunded(self):
        products = self._pos_products(1)
        payload = self._ui_order_payload(self.session, [(products, -1)])
        order = self._sync(payload)
        self.assertEqual(self._rows_of_order(order).event, audit.REFUNDED)

    def test_rolled_back_payments_leave_no_audit_row_and_no_gap(self):
        products = self._pos_products(1)
        order = self._sync(self._ui_order_payload(self.session, [(products, 1)], paid=False))
        before = self._chain_of(order.company_id)
        with self.assertRaises(InterruptedError), self.env.cr.savepoint():
            order.add_payment(
                {"pos_order_id": order.id, "amount": 1.0, "payment_method_id": self.cash_method.id}
            )
            raise InterruptedError  # the request fails after the payment was made
        self.env.cr.precommit.run()
        self.assertEqual(self._chain_of(order.company_id), before)

    # ------------------------------------------------------------------
    # The chain
    # ------------------------------------------------------------------
    def test_sequences_are_gapless_per_company_and_independent(self):
        company_a = self.env.company
        company_b = self.env["res.company"].create(
            {"name": "Second Restaurant", "currency_id": company_a.currency_id.id}
        )
        head_a = self._chain_of(company_a)[-1:].sequence or 0
        rows = self.Audit._append(
            [self._event(company_a), self._event(company_b), self._event(company_a)]
            + [self._event(company_b, amount=Decimal(index)) for index in range(3)]
        )
        rows_a = rows.filtered(lambda row: row.company_id == company_a)
        rows_b = rows - rows_a
        self.assertEqual(rows_a.mapped("sequence"), [head_a + 1, head_a + 2])
        self.assertEqual(rows_b.sorted("sequence").mapped("sequence"), [1, 2, 3, 4])
        self.assertEqual(rows_b.sorted("sequence")[0].previous_hash, audit.GENESIS_HASH)
        more = self.Audit._append([self._event(company_b)])
        self.assertEqual(more.sequence, 5)
        self.assertEqual(more.previous_hash, rows_b.sorted("sequence")[-1].hash)
        report = self.Audit.sudo()._verify()
        self.assertTrue(report["ok"], report)
        by_company = {details["company_id"]: details for details in report["companies"]}
        self.assertEqual(by_company[company_b.id]["checked"], 5)
        # Pages of any size read the same chain.
        self.assertEqual(self.Audit.sudo()._verify(page_size=2), report)

    def test_unknown_events_and_keys_are_refused(self):
        with self.assertRaises(ValueError):
            self.Audit._append([self._event(event="settled")])
        with self.assertRaises(ValueError):
            self.Audit._append([self._event(note="x")])

    # ------------------------------------------------------------------
    # Refusals: the ORM and the database
    # ------------------------------------------------------------------
    def test_the_orm_refuses_create_write_unlink(self):
        row = self.Audit._append([self._event()])
        with self.assertRaises(UserError):
            self.Audit.create({"company_id": self.env.company.id})
        with self.assertRaises(UserError):
            row.write({"amount": 0})
        with self.assertRaises(UserError):
            row.sudo().unlink()
        check = (
            self.env["pos.payment.audit.check"]
            .sudo()
            .create({"company_id": self.env.company.id, "ok": True})
        )
        with self.assertRaises(UserError):
            check.write({"ok": False})
        with self.assertRaises(UserError):
            check.unlink()

    def test_the_database_refuses_update_delete_truncate(self):
        row = self.Audit._append([self._event()])
        self.env["pos.payment.audit.check"].sudo().create({"company_id": self.env.company.id})
        for statement in (
            SQL("UPDATE pos_payment_audit SET amount = 0 WHERE id = %s", row.id),
            SQL("DELETE FROM pos_payment_audit WHERE id = %s", row.id),
            SQL("TRUNCATE pos_payment_audit CASCADE"),
            SQL("UPDATE pos_payment_audit_check SET ok = TRUE"),
            SQL("DELETE FROM pos_payment_audit_check"),
        ):
            with (
                self.subTest(statement=statement.code),
                mute_logger("odoo.sql_db"),
                self.assertRaises(psycopg2.errors.RaiseException) as info,
                self.env.cr.savepoint(),
            ):
                self.env.cr.execute(statement)
            self.assertIn("append-only", str(info.exception))
        self.assertEqual(row.exists(), row)

    # ------------------------------------------------------------------
    # Tampering through raw SQL is found
    # ------------------------------------------------------------------
    def test_editing_any_audited_column_through_sql_is_found(self):
        company = self.env["res.company"].create(
            {"name": "Tampered Restaurant", "currency_id": self.env.company.currency_id.id}
        )
        other_company = self.env["res.company"].create(
            {"name": "Other Restaurant", "currency_id": self.env.company.currency_id.id}
        )
        device = self._create_device("waiter")
        rows = self.Audit._append(
            [
                self._event(company, order_res_id=100 + index, payment_res_id=200 + index)
                for index in range(4)
            ]
        )
        self.assertTrue(self.Audit.sudo()._verify(company)["ok"])
        target = rows[1]
        other_currency = (
            self.env["res.currency"]
            .with_context(active_test=False)
            .search([("id", "!=", target.currency_id.id)], limit=1)
        )
        changes = {
            "company_id": other_company.id,
            "sequence": SQL("sequence + 1000"),
            "event": audit.REFUNDED,
            "event_at": SQL("event_at + interval '1 second'"),
            "order_res_id": SQL("order_res_id + 1"),
            "order_name": "forged",
            "payment_res_id": SQL("payment_res_id + 1"),
            "amount": SQL("amount + 0.01"),
            "currency_id": other_currency.id,
            "payment_method_id": self.card_method.id,
            "is_change": SQL("NOT is_change"),
            "actor_user_id": self.env.ref("base.user_root").id,
            "actor_device_id": device.id,
            "terminal_ref": "forged",
            "idempotency_key": "forged",
            "order_state_before": "draft",
            "order_state_after": "cancel",
            "previous_hash": "f" * 64,
            "hash": "f" * 64,
        }
        self.assertEqual(set(changes), {*audit.HASHED_FIELDS, "previous_hash", "hash"})
        self._disable_trigger()
        for column, value in changes.items():
            with self.subTest(column=column):
                self._check_tampering(company, rows, target, column, value)
        self.assertTrue(self.Audit.sudo()._verify(company)["ok"], "every edit was rolled back")

    def _check_tampering(self, company, rows, target, column, value):
        with self.assertRaises(InterruptedError), self.env.cr.savepoint():
            self.env.cr.execute(
                SQL(
                    "UPDATE pos_payment_audit SET %s = %s WHERE id = %s",
                    SQL.identifier(column),
                    value,
                    target.id,
                )
            )
            self.env.invalidate_all()
            report = self.Audit.sudo()._verify(company)
            self.assertFalse(report["ok"])
            first = report["first_broken"]
            if column in ("company_id", "sequence"):
                # The record left its place: the chain breaks at the next one,
                # and the moved record is not trusted either.
                self.assertEqual((first["id"], first["reason"]), (rows[2].id, audit.SEQUENCE_GAP))
                self.assertEqual(report["broken_ids"][:2], rows[2:].ids)
                if column == "sequence":
                    self.assertEqual(report["broken_ids"], [*rows[2:].ids, target.id])
                else:
                    elsewhere = self.Audit.sudo()._verify(target.company_id)
                    self.assertIn(target.id, elsewhere["broken_ids"])
            else:
                self.assertEqual((first["id"], first["sequence"]), (target.id, target.sequence))
                self.assertEqual(first["company_id"], company.id)
                self.assertEqual(report["broken_ids"], rows[1:].ids)
                expected = audit.PREVIOUS_HASH if column == "previous_hash" else audit.HASH
                self.assertEqual(first["reason"], expected)
            raise InterruptedError  # roll the edit back

    def test_cron_keeps_anchors_that_expose_a_truncated_chain(self):
        company = self.env["res.company"].create(
            {"name": "Truncated Restaurant", "currency_id": self.env.company.currency_id.id}
        )
        rows = self.Audit._append([self._event(company) for _index in range(3)])
        self.Audit._cron_verify()
        check = self.env["pos.payment.audit.check"].search([("company_id", "=", company.id)])
        self.assertEqual((check.ok, check.checked, check.head_sequence), (True, 3, 3))
        self.assertEqual(check.head_hash, rows[-1].hash)

        self._disable_trigger()
        self.env.cr.execute(SQL("DELETE FROM pos_payment_audit WHERE id = %s", rows[-1].id))
        self.env.invalidate_all()
        with self.assertLogs("odoo.addons.point_of_sale_api.models.pos_payment_audit", "ERROR"):
            report = self.Audit._cron_verify()
        self.assertEqual(report["first_broken"]["reason"], audit.TRUNCATED)
        self.assertEqual(report["first_broken"]["sequence"], 3)
        last = self.env["pos.payment.audit.check"].search(
            [("company_id", "=", company.id)], limit=1
        )
        self.assertEqual((last.ok, last.reason, last.head_sequence), (False, "truncated", 2))

    def test_verification_needs_a_manager(self):
        cashier = self.env["res.users"].create(
            {
                "name": "Audit Cashier",
                "login": "audit_cashier",
                "groups_id": [
                    fields.Command.set([self.env.ref("point_of_sale.group_pos_user").id])
                ],
            }
        )
        with self.assertRaises(AccessError):
            self.Audit.with_user(cashier)._verify()


@tagged("post_install", "-at_install")
class TestPaymentAuditApi(PosApiHttpCommon):
    def test_api_payments_are_audited_like_pos_ui_payments(self):
        product = self._pos_products(1)
        status, result = self._call(
            "POST", "/orders", self._order_body([(product, 2)]), device=self.waiter
        )
        self.assertEqual(status, 201, result)
        order = self.env["pos.order"].browse(result["order"]["id"])
        key = str(uuid.uuid4())
        total = Decimal(str(order.amount_total)).quantize(Decimal("0.01"))
        body = {
            "payments": [
                {
                    "payment_method_id": self.card_method.id,
                    "amount": str(total),
                    "terminal_ref": "TRX-7",
                }
            ]
        }
        for _attempt in range(2):  # the replay pays nothing, so audits nothing
            status, result = self._call(
                "POST",
                f"/orders/{order.id}/payments",
                body,
                device=self.manager,
                headers={"Idempotency-Key": key},
            )
            self.assertEqual(status, 200, result)
        row = self.env["pos.payment.audit"].search([("order_res_id", "=", order.id)])
        self.assertEqual(len(row), 1)
        self.assertEqual(
            (row.event, row.payment_id, row.terminal_ref, row.idempotency_key),
            (audit.CAPTURED, order.payment_ids, "TRX-7", key),
        )
        self.assertEqual(row.actor_device_id, self.manager)
        self.assertAlmostEqual(row.amount, float(total))
        self.assertEqual((row.order_state_before, row.order_state_after), ("draft", "paid"))
        self.assertTrue(self.env["pos.payment.audit"]._verify(order.company_id)["ok"])


@tagged("post_install", "-at_install")
class TestPaymentAuditConcurrency(AuditFactories, TransactionCase):
    """Real transactions: a transaction whose snapshot predates another's
    append still chains after it (Odoo runs in REPEATABLE READ)."""

    def setUp(self):
        super().setUp()
        self.created = []
        self.addCleanup(self._cleanup)
        with self.registry.cursor() as cr:
            env = api.Environment(cr, api.SUPERUSER_ID, {})
            self.company_id = env.ref("base.main_company").id
            self.cash_method = env["pos.payment.method"].search([], limit=1)

    def _cleanup(self):
        # Committed test rows are removed the only way left: as the owner,
        # around the trigger.
        if not self.created:
            return
        with self.registry.cursor() as cr:
            cr.execute(
                SQL(
                    "ALTER TABLE %s DISABLE TRIGGER %s",
                    SQL.identifier(TABLE),
                    SQL.identifier(ROW_TRIGGER),
                )
            )
            cr.execute(SQL("DELETE FROM pos_payment_audit WHERE id IN %s", tuple(self.created)))
            cr.execute(
                SQL(
                    "ALTER TABLE %s ENABLE TRIGGER %s",
                    SQL.identifier(TABLE),
                    SQL.identifier(ROW_TRIGGER),
                )
            )

    def _append(self, cr):
        env = thread_env(self.registry, cr, api.SUPERUSER_ID)
        company = env["res.company"].browse(self.company_id)
        rows = env["pos.payment.audit"]._append([self._event(company)])
        self.created += rows.ids
        return rows.sequence, rows.previous_hash, rows.hash

    def test_a_stale_snapshot_still_chains_after_the_last_commit(self):
        late = self.registry.cursor()
        try:
            late.execute("SELECT count(*) FROM pos_payment_audit")  # the snapshot is taken
            with self.registry.cursor() as early:
                first = self._append(early)
            second = self._append(late)
            late.commit()
        finally:
            late.close()
        self.assertEqual(second[0], first[0] + 1)
        self.assertEqual(second[1], first[2])

    def test_a_detached_event_survives_the_rollback_of_its_request(self):
        with self.registry.cursor() as cr:
            env = api.Environment(cr, api.SUPERUSER_ID, {"pos_api_idempotency_key": "pay-9"})
            company = env["res.company"].browse(self.company_id)
            ids = env["pos.payment.audit"]._append_detached(
                [self._event(company, event=audit.FAILED, terminal_ref="DECLINED")]
            )
            self.created += ids
            cr.rollback()  # the request that saw the failure fails too
        with self.registry.cursor() as cr:
            env = api.Environment(cr, api.SUPERUSER_ID, {})
            row = env["pos.payment.audit"].browse(ids)
            self.assertEqual(
                (row.event, row.terminal_ref, row.idempotency_key),
                (audit.FAILED, "DECLINED", "pay-9"),
            )

    def test_parallel_appends_make_one_gapless_chain(self):
        workers = 4
        barrier = threading.Barrier(workers)
        results, errors = [], []

        def run():
            try:
                with self.registry.cursor() as cr:
                    cr.execute("SELECT 1")  # every snapshot predates the others' commits
                    barrier.wait(timeout=30)
                    results.append(self._append(cr))
            except Exception as exc:  # noqa: BLE001 - reported below
                errors.append(exc)

        threads = [threading.Thread(target=run) for _index in range(workers)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=60)
        self.assertEqual(errors, [])
        results.sort()
        sequences = [sequence for sequence, _previous, _hash in results]
        self.assertEqual(sequences, list(range(sequences[0], sequences[0] + workers)))
        for before, after in zip(results, results[1:]):
            self.assertEqual(after[1], before[2])
