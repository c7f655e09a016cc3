"""The payment audit trail: canonical records, the hash chain and its check.

Every payment event (authorized, captured, refunded, voided, failed) becomes
one record of a per-company chain. A record's hash is
``sha256(previous_hash + canonical_json(record))`` where ``previous_hash`` is
the hash of the record before it in the company's chain (``GENESIS_HASH`` for
the first one) and the canonical JSON covers exactly ``HASHED_FIELDS``.
Sequences start at 1 and have no gaps, so a deleted record shows as a gap,
an edited one as a hash mismatch, a moved one as a sequence or hash mismatch.

The canonical form is what makes the hash reproducible years later, from the
stored row alone and on any machine:

- keys sorted, no whitespace, ASCII only (``json.dumps`` with
  ``sort_keys=True, separators=(",", ":"), ensure_ascii=True``);
- every hashed field present, ``None`` written as ``null`` (a missing key is
  an error, not a silent ``null``);
- amounts are Decimals written as strings with at least ``AMOUNT_PLACES``
  decimals, and every further decimal the value has: ``12.3`` and ``12.30``
  are the same amount, ``12.3000001`` is not (nothing is rounded away, so an
  edit in the 7th decimal is still seen). Floats are refused: they are not
  exact and their repr is not a contract;
- datetimes in UTC, ISO 8601 with microseconds and a ``Z``; naive datetimes
  are UTC, as Odoo stores them.

Keyed chain. Anyone who can write the table (Odoo's own database role) can
also recompute plain sha256 hashes. Records are therefore hashed with
``HMAC-SHA256(key, previous_hash + canonical_json(record))`` (``HMAC``), the
key kept outside the database. The scheme of each record is stored next to
it (``hash_scheme``, outside the hashed content); records written before the
key existed keep ``sha256`` (``PLAIN``, stored as NULL). A chain may start
with plain records and go on with keyed ones, never the other way round, and
plain records are accepted only up to ``legacy_until``, the last plain
sequence when the key was introduced (remembered outside the database): a
rewrite that "downgrades" keyed records to plain ones is broken at the first
of them. Rewriting plain records changes the hash the first keyed record
links to, which cannot be recomputed without the key.

A chain cannot show that its last records were removed. The verifier takes
*anchors*, ``{sequence: hash}`` pairs remembered by earlier checks: a chain
that ends before an anchor, or whose record at an anchor has another hash
(the chain was rewritten and re-hashed), is broken there.

The PostgreSQL trigger that refuses UPDATE, DELETE and TRUNCATE on the audit
tables is defined here too, as SQL text, so that the plain tier tests it on a
real server; the Odoo model installs it in ``init()``.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timezone
from decimal import Decimal

AUTHORIZED = "authorized"
CAPTURED = "captured"
REFUNDED = "refunded"
VOIDED = "voided"
FAILED = "failed"
EVENTS = (AUTHORIZED, CAPTURED, REFUNDED, VOIDED, FAILED)

GENESIS_HASH = "0" * 64

# Hash schemes (``hash_scheme``): None is a record written before the key.
PLAIN = "sha256"
HMAC = "hmac-sha256"
SCHEMES = (PLAIN, HMAC)
KEY_MIN_LENGTH = 32
AMOUNT_PLACES = 6

# The columns of an audit record that its hash covers, by their column names.
# Adding one changes every hash: it needs a new chain version, not an edit.
HASHED_FIELDS = (
    "company_id",
    "sequence",
    "event",
    "event_at",
    "order_res_id",
    "order_name",
    "payment_res_id",
    "amount",
    "currency_id",
    "payment_method_id",
    "is_change",
    "actor_user_id",
    "actor_device_id",
    "terminal_ref",
    "idempotency_key",
    "order_state_before",
    "order_state_after",
)

# Reasons a link is broken.
SEQUENCE_GAP = "sequence_gap"  # a sequence is missing: a record was deleted
SEQUENCE_ORDER = "sequence_order"  # a sequence comes back or goes backwards
INVALID_CONTENT = "invalid_content"  # a value that has no canonical form
PREVIOUS_HASH = "previous_hash"  # the stored link to the previous record is wrong
HASH = "hash"  # the content does not hash to the stored hash
ANCHOR = "anchor"  # an earlier check saw another hash at this sequence
TRUNCATED = "truncated"  # the chain ends before a sequence an earlier check saw
SCHEME = "hash_scheme"  # an unkeyed record where only keyed ones may be
NO_KEY = "no_key"  # a keyed record, and no key to check it with


def canonical_amount(value: Decimal | int | str) -> str:
    """An exact decimal as a string with at least ``AMOUNT_PLACES`` decimals."""
    if isinstance(value, (float, bool)):
        raise TypeError(f"amounts must be Decimal, int or str, not {type(value).__name__}")
    amount = Decimal(value)
    if not amount.is_finite():
        raise ValueError(f"amount {value!r} is not a finite number")
    if amount.is_zero():
        amount = Decimal(0)  # -0 and 0E-8 are zero
    # Work on the digits, not with arithmetic: a Decimal context would round
    # a value longer than its precision, and nothing may be rounded here.
    sign, digits, exponent = amount.as_tuple()
    digits = list(digits)
    while exponent < -AMOUNT_PLACES and len(digits) > 1 and digits[-1] == 0:
        digits.pop()
        exponent += 1
    if exponent > -AMOUNT_PLACES:
        digits += [0] * (exponent + AMOUNT_PLACES)
        exponent = -AMOUNT_PLACES
    amount = Decimal((sign, tuple(digits), exponent))
    return format(amount, "f")


def canonical_datetime(value: datetime) -> str:
    """UTC, ISO 8601, microseconds, ``Z``; a naive datetime is taken as UTC."""
    if value.tzinfo is not None:
        value = value.astimezone(timezone.utc).replace(tzinfo=None)
    return value.isoformat(timespec="microseconds") + "Z"


def _canonical_value(name: str, value):
    if value is None:
        return None
    if name == "amount":
        return canonical_amount(value)
    if isinstance(value, (bool, str, int)):
        return value
    if isinstance(value, datetime):
        return canonical_datetime(value)
    raise TypeError(f"{name}: no canonical form for {type(value).__name__} {value!r}")


_ENCODE = json.JSONEncoder(sort_keys=True, separators=(",", ":"), ensure_ascii=True).encode
_AS_IS = frozenset({str, int, bool, type(None)})


def canonical_json(record: Mapping, fields: Iterable[str] = HASHED_FIELDS) -> str:
    """The canonical JSON of the hashed fields of ``record`` (see module doc)."""
    content = {}
    for name in fields:
        try:
            value = record[name]
        except KeyError:
            raise KeyError(
                f"the record has no {name!r}: hashed fields are never implicit"
            ) from None
        if type(value) in _AS_IS and name != "amount":  # the common case, kept fast
            content[name] = value
        else:
            content[name] = _canonical_value(name, value)
    return _ENCODE(content)


def check_key(key: str | bytes) -> bytes:
    """The chain key as bytes; at least ``KEY_MIN_LENGTH`` characters."""
    raw = key.encode() if isinstance(key, str) else bytes(key)
    if len(raw) < KEY_MIN_LENGTH:
        raise ValueError(f"the audit key must have at least {KEY_MIN_LENGTH} characters")
    return raw


def chain_hash(previous_hash: str, record: Mapping, key: bytes | None = None) -> str:
    """The record's hash as lowercase hex: ``HMAC-SHA256(key, previous_hash
    + canonical_json(record))`` with a key, ``sha256(...)`` of the same
    payload without one (records written before the key existed)."""
    payload = (previous_hash + canonical_json(record)).encode("ascii")
    if key is None:
        return hashlib.sha256(payload).hexdigest()
    return hmac.new(key, payload, hashlib.sha256).hexdigest()


def link(
    head: tuple[int, str] | None, records: Iterable[dict], key: bytes | None = None
) -> tuple[int, str]:
    """Give ``records`` (dicts, mutated) the next sequences, their hashes and
    their ``hash_scheme`` (keyed when ``key`` is given).

    ``head`` is ``(sequence, hash)`` of the chain's last record, ``None`` for
    an empty chain. Returns the new head. The caller holds the chain's lock
    from reading ``head`` until its transaction ends.
    """
    sequence, previous = head or (0, GENESIS_HASH)
    scheme = HMAC if key is not None else None
    for record in records:
        sequence += 1
        record["sequence"] = sequence
        record["previous_hash"] = previous
        record["hash_scheme"] = scheme
        record["hash"] = previous = chain_hash(previous, record, key)
    return sequence, previous


@dataclass
class BrokenLink:
    """The first record where the chain does not hold, and why."""

    id: int | None
    sequence: int | None
    reason: str
    expected: object = None
    found: object = None

    def to_dict(self) -> dict:
        return {
            "id": self.id,
            "sequence": self.sequence,
            "reason": self.reason,
            "expected": self.expected,
            "found": self.found,
        }


@dataclass
class VerifyResult:
    """What a walk over one chain found.

    ``checked`` counts every record read; ``broken_ids``/``broken_sequences``
    list the first broken record and every record after it (empty when the
    chain holds, or when only its end is missing). ``head`` is the last
    record that holds: the anchor a later check can rely on.
    """

    checked: int = 0
    first_broken: BrokenLink | None = None
    broken_ids: list = field(default_factory=list)
    broken_sequences: list = field(default_factory=list)
    head_sequence: int = 0
    head_hash: str = GENESIS_HASH
    plain_until: int = 0  # the last unkeyed record that holds

    @property
    def ok(self) -> bool:
        return self.first_broken is None

    def to_dict(self) -> dict:
        return {
            "ok": self.ok,
            "checked": self.checked,
            "first_broken": self.first_broken.to_dict() if self.first_broken else None,
            "broken_ids": list(self.broken_ids),
            "broken_sequences": list(self.broken_sequences),
            "head_sequence": self.head_sequence,
            "head_hash": self.head_hash,
            "plain_until": self.plain_until,
        }


class ChainVerifier:
    """Walks one chain record by record, in memory O(1) apart from the tail.

    Feed records in sequence order (as stored: ``ORDER BY sequence``); each
    needs ``id``, ``sequence``, ``previous_hash``, ``hash`` and the hashed
    fields, and ``hash_scheme`` when keyed. Once a link is broken every later
    record joins the tail unchecked: nothing after a broken link can be
    trusted.

    ``key`` checks keyed records; ``legacy_until`` is the last sequence that
    may be unkeyed (None: any unkeyed prefix, when it is not known).
    """

    def __init__(
        self,
        anchors: Mapping[int, str] | None = None,
        key: bytes | None = None,
        legacy_until: int | None = None,
    ):
        self.anchors = dict(anchors or {})
        self.key = key
        self.legacy_until = legacy_until
        self.keyed_seen = False
        self.result = VerifyResult()

    def feed(self, record: Mapping) -> None:
        result = self.result
        result.checked += 1
        if result.first_broken is None:
            broken = self._check(record)
            if broken is None:
                result.head_sequence = record["sequence"]
                result.head_hash = record["hash"]
                if not record.get("hash_scheme"):
                    result.plain_until = record["sequence"]
                return
            result.first_broken = broken
        result.broken_ids.append(record.get("id"))
        result.broken_sequences.append(record.get("sequence"))

    def _check(self, record: Mapping) -> BrokenLink | None:
        expected_sequence = self.result.head_sequence + 1
        expected_previous = self.result.head_hash
        record_id, sequence = record.get("id"), record.get("sequence")

        def broken(reason, expected, found):
            return BrokenLink(record_id, sequence, reason, expected, found)

        if not isinstance(sequence, int) or isinstance(sequence, bool):
            return broken(SEQUENCE_ORDER, expected_sequence, sequence)
        if sequence != expected_sequence:
            reason = SEQUENCE_GAP if sequence > expected_sequence else SEQUENCE_ORDER
            return broken(reason, expected_sequence, sequence)
        scheme = record.get("hash_scheme") or PLAIN
        if scheme not in SCHEMES:
            return broken(SCHEME, list(SCHEMES), scheme)
        if scheme == PLAIN and (
            self.keyed_seen or (self.legacy_until is not None and sequence > self.legacy_until)
        ):
            return broken(SCHEME, HMAC, scheme)
        if scheme == HMAC:
            if self.key is None:
                return broken(NO_KEY, HMAC, None)
            self.keyed_seen = True
        try:
            computed = chain_hash(expected_previous, record, self.key if scheme == HMAC else None)
        except (KeyError, TypeError, ValueError, ArithmeticError) as exc:
            return broken(INVALID_CONTENT, None, str(exc))
        if record.get("previous_hash") != expected_previous:
            return broken(PREVIOUS_HASH, expected_previous, record.get("previous_hash"))
        if record.get("hash") != computed:
            return broken(HASH, computed, record.get("hash"))
        anchored = self.anchors.get(sequence)
        if anchored is not None and anchored != computed:
            return broken(ANCHOR, anchored, computed)
        return None

    def finish(self) -> VerifyResult:
        """The result; a chain shorter than its highest anchor is truncated."""
        result = self.result
        last_anchor = max(self.anchors, default=0)
        if result.first_broken is None and last_anchor > result.head_sequence:
            result.first_broken = BrokenLink(
                None,
                result.head_sequence + 1,
                TRUNCATED,
                expected=last_anchor,
                found=result.head_sequence,
            )
        return result


def verify(
    records: Iterable[Mapping],
    anchors: Mapping[int, str] | None = None,
    key: bytes | None = None,
    legacy_until: int | None = None,
) -> VerifyResult:
    """Verify one chain (one company), streaming ``records`` in sequence order."""
    verifier = ChainVerifier(anchors, key, legacy_until)
    for record in records:
        verifier.feed(record)
    return verifier.finish()


def verify_chains(
    records: Iterable[Mapping],
    anchors: Mapping[object, Mapping[int, str]] | None = None,
    *,
    chain_key: str = "company_id",
    key: bytes | None = None,
    legacy_until: Mapping[object, int] | None = None,
    legacy_default: int | None = None,
) -> dict[object, VerifyResult]:
    """Verify several chains at once, records told apart by
    ``record[chain_key]``; ``legacy_until`` per chain (see ChainVerifier),
    ``legacy_default`` for the chains it does not name.

    Each chain's records must come in sequence order; chains may interleave.
    A chain that only exists in ``anchors`` (all its records are gone) is
    reported as truncated.
    """
    anchors = anchors or {}
    legacy = legacy_until or {}
    verifiers: dict[object, ChainVerifier] = {}

    def verifier_for(chain):
        verifier = verifiers.get(chain)
        if verifier is None:
            verifier = verifiers[chain] = ChainVerifier(
                anchors.get(chain), key, legacy.get(chain, legacy_default)
            )
        return verifier

    for record in records:
        verifier_for(record[chain_key]).feed(record)
    for chain, chain_anchors in anchors.items():
        if chain not in verifiers and chain_anchors:
            verifier_for(chain)
    return {chain: verifier.finish() for chain, verifier in verifiers.items()}


# ----------------------------------------------------------------------
# Database-level immutability
# ----------------------------------------------------------------------
REFUSE_FUNCTION = "pos_api_refuse_change"

# No ``%`` anywhere: the text is executed as is, without parameters.
REFUSE_FUNCTION_SQL = """
CREATE OR REPLACE FUNCTION pos_api_refuse_change() RETURNS trigger
LANGUAGE plpgsql AS $body$
BEGIN
    RAISE EXCEPTION USING
        MESSAGE = TG_TABLE_NAME || ' is append-only: ' || TG_OP || ' refused',
        HINT = 'Audit records are never changed; a correction is a new record.';
    RETURN NULL;
END
$body$
"""

_IDENTIFIER = re.compile(r"^[a-z_][a-z0-9_]{0,40}$")


def immutability_sql(table: str) -> list[str]:
    """Statements that make ``table`` append-only: row triggers refusing
    UPDATE and DELETE, a statement trigger refusing TRUNCATE. Idempotent.

    The table's owner (the Odoo database role) can still disable them: the
    triggers stop the application and careless SQL, the hash chain exposes
    whoever went around them.
    """
    if not _IDENTIFIER.match(table):
        raise ValueError(f"not a plain table name: {table!r}")
    row_trigger = f"{table}_refuse_change"
    truncate_trigger = f"{table}_refuse_truncate"
    return [
        REFUSE_FUNCTION_SQL,
        f"DROP TRIGGER IF EXISTS {row_trigger} ON {table}",
        f"CREATE TRIGGER {row_trigger} BEFORE UPDATE OR DELETE ON {table} "
        f"FOR EACH ROW EXECUTE FUNCTION {REFUSE_FUNCTION}()",
        f"DROP TRIGGER IF EXISTS {truncate_trigger} ON {table}",
        f"CREATE TRIGGER {truncate_trigger} BEFORE TRUNCATE ON {table} "
        f"FOR EACH STATEMENT EXECUTE FUNCTION {REFUSE_FUNCTION}()",
    ]


def trigger_names(table: str) -> tuple[str, str]:
    """The row and truncate trigger names :func:`immutability_sql` creates."""
    return f"{table}_refuse_change", f"{table}_refuse_truncate"
