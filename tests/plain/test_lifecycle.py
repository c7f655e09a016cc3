import itertools

import pytest

from pos_core import lifecycle as lc

PAY_FIRST_PATH = ["draft", "validated", "paid", "preparing", "ready", "done", "invoiced"]
DINE_IN_PATH = ["draft", "validated", "preparing", "ready", "served", "paid", "done", "invoiced"]


@pytest.mark.parametrize(
    ("flow", "path"), [(lc.PAY_FIRST, PAY_FIRST_PATH), (lc.DINE_IN, DINE_IN_PATH)]
)
def test_happy_path_is_allowed_step_by_step(flow, path):
    for current, target in zip(path, path[1:]):
        transition = lc.check_transition(flow, current, target)
        assert (transition.current, transition.target) == (current, target)


@pytest.mark.parametrize(
    ("flow", "path"), [(lc.PAY_FIRST, PAY_FIRST_PATH), (lc.DINE_IN, DINE_IN_PATH)]
)
def test_only_the_table_is_allowed(flow, path):
    legal = set(zip(path, path[1:]))
    legal |= {(s, lc.CANCEL) for s in path if s not in lc.FINAL_STATES}
    for current, target in itertools.product(lc.STATES, repeat=2):
        if (current, target) in legal:
            lc.check_transition(flow, current, target)
        else:
            with pytest.raises(lc.IllegalTransition) as info:
                lc.check_transition(flow, current, target)
            assert info.value.code == "illegal_transition"
            assert info.value.details["from"] == current
            assert info.value.details["to"] == target


def test_final_states_cannot_be_cancelled_or_left_except_invoicing():
    for flow in lc.FLOWS:
        assert lc.allowed_targets(flow, lc.CANCEL) == frozenset()
        assert lc.allowed_targets(flow, lc.INVOICED) == frozenset()
        assert lc.allowed_targets(flow, lc.DONE) == frozenset({lc.INVOICED})


def test_dine_in_cooks_before_payment_and_pay_first_does_not():
    lc.check_transition(lc.DINE_IN, "validated", "preparing")
    with pytest.raises(lc.IllegalTransition):
        lc.check_transition(lc.PAY_FIRST, "validated", "preparing")
    with pytest.raises(lc.IllegalTransition):
        lc.check_transition(lc.DINE_IN, "ready", "done")


def test_cancel_after_payment_needs_a_refund():
    assert lc.check_transition(lc.PAY_FIRST, "preparing", "cancel").needs_refund
    assert not lc.check_transition(lc.DINE_IN, "preparing", "cancel").needs_refund
    assert lc.check_transition(lc.DINE_IN, "paid", "cancel").needs_refund
    assert not lc.check_transition(lc.PAY_FIRST, "validated", "cancel").needs_refund


def test_kitchen_timestamps_and_payment_flags():
    assert lc.check_transition(lc.PAY_FIRST, "paid", "preparing").timestamp_field == (
        "kitchen_started_at"
    )
    assert lc.check_transition(lc.DINE_IN, "ready", "served").timestamp_field == "served_at"
    assert lc.check_transition(lc.DINE_IN, "served", "paid").needs_payment
    assert lc.check_transition(lc.DINE_IN, "served", "paid").timestamp_field is None


def test_odoo_state_consistency():
    assert lc.odoo_states_for(lc.PAY_FIRST, "ready") == {"paid", "done"}
    assert lc.odoo_states_for(lc.DINE_IN, "ready") == {"draft"}
    assert lc.odoo_states_for(lc.DINE_IN, "cancel") == {"cancel"}
    assert lc.odoo_states_for(lc.PAY_FIRST, "cancel", refunded=True) == {"paid", "done", "invoiced"}
    assert lc.odoo_states_for(lc.DINE_IN, "invoiced") == {"invoiced"}
    for odoo_state in ("draft", "paid", "done", "invoiced", "cancel"):
        for flow in lc.FLOWS:
            assert odoo_state in lc.odoo_states_for(flow, lc.state_from_odoo(flow, odoo_state))


def test_unknown_flow_or_state_is_illegal():
    with pytest.raises(lc.IllegalTransition):
        lc.check_transition("drive_through", "draft", "validated")
    with pytest.raises(lc.IllegalTransition):
        lc.check_transition(lc.PAY_FIRST, "draft", "eaten")


def test_path_to_follows_the_happy_path():
    path = lc.path_to(lc.PAY_FIRST, "draft", "paid")
    assert [(t.current, t.target) for t in path] == [("draft", "validated"), ("validated", "paid")]
    path = lc.path_to(lc.DINE_IN, "validated", "served")
    assert [t.target for t in path] == ["preparing", "ready", "served"]
    for flow, states in ((lc.PAY_FIRST, PAY_FIRST_PATH), (lc.DINE_IN, DINE_IN_PATH)):
        for i, start in enumerate(states):
            for end in states[i + 1 :]:
                chain = lc.path_to(flow, start, end)
                assert chain[0].current == start and chain[-1].target == end
                for step in chain:
                    lc.check_transition(flow, step.current, step.target)


def test_path_to_refuses_going_back_or_cancelling():
    with pytest.raises(lc.IllegalTransition):
        lc.path_to(lc.PAY_FIRST, "paid", "validated")
    with pytest.raises(lc.IllegalTransition):
        lc.path_to(lc.PAY_FIRST, "draft", "cancel")
    with pytest.raises(lc.IllegalTransition):
        lc.path_to(lc.PAY_FIRST, "draft", "draft")


def test_a_recall_takes_a_ready_order_back_to_preparing_only():
    for flow in lc.FLOWS:
        recall = lc.check_recall(flow, lc.READY)
        assert (recall.current, recall.target, recall.is_recall) == (
            lc.READY,
            lc.PREPARING,
            True,
        )
        assert not lc.check_transition(flow, lc.PREPARING, lc.READY).is_recall
        for state in set(lc.STATES) - {lc.READY}:
            with pytest.raises(lc.IllegalTransition):
                lc.check_recall(flow, state)
        # The table itself never goes back: no path recalls.
        with pytest.raises(lc.IllegalTransition):
            lc.check_transition(flow, lc.READY, lc.PREPARING)
        with pytest.raises(lc.IllegalTransition):
            lc.path_to(flow, lc.READY, lc.PREPARING)
    with pytest.raises(lc.IllegalTransition):
        lc.check_recall("buffet", lc.READY)
