"""What the kitchen has been sent and what changed since: the POS UI's
``last_order_preparation_change`` read, compared and written back."""

import json

import pytest

from pos_core import kitchen_changes as kc


def pos_ui_state(*lines, note=""):
    """A state as Odoo 18's POS UI writes it (``updateLastOrderChange``)."""
    return json.dumps(
        {
            "lines": {
                f"{uuid} - {line_note}": {
                    "attribute_value_ids": [],
                    "uuid": uuid,
                    "isCombo": combo,
                    "product_id": product,
                    "name": name,
                    "basic_name": name,
                    "note": line_note,
                    "quantity": qty,
                }
                for uuid, product, name, qty, line_note, combo in lines
            },
            "sittingMode": "dine in",
            "generalNote": note,
        }
    )


def test_the_first_send_is_every_line():
    after = kc.parse(pos_ui_state(("u1", 7, "Pizza", 2, "", None), ("u2", 8, "Water", 1, "", None)))
    found = kc.changes(kc.EMPTY, after)
    assert [(c.uuid, c.name, c.delta, c.qty) for c in found] == [
        ("u1", "Pizza", 2, 2),
        ("u2", "Water", 1, 1),
    ]


def test_added_fewer_removed_and_new_note_are_each_a_change():
    before = kc.parse(
        pos_ui_state(
            ("u1", 7, "Pizza", 2, "", None),
            ("u2", 8, "Water", 3, "", None),
            ("u3", 9, "Soup", 1, "", None),
            ("u4", 10, "Pasta", 1, "", None),
        )
    )
    after = kc.parse(
        pos_ui_state(
            ("u1", 7, "Pizza", 3, "", None),  # one more
            ("u2", 8, "Water", 1, "", None),  # two fewer
            ("u4", 10, "Pasta", 1, "no cheese", None),  # new note
            ("u5", 11, "Cake", 1, "", None),  # added
        )
    )  # u3 removed
    found = {c.uuid: c for c in kc.changes(before, after)}
    assert found["u1"].delta == 1 and found["u1"].qty == 3
    assert found["u2"].delta == -2
    assert found["u3"].delta == -1 and found["u3"].qty == 0 and found["u3"].name == "Soup"
    assert found["u4"].delta == 0 and found["u4"].note_changed and found["u4"].note == "no cheese"
    assert found["u5"].delta == 1
    assert list(found) == ["u1", "u2", "u4", "u5", "u3"]


def test_nothing_changed_is_no_change():
    state = kc.parse(pos_ui_state(("u1", 7, "Pizza", 2, "well done", None)))
    assert kc.changes(state, state) == []


def test_a_combo_item_is_known_as_one():
    state = kc.parse(pos_ui_state(("u1", 7, "Menu", 1, "", None), ("u2", 8, "Fries", 1, "", 4)))
    assert [c.combo_item for c in kc.changes(kc.EMPTY, state)] == [False, True]


@pytest.mark.parametrize(
    "raw",
    [
        "",
        "not json",
        "[]",
        "null",
        json.dumps({"lines": []}),
        json.dumps({"lines": {"x": "y"}}),
        json.dumps({"lines": {"": {"quantity": 1}}}),
        json.dumps({"lines": {"u1 - ": {"quantity": "many"}}}),
        json.dumps({"lines": {"u1 - ": {"quantity": True}}}),
    ],
)
def test_unreadable_states_count_as_nothing_sent(raw):
    assert kc.parse(raw).lines == {}


def test_a_state_keyed_twice_for_one_line_adds_up():
    raw = json.dumps(
        {
            "lines": {
                "u1 - ": {"uuid": "u1", "product_id": 7, "name": "Pizza", "quantity": 1},
                "u1 - extra": {"uuid": "u1", "product_id": 7, "name": "Pizza", "quantity": 2},
            }
        }
    )
    assert kc.parse(raw).lines["u1"].qty == 3


def test_the_split_bill_mark_is_read():
    raw = json.loads(pos_ui_state(("u1", 7, "Pizza", 1, "", None)))
    assert not kc.parse(json.dumps(raw)).no_ticket
    raw[kc.NO_TICKET] = True
    assert kc.parse(json.dumps(raw)).no_ticket
    raw[kc.NO_TICKET] = "yes"  # only true is true
    assert not kc.parse(json.dumps(raw)).no_ticket


def test_dump_is_read_back_as_the_pos_ui_reads_it():
    lines = [kc.Sent("u1", 7, "Pizza", "well done", 2.0), kc.Sent("u2", 8, "Fries", "", 1.0, True)]
    raw = kc.dump(lines, general_note="birthday")
    data = json.loads(raw)
    # The POS UI finds a line's entry by a key starting with its uuid.
    assert set(data["lines"]) == {"u1 - well done", "u2 - "}
    assert data["lines"]["u1 - well done"]["quantity"] == 2.0
    assert data["generalNote"] == "birthday" and data["sittingMode"] == "dine in"
    state = kc.parse(raw)
    assert state.lines == {line.uuid: line for line in lines}
    assert state.general_note == "birthday"
