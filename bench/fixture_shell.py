"""Prepares the order benchmark inside ``odoo shell`` and prints its fixture.

Fed on stdin to ``python -m odoo shell -d DB --no-http`` by ``bench/run``
(``env`` is the shell's superuser environment). It opens a session of the demo
restaurant config as the admin user, prices a 3-line order exactly as Odoo's
own ``create_ui_order_data`` test helper does (pricelist price, fiscal
position, ``compute_all``), issues a token pair for the demo waiter tablet
when the addon has one, commits, and prints one line
``BENCH_FIXTURE {json}`` for ``bench/bench_orders.py``.

Only the shape of one order is computed here; every benchmark request gets
fresh order, line and payment uuids on the client side.
"""

import json
import platform

from odoo import release

PRODUCTS_PER_ORDER = 3
QUANTITIES = (1, 2, 1)


def _pos_config(env):
    config = env.ref("point_of_sale_api.demo_pos_config", raise_if_not_found=False)
    source = "point_of_sale_api.demo_pos_config"
    if not config:
        config = env["pos.config"].search(
            [("module_pos_restaurant", "=", True)], limit=1, order="id"
        )
        source = "first restaurant pos.config (the addon's demo config is missing)"
    if not config:
        raise SystemExit("BENCH_ERROR no restaurant pos.config in the database")
    return config, source


def _open_session(config, admin):
    """An opened session, as a cashier would leave it after the opening control."""
    config = config.with_user(admin)
    session = config.current_session_id
    if not session:
        config.open_ui()
        session = config.current_session_id
    if session.state == "opening_control":
        session.set_opening_control(0, None)
    session.login()
    return session


def _products(env, config):
    domain = [
        ("available_in_pos", "=", True),
        ("type", "!=", "combo"),
        ("attribute_line_ids", "=", False),
        ("company_id", "in", [False, config.company_id.id]),
    ]
    if config.limit_categories and config.iface_available_categ_ids:
        domain.append(("pos_categ_ids", "in", config.iface_available_categ_ids.ids))
    candidates = env["product.product"].search(domain, order="id")
    # Prefer a mix of taxes (a price-included and a price-excluded one in the
    # addon's demo menu), so that the order exercises both tax paths.
    picked = env["product.product"]
    for product in candidates:
        if len(picked) == PRODUCTS_PER_ORDER:
            break
        if product.taxes_id not in [p.taxes_id for p in picked]:
            picked |= product
    for product in candidates:
        if len(picked) == PRODUCTS_PER_ORDER:
            break
        picked |= product
    if len(picked) < PRODUCTS_PER_ORDER:
        raise SystemExit("BENCH_ERROR fewer than 3 POS products without attributes")
    return picked


def _order_template(env, config, products):
    """One order's lines and totals, priced as create_ui_order_data does."""
    pricelist = config.pricelist_id
    currency = config.currency_id
    fiscal_position = config.default_fiscal_position_id
    company_domain = env["account.tax"]._check_company_domain(config.company_id)
    lines = []
    for product, qty in zip(products, QUANTITIES, strict=True):
        price_unit = pricelist._get_product_price(product, qty)
        taxes = fiscal_position.map_tax(product.taxes_id.filtered_domain(company_domain))
        amounts = (
            taxes.compute_all(price_unit, currency, qty, product=product)
            if taxes
            else {"total_excluded": price_unit * qty, "total_included": price_unit * qty}
        )
        lines.append(
            {
                "product_id": product.id,
                "product_name": product.display_name,
                "qty": qty,
                "price_unit": price_unit,
                "price_subtotal": amounts["total_excluded"],
                "price_subtotal_incl": amounts["total_included"],
                "tax_ids": taxes.ids,
                "is_storable": bool(product.is_storable),
            }
        )
    total = sum(line["price_subtotal_incl"] for line in lines)
    untaxed = sum(line["price_subtotal"] for line in lines)
    return lines, currency.round(total), currency.round(total - untaxed)


def _tokens(env):
    device = env.ref("point_of_sale_api.demo_device_waiter", raise_if_not_found=False)
    if not device or not hasattr(device, "_issue_tokens"):
        return None
    pair = device._issue_tokens()
    return {"device_id": device.id, "access_token": pair.access_token}


def _postgres_settings(env):
    env.cr.execute(
        "SELECT current_setting('server_version'), current_setting('fsync'), "
        "current_setting('synchronous_commit')"
    )
    version, fsync, sync_commit = env.cr.fetchone()
    return {"version": version, "fsync": fsync, "synchronous_commit": sync_commit}


def main(env):
    admin = env.ref("base.user_admin")
    config, config_source = _pos_config(env)
    session = _open_session(config, admin)
    cash = config.payment_method_ids.filtered(
        lambda pm: pm.is_cash_count and not pm.split_transactions
    )[:1]
    if not cash:
        raise SystemExit("BENCH_ERROR the POS config has no cash payment method")
    products = _products(env, config)
    lines, total, tax = _order_template(env, config, products)
    table = config.floor_ids.table_ids.sorted("id")[:1]
    company = config.company_id
    fixture = {
        "odoo_version": release.version,
        "python": platform.python_version(),
        "config_id": config.id,
        "config_name": config.name,
        "config_source": config_source,
        "company_id": company.id,
        "update_stock_quantities": company.point_of_sale_update_stock_quantities,
        "update_stock_at_closing": bool(session.update_stock_at_closing),
        "session_id": session.id,
        "login_number": session.login_number,
        "user_id": admin.id,
        "pricelist_id": config.pricelist_id.id,
        "fiscal_position_id": config.default_fiscal_position_id.id or False,
        "currency_decimals": config.currency_id.decimal_places,
        "table_id": table.id or None,
        "cash_payment_method_id": cash.id,
        "lines": lines,
        "amount_total": total,
        "amount_tax": tax,
        "tokens": _tokens(env),
        "postgres": _postgres_settings(env),
    }
    env.cr.commit()
    print("BENCH_FIXTURE " + json.dumps(fixture), flush=True)


main(env)  # noqa: F821 - provided by odoo shell
