import logging
import os
import socket

from psycopg2.extensions import TRANSACTION_STATUS_IDLE

from odoo import api, fields, models
from odoo.sql_db import Cursor
from odoo.tools import SQL

from ..pos_core import limits

_logger = logging.getLogger(__name__)

TRANSPORTS = [("websocket", "WebSocket"), ("longpoll", "Long-polling")]
# A remote address as text: the longest IPv6 form with a zone fits.
MAX_REMOTE_ADDR = 64
MAX_ROOMS_TEXT = limits.MAX_ROOMS_PER_DEVICE * (32 + 1)


def worker_name(pid=None):
    """``hostname:pid`` of a process: what the cleaning cron checks, on this
    host, to tell a live channel process from one that is gone."""
    return f"{socket.gethostname()}:{os.getpid() if pid is None else pid}"


def _read_committed(cr):
    """Make a fresh transaction of the channel READ COMMITTED before its
    statement. Odoo's REPEATABLE READ would fail an UPDATE of a row that a
    concurrent transaction changed after the snapshot ("could not serialize
    access"): the batch of ``_api_seen`` meets the ``_api_subscribed`` of new
    connections all the time. Under READ COMMITTED each UPDATE takes the row
    as it is when it gets its lock. A transaction already under way (a test
    cursor, a caller's own work) keeps its level."""
    cnx = getattr(cr, "_cnx", None)
    if (
        isinstance(cr, Cursor)
        and cnx is not None
        and cnx.info.transaction_status == TRANSACTION_STATUS_IDLE
    ):
        cr.execute("SET TRANSACTION ISOLATION LEVEL READ COMMITTED")


def _pid_alive(pid):
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # alive, another user's
        return True
    return True


class PosWebsocketConnection(models.Model):
    """One open device connection (a WebSocket, or a waiting long-poll) of a
    channel process, so that ops can see who is connected where.

    Written by the channel (the gevent process) on short cursors of its own:
    every API method here is one SQL statement (after the transaction's
    isolation level, see :func:`_read_committed`), with no ORM side effect
    (no chatter, no recomputation), because the dispatcher marks thousands
    of connections seen at once and must not hold a cursor for long. The
    rows are a view of the processes' memory, not a source of truth: a
    process that dies leaves its rows behind, which the cron removes."""

    _name = "pos.websocket.connection"
    _description = "POS API Device Connection"
    _order = "connected_at desc, id desc"
    _log_access = False
    _rec_name = "device_id"

    device_id = fields.Many2one(
        "pos.api.device", required=True, index=True, ondelete="cascade", readonly=True
    )
    config_id = fields.Many2one(
        "pos.config",
        string="Point of Sale",
        required=True,
        index=True,
        ondelete="cascade",
        readonly=True,
        help="The device's point of sale when it connected.",
    )
    company_id = fields.Many2one(
        "res.company", related="config_id.company_id", store=True, index=True, readonly=True
    )
    rooms = fields.Char(readonly=True, help="Comma-separated rooms the connection follows.")
    transport = fields.Selection(TRANSPORTS, required=True, readonly=True)
    connected_at = fields.Datetime(required=True, readonly=True)
    last_seen = fields.Datetime(required=True, index=True, readonly=True)
    worker = fields.Char(
        index=True, readonly=True, help="hostname:pid of the process holding the connection."
    )
    remote_addr = fields.Char(string="Remote Address", readonly=True)

    # ------------------------------------------------------------ the channel
    @api.model
    def _api_open(self, device, rooms, transport, remote_addr):
        """Register a connection of ``device`` held by this process; the row
        takes the device's config and company as they are in the database."""
        if transport not in dict(TRANSPORTS):
            raise ValueError(f"unknown transport {transport!r}")
        self.env.cr.execute(
            SQL(
                """INSERT INTO pos_websocket_connection
                          (device_id, config_id, company_id, rooms, transport,
                           connected_at, last_seen, worker, remote_addr)
                   SELECT d.id, d.config_id, c.company_id, %s, %s,
                          now() AT TIME ZONE 'UTC', now() AT TIME ZONE 'UTC', %s, %s
                     FROM pos_api_device d JOIN pos_config c ON c.id = d.config_id
                    WHERE d.id = %s
                RETURNING id""",
                _rooms_text(rooms),
                transport,
                worker_name(),
                (remote_addr or "")[:MAX_REMOTE_ADDR] or None,
                device.id,
            )
        )
        return self.browse([row[0] for row in self.env.cr.fetchall()])

    def _api_seen(self):
        """Mark these connections alive now: one UPDATE for the whole set."""
        if not self:
            return
        _read_committed(self.env.cr)
        self.env.cr.execute(
            SQL(
                """UPDATE pos_websocket_connection
                      SET last_seen = now() AT TIME ZONE 'UTC'
                    WHERE id = ANY(%s)""",
                list(self.ids),
            )
        )
        self.invalidate_recordset(["last_seen"], flush=False)

    def _api_subscribed(self, rooms):
        """The connection now follows ``rooms`` (a subscribe message)."""
        _read_committed(self.env.cr)
        self.env.cr.execute(
            SQL(
                """UPDATE pos_websocket_connection
                      SET rooms = %s, last_seen = now() AT TIME ZONE 'UTC'
                    WHERE id = ANY(%s)""",
                _rooms_text(rooms),
                list(self.ids),
            )
        )
        self.invalidate_recordset(["rooms", "last_seen"], flush=False)

    def _api_close(self):
        """The connections are closed: their rows go."""
        if not self:
            return
        self.env.cr.execute(
            SQL("DELETE FROM pos_websocket_connection WHERE id = ANY(%s)", list(self.ids))
        )
        self.invalidate_recordset(flush=False)

    # ------------------------------------------------------------------ cron
    @api.model
    def _stale_condition(self):
        """Rows not seen for ``WS_STALE_AFTER`` seconds, or held by a process
        of this host that no longer exists (a restart, a killed worker)."""
        prefix = worker_name(pid="")
        self.env.cr.execute(
            SQL(
                """SELECT DISTINCT worker FROM pos_websocket_connection
                    WHERE starts_with(worker, %s)""",
                prefix,
            )
        )
        dead = []
        for (worker,) in self.env.cr.fetchall():
            pid = worker[len(prefix) :]
            if not pid.isdigit() or not _pid_alive(int(pid)):
                dead.append(worker)
        return SQL(
            "last_seen < (now() AT TIME ZONE 'UTC') - make_interval(secs => %s) "
            "OR worker = ANY(%s)",
            limits.WS_STALE_AFTER,
            dead,
        )

    @api.model
    def _cron_remove_stale(self, batch_size=limits.WS_CLEANUP_BATCH):
        """Delete stale rows, at most ``batch_size`` per run; what is left is
        reported to the cron, which runs again at once."""
        stale = self._stale_condition()
        self.env.cr.execute(
            SQL(
                """DELETE FROM pos_websocket_connection
                    WHERE id IN (SELECT id FROM pos_websocket_connection
                                  WHERE %s ORDER BY id LIMIT %s)""",
                stale,
                batch_size,
            )
        )
        done = self.env.cr.rowcount
        self.env.cr.execute(SQL("SELECT count(*) FROM pos_websocket_connection WHERE %s", stale))
        remaining = self.env.cr.fetchone()[0]
        self.invalidate_model(flush=False)
        if done:
            _logger.info("Removed %s stale device connections (%s left)", done, remaining)
        self.env["ir.cron"]._notify_progress(done=done, remaining=remaining)
        return done


def _rooms_text(rooms):
    """Rooms as stored: comma-separated, bounded (the channel caps them)."""
    text = rooms if isinstance(rooms, str) else ",".join(rooms or ())
    return text[:MAX_ROOMS_TEXT]
