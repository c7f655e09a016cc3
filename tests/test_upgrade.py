"""Upgrading and uninstalling the addon on a database that holds its data.

The test makes a database of its own (the test database cannot be upgraded
under the tests that use it): it installs the addon with the demo
restaurant, takes orders and payments through the addon's model methods,
upgrades the addon with ``-u`` and checks that orders, payments, lifecycle
history and the payment audit (which must still verify) are all there, then
uninstalls it. Each step is a separate Odoo process, as an integrator runs
them.
"""

import contextlib
import hashlib
import json
import re
import shutil
import subprocess

import odoo
from odoo.tests import TransactionCase, tagged
from odoo.tools import SQL

from ..pos_core import keyfile
from .server import OwnServerMixin

STEP_TIMEOUT = 600

SEED = """
import json, uuid
from odoo.addons.point_of_sale_api.pos_core import schemas as s
admin = env.ref("base.user_admin")
env = env(user=admin)
config = env.ref("point_of_sale_api.demo_pos_config")
if not config.current_session_id:
    config.open_ui()
session = config.current_session_id
if session.state == "opening_control":
    session.set_opening_control(0, None)
env.cr.commit()
device = env["pos.api.device"].sudo().create(
    {"name": "Upgrade test", "config_id": config.id, "role": "cashier", "user_id": admin.id}
).with_env(env)
products = env["product.product"].search(
    [*config._get_available_product_domain(), ("type", "!=", "combo")], limit=2
)
cash = config.payment_method_ids.filtered("is_cash_count")[:1]
for index in range(3):
    lines = [{"product_id": product.id, "qty": "1"} for product in products]
    body = {"uuid": str(uuid.uuid4()), "lines": lines}
    order = env["pos.order"]._api_create(s.OrderCreate.model_validate(body), device)
    if index < 2:
        tenders = s.PaymentsIn.model_validate(
            {"payments": [{"payment_method_id": cash.id, "amount": f"{order.amount_total:.2f}"}]}
        )
        order.with_context(pos_api_device_id=device.id)._api_pay(tenders.payments, 0, device)
env.cr.commit()
print("RESULT " + json.dumps({"device_id": device.id}))
"""

VERIFY = """
import json
company = env.ref("base.main_company")
print("RESULT " + json.dumps({"verify": env["pos.payment.audit"]._verify(company)}, default=str))
"""

UNINSTALL = """
import json
module = env["ir.module.module"].search([("name", "=", "point_of_sale_api")])
try:
    module.button_immediate_uninstall()
    outcome = {"uninstalled": True}
except Exception as exc:
    env.cr.rollback()
    outcome = {"uninstalled": False, "error": type(exc).__name__, "message": str(exc)}
module.invalidate_recordset()
outcome["state"] = module.state
print("RESULT " + json.dumps(outcome))
"""

COUNTS = {
    "orders": "SELECT count(*) FROM pos_order",
    "api_orders": "SELECT count(*) FROM pos_order WHERE api_device_id IS NOT NULL",
    "payments": "SELECT count(*) FROM pos_payment",
    "history": "SELECT count(*) FROM pos_order_state_history",
    "audit": "SELECT count(*) FROM pos_payment_audit",
    "audit_hashes": "SELECT md5(string_agg(hash, ',' ORDER BY id)) FROM pos_payment_audit",
}


@tagged("post_install", "-at_install")
class TestUpgradeAndUninstall(OwnServerMixin, TransactionCase):
    def setUp(self):
        super().setUp()
        self.dbname = f"{self.env.cr.dbname}_upgrade"
        self._drop()
        self.addCleanup(self._drop)

    def _drop(self):
        # Not exp_drop: it drops only the databases list_dbs shows, which is
        # just the test database when the runner is given one (-d).
        odoo.modules.registry.Registry.delete(self.dbname)
        odoo.sql_db.close_db(self.dbname)
        with contextlib.closing(odoo.sql_db.db_connect("postgres").cursor()) as cr:
            cr._cnx.autocommit = True
            odoo.service.db._drop_conn(cr, self.dbname)
            cr.execute(SQL("DROP DATABASE IF EXISTS %s", SQL.identifier(self.dbname)))
        shutil.rmtree(odoo.tools.config.filestore(self.dbname), ignore_errors=True)
        # The audit key, heads and exports of an earlier run's database of
        # the same name (dropping a database leaves them, as its filestore).
        shutil.rmtree(
            keyfile.state_dir(odoo.tools.config["data_dir"], self.dbname), ignore_errors=True
        )

    def _odoo(self, *args, stdin=None):
        command = [*self._odoo_command(), *args]
        done = subprocess.run(
            [
                *command,
                "-c",
                odoo.tools.config.rcfile,
                "-d",
                self.dbname,
                "--log-level",
                "warn",
                *(["--no-http"] if args and args[0] == "shell" else ["--stop-after-init"]),
            ],
            input=stdin,
            capture_output=True,
            text=True,
            timeout=STEP_TIMEOUT,
            check=False,
        )
        self.assertEqual(
            done.returncode, 0, f"{args}:\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}"
        )
        for line in reversed(done.stdout.splitlines()):
            if line.startswith("RESULT "):
                return json.loads(line[len("RESULT ") :])
        return None

    def _counts(self):
        with odoo.sql_db.db_connect(self.dbname).cursor() as cr:
            result = {}
            for name, query in COUNTS.items():
                cr.execute(query)
                result[name] = cr.fetchone()[0]
            return result

    def test_upgrade_keeps_data_and_uninstall_exports_the_audit_trail(self):
        self._odoo("-i", "point_of_sale_api")
        self._odoo("shell", stdin=SEED)
        before = self._counts()
        self.assertGreaterEqual(before["api_orders"], 3)
        self.assertGreaterEqual(before["audit"], 2)
        self._odoo("-u", "point_of_sale_api")
        after = self._counts()
        self.assertEqual(after, before)
        verify = self._odoo("shell", stdin=VERIFY)["verify"]
        self.assertTrue(verify["ok"], verify)

        # Uninstalling drops the addon's tables, not its audit trail: that is
        # exported first, and the database says where it went.
        outcome = self._odoo("shell", stdin=UNINSTALL)
        self.assertEqual((outcome["uninstalled"], outcome["state"]), (True, "uninstalled"), outcome)
        with odoo.sql_db.db_connect(self.dbname).cursor() as cr:
            cr.execute("SELECT to_regclass('pos_payment_audit')")
            self.assertIsNone(cr.fetchone()[0], "the addon's tables are gone")
            cr.execute(
                "SELECT message FROM ir_logging WHERE func = 'uninstall_hook' ORDER BY id DESC"
            )
            messages = [row[0] for row in cr.fetchall()]
        self.assertTrue(messages, "the export is recorded in ir.logging")
        path = re.search(r"exported to (\S+)", messages[0]).group(1)
        with open(path, encoding="utf-8") as handle:
            header, *rows = [json.loads(line) for line in handle]
        self.assertEqual(header["database"], self.dbname)
        self.assertTrue(header["verification"]["ok"], header)
        self.assertEqual(len(rows), before["audit"])
        self.assertEqual(
            hashlib.md5(",".join(row["hash"] for row in rows).encode()).hexdigest(),
            before["audit_hashes"],
            "every audit row, in order, with its hash",
        )
