"""The sync log's contract with its readers: event types, rooms, the event
envelope, the payload bound, resume (cursor) rules and the WebSocket close
codes. Writers (the models) and readers (the device channel, the POS UI
relay, the reference client) all take these from here.

Sequences are per point of sale (``config``): every event of a config has a
``seq`` one above the previous one, assigned in commit order, so a device
keeps one cursor, the last ``seq`` it saw.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field

from .exceptions import Forbidden, InvalidInput

# ----------------------------------------------------------------- types
ORDER_CREATED = "order.created"
ORDER_UPDATED = "order.updated"
ORDER_STATE_CHANGED = "order.state_changed"
LINE_UPDATED = "line.updated"
PAYMENT_PROCESSED = "payment.processed"
SESSION_UPDATED = "session.updated"
TABLE_UPDATED = "table.updated"
MENU_UPDATED = "menu.updated"
KITCHEN_ORDER_READY = "kitchen.order_ready"
PRINT_FAILED = "print.failed"
KITCHEN_TICKET = "kitchen.ticket"

EVENT_TYPES = frozenset(
    {
        ORDER_CREATED,
        ORDER_UPDATED,
        ORDER_STATE_CHANGED,
        LINE_UPDATED,
        PAYMENT_PROCESSED,
        SESSION_UPDATED,
        TABLE_UPDATED,
        MENU_UPDATED,
        KITCHEN_ORDER_READY,
        PRINT_FAILED,
        KITCHEN_TICKET,
    }
)

# --------------------------------------------------------------- payload
# The payload of one event, serialised as compact JSON, stays under this
# bound; larger items (an order's lines past the bound) are left out and
# referenced by id, with ``"truncated": true``. It keeps an envelope well
# under PostgreSQL's NOTIFY and Odoo's bus limit (8,000 bytes).
PAYLOAD_MAX_BYTES = 6000


def dumps(value) -> str:
    """The one JSON form of events: compact, keys as given, UTF-8 kept."""
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False, default=str)


def payload_size(payload: dict) -> int:
    return len(dumps(payload).encode())


def bound_payload(payload: dict, *, lists=("lines", "payments")) -> dict:
    """``payload`` itself when it fits in :data:`PAYLOAD_MAX_BYTES`; else a
    copy whose large lists (``lists``, longest first) are replaced by the
    ids of their items (``"<name>_ids"``), marked ``"truncated": true``: the
    device fetches the record by id. Raises ``ValueError`` when even that
    does not fit (a writer bug: payloads hold no free text of any size)."""
    if payload_size(payload) <= PAYLOAD_MAX_BYTES:
        return payload
    bounded = dict(payload, truncated=True)
    present = sorted(
        (name for name in lists if isinstance(bounded.get(name), list)),
        key=lambda name: -len(dumps(bounded[name])),
    )
    for name in present:
        items = bounded.pop(name)
        bounded[f"{name[:-1]}_ids" if name.endswith("s") else f"{name}_ids"] = [
            item.get("id") for item in items if isinstance(item, dict)
        ]
        if payload_size(bounded) <= PAYLOAD_MAX_BYTES:
            return bounded
    if payload_size(bounded) > PAYLOAD_MAX_BYTES:
        raise ValueError(f"event payload over {PAYLOAD_MAX_BYTES} bytes after truncation")
    return bounded


def envelope(seq: int, event_type: str, room: str, at: str, payload: dict) -> dict:
    """What a device receives for one event (WebSocket push, long-poll list)."""
    return {"seq": seq, "type": event_type, "room": room, "at": at, "payload": payload}


# ----------------------------------------------------------------- rooms
CONFIG, SESSION, TABLE, STATION = "config", "session", "table", "station"
ROOM_KINDS = (CONFIG, SESSION, TABLE, STATION)
MAX_ROOM_NAME = 32


def room(kind: str, record_id: int) -> str:
    if kind not in ROOM_KINDS:
        raise ValueError(f"unknown room kind {kind!r}")
    return f"{kind}:{int(record_id)}"


def parse_room(name) -> tuple[str, int]:
    """``"table:12"`` → ``("table", 12)``; 422 ``invalid_room`` otherwise."""
    kind, sep, ident = str(name)[:MAX_ROOM_NAME].partition(":")
    if (
        not isinstance(name, str)
        or len(name) > MAX_ROOM_NAME
        or not sep
        or kind not in ROOM_KINDS
        or not ident.isascii()
        or not ident.isdigit()
        or not 0 < int(ident) <= 2**31 - 1
        or ident != str(int(ident))
    ):
        raise InvalidInput(
            "A room is config:<id>, session:<id>, table:<id> or station:<id>.",
            code="invalid_room",
            details={"room": str(name)[:MAX_ROOM_NAME]},
        )
    return kind, int(ident)


@dataclass(frozen=True)
class Scope:
    """What a device may see: its config, the config's open session, the
    tables of the config's floors and the config's kitchen stations."""

    config_id: int
    session_id: int | None = None
    table_ids: frozenset[int] = field(default_factory=frozenset)
    station_ids: frozenset[int] = field(default_factory=frozenset)


# A kitchen device may follow its config and its stations only.
KITCHEN_ROOM_KINDS = frozenset({CONFIG, STATION})


def authorize_rooms(role: str, rooms, scope: Scope) -> tuple[str, ...]:
    """The rooms (deduplicated, in the given order) when the device may
    follow every one of them; 403 ``room_forbidden`` naming the first it may
    not. No rooms means the config's room."""
    names = list(dict.fromkeys(rooms or [room(CONFIG, scope.config_id)]))
    for name in names:
        kind, ident = parse_room(name)
        allowed = {
            CONFIG: ident == scope.config_id,
            SESSION: scope.session_id is not None and ident == scope.session_id,
            TABLE: ident in scope.table_ids,
            STATION: ident in scope.station_ids,
        }[kind]
        if role == "kitchen" and kind not in KITCHEN_ROOM_KINDS:
            allowed = False
        if not allowed:
            raise Forbidden(
                f"This device may not follow {name}.",
                code="room_forbidden",
                details={"room": name},
            )
    return tuple(names)


def matches(event_rooms, subscribed) -> str | None:
    """The room under which an event reaches a subscriber (the first of the
    event's rooms that it follows), or None when it follows none of them."""
    for name in event_rooms:
        if name in subscribed:
            return name
    return None


# ---------------------------------------------------------------- resume
@dataclass(frozen=True)
class Resume:
    """Where a reader resumes: ``resync`` when it must fetch afresh."""

    after: int
    resync: bool


def resume(after: int | None, floor_seq: int, last_seq: int) -> Resume:
    """A reader that saw ``after`` resumes from it while every later event
    is still kept: ``floor_seq`` is the highest seq pruned (0 when none).
    A cursor below that floor (past retention) or above ``last_seq`` (a
    device of another database, or one restored from an old backup) is told
    to resync and continues from ``last_seq``; no cursor means "from now"."""
    if after is None:
        return Resume(last_seq, False)
    if after < floor_seq or after > last_seq:
        return Resume(last_seq, True)
    return Resume(after, False)


# --------------------------------------------------------- close codes
# RFC 6455 codes where one fits, 4xxx (application range) for the rest.
CLOSE_NORMAL = 1000
CLOSE_GOING_AWAY = 1001  # server shutting down: reconnect and resume
CLOSE_PROTOCOL_ERROR = 1002  # malformed frame, bad opcode, unmasked client frame
CLOSE_UNSUPPORTED = 1003  # binary frame, unknown message type
CLOSE_INVALID_DATA = 1007  # text that is not UTF-8 / not JSON
CLOSE_POLICY = 1008  # a message that breaks the protocol's order (subscribe before auth)
CLOSE_TOO_BIG = 1009  # a frame or message over the size limit
CLOSE_UNAUTHORIZED = 4001  # missing, bad, expired or revoked token
CLOSE_FORBIDDEN = 4003  # a room outside the device's config or company
CLOSE_RESYNC = 4009  # too slow (send buffer full) or too far behind: fetch afresh
CLOSE_TOO_MANY = 4029  # over the device's cap on connections or subscriptions

CLOSE_CODES = {
    CLOSE_NORMAL: "normal closure",
    CLOSE_GOING_AWAY: "server going away: reconnect and resume",
    CLOSE_PROTOCOL_ERROR: "protocol error",
    CLOSE_UNSUPPORTED: "unsupported frame or message type",
    CLOSE_INVALID_DATA: "invalid UTF-8 or JSON",
    CLOSE_POLICY: "message out of order (authenticate first)",
    CLOSE_TOO_BIG: "frame or message too large",
    CLOSE_UNAUTHORIZED: "missing, invalid, expired or revoked token",
    CLOSE_FORBIDDEN: "room not allowed for this device",
    CLOSE_RESYNC: "too slow or too far behind: fetch afresh, then resume",
    CLOSE_TOO_MANY: "too many connections or subscriptions for this device",
}
