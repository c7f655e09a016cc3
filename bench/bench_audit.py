"""Payment audit: append and verification rates, against l10n_fr_pos_cert.

    python3 bench/bench_audit.py -c odoo.conf -d DB [--entries 100000]
        [--orders 10000] [--batch 1000] [--json PATH]

Run it on a THROWAWAY database where ``point_of_sale_api`` is installed: it
commits audit rows, which by design can never be deleted. Two measures:

1. **Synthetic chain.** ``--entries`` audit entries are appended through
   ``pos.payment.audit._append`` in batches of ``--batch`` (one transaction
   each) to the chain of a fresh company, then ``_verify`` walks that chain.
   Reported: entries/s for both.
2. **Same orders as Odoo's French certification.** When the database has
   ``l10n_fr_pos_cert`` installed (Community module; install it with
   ``-i l10n_fr_pos_cert``, it brings the French chart of accounts), a French
   company with the French chart, a cash payment method and a point of sale
   is created, and ``--orders`` paid orders of one line and one cash payment
   are made through the ORM. Odoo hashes every order as it is paid
   (``l10n_fr_hash``); the addon audits every payment. Then both checks run
   on those orders: ``res.company._check_pos_hash_integrity()`` (what the
   "POS inalterability check" report calls) and ``_verify`` of the company's
   audit chain. Reported: orders/s and entries/s. Without the module the
   reason is printed instead.

Each check runs twice, with an empty ORM cache each time; the faster run
counts. Prints one JSON document (also written to ``--json``) and a Markdown
table.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import platform
import sys
import time
import uuid
from datetime import datetime, timedelta
from decimal import Decimal


def _parse_args(argv):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n", 1)[0])
    parser.add_argument("-c", "--config", required=True, help="odoo.conf of the database")
    parser.add_argument("-d", "--database", required=True)
    parser.add_argument("--entries", type=int, default=100_000)
    parser.add_argument("--orders", type=int, default=10_000)
    parser.add_argument("--batch", type=int, default=1000)
    parser.add_argument("--json", help="write the results to this file too")
    return parser.parse_args(argv)


def _environment(args):
    import odoo
    from odoo.tools import config

    config.parse_config(["-c", args.config, "-d", args.database, "--no-http", "--log-level=warn"])
    registry = odoo.modules.registry.Registry(args.database)
    # _check_pos_hash_integrity translates inside a nested function, where
    # Odoo cannot find the language: one warning with a stack per call.
    logging.getLogger("odoo.tools.translate").setLevel(logging.ERROR)
    return odoo, registry


def _events(company_id, currency_id, method_id, start, count):
    base = datetime(2026, 1, 1)
    return [
        {
            "company_id": company_id,
            "event": ("captured", "captured", "refunded", "voided", "authorized")[index % 5],
            "event_at": base + timedelta(seconds=index),
            "order_res_id": 1 + index // 2,
            "order_name": f"Bench/{index // 2:07d}",
            "payment_res_id": 1 + index,
            "amount": Decimal(index % 9973) / 100,
            "currency_id": currency_id,
            "payment_method_id": method_id,
            "terminal_ref": f"T{index}" if index % 3 == 0 else None,
            "idempotency_key": str(uuid.UUID(int=index)) if index % 2 else None,
            "order_state_before": "validated",
            "order_state_after": "paid",
        }
        for index in range(start, start + count)
    ]


def _timed(func):
    start = time.perf_counter()
    result = func()
    return result, time.perf_counter() - start


def _best_of(env, func, runs=2):
    """The best of ``runs`` timings, each with an empty ORM cache."""
    best = None
    for _run in range(runs):
        env.invalidate_all()
        result, seconds = _timed(func)
        best = seconds if best is None else min(best, seconds)
    return result, best


def bench_synthetic(odoo, registry, entries, batch):
    with registry.cursor() as cr:
        env = odoo.api.Environment(cr, odoo.SUPERUSER_ID, {})
        main = env.ref("base.main_company")
        company = env["res.company"].create(
            {"name": f"Audit bench {uuid.uuid4().hex[:8]}", "currency_id": main.currency_id.id}
        )
        method = env["pos.payment.method"].search([], limit=1)
        ids = (company.id, company.currency_id.id, method.id)
    append_seconds = 0.0
    for start in range(0, entries, batch):
        count = min(batch, entries - start)
        events = _events(*ids, start, count)
        with registry.cursor() as cr:
            env = odoo.api.Environment(cr, odoo.SUPERUSER_ID, {})
            began = time.perf_counter()
            env["pos.payment.audit"]._append(events)
            cr.commit()
            append_seconds += time.perf_counter() - began
    with registry.cursor() as cr:
        env = odoo.api.Environment(cr, odoo.SUPERUSER_ID, {})
        company = env["res.company"].browse(ids[0])
        report, verify_seconds = _best_of(env, lambda: env["pos.payment.audit"]._verify(company))
    if not report["ok"] or report["checked"] != entries:
        raise SystemExit(f"BENCH_ERROR the synthetic chain does not verify: {report}")
    return {
        "entries": entries,
        "batch": batch,
        "append_seconds": round(append_seconds, 3),
        "append_per_second": round(entries / append_seconds),
        "verify_seconds": round(verify_seconds, 3),
        "verify_per_second": round(entries / verify_seconds),
    }


def _french_module_state(env):
    module = env["ir.module.module"].search([("name", "=", "l10n_fr_pos_cert")])
    if not module:
        return "l10n_fr_pos_cert is not in the addons path"
    if module.state != "installed":
        return (
            f"l10n_fr_pos_cert is {module.state} in this database (it is a Community module: "
            "install it with -i l10n_fr_pos_cert to compare)"
        )
    return None


def _french_point_of_sale(env):
    """A French company with the French chart, a cash method and a session."""
    company = env["res.company"].create(
        {
            "name": f"Bench Bistrot {uuid.uuid4().hex[:6]}",
            "country_id": env.ref("base.fr").id,
            "currency_id": env.ref("base.EUR").id,
        }
    )
    # Sessions are opened and orders paid by the admin, as a cashier would.
    admin = env.ref("base.user_admin")
    admin.company_ids |= company
    env = env(user=admin, context=dict(env.context, allowed_company_ids=[company.id]))
    env["account.chart.template"].try_loading("fr", company=company, install_demo=False)
    if not env["stock.warehouse"].search([("company_id", "=", company.id)]):
        env["stock.warehouse"].create(
            {"name": company.name, "code": "BENCH", "company_id": company.id}
        )
    cash_journal = env["account.journal"].search(
        [("type", "=", "cash"), ("company_id", "=", company.id)], limit=1
    )
    method = env["pos.payment.method"].create(
        {"name": "Espèces", "journal_id": cash_journal.id, "company_id": company.id}
    )
    config = env["pos.config"].create(
        {"name": "Bench Bistrot", "company_id": company.id, "payment_method_ids": [method.id]}
    )
    config.open_ui()
    session = config.current_session_id
    if session.state == "opening_control":
        session.set_opening_control(0, None)
    product = env["product.product"].create(
        {"name": "Café", "available_in_pos": True, "list_price": 2.5, "taxes_id": False}
    )
    if not company._is_accounting_unalterable():
        raise SystemExit("BENCH_ERROR the French company is not flagged unalterable")
    return env, company, session, method, product


def bench_french(odoo, registry, orders, batch):
    with registry.cursor() as cr:
        env = odoo.api.Environment(cr, odoo.SUPERUSER_ID, {})
        reason = _french_module_state(env)
        if reason:
            return {"available": False, "reason": reason}
        env, company, session, method, product = _french_point_of_sale(env)
        ids = (company.id, session.id, method.id, product.id)
        admin_id = env.uid
    with registry.cursor() as cr:
        # l10n_fr_pos_cert looks up each order's predecessor by its secure
        # sequence number, a column without an index: creating 100,000 orders
        # would be quadratic. The index only speeds up making the orders and
        # Odoo's own check, never ours.
        cr.execute(
            "CREATE INDEX IF NOT EXISTS bench_pos_order_l10n_fr_sequence"
            " ON pos_order (company_id, l10n_fr_secure_sequence_number)"
        )
    create_seconds = 0.0
    batch = min(batch, 200)  # Odoo hashes each order when it is paid: keep transactions short
    for start in range(0, orders, batch):
        count = min(batch, orders - start)
        with registry.cursor() as cr:
            env = odoo.api.Environment(
                cr, admin_id, {"allowed_company_ids": [ids[0]], "tracking_disable": True}
            )
            began = time.perf_counter()
            _paid_orders(env, *ids[1:], count)
            cr.commit()
            create_seconds += time.perf_counter() - began
    with registry.cursor() as cr:
        env = odoo.api.Environment(cr, admin_id, {"allowed_company_ids": [ids[0]], "lang": "en_US"})
        company = env["res.company"].browse(ids[0])
        odoo_report, odoo_seconds = _best_of(env, company._check_pos_hash_integrity)
        ours, ours_seconds = _best_of(env, lambda: env["pos.payment.audit"]._verify(company))
    if odoo_report["corrupted_orders"] != "None":
        raise SystemExit(f"BENCH_ERROR Odoo finds corrupted orders: {odoo_report}")
    if not ours["ok"] or ours["checked"] != orders:
        raise SystemExit(f"BENCH_ERROR the audit chain does not verify: {ours}")
    return {
        "available": True,
        "orders": orders,
        "orders_per_second_created": round(orders / create_seconds, 1),
        "odoo_check_seconds": round(odoo_seconds, 3),
        "odoo_check_per_second": round(orders / odoo_seconds),
        "audit_verify_seconds": round(ours_seconds, 3),
        "audit_verify_per_second": round(orders / ours_seconds),
    }


def _paid_orders(env, session_id, method_id, product_id, count):
    line = {
        "product_id": product_id,
        "qty": 1,
        "price_unit": 2.5,
        "price_subtotal": 2.5,
        "price_subtotal_incl": 2.5,
        "tax_ids": [],
        "full_product_name": "Café",
    }
    created = env["pos.order"].create(
        [
            {
                "session_id": session_id,
                "pos_reference": f"Bench {uuid.uuid4()}",
                "lines": [(0, 0, dict(line, name=f"L{index}"))],
                "payment_ids": [(0, 0, {"amount": 2.5, "payment_method_id": method_id})],
                "amount_total": 2.5,
                "amount_tax": 0.0,
                "amount_paid": 2.5,
                "amount_return": 0.0,
            }
            for index in range(count)
        ]
    )
    created.write({"state": "paid"})  # l10n_fr_pos_cert numbers and hashes each order here


def _machine():
    model = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as handle:
            for line in handle:
                if line.startswith("model name"):
                    model = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    return f"{model}, {os.cpu_count()} CPU"


def _markdown(results):
    synthetic = results["synthetic"]
    rows = [
        "| measure | entries | seconds | rate |",
        "|---|---:|---:|---:|",
        f"| audit append (`_append`, batches of {synthetic['batch']}) | "
        f"{synthetic['entries']:,} | {synthetic['append_seconds']} | "
        f"{synthetic['append_per_second']:,} entries/s |",
        f"| audit verify (`_verify`) | {synthetic['entries']:,} | "
        f"{synthetic['verify_seconds']} | {synthetic['verify_per_second']:,} entries/s |",
    ]
    french = results["french"]
    if french["available"]:
        rows += [
            f"| Odoo `l10n_fr_pos_cert` `_check_pos_hash_integrity` | {french['orders']:,} "
            f"orders | {french['odoo_check_seconds']} | "
            f"{french['odoo_check_per_second']:,} orders/s |",
            f"| audit verify, the same orders' payments | {french['orders']:,} | "
            f"{french['audit_verify_seconds']} | {french['audit_verify_per_second']:,} "
            "entries/s |",
        ]
    else:
        rows.append(f"| Odoo `l10n_fr_pos_cert` | not measured: {french['reason']} | | |")
    return "\n".join(rows)


def main(argv=None):
    args = _parse_args(argv if argv is not None else sys.argv[1:])
    odoo, registry = _environment(args)
    results = {
        "database": args.database,
        "odoo": odoo.release.version,
        "python": platform.python_version(),
        "machine": _machine(),
        "load_average_before": os.getloadavg()[0],
        "synthetic": bench_synthetic(odoo, registry, args.entries, args.batch),
        "french": bench_french(odoo, registry, args.orders, args.batch),
    }
    # Other processes share the machine: read the load next to the figures.
    results["load_average_after"] = os.getloadavg()[0]
    text = json.dumps(results, indent=2)
    print(text)
    if args.json:
        with open(args.json, "w", encoding="utf-8") as handle:
            handle.write(text + "\n")
    print(_markdown(results))


if __name__ == "__main__":
    main()
