"""The sync log: an append-only, per point of sale, gap-free event log in
PostgreSQL, written as a transactional outbox.

Writers buffer events in their transaction (``_emit``); at precommit the
buffer becomes one INSERT of rows without a ``seq``. After the writer's
commit a sequencer, in a transaction of its own, numbers every pending row
under one advisory lock: numbers follow commit order, not transaction start,
so a reader that saw seq N never sees a lower one appear later, and a rolled
back writer leaves neither a row nor a gap. The sequencer then wakes the
readers (PostgreSQL NOTIFY, Redis PUBLISH when configured) and relays the
events to Odoo's bus for the POS UI.

Payloads are bounded by ``pos_core.events.bound_payload``: an event's JSON
payload stays under ``events.PAYLOAD_MAX_BYTES`` (6,000 bytes); an order whose
lines or payments do not fit carries their ids instead (``line_ids``,
``payment_ids``) with ``"truncated": true``, and the device reads the order
by id.
"""

import json
import logging
import time
from datetime import timedelta

import psycopg2.sql

from odoo import SUPERUSER_ID, api, fields, models, sql_db
from odoo.tools import SQL

from odoo.addons.bus.models import bus

from ..pos_core import events, limits, sync_wake
from . import autocommit_connection
from .pos_api_device import api_settings

_logger = logging.getLogger(__name__)

# precommit.data keys
EVENTS_KEY = "point_of_sale_api.sync_log.events"
DIRTY_KEY = "point_of_sale_api.sync_log.dirty"
HOOK_KEY = "point_of_sale_api.sync_log.hook"
POSTCOMMIT_KEY = "point_of_sale_api.sync_log.sequence"
TX_KEY = "point_of_sale_api.sync_log.transaction"

# pg_advisory_xact_lock key of the sequencer: one for the whole database, so
# that numbering transactions commit one after the other.
SEQUENCER_LOCK = 0x706F735F73796E63  # "pos_sync"

RETENTION_PARAM = "point_of_sale_api.sync_log_retention_days"
BUS_NOTIFICATION = "POS_API_EVENT"

_PUBLISHERS = {}

# The sequencer, one statement: after the advisory lock (transactions that
# number commit one after the other), each statement of the function sees
# every writer committed before it (READ COMMITTED, a volatile function). It
# numbers the pending rows per config in id order, moves the heads, relays
# the envelopes to Odoo's bus (bus.bus rows as ``bus.bus._sendone`` writes
# them for ``pos.config._notify``, on configs that have a bus token: a POS
# UI follows no other) and NOTIFYs the readers, delivered at commit. It
# answers the configs advanced, their heads and the bus channels to wake.
# Its NOTIFY carries the message of ``sync_wake.wake_message``.
SEQUENCE_FUNCTION = """
CREATE OR REPLACE FUNCTION pos_sync_log_sequence(lock_key bigint, notify_channel text,
                                                 bus_type text)
RETURNS TABLE (config_ids integer[], last_seqs integer[], bus_channels text[])
LANGUAGE plpgsql VOLATILE AS $fn$
#variable_conflict use_column
DECLARE
    advanced integer[];
    heads integer[];
    channels text[];
BEGIN
    PERFORM pg_advisory_xact_lock(lock_key);
    WITH pending AS (
        SELECT id, config_id FROM pos_sync_log WHERE seq IS NULL
    ), numbered AS (
        SELECT p.id, COALESCE(h.last_seq, 0)
               + row_number() OVER (PARTITION BY p.config_id ORDER BY p.id) AS seq
          FROM pending p LEFT JOIN pos_sync_log_head h ON h.config_id = p.config_id
    ), updated AS (
        UPDATE pos_sync_log l SET seq = n.seq FROM numbered n WHERE l.id = n.id
        RETURNING l.config_id, l.seq, l.event_type, l.payload, l.create_date
    ), moved AS (
        INSERT INTO pos_sync_log_head AS h (config_id, last_seq)
        SELECT config_id, max(seq) FROM updated GROUP BY config_id
        ON CONFLICT (config_id) DO UPDATE SET last_seq = EXCLUDED.last_seq
        RETURNING h.config_id, h.last_seq
    ), relayed AS (
        INSERT INTO bus_bus (channel, message, create_date, write_date, create_uid, write_uid)
        SELECT '[' || to_json(current_database())::text || ','
                   || to_json(c.access_token)::text || ']',
               json_build_object(
                   'type', c.access_token || '-' || bus_type,
                   'payload', json_build_object(
                       'seq', u.seq,
                       'type', u.event_type,
                       'room', 'config:' || u.config_id,
                       'at', to_char(u.create_date, 'YYYY-MM-DD"T"HH24:MI:SS.MS"Z"'),
                       'payload', u.payload))::text,
               now() AT TIME ZONE 'UTC', now() AT TIME ZONE 'UTC', 1, 1
          FROM updated u JOIN pos_config c ON c.id = u.config_id
         WHERE c.access_token IS NOT NULL
         ORDER BY u.config_id, u.seq
        RETURNING channel
    )
    SELECT array_agg(m.config_id ORDER BY m.config_id),
           array_agg(m.last_seq ORDER BY m.config_id),
           (SELECT array_agg(DISTINCT r.channel) FROM relayed r)
      INTO advanced, heads, channels
      FROM moved m;
    IF advanced IS NULL THEN
        RETURN;
    END IF;
    PERFORM pg_notify(notify_channel, json_build_object(
        'db', current_database(),
        'heads', (SELECT json_object_agg(x.c::text, x.h) FROM unnest(advanced, heads) AS x(c, h))
    )::text);
    RETURN QUERY SELECT advanced, heads, channels;
END
$fn$;
"""
SEQUENCE_CALL = "SELECT config_ids, last_seqs, bus_channels FROM pos_sync_log_sequence(%s, %s, %s)"
SEQUENCE_ARGS = (SEQUENCER_LOCK, sync_wake.NOTIFY_CHANNEL, BUS_NOTIFICATION)


def event_at(value):
    """The envelope's ``at``: UTC ISO 8601 with a "Z"."""
    return value.isoformat(timespec="milliseconds") + "Z" if value else None


def _is_test_cursor(env):
    """HttpCase's cursors, which never commit and drop post-commit hooks."""
    cr = env.cr
    return isinstance(cr, sql_db.TestCursor) or (
        env.registry.test_cr is not None and cr is env.registry.test_cr
    )


def _inline(env):
    """Work on this transaction instead of a fresh one: on a test cursor,
    or when asked (``pos_sync_log_inline``: tests on their transaction)."""
    return _is_test_cursor(env) or bool(env.context.get("pos_sync_log_inline"))


def _in_fresh_transaction(registry, dbname, func):
    """Run ``func(env)`` in a new READ COMMITTED transaction of a real
    cursor (never the test cursor), commit it, and return its result."""
    with sql_db.db_connect(dbname).cursor() as cr:
        cr.execute("SET TRANSACTION ISOLATION LEVEL READ COMMITTED")
        # The registry at hand: api.Environment would look it up (and wait
        # for Registry._lock, which Odoo's test runner holds).
        cr.transaction = api.Transaction(registry)
        return func(api.Environment(cr, SUPERUSER_ID, {}))


def _sequenced(rows):
    """``(heads, bus_channels)`` of the sequencing function's answer."""
    config_ids, last_seqs, channels = rows[0] if rows else (None, None, None)
    return dict(zip(config_ids or (), last_seqs or ())), [json.loads(c) for c in channels or ()]


def sequence_committed(dbname):
    """Number what committed writers left pending, in a transaction of its
    own (one statement on this process's autocommit connection), then wake
    the devices' readers through Redis and the POS UI's bus. Returns the
    heads advanced."""
    heads, channels = _sequenced(
        autocommit_connection.execute(dbname, SEQUENCE_CALL, SEQUENCE_ARGS)
    )
    if heads:
        redis_url = api_settings().redis_url
        if redis_url:
            _publish(redis_url, sync_wake.wake_message(dbname, heads))
    if channels:
        _notify_bus(channels)
    return heads


def _notify_bus(channels):
    """Odoo's bus wakes its websockets on ``NOTIFY imbus`` in the
    ``postgres`` database (bus.bus's own post-commit), with the channels."""
    query = psycopg2.sql.SQL("SELECT {}('imbus', %s)").format(
        psycopg2.sql.Identifier(bus.ODOO_NOTIFY_FUNCTION)
    )
    for payload in bus.get_notify_payloads(channels):
        autocommit_connection.execute("postgres", query, [payload], fetch=False)


def _publish(redis_url, message):
    publisher = _PUBLISHERS.get(redis_url)
    try:
        if publisher is None:
            publisher = _PUBLISHERS[redis_url] = sync_wake.Publisher(redis_url)
        publisher.publish(message)
    except Exception:
        _logger.warning("Sync log: Redis publish failed", exc_info=True)


def _sequence_after_commit(dbname):
    try:
        sequence_committed(dbname)
    except Exception:
        # Committed events wait for the backstop (cron, dispatcher).
        _logger.exception("Sync log: sequencing after commit failed; the backstop will retry")


class PosSyncLog(models.Model):
    _name = "pos.sync.log"
    _description = "POS Sync Log Event"
    _order = "id desc"
    _log_access = False
    _rec_name = "event_type"

    config_id = fields.Many2one(
        "pos.config", string="Point of Sale", required=True, index=True, ondelete="cascade"
    )
    company_id = fields.Many2one("res.company", required=True, index=True)
    seq = fields.Integer(
        string="Sequence",
        readonly=True,
        help="Per point of sale, gap-free, in commit order; empty until sequenced.",
    )
    event_type = fields.Char(string="Type", required=True)
    rooms = fields.Char(required=True, help="Most specific first, ending with config:<id>.")
    payload = fields.Json()
    res_model = fields.Char(string="Model")
    res_id = fields.Integer(string="Record ID")
    create_date = fields.Datetime(string="At", readonly=True, index=True)

    def init(self):
        cr = self.env.cr
        cr.execute(
            """
            CREATE TABLE IF NOT EXISTS pos_sync_log_head (
                config_id integer PRIMARY KEY,
                last_seq integer NOT NULL,
                floor_seq integer NOT NULL DEFAULT 0
            );
            CREATE UNIQUE INDEX IF NOT EXISTS pos_sync_log_config_seq_uniq
                ON pos_sync_log (config_id, seq) WHERE seq IS NOT NULL;
            CREATE INDEX IF NOT EXISTS pos_sync_log_pending_idx
                ON pos_sync_log (id) WHERE seq IS NULL;
            """
        )
        cr.execute(SEQUENCE_FUNCTION)

    # ------------------------------------------------------------------
    # Write side
    # ------------------------------------------------------------------
    @api.model
    def _emit(self, config, event_type, rooms, payload, record=None, *, merge=False):
        """Buffer one event of ``config`` (record or id) in this transaction.

        ``rooms``: most specific first; ``config:<id>`` is appended when
        missing. ``payload`` is bounded here (see the module docstring).
        The buffer is inserted at precommit, in one INSERT. ``merge``: one
        event per (config, record, type) and transaction: an event of the
        same config, record and type already written by this transaction (at a flush
        before a savepoint) is replaced instead of repeated."""
        if event_type not in events.EVENT_TYPES:
            raise ValueError(f"unknown event type {event_type!r}")
        config = self.env["pos.config"].browse(config) if isinstance(config, int) else config
        config_room = events.room(events.CONFIG, config.id)
        names = [name for name in dict.fromkeys(rooms or ()) if name != config_room]
        for name in names:
            events.parse_room(name)
        names.append(config_room)
        self._sync_log_hook()
        self.env.cr.precommit.data.setdefault(EVENTS_KEY, []).append(
            (
                config.id,
                config.company_id.id,
                event_type,
                ",".join(names),
                events.dumps(events.bound_payload(payload)),
                record._name if record is not None else None,
                record.id if record is not None else None,
                merge and record is not None,
            )
        )

    @api.model
    def _sync_dirty(self):
        """What this transaction changed, for ``_build_events`` at precommit
        (the emission concern, pos_sync_events.py, fills and reads it)."""
        self._sync_log_hook()
        return self.env.cr.precommit.data.setdefault(DIRTY_KEY, {})

    @api.model
    def _sync_tx(self):
        """What the events of this transaction were built from and which rows
        they went to, kept across the flushes (savepoints) of the
        transaction: post-commit data lives until commit or rollback."""
        return self.env.cr.postcommit.data.setdefault(TX_KEY, {})

    @api.model
    def _sync_log_hook(self):
        data = self.env.cr.precommit.data
        if HOOK_KEY in data:
            return
        data[HOOK_KEY] = True
        log = self.with_env(self.env(context={}, su=True))
        self.env.cr.precommit.add(log._sync_log_precommit)

    def _sync_log_precommit(self):
        data = self.env.cr.precommit.data
        # Events are built from the final state of what changed; building
        # reads records and never writes them.
        while data.get(DIRTY_KEY):
            self._build_events(data.pop(DIRTY_KEY))
        data.pop(HOOK_KEY, None)
        rows = data.pop(EVENTS_KEY, None)
        if not rows:
            return
        self._sync_log_write(rows)
        if _is_test_cursor(self.env):
            # A test cursor never really commits and drops post-commit hooks.
            self._sequence_pending()
        elif not self.env.cr.postcommit.data.get(POSTCOMMIT_KEY):
            self.env.cr.postcommit.data[POSTCOMMIT_KEY] = True
            dbname = self.env.cr.dbname
            self.env.cr.postcommit.add(lambda: _sequence_after_commit(dbname))

    def _sync_log_write(self, rows):
        """One INSERT for the new rows; one UPDATE for rows replacing an
        event of the same point of sale, record and type written earlier in
        the transaction."""
        emitted = self._sync_tx().setdefault("emitted", {})
        latest = {}
        for row in rows:
            key = row[0], row[2], row[5], row[6]
            latest[key if row[7] else len(latest)] = row
        replacing = [(emitted[key], row) for key, row in latest.items() if key in emitted]
        if replacing:
            self.env.cr.execute(
                SQL(
                    """
                    UPDATE pos_sync_log l SET rooms = u.r, payload = u.p::jsonb
                      FROM unnest(%s::int4[], %s::text[], %s::text[]) AS u(id, r, p)
                     WHERE l.id = u.id
                    RETURNING l.id
                    """,
                    [row_id for row_id, _row in replacing],
                    [row[3] for _id, row in replacing],
                    [row[4] for _id, row in replacing],
                )
            )
            replaced = {row[0] for row in self.env.cr.fetchall()}
        else:
            replaced = set()
        # (a row rolled back with a savepoint is written again)
        new = [
            row for key, row in latest.items() if key not in emitted or emitted[key] not in replaced
        ]
        if not new:
            return
        self.env.cr.execute(
            SQL(
                """
                INSERT INTO pos_sync_log
                    (config_id, company_id, event_type, rooms, payload, res_model, res_id,
                     create_date)
                SELECT c, co, t, r, p::jsonb, m, i, clock_timestamp() AT TIME ZONE 'UTC'
                  FROM unnest(%s::int4[], %s::int4[], %s::text[], %s::text[], %s::text[],
                              %s::text[], %s::int4[]) WITH ORDINALITY AS u(c, co, t, r, p, m, i, n)
                 ORDER BY n
                RETURNING id, config_id, event_type, res_model, res_id
                """,
                *(list(column) for column in list(zip(*new))[:7]),
            )
        )
        merged = {(row[0], row[2], row[5], row[6]) for row in new if row[7]}
        for row_id, *key in self.env.cr.fetchall():
            if tuple(key) in merged:
                emitted[tuple(key)] = row_id

    def _build_events(self, dirty):
        """Turn the marks of ``_sync_dirty`` into events (pos_sync_events.py)."""

    # ------------------------------------------------------------------
    # Sequencer
    # ------------------------------------------------------------------
    @api.model
    def _sequence_pending(self):
        """Number every pending row visible to this transaction, on this
        transaction (tests, after ``cr.flush()``; a test cursor at precommit).
        Returns the heads it advanced, {config_id: last_seq}. The readers'
        NOTIFY is delivered at this transaction's commit; the bus rows are
        written but its websockets are not woken (``NOTIFY imbus``), nor is
        Redis: after a real commit, :func:`sequence_committed` is the path."""
        self.env.cr.execute(SEQUENCE_CALL, SEQUENCE_ARGS)
        heads, _channels = _sequenced(self.env.cr.fetchall())
        return heads

    @api.model
    def _sequence_orphans(self, age=limits.SYNC_LOG_ORPHAN_AGE):
        """Backstop: rows committed but still without a seq after ``age``
        seconds (their writer died between commit and post-commit, or its
        sequencer failed) are numbered now, in a transaction of their own.
        Called by a cron every minute and usable by the read side. Returns
        the heads advanced."""
        self.env.cr.execute(
            SQL(
                """
                SELECT 1 FROM pos_sync_log
                 WHERE seq IS NULL
                   AND create_date < (now() AT TIME ZONE 'UTC') - make_interval(secs => %s)
                 LIMIT 1
                """,
                age,
            )
        )
        if not self.env.cr.fetchone():
            return {}
        if _inline(self.env):
            return self._sequence_pending()
        return sequence_committed(self.env.cr.dbname)

    # ------------------------------------------------------------------
    # Read side
    # ------------------------------------------------------------------
    @api.model
    def _heads(self, config_ids):
        """{config_id: (last_seq, floor_seq)}; (0, 0) for a config without events."""
        ids = [int(config_id) for config_id in config_ids]
        self.env.cr.execute(
            SQL(
                "SELECT config_id, last_seq, floor_seq FROM pos_sync_log_head"
                " WHERE config_id = ANY(%s)",
                ids,
            )
        )
        heads = dict.fromkeys(ids, (0, 0))
        heads.update({row[0]: (row[1], row[2]) for row in self.env.cr.fetchall()})
        return heads

    @api.model
    def _read_since(self, config_id, after, rooms=None, limit=limits.MAX_EVENTS_PER_READ):
        """Events of ``config_id`` after seq ``after`` that reach one of
        ``rooms`` (the config's room when none), at most ``limit`` rows read.

        Returns ``(envelopes, last_seq, resync)``: ``last_seq`` is where the
        reader continues (the head, or the last row read when the limit cut
        the read short); ``resync`` when the cursor is past retention or
        unknown (events.resume): then no envelope, and ``last_seq`` is the head.
        """
        config_id = int(config_id)
        limit = max(1, min(int(limit), limits.MAX_EVENTS_PER_READ))
        last_seq, floor_seq = self._heads([config_id])[config_id]
        position = events.resume(after, floor_seq, last_seq)
        if position.resync or position.after >= last_seq:
            return [], position.after, position.resync
        subscribed = set(rooms or [events.room(events.CONFIG, config_id)])
        self.env.cr.execute(
            SQL(
                """
                SELECT seq, event_type, rooms, payload, create_date FROM pos_sync_log
                 WHERE config_id = %s AND seq > %s AND seq <= %s
                 ORDER BY seq LIMIT %s
                """,
                config_id,
                position.after,
                last_seq,
                limit,
            )
        )
        rows = self.env.cr.fetchall()
        envelopes = []
        for seq, event_type, event_rooms, payload, at in rows:
            name = events.matches(event_rooms.split(","), subscribed)
            if name:
                envelopes.append(events.envelope(seq, event_type, name, event_at(at), payload))
        reached = rows[-1][0] if len(rows) == limit else last_seq
        return envelopes, reached, False

    # ------------------------------------------------------------------
    # Retention
    # ------------------------------------------------------------------
    @api.model
    def _retention_days(self):
        raw = self.env["ir.config_parameter"].sudo().get_param(RETENTION_PARAM)
        try:
            days = int(raw) if raw else limits.SYNC_LOG_RETENTION_DAYS
        except ValueError:
            _logger.warning("Sync log: %s=%r is not a number of days", RETENTION_PARAM, raw)
            days = limits.SYNC_LOG_RETENTION_DAYS
        return max(days, 1)

    @api.model
    def _prune_batch(self, cutoff, batch_size):
        """Delete up to ``batch_size`` sequenced rows older than ``cutoff``
        and raise each config's floor to the highest seq pruned (the resume
        rule: a cursor below it must resync). Returns the rows deleted."""
        self.env.cr.execute(
            SQL(
                """
                WITH gone AS (
                    DELETE FROM pos_sync_log WHERE id IN (
                        SELECT id FROM pos_sync_log
                         WHERE create_date < %s AND seq IS NOT NULL
                         ORDER BY id LIMIT %s
                    ) RETURNING config_id, seq
                ), floors AS (
                    UPDATE pos_sync_log_head h SET floor_seq = GREATEST(h.floor_seq, g.seq)
                      FROM (SELECT config_id, max(seq) AS seq FROM gone GROUP BY config_id) g
                     WHERE h.config_id = g.config_id
                )
                SELECT count(*) FROM gone
                """,
                cutoff,
                batch_size,
            )
        )
        return self.env.cr.fetchone()[0]

    @api.model
    def _cron_prune(self, batch_size=limits.SYNC_LOG_PRUNE_BATCH, budget=None):
        """Daily: drop events past retention, in short batches (each its own
        READ COMMITTED transaction), until done or ``budget`` seconds are
        spent; the next run continues. Progress goes to the cron's record."""
        budget = limits.SYNC_LOG_PRUNE_BUDGET if budget is None else budget
        cutoff = fields.Datetime.now() - timedelta(days=self._retention_days())
        deadline = time.monotonic() + budget
        done = 0
        while True:
            if _inline(self.env):
                pruned = self._prune_batch(cutoff, batch_size)
            else:
                pruned = _in_fresh_transaction(
                    self.env.registry,
                    self.env.cr.dbname,
                    lambda env: env["pos.sync.log"]._prune_batch(cutoff, batch_size),
                )
            done += pruned
            if pruned < batch_size or time.monotonic() >= deadline:
                break
        remaining = self.search_count([("create_date", "<", cutoff), ("seq", "!=", False)])
        self.env["ir.cron"]._notify_progress(done=done, remaining=remaining)
        return done, remaining
