"""Which events a transaction produces, whatever made the change (device
API, POS UI ``sync_from_ui``, Odoo backend, crons).

ORM hooks (create/write/unlink of orders, lines, payments, sessions and
products) only mark records in ``cr.precommit.data``; at precommit the sync
log builds one event per (record, type) from the records' final state, from
values already in the cache. An order written five times by one request
gives one ``order.updated``.

Events of an order:

- ``order.created``: the order was created in this transaction (its payload
  is its final state: an order created paid is one ``order.created``);
- ``order.state_changed``: the Odoo state or the lifecycle state differs from
  what it was before the transaction (``previous`` in the payload);
- ``order.updated``: anything else a device shows changed (fields, lines,
  payments removed); ``deleted: true`` when the order was deleted;
- ``line.updated``: one per line created, changed or deleted
  (``deleted: true``) on an order that existed before;
- ``payment.processed``: payments were added to the order;
- ``kitchen.order_ready``: the lifecycle reached ``ready``;
- ``table.updated``: the live state of a table changed (an order opened,
  left or closed at it, guests changed): free/occupied, open order ids,
  guests; to every point of sale whose floors hold the table.

Rooms: ``table:<t>`` (when at a table), ``session:<s>``, ``config:<c>``.
Sessions give ``session.updated`` on creation and state changes; products
whose POS availability, price or sold-out state ("86") changed give one
``menu.updated`` per point of sale of their company.
"""

import functools

from odoo import api, models
from odoo.tools import float_repr

from ..pos_core import events, limits
from ..pos_core import lifecycle as lc
from .pos_sync_log import event_at

# Order fields whose change is a state change, not an update.
STATE_FIELDS = frozenset(
    {"state", "api_state", "kitchen_started_at", "kitchen_ready_at", "served_at", "api_refunded"}
)
# Server bookkeeping devices never show.
SILENT_FIELDS = frozenset(
    {
        "api_followup_pending",
        "api_chatter_pending",
        "api_request_hash",
        "api_response",
        "picking_ids",
        "account_move",
        "last_order_preparation_change",
        "access_token",
    }
)
MENU_FIELDS = frozenset(
    {
        "available_in_pos",
        "list_price",
        "lst_price",
        "active",
        "taxes_id",
        "pos_categ_ids",
        "api_sold_out",
    }
)


# What a line event shows: a write leaving these as they were is no change.
LINE_FIELDS = (
    "product_id",
    "full_product_name",
    "qty",
    "price_unit",
    "discount",
    "price_subtotal_incl",
    "customer_note",
    "api_seat",
)


def _line_state(line):
    return tuple(line[name].id if name == "product_id" else line[name] for name in LINE_FIELDS)


def _text(value):
    return value[: limits.SYNC_LOG_TEXT_CHARS] if value else None


def _money(value, digits):
    return float_repr(value or 0.0, digits)


class PosSyncLog(models.Model):
    _inherit = "pos.sync.log"

    def _build_events(self, dirty):
        result = super()._build_events(dirty)
        self._build_order_events(dirty)
        self._build_session_events(dirty.get("sessions", set()))
        self._build_menu_events(dirty.get("templates", set()))
        return result

    # ------------------------------------------------------------------
    # Orders, lines, payments, tables
    # ------------------------------------------------------------------
    def _build_order_events(self, dirty):
        tx = self._sync_tx()
        origins = tx.get("orders", {})  # as each order was when the transaction met it
        tx_payments = tx.get("payments", {})  # payments added in the transaction
        emitted = {}  # (model, id) -> types already written by this transaction
        for _config_id, event_type, res_model, res_id in tx.get("emitted", {}):
            emitted.setdefault((res_model, res_id), set()).add(event_type)
        touched = dirty.get("orders", set())
        changed_fields = dirty.get("order_fields", {})
        deleted = dirty.get("orders_deleted", {})
        deleted_lines = dirty.get("lines_deleted", {})
        paid = dirty.get("payments", set())
        line_ids = [lid for lid in dirty.get("lines", ()) if lid not in deleted_lines]
        # (gone: deleted with their order in SQL, or rolled back with a savepoint)
        lines = self.env["pos.order.line"].browse(sorted(line_ids)).exists()
        order_ids = (
            touched
            | paid
            | set(lines.order_id.ids)
            | {order_id for order_id, _uuid in deleted_lines.values()}
        ) - set(deleted)
        if not (order_ids or deleted):
            return
        orders = self.env["pos.order"].browse(sorted(order_ids)).exists()
        line_origins = tx.get("lines", {})
        lines_by_order = {}
        for line in lines:
            # (a line rewritten with its own values, as amounts recomputed
            # for the whole order, did not change)
            orig = line_origins.get(line.id)
            if orig is None or orig != _line_state(line):
                lines_by_order.setdefault(line.order_id.id, []).append(line)
        deleted_by_order = {}
        for line_id, (order_id, line_uuid) in deleted_lines.items():
            deleted_by_order.setdefault(order_id, []).append((line_id, line_uuid))
        tables = {}  # (table_id, config) -> session id
        for order in orders:
            config = order.config_id
            rooms = self._order_rooms(order)
            created = order.id in origins and origins[order.id] is None
            orig = origins.get(order.id)
            before = emitted.get(("pos.order", order.id), set())
            payload = self._order_payload(order)

            emit = functools.partial(self._emit_merged, config, rooms, order)

            if created:
                emit(events.ORDER_CREATED, payload)
                if order.table_id:
                    tables[order.table_id.id, config] = order.session_id.id
            else:
                state_changed = orig is not None and (orig[0], orig[1]) != (
                    order.state,
                    order.api_state,
                )
                if state_changed or events.ORDER_STATE_CHANGED in before:
                    previous = {"state": orig[1], "odoo_state": orig[0]} if orig else None
                    emit(events.ORDER_STATE_CHANGED, dict(payload, previous=previous))
                if (
                    changed_fields.get(order.id, set()) - STATE_FIELDS - SILENT_FIELDS
                    or order.id in lines_by_order
                    or order.id in deleted_by_order
                    or events.ORDER_UPDATED in before
                ):
                    emit(events.ORDER_UPDATED, payload)
                if orig is not None and (
                    orig[2] != order.table_id.id
                    or orig[3] != order.customer_count
                    or (orig[0] == "draft") != (order.state == "draft")
                ):
                    for table_id in {orig[2], order.table_id.id} - {False, None}:
                        tables[table_id, config] = order.session_id.id
                totals = self._order_totals(order)
                for line in lines_by_order.get(order.id, ()):
                    emit(
                        events.LINE_UPDATED,
                        {**self._line_payload(line, order), **totals},
                        record=line,
                    )
                for line_id, line_uuid in deleted_by_order.get(order.id, ()):
                    emit(
                        events.LINE_UPDATED,
                        {
                            "id": line_id,
                            "uuid": line_uuid,
                            "order_id": order.id,
                            "deleted": True,
                            **totals,
                        },
                        record=self.env["pos.order.line"].browse(line_id),
                    )
            if order.api_state == lc.READY and (created or (orig and orig[1] != lc.READY)):
                emit(events.KITCHEN_ORDER_READY, payload)
            if order.id in tx_payments and (order.id in paid or events.PAYMENT_PROCESSED in before):
                emit(
                    events.PAYMENT_PROCESSED,
                    {
                        **{key: payload[key] for key in self._SUMMARY_KEYS},
                        "processed_ids": sorted(tx_payments[order.id]),
                        "payments": payload["payments"],
                    },
                )
        for order_id, (config_id, session_id, table_id, order_uuid) in deleted.items():
            config = self.env["pos.config"].browse(config_id)
            rooms = [events.room(events.TABLE, table_id)] if table_id else []
            if session_id:
                rooms.append(events.room(events.SESSION, session_id))
            self._emit(
                config,
                events.ORDER_UPDATED,
                rooms,
                {"id": order_id, "uuid": order_uuid, "deleted": True},
                self.env["pos.order"].browse(order_id),
                merge=True,
            )
            if table_id:
                tables[table_id, config] = session_id
        if tables:
            self._build_table_events(tables)

    def _emit_merged(self, config, rooms, order, event_type, payload, *, record=None):
        self._emit(
            config, event_type, rooms, payload, order if record is None else record, merge=True
        )

    # The keys of an order payload that every event about the order repeats.
    _SUMMARY_KEYS = (
        "id",
        "uuid",
        "name",
        "table_id",
        "state",
        "odoo_state",
        "amount_total",
        "amount_paid",
    )

    def _order_rooms(self, order):
        rooms = [events.room(events.TABLE, order.table_id.id)] if order.table_id else []
        if order.session_id:
            rooms.append(events.room(events.SESSION, order.session_id.id))
        return rooms

    def _order_totals(self, order):
        digits = order.currency_id.decimal_places
        return {
            "order_uuid": order.uuid,
            "amount_tax": _money(order.amount_tax, digits),
            "amount_total": _money(order.amount_total, digits),
        }

    def _line_payload(self, line, order):
        digits = order.currency_id.decimal_places
        return {
            "id": line.id,
            "uuid": line.uuid,
            "order_id": order.id,
            "product_id": line.product_id.id,
            "name": _text(line.full_product_name) or line.product_id.display_name,
            "qty": float_repr(line.qty, 3),
            "price_unit": float_repr(line.price_unit, max(digits, 4)),
            "discount": float_repr(line.discount, 2),
            "price_subtotal_incl": _money(line.price_subtotal_incl, digits),
            "note": _text(line.customer_note),
            "seat": line.api_seat or None,
        }

    def _order_payload(self, order):
        """The order as a screen shows it, from the cache; bounded by _emit."""
        digits = order.currency_id.decimal_places
        return {
            "id": order.id,
            "uuid": order.uuid,
            "name": order.name,
            "config_id": order.config_id.id,
            "session_id": order.session_id.id or None,
            "table_id": order.table_id.id or None,
            "customer_count": order.customer_count,
            "state": order.api_state,
            "odoo_state": order.state,
            "flow": order.api_flow,
            "partner_id": order.partner_id.id or None,
            "note": _text(order.general_note),
            "amount_tax": _money(order.amount_tax, digits),
            "amount_total": _money(order.amount_total, digits),
            "amount_paid": _money(order.amount_paid, digits),
            "lines": [self._line_payload(line, order) for line in order.lines],
            "payments": [
                {
                    "id": payment.id,
                    "payment_method_id": payment.payment_method_id.id,
                    "amount": _money(payment.amount, digits),
                    "is_change": payment.is_change,
                }
                for payment in order.payment_ids
            ],
        }

    def _build_table_events(self, tables):
        """``table.updated`` with the table's live state: one query for all
        tables of the transaction."""
        table_ids = sorted({table_id for table_id, _config in tables})
        live = self.env["restaurant.table"]._api_live_state(table_ids)
        records = self.env["restaurant.table"].sudo().browse(table_ids)
        by_id = {table.id: table for table in records}
        # A floor may serve several points of sale: each sees the table's state.
        targets = {}
        for (table_id, config), session_id in tables.items():
            targets[(table_id, config.id)] = (config, session_id)
            for shared in by_id[table_id].floor_id.pos_config_ids.filtered(
                lambda other, config=config: (
                    other.company_id == config.company_id and other.module_pos_restaurant
                )
            ):
                targets.setdefault(
                    (table_id, shared.id), (shared, shared.current_session_id.id or None)
                )
        for (table_id, _config_id), (config, session_id) in sorted(targets.items()):
            table = by_id[table_id]
            rooms = [events.room(events.TABLE, table_id)]
            if session_id:
                rooms.append(events.room(events.SESSION, session_id))
            self._emit(
                config,
                events.TABLE_UPDATED,
                rooms,
                {
                    "id": table_id,
                    "table_number": table.table_number,
                    "floor_id": table.floor_id.id,
                    **live[table_id],
                },
                table,
                merge=True,
            )

    # ------------------------------------------------------------------
    # Sessions and menu
    # ------------------------------------------------------------------
    def _build_session_events(self, touched):
        if not touched:
            return
        origins = self._sync_tx().get("sessions", {})
        sessions = self.env["pos.session"].browse(sorted(touched)).exists()
        for session in sessions:
            orig = origins.get(session.id)
            if orig is not None and orig == session.state:
                continue
            self._emit(
                session.config_id,
                events.SESSION_UPDATED,
                [events.room(events.SESSION, session.id)],
                {
                    "id": session.id,
                    "name": session.name,
                    "config_id": session.config_id.id,
                    "state": session.state,
                    "previous_state": orig,
                    "user_id": session.user_id.id,
                    "start_at": event_at(session.start_at),
                    "stop_at": event_at(session.stop_at),
                },
                session,
                merge=True,
            )

    def _build_menu_events(self, template_ids):
        """Minimal: which products of a company's menus changed; devices read
        the menu again."""
        if not template_ids:
            return
        templates = self.env["product.template"].with_context(active_test=False)
        templates = templates.browse(sorted(template_ids)).exists()
        if not templates:
            return
        # A product of no company is on the menus of every company.
        shared = not all(template.company_id for template in templates)
        domain = [] if shared else [("company_id", "in", templates.company_id.ids)]
        configs = self.env["pos.config"].search(domain)
        if not configs:
            return
        by_company = {}
        for template in templates:
            by_company.setdefault(template.company_id.id, templates.browse())
            by_company[template.company_id.id] |= template
        for config in configs:
            mine = by_company.get(config.company_id.id, templates.browse()) | by_company.get(
                False, templates.browse()
            )
            if not mine:
                continue
            variants = (
                mine.with_company(config.company_id)
                .with_context(active_test=False)
                .product_variant_ids
            )
            product_ids = variants.ids
            payload = {
                "template_ids": mine.ids,
                "product_ids": product_ids,
                "sold_out_product_ids": variants.filtered("product_tmpl_id.api_sold_out").ids,
            }
            if max(len(product_ids), len(mine)) > limits.SYNC_LOG_MAX_MENU_IDS:
                payload = {
                    "template_ids": [],
                    "product_ids": [],
                    "sold_out_product_ids": [],
                    "truncated": True,
                }
            self._emit(config, events.MENU_UPDATED, [], payload, config, merge=True)


# ----------------------------------------------------------------------
# The marks
# ----------------------------------------------------------------------
class PosOrder(models.Model):
    _inherit = "pos.order"

    @api.model_create_multi
    def create(self, vals_list):
        orders = super().create(vals_list)
        log = self.env["pos.sync.log"]
        origins = log._sync_tx().setdefault("orders", {})
        for order in orders:
            origins[order.id] = None  # created by this transaction
        log._sync_dirty().setdefault("orders", set()).update(orders.ids)
        return orders

    def write(self, vals):
        if self:
            self._sync_mark(vals)
        return super().write(vals)

    def _sync_mark(self, vals):
        log = self.env["pos.sync.log"]
        origins = log._sync_tx().setdefault("orders", {})
        for order in self:
            if order.id not in origins:
                origins[order.id] = (
                    order.state,
                    order.api_state,
                    order.table_id.id,
                    order.customer_count,
                )
        dirty = log._sync_dirty()
        dirty.setdefault("orders", set()).update(self.ids)
        written = dirty.setdefault("order_fields", {})
        for order_id in self.ids:
            written.setdefault(order_id, set()).update(vals)

    def unlink(self):
        if self:
            deleted = self.env["pos.sync.log"]._sync_dirty().setdefault("orders_deleted", {})
            for order in self:
                deleted[order.id] = (
                    order.config_id.id,
                    order.session_id.id,
                    order.table_id.id,
                    order.uuid,
                )
        return super().unlink()


class PosOrderLine(models.Model):
    _inherit = "pos.order.line"

    @api.model_create_multi
    def create(self, vals_list):
        lines = super().create(vals_list)
        log = self.env["pos.sync.log"]
        origins = log._sync_tx().setdefault("lines", {})
        for line in lines:
            origins[line.id] = None
        log._sync_dirty().setdefault("lines", set()).update(lines.ids)
        return lines

    def write(self, vals):
        if self:
            log = self.env["pos.sync.log"]
            origins = log._sync_tx().setdefault("lines", {})
            for line in self:
                if line.id not in origins:
                    origins[line.id] = _line_state(line)
            log._sync_dirty().setdefault("lines", set()).update(self.ids)
        return super().write(vals)

    def unlink(self):
        if self:
            deleted = self.env["pos.sync.log"]._sync_dirty().setdefault("lines_deleted", {})
            for line in self:
                deleted[line.id] = (line.order_id.id, line.uuid)
        return super().unlink()


class PosPayment(models.Model):
    _inherit = "pos.payment"

    @api.model_create_multi
    def create(self, vals_list):
        payments = super().create(vals_list)
        log = self.env["pos.sync.log"]
        added = log._sync_tx().setdefault("payments", {})
        for payment in payments:
            added.setdefault(payment.pos_order_id.id, set()).add(payment.id)
        log._sync_dirty().setdefault("payments", set()).update(payments.pos_order_id.ids)
        return payments

    def unlink(self):
        if self:
            self.mapped("pos_order_id")._sync_mark({"payment_ids"})
        return super().unlink()


class PosSession(models.Model):
    _inherit = "pos.session"

    @api.model_create_multi
    def create(self, vals_list):
        sessions = super().create(vals_list)
        log = self.env["pos.sync.log"]
        origins = log._sync_tx().setdefault("sessions", {})
        for session in sessions:
            origins[session.id] = None
        log._sync_dirty().setdefault("sessions", set()).update(sessions.ids)
        return sessions

    def write(self, vals):
        if self and "state" in vals:
            log = self.env["pos.sync.log"]
            origins = log._sync_tx().setdefault("sessions", {})
            for session in self:
                origins.setdefault(session.id, session.state)
            log._sync_dirty().setdefault("sessions", set()).update(self.ids)
        return super().write(vals)


class ProductTemplate(models.Model):
    _inherit = "product.template"

    @api.model_create_multi
    def create(self, vals_list):
        templates = super().create(vals_list)
        listed = templates.filtered("available_in_pos")
        if listed:
            self.env["pos.sync.log"]._sync_dirty().setdefault("templates", set()).update(listed.ids)
        return templates

    def write(self, vals):
        if self and MENU_FIELDS.intersection(vals):
            # Products on a POS menu, or leaving or joining one.
            menu = self if "available_in_pos" in vals else self.filtered("available_in_pos")
            if menu:
                self.env["pos.sync.log"]._sync_dirty().setdefault("templates", set()).update(
                    menu.ids
                )
        return super().write(vals)


class ProductProduct(models.Model):
    _inherit = "product.product"

    def write(self, vals):
        # (lst_price and available_in_pos write the template, marked there)
        menu = self.filtered("available_in_pos") if self and "active" in vals else None
        if menu:
            self.env["pos.sync.log"]._sync_dirty().setdefault("templates", set()).update(
                menu.product_tmpl_id.ids
            )
        return super().write(vals)
