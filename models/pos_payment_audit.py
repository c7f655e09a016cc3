import contextlib
import fcntl
import json
import logging
import os
import uuid
from collections import defaultdict
from datetime import datetime, timezone
from decimal import Decimal

import psycopg2

from odoo import api, fields, http, models
from odoo.exceptions import AccessError, MissingError, UserError
from odoo.tools import SQL, config, float_repr

from ..pos_core import audit, keyfile
from .pos_api_device import api_settings

_logger = logging.getLogger(__name__)

EVENT_SELECTION = [(event, event.capitalize()) for event in audit.EVENTS]

# Key of the events waiting in ``cr.precommit.data`` for the end of the
# transaction, and of the advisory locks serialising appends per company.
PENDING_KEY = "point_of_sale_api.payment_audit.pending"
LOCK_CLASS = 0x50415544  # "PAUD": the first key of pg_advisory_xact_lock(int, int)

# Context keys through which the API names who took a payment.
CONTEXT_DEVICE = "pos_api_device_id"
CONTEXT_IDEMPOTENCY_KEY = "pos_api_idempotency_key"
# Attribute of the HTTP request naming the device the device API authenticated.
REQUEST_DEVICE_ATTRIBUTE = "pos_api_device_id"

# Columns written by ``_append``: the hashed content, the two links and the
# hash scheme (NULL: plain sha256, written before the chain was keyed).
INSERT_COLUMNS = (*audit.HASHED_FIELDS, "previous_hash", "hash_scheme", "hash")
HEADS_FILE = "audit_heads.json"
KEY_PURPOSE = "audit"
EVENT_KEYS = frozenset(audit.HASHED_FIELDS) - {"sequence"}
INSERT_BATCH = 1000
DETACHED_LOCK_TIMEOUT = "10s"
VERIFY_PAGE = 5000


class PosPaymentAudit(models.Model):
    """The tamper-evident payment audit trail: one row per payment event.

    Rows form a hash chain per company (see ``pos_core.audit``): gapless
    ``sequence``, ``hash = sha256(previous_hash + canonical JSON of the
    row)``. ``_append`` is the only way in (``_enqueue`` calls it at commit
    time, ``_append_detached`` in a transaction of its own); the ORM refuses
    create, write and unlink, and a PostgreSQL trigger refuses UPDATE, DELETE
    and TRUNCATE, so ``_verify`` only has to expose whoever went around it.

    Sequences: ``_append`` takes ``pg_advisory_xact_lock(LOCK_CLASS,
    company_id)`` and reads the chain's head both in its own transaction and
    on a fresh cursor. Odoo runs in REPEATABLE READ: a transaction that
    started before the previous holder committed would not see its rows,
    and locking a counter row would fail it with a serialization error
    (retried by Odoo, but under load nearly every concurrent payment would
    be replayed). The fresh cursor sees every committed append, the lock
    keeps anyone else from appending until this transaction ends, and
    UNIQUE(company_id, sequence) refuses a duplicate should anything slip.
    A sequence is only consumed by a committed row: no gaps.

    Orders and payments are referenced by plain ids (``order_res_id``,
    ``payment_res_id``), not foreign keys: Odoo deletes draft orders and
    their payments (``remove_from_ui``), which must neither be blocked nor
    rewrite an audit row through ``ON DELETE SET NULL``. Their deletion is
    itself an event (``voided``). The other references restrict deletion.

    A field added to this model later must not need an UPDATE of existing
    rows (Odoo fills new columns with one): disable the trigger in the
    migration, and remember that new columns are outside the hash.
    """

    _name = "pos.payment.audit"
    _description = "POS Payment Audit Record"
    _order = "company_id, sequence"
    _log_access = False
    _rec_name = "sequence"

    # Indexed by UNIQUE(company_id, sequence), which every query here uses.
    company_id = fields.Many2one("res.company", required=True, readonly=True, ondelete="restrict")
    sequence = fields.Integer(required=True, readonly=True, aggregator=False)
    event = fields.Selection(EVENT_SELECTION, required=True, readonly=True)
    event_at = fields.Datetime(required=True, readonly=True)
    order_res_id = fields.Integer("Order ID", readonly=True, index="btree_not_null")
    order_name = fields.Char("Order Reference", readonly=True)
    order_id = fields.Many2one("pos.order", compute="_compute_links", search="_search_order_id")
    payment_res_id = fields.Integer("Payment ID", readonly=True, index="btree_not_null")
    payment_id = fields.Many2one("pos.payment", compute="_compute_links")
    amount = fields.Monetary(readonly=True, currency_field="currency_id")
    currency_id = fields.Many2one("res.currency", required=True, readonly=True, ondelete="restrict")
    payment_method_id = fields.Many2one("pos.payment.method", readonly=True, ondelete="restrict")
    is_change = fields.Boolean(
        "Change Given", readonly=True, help="Cash handed back: a negative captured amount."
    )
    actor_user_id = fields.Many2one("res.users", "Actor", readonly=True, ondelete="restrict")
    actor_device_id = fields.Many2one("pos.api.device", readonly=True, ondelete="restrict")
    terminal_ref = fields.Char("Terminal Reference", readonly=True)
    idempotency_key = fields.Char(readonly=True, index="btree_not_null")
    # Plain text, not selections: removing a selection value would make Odoo
    # rewrite existing rows.
    order_state_before = fields.Char(readonly=True)
    order_state_after = fields.Char(readonly=True)
    previous_hash = fields.Char(required=True, readonly=True)
    hash = fields.Char(required=True, readonly=True)
    # Outside the hash; empty on rows written before the chain was keyed
    # (no default: adding the column must not UPDATE the existing rows).
    hash_scheme = fields.Char(readonly=True)

    _sql_constraints = [
        (
            "company_sequence_unique",
            "UNIQUE(company_id, sequence)",
            "Two audit records cannot share a sequence in a company's chain.",
        ),
        ("sequence_positive", "CHECK(sequence > 0)", "Audit sequences start at 1."),
    ]

    def init(self):
        for statement in audit.immutability_sql(self._table):
            self.env.cr.execute(SQL(statement))
        try:
            self._export_legacy_boundaries()
        except OSError:
            _logger.warning(
                "Could not record the payment audit chains' unkeyed boundary in %s: "
                "verification accepts any unkeyed prefix until it is",
                self._audit_dir(),
                exc_info=True,
            )

    # ------------------------------------------------------------------
    # The key and the exported heads, outside the database
    # ------------------------------------------------------------------
    @api.model
    def _audit_key(self):
        """The chain's HMAC key: configured (``audit_key`` in the
        ``[point_of_sale_api]`` section, or POS_API_AUDIT_KEY), else a random
        key created once in Odoo's data directory (mode 0600)."""
        key = api_settings().audit_key or keyfile.read_or_create(
            keyfile.key_path(config["data_dir"], self.env.cr.dbname, KEY_PURPOSE)
        )
        return audit.check_key(key)

    @api.model
    def _audit_dir(self):
        return api_settings().audit_dir or keyfile.state_dir(config["data_dir"], self.env.cr.dbname)

    @api.model
    def _exported_heads(self):
        """``{company_id: {sequence, hash, legacy_until, exported_at}}`` as
        last exported, or None when nothing was ever exported here."""
        path = os.path.join(self._audit_dir(), HEADS_FILE)
        try:
            with open(path, encoding="utf-8") as handle:
                content = json.load(handle)
        except FileNotFoundError:
            return None
        return {int(company): head for company, head in content["companies"].items()}

    @api.model
    def _export_heads(self, heads, legacy_until=None):
        """Merge ``{company_id: (sequence, hash)}`` into the heads file and
        the server log. A head never goes backwards; ``legacy_until`` (per
        company) is written once, the first time a company is exported.

        The file is rewritten whole, atomically, under an exclusive lock
        (several workers may verify at once)."""
        directory = self._audit_dir()
        os.makedirs(directory, mode=0o700, exist_ok=True)
        path = os.path.join(directory, HEADS_FILE)
        legacy_until = legacy_until or {}
        now = datetime.now(timezone.utc).isoformat(timespec="seconds")
        lock_fd = os.open(path + ".lock", os.O_WRONLY | os.O_CREAT, 0o600)
        with os.fdopen(lock_fd, "w") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            content = {"database": self.env.cr.dbname, "companies": {}}
            with contextlib.suppress(FileNotFoundError), open(path, encoding="utf-8") as handle:
                content = json.load(handle)
            companies = content["companies"]
            for company_id, (sequence, head_hash) in sorted(heads.items()):
                entry = companies.get(str(company_id))
                if entry is None:
                    entry = companies[str(company_id)] = {
                        "sequence": 0,
                        "hash": audit.GENESIS_HASH,
                        "legacy_until": legacy_until.get(company_id, 0),
                    }
                if sequence > entry["sequence"]:
                    entry.update(sequence=sequence, hash=head_hash, exported_at=now)
                _logger.info(
                    "Payment audit chain head of company %s: sequence %s, hash %s (exported to %s)",
                    company_id,
                    entry["sequence"],
                    entry["hash"],
                    path,
                )
            temporary = f"{path}.{os.getpid()}.tmp"
            fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
            with os.fdopen(fd, "w", encoding="utf-8") as handle:
                json.dump(content, handle, indent=1, sort_keys=True)
                handle.flush()
                os.fsync(handle.fileno())
            os.replace(temporary, path)
        return path

    @api.model
    def _export_legacy_boundaries(self):
        """At installation and upgrade: remember, outside the database, the
        last unkeyed record of each chain. Unkeyed records after it are a
        rewrite (see ``pos_core.audit``)."""
        self.env.cr.execute(
            SQL(
                "SELECT company_id, max(sequence),"
                " max(sequence) FILTER (WHERE hash_scheme IS NULL)"
                " FROM %s GROUP BY company_id",
                SQL.identifier(self._table),
            )
        )
        rows = self.env.cr.fetchall()
        exported = self._exported_heads() or {}
        boundaries = {
            company_id: plain or 0
            for company_id, _last, plain in rows
            if company_id not in exported
        }
        if boundaries or not exported:
            # The head itself is exported by the next verification.
            self._export_heads(dict.fromkeys(boundaries, (0, audit.GENESIS_HASH)), boundaries)

    # ------------------------------------------------------------------
    # Append-only
    # ------------------------------------------------------------------
    @api.model_create_multi
    def create(self, vals_list):  # pylint: disable=method-required-super
        raise UserError(self.env._("Payment audit records are only written by the payment flows."))

    def write(self, vals):  # pylint: disable=method-required-super
        raise UserError(self.env._("Payment audit records cannot be changed."))

    @api.ondelete(at_uninstall=False)
    def _unlink_never(self):
        raise UserError(self.env._("Payment audit records cannot be deleted."))

    def copy(self, default=None):  # pylint: disable=method-required-super
        raise UserError(self.env._("Payment audit records cannot be copied."))

    @api.depends("order_res_id", "payment_res_id")
    def _compute_links(self):
        orders = self.env["pos.order"].browse(set(self.mapped("order_res_id")) - {0}).exists()
        payments = self.env["pos.payment"].browse(set(self.mapped("payment_res_id")) - {0})
        payments = payments.exists()
        for record in self:
            record.order_id = orders.browse(record.order_res_id) & orders
            record.payment_id = payments.browse(record.payment_res_id) & payments

    def _search_order_id(self, operator, value):
        if isinstance(value, str) or operator in ("like", "ilike", "not like", "not ilike"):
            return [
                ("order_res_id", "in", self.env["pos.order"]._search([("name", operator, value)]))
            ]
        return [("order_res_id", operator, value)]

    # ------------------------------------------------------------------
    # Appending
    # ------------------------------------------------------------------
    @api.model
    def _append(self, events):
        """Append ``events`` (dicts keyed by the hashed columns but
        ``sequence``) to their companies' chains, now; returns the records.

        The chain's lock is held until the transaction ends: payment flows
        use :meth:`_enqueue`, which appends at commit time.
        """
        rows = [self._normalize_event(event) for event in events]
        by_company = defaultdict(list)
        for row in rows:
            by_company[row["company_id"]].append(row)
        key = self._audit_key()
        for company_id in sorted(by_company):  # one lock order: no deadlock
            audit.link(self._lock_chain(company_id), by_company[company_id], key)
        ids = []
        for start in range(0, len(rows), INSERT_BATCH):
            ids += self._insert_rows(rows[start : start + INSERT_BATCH])
        return self.browse(ids)

    @api.model
    def _enqueue(self, events):
        """Append ``events`` when the transaction commits (``precommit``).

        The lock is then held for the last instant of the transaction only,
        events rolled back with a savepoint are dropped with it, and an event
        without ``order_state_after`` gets the order's state at that time.
        Actor, device, idempotency key and time are taken now.
        """
        if not events:
            return
        rows = [self._normalize_event(event, defer_state=True) for event in events]
        precommit = self.env.cr.precommit
        pending = precommit.data.get(PENDING_KEY)
        if pending is None:
            pending = precommit.data[PENDING_KEY] = []
            model = self.sudo()

            @precommit.add
            def _append_pending():
                queued = precommit.data.pop(PENDING_KEY, [])
                if queued:
                    model._append(model._with_order_state_after(queued))

        pending.extend(rows)

    @api.model
    def _append_detached(self, events):
        """Append ``events`` in a transaction of their own, committed at once,
        and return their ids: for events that must outlive the request that
        saw them (a ``failed`` payment, whose request is rolled back).

        The calling transaction must not hold the chain already (no
        ``_append`` earlier in it): the lock timeout turns that mistake into
        an error instead of a wait on itself.
        """
        with self.env.registry.cursor() as cr:
            cr.execute(SQL("SET LOCAL lock_timeout = %s", DETACHED_LOCK_TIMEOUT))
            return self.env(cr=cr)[self._name].sudo()._append(events).ids

    def _with_order_state_after(self, rows):
        order_ids = {row["order_res_id"] for row in rows if row["order_res_id"]}
        orders = self.env["pos.order"].browse(order_ids)
        try:  # the orders of this transaction: their state is in the cache
            states = {order.id: order.api_state for order in orders}
        except MissingError:  # one was deleted since
            states = {order.id: order.api_state for order in orders.exists()}
        for row in rows:
            if row.get("order_state_after", False) is False:
                row["order_state_after"] = states.get(row["order_res_id"])
        return rows

    def _normalize_event(self, event, defer_state=False):
        """The exact values to store and hash: what PostgreSQL gives back."""
        unknown = set(event) - EVENT_KEYS
        if unknown:
            raise ValueError(f"unknown audit keys: {sorted(unknown)}")
        if event.get("event") not in audit.EVENTS:
            raise ValueError(f"unknown audit event {event.get('event')!r}")
        context = self.env.context
        company = self.env["res.company"].browse(event.get("company_id") or self.env.company.id)
        currency = self.env["res.currency"].browse(
            event.get("currency_id") or company.sudo().currency_id.id
        )
        row = {
            "company_id": company.id,
            "event": event["event"],
            "event_at": _utc_naive(event.get("event_at") or fields.Datetime.now()),
            "amount": _exact_amount(event.get("amount"), currency),
            "currency_id": currency.id,
            "is_change": bool(event.get("is_change")),
            "actor_user_id": event.get("actor_user_id", self.env.uid) or None,
            "actor_device_id": event.get("actor_device_id", self._context_device_id()) or None,
            "idempotency_key": event.get("idempotency_key", context.get(CONTEXT_IDEMPOTENCY_KEY)),
        }
        for key in (
            "order_res_id",
            "order_name",
            "payment_res_id",
            "payment_method_id",
            "terminal_ref",
            "order_state_before",
        ):
            row[key] = event.get(key) or None
        for key in ("order_name", "terminal_ref", "idempotency_key", "order_state_before"):
            row[key] = str(row[key]) if row[key] else None
        if defer_state and "order_state_after" not in event:
            row["order_state_after"] = False  # filled in at commit time
        else:
            row["order_state_after"] = event.get("order_state_after") or None
        return row

    def _context_device_id(self):
        """The device named in the context, if it may be believed: a caller
        chooses its context (over RPC too). Within an HTTP request, only the
        device the device API authenticated for that very request counts;
        outside requests (server code, crons), a device acting as the
        current user."""
        device_id = self.env.context.get(CONTEXT_DEVICE)
        if not device_id:
            return None
        if http.request:
            authenticated = getattr(http.request, REQUEST_DEVICE_ATTRIBUTE, None)
            return device_id if authenticated == device_id else None
        device = self.env["pos.api.device"].sudo().with_context(active_test=False)
        device = device.browse(device_id).exists()
        return device_id if device and device.user_id.id == self.env.uid else None

    def _lock_chain(self, company_id):
        """Lock the company's chain until the transaction ends; its head."""
        cr = self.env.cr
        head_query = SQL(
            "SELECT sequence, hash FROM %s WHERE company_id = %s ORDER BY sequence DESC LIMIT 1",
            SQL.identifier(self._table),
            company_id,
        )
        # The lock, and the head this transaction sees (its own appends
        # included), in one statement; rows other transactions committed
        # after this one's snapshot are read below, once the lock is held.
        cr.execute(
            SQL(
                "SELECT locked.sequence, locked.hash"
                " FROM pg_advisory_xact_lock(%s, %s) AS lock"
                " LEFT JOIN (%s) AS locked ON true",
                LOCK_CLASS,
                company_id,
                head_query,
            )
        )
        own = cr.fetchone()
        heads = [own if own[0] is not None else None]
        fresh = self.env.registry.cursor()
        try:
            fresh.execute(head_query, log_exceptions=False)
            heads.append(fresh.fetchone())
        except psycopg2.errors.UndefinedTable:
            # The table is being created by this very transaction (installation).
            _logger.debug("payment audit table not committed yet: no committed head")
        finally:
            fresh.close()
        return max((head for head in heads if head), default=None)

    def _insert_rows(self, rows):
        values = SQL(", ").join(
            SQL("(%s)", SQL(", ").join(SQL("%s", row[column]) for column in INSERT_COLUMNS))
            for row in rows
        )
        self.env.cr.execute(
            SQL(
                "INSERT INTO %s (%s) VALUES %s RETURNING id",
                SQL.identifier(self._table),
                SQL(", ").join(SQL.identifier(column) for column in INSERT_COLUMNS),
                values,
            )
        )
        return [row_id for (row_id,) in self.env.cr.fetchall()]

    # ------------------------------------------------------------------
    # Verification
    # ------------------------------------------------------------------
    @api.model
    def _verify(self, company=None, page_size=VERIFY_PAGE):
        """Walk the chains and report the first broken link of each.

        Returns ``{ok, checked, first_broken, broken_ids, companies}``:
        ``first_broken`` is that of the first broken company (by id) with its
        ``company_id``, ``broken_ids`` every broken record of every company,
        ``companies`` the per-company details (``pos_core.audit.VerifyResult``
        as a dict). Rows are read in pages, ordered by (company, sequence),
        and streamed through the engine: memory does not grow with the chain.
        Earlier checks (``pos.payment.audit.check``) are the anchors that
        expose a chain cut short.
        """
        self.check_access("read")
        if company:
            company_ids = company.ids
        elif not self.env.su:
            company_ids = self.env.companies.ids
        else:
            company_ids = None
        if not self.env.su and set(company_ids) - set(self.env.user.company_ids.ids):
            raise AccessError(self.env._("You can only verify the chains of your companies."))
        anchors = self._anchors(company_ids)
        exported = self._exported_heads()
        for company_id, head in (exported or {}).items():
            if head["sequence"] and (company_ids is None or company_id in company_ids):
                anchors[company_id][head["sequence"]] = head["hash"]
        results = audit.verify_chains(
            self._iter_rows(company_ids, page_size),
            anchors,
            key=self._audit_key(),
            legacy_until={c: head["legacy_until"] for c, head in (exported or {}).items()},
            # Nothing ever exported here (a restored copy): any unkeyed prefix;
            # else a company first exported later never had unkeyed records.
            legacy_default=None if exported is None else 0,
        )
        for company_id in company_ids or ():
            results.setdefault(company_id, audit.VerifyResult())
        self._export_heads_on_commit(results)
        companies = []
        for company_id in sorted(results):
            details = results[company_id].to_dict()
            details["company_id"] = company_id
            if details["first_broken"]:
                details["first_broken"]["company_id"] = company_id
            companies.append(details)
        first_broken = next(
            (details["first_broken"] for details in companies if details["first_broken"]), None
        )
        return {
            "ok": first_broken is None,
            "checked": sum(details["checked"] for details in companies),
            "first_broken": first_broken,
            "broken_ids": [
                record_id for details in companies for record_id in details["broken_ids"]
            ],
            "companies": companies,
        }

    @api.model
    def _verify_incremental(self, company, page_size=VERIFY_PAGE):
        """What the API's ``/audit/verify`` runs: the records of ``company``
        from the head of its last check that held, not the whole chain (the
        daily ``_cron_verify`` walks it all).

        The check's head record is read again and must still carry the hash
        the check saw; the walk then continues link by link. The result is
        recorded as a new check, the next call's starting point. Returns the
        shape of :meth:`_verify` plus ``since_sequence``.
        """
        self.check_access("read")
        if not self.env.su and company not in self.env.user.company_ids:
            raise AccessError(self.env._("You can only verify the chains of your companies."))
        last = (
            self.env["pos.payment.audit.check"]
            .sudo()
            .search(
                [("company_id", "=", company.id), ("ok", "=", True), ("head_sequence", ">", 0)],
                order="head_sequence desc, id desc",
                limit=1,
            )
        )
        since = last.head_sequence
        anchors = {since: last.head_hash} if last else {}
        # The head exported outside the database: a chain cut or rewritten
        # below it is reported, whatever the database's own checks say.
        exported = self._exported_heads()
        exported_head = (exported or {}).get(company.id) or {}
        if exported_head.get("sequence", 0) >= max(since, 1):
            anchors[exported_head["sequence"]] = exported_head["hash"]
        if company.id in (exported or {}):
            legacy_until = exported_head.get("legacy_until")
        else:  # as _verify: nothing exported here at all, any unkeyed prefix
            legacy_until = None if exported is None else 0
        verifier = audit.ChainVerifier(
            anchors or None, key=self._audit_key(), legacy_until=legacy_until
        )
        rows = self._iter_rows(company.ids, page_size, from_sequence=since)
        for row in rows:
            if since and verifier.result.checked == 0:
                # Start just before the anchor: its own link is checked against
                # the hash it had then (a missing anchor is a gap or a cut).
                verifier.result.head_sequence = since - 1
                verifier.result.head_hash = (
                    row["previous_hash"] if row["sequence"] == since else None
                )
            verifier.feed(row)
        if since and verifier.result.checked == 0:
            verifier.result.head_sequence = since - 1
        result = verifier.finish()
        self._export_heads_on_commit({company.id: result})
        details = result.to_dict()
        details["company_id"] = company.id
        first = details["first_broken"]
        if first:
            first["company_id"] = company.id
        # Only a head this walk verified may anchor later ones.
        verified_head = details["head_sequence"] >= max(since, 1)
        self.env["pos.payment.audit.check"].sudo().create(
            {
                "company_id": company.id,
                "ok": details["ok"],
                "checked": details["checked"],
                "head_sequence": details["head_sequence"] if verified_head else 0,
                "head_hash": details["head_hash"] if verified_head else False,
                "first_broken_id": (first or {}).get("id") or False,
                "first_broken_sequence": (first or {}).get("sequence") or 0,
                "reason": (first or {}).get("reason") or False,
                "broken_count": len(details["broken_ids"]),
            }
        )
        return {
            "ok": details["ok"],
            "checked": details["checked"],
            "since_sequence": since,
            "first_broken": first,
            "broken_ids": details["broken_ids"],
            "companies": [details],
        }

    def _export_heads_on_commit(self, results):
        """Export the heads of the chains that hold once this transaction
        commits (a head of uncommitted rows would be a lie)."""
        heads = {
            company_id: (result.head_sequence, result.head_hash)
            for company_id, result in results.items()
            if result.ok and result.head_sequence
        }
        legacy = {company_id: result.plain_until for company_id, result in results.items()}
        if not heads:
            return
        dbname = self.env.cr.dbname

        @self.env.cr.postcommit.add
        def _export():
            try:  # reads no database: only the cursor's name is used
                self._export_heads(heads, legacy)
            except OSError:
                _logger.exception("Could not export the payment audit heads of %s", dbname)

    def _iter_rows(self, company_ids, page_size, from_sequence=0):
        """Rows as dicts, ordered by (company, sequence, id), streamed from a
        server-side cursor in pages of ``page_size``, in this transaction's
        snapshot.

        The id breaks ties so that a duplicated sequence (possible only once
        the unique constraint is gone) is read like any other row. The plan
        is the unique index plus an incremental sort: no page costs more
        than the one before, unlike OFFSET or a keyset on three columns.
        """
        columns = ("id", *audit.HASHED_FIELDS, "previous_hash", "hash_scheme", "hash")
        # Odoo's cursor turns NUMERIC into float: the amount is read as text.
        select = SQL(", ").join(
            SQL("%s::text", SQL.identifier(column))
            if column == "amount"
            else SQL.identifier(column)
            for column in columns
        )
        where_company = (
            SQL("company_id IN %s", tuple(company_ids)) if company_ids is not None else SQL("TRUE")
        )
        if from_sequence:
            where_company = SQL("%s AND sequence >= %s", where_company, from_sequence)
        query = SQL(
            "SELECT %s FROM %s WHERE %s ORDER BY company_id, sequence, id",
            select,
            SQL.identifier(self._table),
            where_company,
        )
        stream = self.env.cr._cnx.cursor(name=f"pos_payment_audit_verify_{uuid.uuid4().hex}")
        stream.itersize = page_size
        try:
            stream.execute(query.code, query.params)
            while page := stream.fetchmany(page_size):
                for row in page:
                    record = dict(zip(columns, row))
                    if record["amount"] is not None:
                        record["amount"] = Decimal(record["amount"])
                    yield record
        finally:
            stream.close()

    def _anchors(self, company_ids):
        """``{company_id: {sequence: hash}}`` seen by earlier checks."""
        checks = self.env["pos.payment.audit.check"].sudo()
        where_company = (
            SQL("company_id IN %s", tuple(company_ids)) if company_ids is not None else SQL("TRUE")
        )
        self.env.cr.execute(
            SQL(
                "SELECT company_id, head_sequence, head_hash FROM %s"
                " WHERE %s AND head_sequence > 0",
                SQL.identifier(checks._table),
                where_company,
            )
        )
        anchors = defaultdict(dict)
        for company_id, sequence, head_hash in self.env.cr.fetchall():
            anchors[company_id][sequence] = head_hash
        return anchors

    @api.model
    def _export_trail(self):
        """Write every audit row, and a verification of the chains, to a
        JSON Lines file of the audit directory; its path.

        Line 1 is ``{"database", "exported_at", "verification"}``, each
        further line one row with every column the chain needs, amounts as
        exact strings and times in ISO 8601 (UTC): with the key (which is
        not exported) the chains stay verifiable with ``pos_core.audit``.
        """
        report = self.sudo()._verify()
        directory = self._audit_dir()
        os.makedirs(directory, mode=0o700, exist_ok=True)
        stamp = datetime.now(timezone.utc)
        path = os.path.join(directory, f"audit_trail_{stamp:%Y%m%dT%H%M%SZ}.jsonl")
        header = {
            "database": self.env.cr.dbname,
            "exported_at": stamp.isoformat(timespec="seconds"),
            "verification": {key: report[key] for key in ("ok", "checked", "first_broken")},
        }
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(json.dumps(header, sort_keys=True) + "\n")
            for row in self._iter_rows(None, VERIFY_PAGE):
                handle.write(json.dumps(row, sort_keys=True, default=_export_value) + "\n")
            handle.flush()
            os.fsync(handle.fileno())
        return path

    @api.model
    def _cron_verify(self):
        """Daily: verify every chain, keep one check per company (the next
        check's anchor), log an error for each broken one."""
        report = self.sudo()._verify()
        checks = []
        for details in report["companies"]:
            first = details["first_broken"] or {}
            checks.append(
                {
                    "company_id": details["company_id"],
                    "ok": details["ok"],
                    "checked": details["checked"],
                    "head_sequence": details["head_sequence"],
                    "head_hash": details["head_hash"] if details["head_sequence"] else False,
                    "first_broken_id": first.get("id") or False,
                    "first_broken_sequence": first.get("sequence") or 0,
                    "reason": first.get("reason") or False,
                    "broken_count": len(details["broken_ids"]),
                }
            )
            if not details["ok"]:
                _logger.error(
                    "Payment audit chain of company %s is broken at sequence %s (%s): "
                    "%s record(s) from there on cannot be trusted",
                    details["company_id"],
                    first.get("sequence"),
                    first.get("reason"),
                    len(details["broken_ids"]),
                )
        self.env["pos.payment.audit.check"].sudo().create(checks)
        return report


class PosPaymentAuditCheck(models.Model):
    """The result of one verification of one company's chain.

    Append-only like the chain: its head (sequence and hash) is an anchor for
    every later verification, which would otherwise not notice the last
    records of a chain being deleted.
    """

    _name = "pos.payment.audit.check"
    _description = "POS Payment Audit Check"
    _order = "checked_at desc, id desc"
    _log_access = False

    company_id = fields.Many2one(
        "res.company", required=True, index=True, readonly=True, ondelete="restrict"
    )
    checked_at = fields.Datetime(required=True, readonly=True, default=fields.Datetime.now)
    ok = fields.Boolean(readonly=True)
    checked = fields.Integer("Records Checked", readonly=True)
    head_sequence = fields.Integer(readonly=True, help="The last record that held.")
    head_hash = fields.Char(readonly=True)
    first_broken_id = fields.Many2one("pos.payment.audit", readonly=True, ondelete="restrict")
    first_broken_sequence = fields.Integer(readonly=True)
    reason = fields.Char(readonly=True)
    broken_count = fields.Integer(readonly=True)

    def init(self):
        for statement in audit.immutability_sql(self._table):
            self.env.cr.execute(SQL(statement))

    def write(self, vals):  # pylint: disable=method-required-super
        raise UserError(self.env._("Payment audit checks cannot be changed."))

    @api.ondelete(at_uninstall=False)
    def _unlink_never(self):
        raise UserError(self.env._("Payment audit checks cannot be deleted."))


class PosPayment(models.Model):
    """Every payment, from the POS UI or the API, enters the audit trail.

    Creation is ``captured`` (``refunded`` for the negative payments of a
    refund order; the cash handed back as change stays ``captured``, with
    its negative amount and ``is_change``). Deletion is ``voided``; a change
    of amount or method voids the old payment and captures the new one. The
    API passes its device and idempotency key in the context
    (``pos_api_device_id``, ``pos_api_idempotency_key``).
    """

    _inherit = "pos.payment"

    @api.model_create_multi
    def create(self, vals_list):
        payments = super().create(vals_list)
        payments._audit_enqueue()
        return payments

    def write(self, vals):
        if not {"amount", "payment_method_id", "pos_order_id"} & set(vals):
            return super().write(vals)
        before = {payment: payment._audit_event(audit.VOIDED) for payment in self}
        result = super().write(vals)
        changed = self.filtered(
            lambda payment: (
                payment._audit_event(audit.VOIDED)["amount"] != before[payment]["amount"]
                or payment.payment_method_id.id != before[payment]["payment_method_id"]
                or payment.pos_order_id.id != before[payment]["order_res_id"]
            )
        )
        if changed:
            self.env["pos.payment.audit"]._enqueue([before[payment] for payment in changed])
            changed._audit_enqueue()
        return result

    def unlink(self):
        events = [payment._audit_event(audit.VOIDED) for payment in self]
        result = super().unlink()
        self.env["pos.payment.audit"]._enqueue(events)
        return result

    def _audit_enqueue(self):
        self.env["pos.payment.audit"]._enqueue(
            [
                payment._audit_event(
                    audit.REFUNDED
                    if payment.amount < 0 and not payment.is_change
                    else audit.CAPTURED
                )
                for payment in self
            ]
        )

    def _audit_event(self, event):
        """The audit content of this payment, as it is now."""
        self.ensure_one()
        order = self.pos_order_id
        currency = self.currency_id or order.currency_id or self.company_id.currency_id
        return {
            "company_id": self.company_id.id or order.company_id.id,
            "event": event,
            "order_res_id": order.id,
            "order_name": order.pos_reference or order.name,
            "payment_res_id": self.id,
            "amount": _exact_amount(self.amount, currency),
            "currency_id": currency.id,
            "payment_method_id": self.payment_method_id.id,
            "is_change": self.is_change,
            "terminal_ref": self.transaction_id or self.payment_ref_no or None,
            "order_state_before": order.api_state,
        }


def _export_value(value):
    if isinstance(value, Decimal):
        return str(value)
    if isinstance(value, datetime):
        return audit.canonical_datetime(value)
    raise TypeError(f"cannot export {type(value).__name__}")


def uninstall_hook(env):
    """Uninstalling drops the audit tables: export the trail first, and say
    where it went in the server log and in Settings > Technical > Logging
    (``ir.logging``, which outlives the addon)."""
    path = env["pos.payment.audit"].sudo()._export_trail()
    message = (
        f"point_of_sale_api uninstalled: its payment audit trail was exported to {path} "
        "(verifiable with the addon's audit key, which was not exported)"
    )
    _logger.warning("%s", message)
    env["ir.logging"].sudo().create(
        {
            "name": __name__,
            "type": "server",
            "level": "WARNING",
            "dbname": env.cr.dbname,
            "message": message,
            "path": __file__,
            "func": "uninstall_hook",
            "line": "0",
        }
    )
    return path


def _exact_amount(amount, currency):
    """An amount as the Decimal PostgreSQL will give back: floats are rounded
    to the currency first, Decimals and strings are kept as they are."""
    if amount is None or amount is False:
        return None
    if isinstance(amount, float):
        return Decimal(float_repr(currency.round(amount), currency.decimal_places))
    return Decimal(amount)


def _utc_naive(value):
    if isinstance(value, str):
        value = fields.Datetime.to_datetime(value)
    if isinstance(value, datetime) and value.tzinfo is not None:
        value = value.astimezone(timezone.utc).replace(tzinfo=None)
    return value
