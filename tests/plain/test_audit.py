"""The payment audit chain: canonical form, hashing, verification, trigger."""

import copy
import hashlib
from datetime import datetime, timedelta, timezone
from decimal import Decimal

import pytest

from pos_core import audit

T0 = datetime(2026, 11, 23, 12, 0, 0)


def _record(index, company_id=1, **overrides):
    record = {
        "id": 1000 + index,
        "company_id": company_id,
        "event": audit.EVENTS[index % len(audit.EVENTS)],
        "event_at": T0 + timedelta(seconds=index, microseconds=index),
        "order_res_id": 500 + index // 2,
        "order_name": f"Restaurant/{index // 2:04d}",
        "payment_res_id": 700 + index if index % 3 else None,
        "amount": Decimal(f"{index}.{index % 100:02d}"),
        "currency_id": 1,
        "payment_method_id": 2 + index % 2,
        "is_change": index % 7 == 3,
        "actor_user_id": 2,
        "actor_device_id": 9 if index % 2 else None,
        "terminal_ref": f"TX-{index}" if index % 2 else None,
        "idempotency_key": f"key-{index}" if index % 2 else None,
        "order_state_before": "validated",
        "order_state_after": "paid",
    }
    record.update(overrides)
    return record


def _chain(count, company_id=1, start=0):
    records = [_record(start + index, company_id) for index in range(count)]
    audit.link(None, records)
    return records


def _tail(records, start):
    return [record["id"] for record in records[start:]]


# ----------------------------------------------------------------------
# Canonical form
# ----------------------------------------------------------------------
GOLDEN_RECORD = {
    "company_id": 1,
    "sequence": 1,
    "event": "captured",
    "event_at": datetime(2026, 1, 2, 3, 4, 5, 6),
    "order_res_id": 42,
    "order_name": "Caf\u00e9/0001",
    "payment_res_id": 7,
    "amount": Decimal("12.3"),
    "currency_id": 1,
    "payment_method_id": 3,
    "is_change": False,
    "actor_user_id": 2,
    "actor_device_id": None,
    "terminal_ref": None,
    "idempotency_key": "k1",
    "order_state_before": "draft",
    "order_state_after": "paid",
}
GOLDEN_JSON = (
    '{"actor_device_id":null,"actor_user_id":2,"amount":"12.300000","company_id":1,'
    '"currency_id":1,"event":"captured","event_at":"2026-01-02T03:04:05.000006Z",'
    '"idempotency_key":"k1","is_change":false,"order_name":"Caf\\u00e9/0001",'
    '"order_res_id":42,"order_state_after":"paid","order_state_before":"draft",'
    '"payment_method_id":3,"payment_res_id":7,"sequence":1,"terminal_ref":null}'
)


def test_canonical_json_is_the_documented_form():
    assert audit.canonical_json(GOLDEN_RECORD) == GOLDEN_JSON
    expected = hashlib.sha256((audit.GENESIS_HASH + GOLDEN_JSON).encode()).hexdigest()
    assert audit.chain_hash(audit.GENESIS_HASH, GOLDEN_RECORD) == expected
    # Stored hashes depend on this exact value: changing the canonical form
    # invalidates every chain already written.
    assert expected == "80f703321bdd6a4811e74f78aed877db60d7164a2bb7fdcd60c1bfe2949c342f"


def test_canonical_json_ignores_key_order_and_unhashed_keys():
    shuffled = dict(reversed(list(GOLDEN_RECORD.items())))
    shuffled.update(id=99, hash="x", previous_hash="y", create_date=T0)
    assert audit.canonical_json(shuffled) == GOLDEN_JSON


@pytest.mark.parametrize(
    ("amount", "text"),
    [
        (Decimal("12.3"), "12.300000"),
        (Decimal("12.30"), "12.300000"),
        ("12.300000000", "12.300000"),
        (12, "12.000000"),
        (Decimal("1E+2"), "100.000000"),
        (Decimal("-0.00"), "0.000000"),
        (Decimal("0E-9"), "0.000000"),
        (Decimal("-5.5"), "-5.500000"),
        # Nothing is rounded away, however small or long.
        (Decimal("12.3000001"), "12.3000001"),
        (Decimal("0.00000010"), "0.0000001"),
        (
            Decimal("123456789012345678901234567890.123456789"),
            "123456789012345678901234567890.123456789",
        ),
    ],
)
def test_amounts_are_exact_strings_with_fixed_places(amount, text):
    assert audit.canonical_amount(amount) == text


def test_floats_and_non_finite_amounts_have_no_canonical_form():
    with pytest.raises(TypeError):
        audit.canonical_amount(12.3)
    with pytest.raises(ValueError):
        audit.canonical_amount(Decimal("NaN"))
    with pytest.raises(TypeError):
        audit.canonical_json({**GOLDEN_RECORD, "order_res_id": 4.0})


def test_datetimes_are_utc_and_none_is_explicit():
    aware = datetime(2026, 1, 2, 4, 4, 5, 6, tzinfo=timezone(timedelta(hours=1)))
    assert audit.canonical_json({**GOLDEN_RECORD, "event_at": aware}) == GOLDEN_JSON
    assert audit.canonical_datetime(datetime(2026, 1, 2)) == "2026-01-02T00:00:00.000000Z"
    missing = dict(GOLDEN_RECORD)
    del missing["terminal_ref"]
    with pytest.raises(KeyError):
        audit.canonical_json(missing)
    assert '"terminal_ref":null' in audit.canonical_json(GOLDEN_RECORD)


def test_every_hashed_field_changes_the_hash():
    base = audit.chain_hash(audit.GENESIS_HASH, GOLDEN_RECORD)
    seen = {base}
    for name in audit.HASHED_FIELDS:
        changed = {**GOLDEN_RECORD, name: _other_value(name, GOLDEN_RECORD[name])}
        seen.add(audit.chain_hash(audit.GENESIS_HASH, changed))
    assert len(seen) == len(audit.HASHED_FIELDS) + 1
    assert audit.chain_hash("1" * 64, GOLDEN_RECORD) != base


# ----------------------------------------------------------------------
# Chains
# ----------------------------------------------------------------------
def test_link_numbers_and_chains_records():
    records = _chain(5)
    assert [record["sequence"] for record in records] == [1, 2, 3, 4, 5]
    assert records[0]["previous_hash"] == audit.GENESIS_HASH
    for before, after in zip(records, records[1:]):
        assert after["previous_hash"] == before["hash"]
    more = [_record(5), _record(6)]
    head = audit.link((5, records[-1]["hash"]), more)
    assert head == (7, more[-1]["hash"])
    assert more[0]["previous_hash"] == records[-1]["hash"]
    assert audit.verify(records + more).ok


def test_a_chain_of_n_verifies():
    records = _chain(500)
    result = audit.verify(iter(records))
    assert result.ok
    assert result.checked == 500
    assert result.first_broken is None
    assert result.broken_ids == []
    assert (result.head_sequence, result.head_hash) == (500, records[-1]["hash"])
    assert audit.verify([]).to_dict()["ok"]


def _other_value(name, value):
    if name == "amount":
        return Decimal(value) + Decimal("0.01")
    if name == "event_at":
        return value + timedelta(microseconds=1)
    if name == "is_change":
        return not value
    if isinstance(value, int):
        return value + 1
    if value is None:
        return 1 if name.endswith("_id") else "x"
    return value + "x"


@pytest.mark.parametrize("name", [*audit.HASHED_FIELDS, "previous_hash", "hash"])
def test_tampering_any_column_in_the_middle_reports_exactly_the_tail(name):
    records = _chain(20)
    tampered = copy.deepcopy(records)
    tampered[11][name] = _other_value(name, tampered[11][name])
    result = audit.verify(tampered)
    assert not result.ok
    assert result.checked == 20
    broken = result.first_broken
    assert (broken.id, broken.sequence) == (records[11]["id"], tampered[11]["sequence"])
    assert result.broken_ids == _tail(records, 11)
    assert result.broken_sequences == [record["sequence"] for record in tampered[11:]]
    assert (result.head_sequence, result.head_hash) == (11, records[10]["hash"])
    expected_reason = {
        "sequence": audit.SEQUENCE_GAP,
        "previous_hash": audit.PREVIOUS_HASH,
    }.get(name, audit.HASH)
    assert broken.reason == expected_reason


def test_an_amount_changed_in_the_seventh_decimal_is_found():
    records = _chain(10)
    records[4]["amount"] += Decimal("0.0000001")
    result = audit.verify(records)
    assert (result.first_broken.sequence, result.first_broken.reason) == (5, audit.HASH)


def test_a_rehashed_record_breaks_the_next_link():
    records = _chain(10)
    records[4]["amount"] = Decimal("999.99")
    records[4]["hash"] = audit.chain_hash(records[4]["previous_hash"], records[4])
    result = audit.verify(records)
    assert result.first_broken.sequence == 6
    assert result.first_broken.reason == audit.PREVIOUS_HASH
    assert result.broken_ids == _tail(records, 5)


def test_a_deleted_record_is_a_gap():
    records = _chain(10)
    del records[3]
    result = audit.verify(records)
    broken = result.first_broken
    assert (broken.id, broken.sequence, broken.reason) == (records[3]["id"], 5, audit.SEQUENCE_GAP)
    assert (broken.expected, broken.found) == (4, 5)
    assert result.broken_ids == _tail(records, 3)


def test_a_deleted_first_record_is_a_gap():
    records = _chain(3)[1:]
    result = audit.verify(records)
    assert (result.first_broken.sequence, result.first_broken.reason) == (2, audit.SEQUENCE_GAP)
    assert result.broken_ids == _tail(records, 0)


def test_reordered_records_are_found():
    records = _chain(10)
    records[4], records[5] = records[5], records[4]
    result = audit.verify(records)
    assert result.first_broken.sequence == 6
    assert result.broken_ids == _tail(records, 4)


def test_swapped_sequences_are_found():
    # Two records exchange their places in the chain, re-sorted by sequence.
    records = _chain(10)
    records[4]["sequence"], records[5]["sequence"] = 6, 5
    records.sort(key=lambda record: record["sequence"])
    result = audit.verify(records)
    assert (result.first_broken.sequence, result.first_broken.reason) == (5, audit.PREVIOUS_HASH)
    assert result.broken_ids == _tail(records, 4)


def test_a_duplicated_record_is_found():
    records = _chain(6)
    records.insert(3, dict(records[2]))
    result = audit.verify(records)
    assert (result.first_broken.sequence, result.first_broken.reason) == (
        3,
        audit.SEQUENCE_ORDER,
    )
    assert len(result.broken_ids) == 4


def test_a_value_without_canonical_form_is_invalid_content():
    records = _chain(5)
    records[2]["amount"] = Decimal("NaN")
    result = audit.verify(records)
    assert result.first_broken.reason == audit.INVALID_CONTENT
    assert result.broken_ids == _tail(records, 2)


# ----------------------------------------------------------------------
# Anchors: what a chain alone cannot show
# ----------------------------------------------------------------------
def test_a_truncated_chain_is_found_through_an_anchor():
    records = _chain(10)
    anchors = {8: records[7]["hash"]}
    assert audit.verify(records, anchors).ok
    result = audit.verify(records[:6], anchors)
    broken = result.first_broken
    assert (broken.id, broken.sequence, broken.reason) == (None, 7, audit.TRUNCATED)
    assert result.broken_ids == []
    assert audit.verify([], anchors).first_broken.reason == audit.TRUNCATED


def test_a_rewritten_and_rehashed_chain_is_found_through_an_anchor():
    records = _chain(10)
    anchors = {8: records[7]["hash"]}
    forged = copy.deepcopy(records)
    forged[2]["amount"] = Decimal("0.01")
    audit.link((2, forged[1]["hash"]), forged[2:])
    assert audit.verify(forged).ok  # consistent on its own
    result = audit.verify(forged, anchors)
    assert (result.first_broken.sequence, result.first_broken.reason) == (8, audit.ANCHOR)
    assert result.broken_ids == _tail(records, 7)


def test_chains_are_verified_per_company():
    first, second = _chain(6, company_id=1), _chain(4, company_id=2, start=100)
    second[1]["terminal_ref"] = "forged"
    interleaved = [record for pair in zip(first, second) for record in pair] + first[4:]
    results = audit.verify_chains(interleaved, anchors={3: {1: audit.GENESIS_HASH}})
    assert set(results) == {1, 2, 3}
    assert results[1].ok
    assert results[1].checked == 6
    assert results[2].first_broken.sequence == 2
    assert results[2].broken_ids == _tail(second, 1)
    assert results[3].first_broken.reason == audit.TRUNCATED


# ----------------------------------------------------------------------
# The database refuses changes (real PostgreSQL)
# ----------------------------------------------------------------------
TABLE = "pos_api_audit_plain_test"
COLUMNS = ("id", *audit.HASHED_FIELDS, "previous_hash", "hash")


def _create_table(cr):
    cr.execute(f"DROP TABLE IF EXISTS {TABLE}")
    cr.execute(
        f"""CREATE TABLE {TABLE} (
            id integer PRIMARY KEY, company_id integer NOT NULL, sequence integer NOT NULL,
            event varchar NOT NULL, event_at timestamp without time zone NOT NULL,
            order_res_id integer, order_name varchar, payment_res_id integer,
            amount numeric, currency_id integer, payment_method_id integer,
            is_change boolean, actor_user_id integer, actor_device_id integer,
            terminal_ref varchar, idempotency_key varchar,
            order_state_before varchar, order_state_after varchar,
            previous_hash varchar NOT NULL, hash varchar NOT NULL,
            UNIQUE (company_id, sequence))"""
    )
    for statement in audit.immutability_sql(TABLE) * 2:  # idempotent
        cr.execute(statement)


def _insert(cr, records):
    placeholders = ", ".join(["%s"] * len(COLUMNS))
    for record in records:
        cr.execute(
            f"INSERT INTO {TABLE} ({', '.join(COLUMNS)}) VALUES ({placeholders})",
            [record[column] for column in COLUMNS],
        )


def _read(cr):
    cr.execute(f"SELECT {', '.join(COLUMNS)} FROM {TABLE} ORDER BY company_id, sequence")
    return [dict(zip(COLUMNS, row)) for row in cr.fetchall()]


@pytest.mark.parametrize(
    "statement",
    [
        f"UPDATE {TABLE} SET amount = 0 WHERE sequence = 2",
        f"UPDATE {TABLE} SET hash = hash",
        f"DELETE FROM {TABLE} WHERE sequence = 3",
        f"TRUNCATE {TABLE}",
    ],
)
def test_the_trigger_refuses_updates_deletes_and_truncate(pg_conn, statement):
    import psycopg2

    with pg_conn.cursor() as cr:
        _create_table(cr)
        _insert(cr, _chain(3))
        cr.execute("SAVEPOINT change")
        with pytest.raises(psycopg2.errors.RaiseException) as info:
            cr.execute(statement)
        assert "append-only" in str(info.value)
        cr.execute("ROLLBACK TO SAVEPOINT change")
        assert audit.verify(_read(cr)).checked == 3


def test_values_survive_postgres_and_sql_tampering_is_found(pg_conn):
    records = _chain(12)
    row_trigger, _truncate_trigger = audit.trigger_names(TABLE)
    with pg_conn.cursor() as cr:
        _create_table(cr)
        _insert(cr, records)
        stored = _read(cr)
        assert audit.verify(stored).ok  # Decimal and timestamp round-trip exactly
        cr.execute(f"ALTER TABLE {TABLE} DISABLE TRIGGER {row_trigger}")
        cr.execute(f"UPDATE {TABLE} SET amount = amount + 0.01 WHERE sequence = 7")
        cr.execute(f"ALTER TABLE {TABLE} ENABLE TRIGGER {row_trigger}")
        result = audit.verify(_read(cr))
    assert (result.first_broken.id, result.first_broken.reason) == (records[6]["id"], audit.HASH)
    assert result.broken_ids == _tail(records, 6)


# ----------------------------------------------------------------------
# Keyed chain (HMAC) and the unkeyed prefix written before the key
# ----------------------------------------------------------------------
KEY = audit.check_key("k" * 40)
WRONG_KEY = audit.check_key("w" * 40)


def _keyed_chain(count, plain=0):
    """``plain`` unkeyed records (written before the key), then keyed ones."""
    records = [_record(index) for index in range(count)]
    head = audit.link(None, records[:plain]) if plain else None
    audit.link(head, records[plain:], KEY)
    return records


def test_a_keyed_chain_verifies_only_with_its_key():
    records = _keyed_chain(6)
    assert {record["hash_scheme"] for record in records} == {audit.HMAC}
    assert records[0]["hash"] != audit.chain_hash(audit.GENESIS_HASH, records[0])
    assert audit.verify(records, key=KEY).ok
    assert audit.verify(records, key=WRONG_KEY).first_broken.reason == audit.HASH
    assert audit.verify(records).first_broken.reason == audit.NO_KEY


def test_short_keys_are_refused():
    with pytest.raises(ValueError):
        audit.check_key("short")


def test_a_rewrite_rehashed_with_plain_sha256_is_broken():
    records = _keyed_chain(6)
    forged = [dict(record) for record in records]
    forged[3]["amount"] = Decimal("999.00")
    # The database role recomputes the whole chain without the key.
    for record in forged:
        record.pop("hash_scheme")
    audit.link(None, forged)
    assert audit.verify(forged).ok  # consistent on its own, as unkeyed records
    result = audit.verify(forged, key=KEY, legacy_until=0)
    assert (result.first_broken.sequence, result.first_broken.reason) == (1, audit.SCHEME)
    # Even without the remembered boundary, an anchor of an earlier check exposes it.
    anchors = {6: records[5]["hash"]}
    assert audit.verify(forged, anchors, key=KEY).first_broken.reason == audit.ANCHOR


def test_chains_not_named_in_the_boundaries_take_the_default_boundary():
    # A company whose chain began after the key: not in the exported
    # boundaries, so no unkeyed record is allowed in it at all.
    forged = _chain(4, company_id=2)
    named = _keyed_chain(3)
    results = audit.verify_chains([*named, *forged], key=KEY, legacy_until={1: 0}, legacy_default=0)
    assert results[1].ok
    assert (results[2].first_broken.sequence, results[2].first_broken.reason) == (1, audit.SCHEME)
    # Nothing exported at all (a restored copy): an unkeyed prefix is allowed.
    assert audit.verify_chains(forged, key=KEY, legacy_default=None)[2].ok


def test_a_rewrite_rehashed_with_a_wrong_key_is_broken():
    records = _keyed_chain(6)
    forged = [dict(record) for record in records]
    forged[2]["amount"] = Decimal("0.01")
    audit.link((2, forged[1]["hash"]), forged[2:], WRONG_KEY)
    result = audit.verify(forged, key=KEY)
    assert (result.first_broken.sequence, result.first_broken.reason) == (3, audit.HASH)


def test_unkeyed_records_before_the_key_stay_valid_and_protected():
    records = _keyed_chain(8, plain=3)
    assert [record["hash_scheme"] for record in records[:4]] == [None, None, None, audit.HMAC]
    assert audit.verify(records, key=KEY, legacy_until=3).ok
    assert audit.verify(records, key=KEY).ok  # boundary unknown: any unkeyed prefix
    # Rewriting an old unkeyed record and re-hashing the unkeyed prefix breaks
    # the first keyed record's link, which cannot be recomputed without the key.
    forged = [dict(record) for record in records]
    forged[1]["amount"] = Decimal("1.00")
    audit.link((1, forged[0]["hash"]), forged[1:3])
    result = audit.verify(forged, key=KEY, legacy_until=3)
    assert (result.first_broken.sequence, result.first_broken.reason) == (4, audit.PREVIOUS_HASH)


def test_an_unkeyed_record_after_a_keyed_one_or_past_the_boundary_is_broken():
    records = _keyed_chain(6, plain=2)
    downgraded = [dict(record) for record in records]
    audit.link((4, downgraded[3]["hash"]), downgraded[4:])  # the last two, unkeyed
    result = audit.verify(downgraded, key=KEY)
    assert (result.first_broken.sequence, result.first_broken.reason) == (5, audit.SCHEME)
    plain = _chain(4)
    assert audit.verify(plain, key=KEY, legacy_until=4).ok
    result = audit.verify(plain, key=KEY, legacy_until=2)
    assert (result.first_broken.sequence, result.first_broken.reason) == (3, audit.SCHEME)
    unknown = _keyed_chain(2)
    unknown[1]["hash_scheme"] = "md5"
    assert audit.verify(unknown, key=KEY).first_broken.reason == audit.SCHEME
