"""The audit trail against Odoo's own database role: a keyed chain, heads
exported outside the database, and an uninstall that exports the trail.

Tampering is real SQL on the real table, as the database role would do it:
the trigger disabled, rows rewritten, hashes recomputed."""

import json
import logging
import os
import stat
import tempfile
from datetime import datetime
from decimal import Decimal
from unittest.mock import patch

from odoo.tests import tagged
from odoo.tools import SQL, config

from .. import uninstall_hook
from ..models.pos_payment_audit import HEADS_FILE
from ..pos_core import audit, keyfile
from .common import PosApiCommon
from .test_payment_audit import AuditFactories


@tagged("post_install", "-at_install")
class TestKeyedAudit(AuditFactories, PosApiCommon):
    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.Audit = cls.env["pos.payment.audit"].sudo()

    def setUp(self):
        super().setUp()
        self.audit_dir = tempfile.mkdtemp(prefix="pos_api_audit_")
        patcher = patch.dict(os.environ, {"POS_API_AUDIT_DIR": self.audit_dir})
        patcher.start()
        self.addCleanup(patcher.stop)
        # What installation and upgrade do (init): the unkeyed boundaries.
        self.Audit._export_legacy_boundaries()
        self.company = self.env["res.company"].create(
            {"name": "Keyed Restaurant", "currency_id": self.env.company.currency_id.id}
        )

    # ------------------------------------------------------------------
    def _append(self, count):
        return self.Audit._append(
            [self._event(self.company, amount=Decimal(index + 1)) for index in range(count)]
        )

    def _verify(self):
        self.env.invalidate_all()
        return self.Audit._verify(self.company)

    def _verify_and_commit(self):
        """A verification whose transaction commits: its heads are exported."""
        report = self._verify()
        self.env.cr.postcommit.run()
        return report

    def _exported(self):
        with open(os.path.join(self.audit_dir, HEADS_FILE), encoding="utf-8") as handle:
            return json.load(handle)["companies"].get(str(self.company.id))

    def _rows(self):
        return list(self.Audit._iter_rows([self.company.id], 100))

    def _rewrite(self, rows):
        """Store ``rows`` (dicts from ``_iter_rows``) over the table's rows."""
        for row in rows:
            self.env.cr.execute(
                SQL(
                    "UPDATE pos_payment_audit SET amount = %s, previous_hash = %s, hash = %s,"
                    " hash_scheme = %s WHERE id = %s",
                    row["amount"],
                    row["previous_hash"],
                    row["hash"],
                    row.get("hash_scheme"),
                    row["id"],
                )
            )

    # ------------------------------------------------------------------
    def test_new_rows_are_keyed_with_a_key_kept_outside_the_database(self):
        rows = self._append(2)
        self.assertEqual(set(rows.mapped("hash_scheme")), {audit.HMAC})
        first = self._rows()[0]
        key = self.Audit._audit_key()
        self.assertEqual(first["hash"], audit.chain_hash(audit.GENESIS_HASH, first, key))
        self.assertNotEqual(first["hash"], audit.chain_hash(audit.GENESIS_HASH, first))
        if not os.environ.get("POS_API_AUDIT_KEY") and not config.misc.get(
            "point_of_sale_api", {}
        ).get("audit_key"):
            path = keyfile.key_path(config["data_dir"], self.env.cr.dbname, "audit")
            self.assertEqual(stat.S_IMODE(os.stat(path).st_mode), 0o600)
            self.assertEqual(key, keyfile.read_or_create(path).encode())
        with (
            patch.dict(os.environ, {"POS_API_AUDIT_KEY": "too short"}),
            self.assertRaises(ValueError),
        ):
            self.Audit._audit_key()
        self.assertNotIn(
            key.decode(), "".join(self.env["ir.config_parameter"].sudo().search([]).mapped("value"))
        )

    def test_a_rewrite_rehashed_with_plain_sha256_is_reported(self):
        self._append(4)
        self.assertTrue(self._verify_and_commit()["ok"])
        self._disable_trigger()
        rows = self._rows()
        rows[1]["amount"] = Decimal("999.00")
        for row in rows:
            row["hash_scheme"] = None
        audit.link(None, rows)  # the whole chain recomputed, as sha256
        self._rewrite(rows)
        report = self._verify()
        self.assertFalse(report["ok"])
        self.assertEqual(
            (report["first_broken"]["sequence"], report["first_broken"]["reason"]),
            (1, audit.SCHEME),
        )

    def test_a_rewrite_rehashed_with_a_wrong_key_is_reported(self):
        self._append(4)
        self._disable_trigger()
        rows = self._rows()
        rows[2]["amount"] = Decimal("0.01")
        audit.link((2, rows[1]["hash"]), rows[2:], audit.check_key("x" * 40))
        self._rewrite(rows[2:])
        report = self._verify()
        self.assertEqual(
            (report["first_broken"]["sequence"], report["first_broken"]["reason"]),
            (3, audit.HASH),
        )
        self.assertEqual(report["broken_ids"], [row["id"] for row in rows[2:]])

    def test_deleted_last_rows_are_reported_against_the_exported_head(self):
        rows = self._append(4)
        with self.assertLogs(
            "odoo.addons.point_of_sale_api.models.pos_payment_audit", logging.INFO
        ) as logs:
            self.assertTrue(self._verify_and_commit()["ok"])
        self.assertIn(rows[-1].hash, "\n".join(logs.output))
        exported = self._exported()
        self.assertEqual((exported["sequence"], exported["hash"]), (4, rows[-1].hash))
        self.assertEqual(exported["legacy_until"], 0)
        self._disable_trigger()
        self.env.cr.execute(
            SQL("DELETE FROM pos_payment_audit WHERE id IN %s", tuple(rows[2:].ids))
        )
        # No check record anchors this chain: only the exported head does.
        self.assertFalse(
            self.env["pos.payment.audit.check"].search([("company_id", "=", self.company.id)])
        )
        report = self._verify_and_commit()
        self.assertFalse(report["ok"])
        self.assertEqual(report["first_broken"]["reason"], audit.TRUNCATED)
        self.assertEqual(report["first_broken"]["expected"], 4)
        self.assertEqual(
            self._exported()["sequence"], 4, "a broken chain never moves the head back"
        )

    def test_rows_from_before_the_key_stay_verifiable_and_protected(self):
        company = self.env["res.company"].create(
            {"name": "Old Restaurant", "currency_id": self.env.company.currency_id.id}
        )
        self.company = company
        self._append(3)
        # The chain as an earlier version of the addon wrote it: plain sha256.
        self._disable_trigger()
        legacy = self._rows()
        for row in legacy:
            row["hash_scheme"] = None
        audit.link(None, legacy)
        self._rewrite(legacy)
        os.unlink(os.path.join(self.audit_dir, HEADS_FILE))
        self.Audit._export_legacy_boundaries()  # the upgrade
        self.assertEqual(self._exported()["legacy_until"], 3)
        self._append(2)
        rows = self._rows()
        self.assertEqual(
            [row["hash_scheme"] for row in rows], [None, None, None, audit.HMAC, audit.HMAC]
        )
        self.assertTrue(self._verify()["ok"])
        # Rewriting an old row and re-hashing the plain prefix breaks the keyed link.
        rows[1]["amount"] = Decimal("123.00")
        audit.link((1, rows[0]["hash"]), rows[1:3])
        self._rewrite(rows[1:3])
        report = self._verify()
        self.assertEqual(
            (report["first_broken"]["sequence"], report["first_broken"]["reason"]),
            (4, audit.PREVIOUS_HASH),
        )

    def test_uninstall_exports_the_trail_and_says_where(self):
        rows = self._append(3)
        with self.assertLogs("odoo.addons.point_of_sale_api.models.pos_payment_audit", "WARNING"):
            path = uninstall_hook(self.env)
        self.assertEqual(os.path.dirname(path), self.audit_dir)
        self.assertEqual(stat.S_IMODE(os.stat(path).st_mode), 0o600)
        with open(path, encoding="utf-8") as handle:
            header, *exported = [json.loads(line) for line in handle]
        self.assertEqual(header["database"], self.env.cr.dbname)
        self.assertIn("verification", header)
        mine = [row for row in exported if row["company_id"] == self.company.id]
        self.assertEqual([row["id"] for row in mine], rows.ids)
        for row in mine:
            row["amount"] = Decimal(row["amount"])
            row["event_at"] = datetime.fromisoformat(row["event_at"].rstrip("Z"))
        self.assertTrue(audit.verify(mine, key=self.Audit._audit_key()).ok)
        with open(path, encoding="utf-8") as handle:
            self.assertNotIn(self.Audit._audit_key().decode(), handle.read())
        logged = self.env["ir.logging"].sudo().search([("func", "=", "uninstall_hook")], limit=1)
        self.assertIn(path, logged.message)

    def test_the_daily_cron_exports_the_heads(self):
        rows = self._append(2)
        self.Audit._cron_verify()
        self.assertIsNone(self._exported(), "nothing is exported before the commit")
        self.env.cr.postcommit.run()
        self.assertEqual(self._exported()["sequence"], 2)
        self.assertEqual(self._exported()["hash"], rows[-1].hash)
