import pytest

from pos_core import events as ev
from pos_core.exceptions import Forbidden, InvalidInput

SCOPE = ev.Scope(
    config_id=3, session_id=7, table_ids=frozenset({11, 12}), station_ids=frozenset({2})
)


@pytest.mark.parametrize(
    ("name", "parsed"),
    [("config:3", ("config", 3)), ("table:12", ("table", 12)), ("station:2", ("station", 2))],
)
def test_rooms_parse(name, parsed):
    assert ev.parse_room(name) == parsed
    assert ev.room(*parsed) == name


@pytest.mark.parametrize(
    "name",
    [
        "config",
        "config:",
        "kitchen:1",
        "table:0",
        "table:-1",
        "table:007",
        "table:1e3",
        "table:٣",  # a non-ASCII digit
        "table:2147483648",
        "config:" + "9" * 40,
        3,
        None,
    ],
)
def test_bad_room_names_are_422(name):
    with pytest.raises(InvalidInput) as info:
        ev.parse_room(name)
    assert info.value.code == "invalid_room"
    assert info.value.status == 422


def test_a_waiter_follows_its_config_session_tables_and_stations():
    rooms = ["table:11", "session:7", "config:3", "station:2", "table:11"]
    assert ev.authorize_rooms("waiter", rooms, SCOPE) == (
        "table:11",
        "session:7",
        "config:3",
        "station:2",
    )
    assert ev.authorize_rooms("waiter", [], SCOPE) == ("config:3",)


@pytest.mark.parametrize(
    ("role", "name"),
    [
        ("waiter", "config:4"),  # another point of sale
        ("waiter", "session:8"),  # not the current session
        ("waiter", "table:13"),  # a table of another floor plan
        ("waiter", "station:5"),
        ("kitchen", "table:11"),  # kitchen devices: config and stations only
        ("kitchen", "session:7"),
    ],
)
def test_rooms_outside_the_scope_are_403(role, name):
    with pytest.raises(Forbidden) as info:
        ev.authorize_rooms(role, ["config:3", name], SCOPE)
    assert info.value.code == "room_forbidden"
    assert info.value.details == {"room": name}


def test_a_kitchen_device_follows_config_and_stations():
    assert ev.authorize_rooms("kitchen", ["station:2", "config:3"], SCOPE) == (
        "station:2",
        "config:3",
    )


def test_no_session_means_no_session_room():
    with pytest.raises(Forbidden):
        ev.authorize_rooms("waiter", ["session:7"], ev.Scope(config_id=3))


def test_an_event_reaches_a_subscriber_under_its_most_specific_followed_room():
    event_rooms = ["table:11", "session:7", "config:3"]
    assert ev.matches(event_rooms, {"config:3", "table:11"}) == "table:11"
    assert ev.matches(event_rooms, {"config:3"}) == "config:3"
    assert ev.matches(event_rooms, {"table:12"}) is None


@pytest.mark.parametrize(
    ("after", "floor", "last", "expected"),
    [
        (None, 0, 40, ev.Resume(40, False)),  # from now
        (40, 0, 40, ev.Resume(40, False)),  # up to date
        (12, 10, 40, ev.Resume(12, False)),  # everything after 12 is kept
        (10, 10, 40, ev.Resume(10, False)),  # 11 is the first kept event
        (9, 10, 40, ev.Resume(40, True)),  # event 10 was pruned: resync
        (41, 0, 40, ev.Resume(40, True)),  # a cursor from the future
        (0, 0, 0, ev.Resume(0, False)),
    ],
)
def test_resume(after, floor, last, expected):
    assert ev.resume(after, floor, last) == expected


def test_small_payloads_are_kept_as_they_are():
    payload = {"id": 1, "lines": [{"id": 1, "qty": 2}]}
    assert ev.bound_payload(payload) is payload


def test_large_lists_are_referenced_by_id():
    lines = [{"id": i, "product": "x" * 40, "note": "n" * 20} for i in range(1, 301)]
    payload = {"id": 9, "name": "Order 9", "lines": lines, "payments": [{"id": 5, "amount": "1"}]}
    bounded = ev.bound_payload(payload)
    assert ev.payload_size(bounded) <= ev.PAYLOAD_MAX_BYTES
    assert bounded["truncated"] is True
    assert bounded["line_ids"] == list(range(1, 301))
    # The short list still fits and is kept whole.
    assert bounded["payments"] == [{"id": 5, "amount": "1"}]
    assert "lines" not in bounded and bounded["name"] == "Order 9"
    assert "truncated" not in payload  # the caller's payload is untouched


def test_a_payload_that_cannot_be_bounded_is_a_writer_error():
    with pytest.raises(ValueError):
        ev.bound_payload({"note": "x" * (ev.PAYLOAD_MAX_BYTES + 1)})


def test_envelope_shape():
    assert ev.envelope(5, ev.ORDER_CREATED, "table:11", "2026-12-02T05:00:00Z", {"id": 1}) == {
        "seq": 5,
        "type": "order.created",
        "room": "table:11",
        "at": "2026-12-02T05:00:00Z",
        "payload": {"id": 1},
    }


def test_every_close_code_is_documented_and_in_range():
    codes = [
        value
        for name, value in vars(ev).items()
        if name.startswith("CLOSE_") and isinstance(value, int)
    ]
    assert sorted(codes) == sorted(ev.CLOSE_CODES)
    assert all(1000 <= code < 1012 or 4000 <= code < 5000 for code in codes)
