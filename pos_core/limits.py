"""Every limit the API holds a client to, defined once.

Sizes and caps are constants of the API contract (the OpenAPI document and
the schemas use them); the request rates are defaults that an operator can
change in the ``[point_of_sale_api]`` section of odoo.conf (see
:mod:`pos_core.settings` and :func:`rates`).

:func:`decode_json` is the one way a request body becomes Python data: it
refuses what would make the JSON decoder or a later step fail (nesting deeper
than :data:`MAX_JSON_DEPTH`, ``NaN``/``Infinity`` literals) with a 4xx error
instead of a 500.
"""

from __future__ import annotations

import json
import logging
import re
from dataclasses import dataclass
from decimal import Decimal
from itertools import accumulate

from .exceptions import InvalidInput, PosApiError

_logger = logging.getLogger(__name__)

# ---------------------------------------------------------------- bodies
MAX_BODY_BYTES = 1024 * 1024
MAX_JSON_DEPTH = 32
# PostgreSQL ``integer``: every id, path or body, must fit in it.
MAX_INT = 2**31 - 1

# ------------------------------------------------------------------ caps
MAX_LINES_PER_ORDER = 300  # at creation and across later POST .../lines
MAX_BATCH_ORDERS = 200
MAX_BATCH_LINES = 2000  # all orders of one POST /orders/batch together
DEFAULT_PAGE_SIZE = 50
MAX_PAGE_SIZE = 200
# Length of an Idempotency-Key header.
IDEMPOTENCY_KEY_MAX_LENGTH = 255
# Product search (GET /products): characters of ?q= after trimming, of ?barcode=
SEARCH_QUERY_MAX_CHARS = 100
BARCODE_MAX_CHARS = 64

# ------------------------------------------------------------- real time
LONGPOLL_MAX_TIMEOUT = 60  # seconds a GET /events may wait
MAX_EVENTS_PER_READ = 500  # events in one long-poll answer or catch-up read
MAX_ROOMS_PER_DEVICE = 64  # rooms one connection (or long-poll) follows
MAX_CONNECTIONS_PER_DEVICE = 8  # open WebSockets and waiting long-polls per device, per process
MAX_WS_MESSAGE_BYTES = 16 * 1024  # a client's message (auth, subscribe) is small
WS_SEND_BUFFER_BYTES = 1024 * 1024  # queued for one slow client before it is cut off
WS_PING_INTERVAL = 25  # seconds: under common proxies' 60 s idle timeouts
WS_AUTH_TIMEOUT = 10  # seconds to send the auth message when no header carried the token
TOKEN_RECHECK_INTERVAL = 5  # seconds: a token revoked while connected drops within this
# The connection registry (pos.websocket.connection): the channel marks its
# live connections seen at least this often, and the cleaning cron (every 5
# minutes) removes rows not seen for WS_STALE_AFTER, in batches.
WS_SEEN_INTERVAL = 60  # seconds
WS_STALE_AFTER = 5 * WS_SEEN_INTERVAL  # seconds
WS_CLEANUP_BATCH = 5000  # rows one cron run deletes before it reports progress
WS_SEND_TIMEOUT = 10  # seconds a send to a client may block before the connection is dropped


def idle_timeout(ping_interval: int) -> int:
    """Seconds without a frame (a pong) from a live client: two pings missed."""
    return 2 * ping_interval + 10


WS_IDLE_TIMEOUT = idle_timeout(WS_PING_INTERVAL)
WS_SWEEP_INTERVAL = 5  # seconds between two sweeps of the idle sockets (pings, idle timeouts)
WS_RING_EVENTS = 1024  # latest events kept in memory per point of sale, per process
DISPATCH_TICK = 1.0  # seconds: the dispatcher's longest sleep (backstops, rechecks)
DISPATCH_BACKSTOP_INTERVAL = 5  # seconds between two head checks / orphan sequencings
# The sync log (pos.sync.log)
SYNC_LOG_RETENTION_DAYS = 30  # default (ir.config_parameter ...sync_log_retention_days)
SYNC_LOG_PRUNE_BATCH = 5000  # rows deleted per pruning step (one short transaction each)
SYNC_LOG_PRUNE_BUDGET = 120  # seconds one pruning run may take; the next run continues
CACHE_WARM_BUDGET = 60  # seconds one cache-warming run may take; the next run starts over
SYNC_LOG_ORPHAN_AGE = 5  # seconds a committed event may wait for its seq before the backstop
SYNC_LOG_MAX_MENU_IDS = 200  # product ids in one menu.updated; more: "truncated", refetch
SYNC_LOG_TEXT_CHARS = 500  # notes and names in an event payload are cut to this

# ----------------------------------------------------------------- rates
READ, WRITE, PAYMENT, AUTH, AUDIT = "read", "write", "payment", "auth", "audit"
RATE_CLASSES = (READ, WRITE, PAYMENT, AUTH, AUDIT)


@dataclass(frozen=True)
class Rate:
    """A token bucket: ``burst`` requests at once, refilled to ``burst``
    over ``period`` seconds (``burst / period`` requests a second)."""

    burst: int
    period: float

    @property
    def per_second(self) -> float:
        return self.burst / self.period

    @classmethod
    def parse(cls, text: str) -> Rate:
        """``"COUNT/SECONDS"``, e.g. ``"1000/5"``: bursts of 1000, 200 a second."""
        count, _sep, seconds = text.partition("/")
        rate = cls(int(count), float(seconds or 1))
        if rate.burst < 1 or rate.period <= 0:
            raise ValueError(f"A rate must be COUNT/SECONDS with both positive, not {text!r}.")
        return rate


# Generous for a device, which a person drives; the benchmark pushes about a
# hundred orders a second through one device. Checks of the audit chain are
# expensive and rare: a handful a minute.
DEFAULT_RATES = {
    READ: Rate(1000, 5),
    WRITE: Rate(1000, 5),
    PAYMENT: Rate(500, 5),
    AUTH: Rate(60, 60),  # per client address: token refreshes
    AUDIT: Rate(5, 60),
}


def rates(overrides: dict[str, str]) -> dict[str, Rate]:
    """The default rates with the configured ones (``{class: "COUNT/SECONDS"}``);
    a value that does not parse keeps the default, with a warning."""
    result = dict(DEFAULT_RATES)
    for name, text in overrides.items():
        if text:
            try:
                result[name] = Rate.parse(text)
            except ValueError:
                _logger.warning("Ignoring rate_%s = %r: expected COUNT/SECONDS", name, text)
    return result


# ------------------------------------------------------------------ JSON
# A string literal, escapes included: what is inside cannot nest anything.
_JSON_STRING = re.compile(rb'"(?:[^"\\]|\\.)*"', re.DOTALL)
_BRACKETS = re.compile(rb"[^\[\]{}]")
_DEPTH_STEP = {ord("["): 1, ord("{"): 1, ord("]"): -1, ord("}"): -1}


def json_depth(raw: bytes) -> int:
    """The deepest nesting of arrays and objects in ``raw``, counted on the
    bytes (strings skipped), so that it costs no recursion at all."""
    brackets = _BRACKETS.sub(b"", _JSON_STRING.sub(b"", raw))
    return max(accumulate(map(_DEPTH_STEP.__getitem__, brackets)), default=0)


def _refuse_constant(name: str):
    raise ValueError(f"{name} is not a JSON number")


def decode_json(raw: bytes, max_depth: int = MAX_JSON_DEPTH):
    """Parse a request body; numbers with a fraction or exponent become
    :class:`~decimal.Decimal` so that amounts keep their digits."""
    depth = json_depth(raw)
    if depth > max_depth:
        raise InvalidInput(
            f"The JSON body is nested deeper than {max_depth} levels.",
            code="json_too_deep",
            details={"limit": max_depth},
        )
    try:
        return json.loads(raw or b"{}", parse_float=Decimal, parse_constant=_refuse_constant)
    except (ValueError, UnicodeDecodeError, RecursionError) as exc:
        raise PosApiError("The body is not valid JSON.", code="malformed_json") from exc


def check_id(name: str, value: int) -> int:
    """An id from a path or a query string: an integer PostgreSQL can hold."""
    if not 0 < value <= MAX_INT:
        raise InvalidInput(
            f"{name} must be between 1 and {MAX_INT}.",
            code="id_out_of_range",
            details={name: str(value)[:40]},
        )
    return value
