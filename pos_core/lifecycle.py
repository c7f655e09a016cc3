"""The restaurant order lifecycle: states, flows and the transition table.

Odoo's own ``pos.order.state`` (draft/cancel/paid/done/invoiced) is left
alone; the restaurant lifecycle is a second dimension kept consistent with it.
Two flows exist, fixed on an order when it is created:

- ``pay_first`` (counter service): draft → validated → paid → preparing →
  ready → done, then done → invoiced;
- ``dine_in`` (the kitchen works before payment): draft → validated →
  preparing → ready → served → paid → done, then done → invoiced.

Cancel is allowed from every state that is not final. Cancelling after
payment needs a refund, which the payments flow makes (``needs_refund``).
"""

from __future__ import annotations

from dataclasses import dataclass

from .exceptions import Conflict

DRAFT = "draft"
VALIDATED = "validated"
PAID = "paid"
PREPARING = "preparing"
READY = "ready"
SERVED = "served"
DONE = "done"
CANCEL = "cancel"
INVOICED = "invoiced"

STATES = (DRAFT, VALIDATED, PAID, PREPARING, READY, SERVED, DONE, CANCEL, INVOICED)
FINAL_STATES = frozenset({DONE, CANCEL, INVOICED})

PAY_FIRST = "pay_first"
DINE_IN = "dine_in"
FLOWS = (PAY_FIRST, DINE_IN)

_PATHS = {
    PAY_FIRST: (DRAFT, VALIDATED, PAID, PREPARING, READY, DONE),
    DINE_IN: (DRAFT, VALIDATED, PREPARING, READY, SERVED, PAID, DONE),
}


def _build_table(path: tuple[str, ...]) -> dict[str, frozenset[str]]:
    table: dict[str, set[str]] = {state: set() for state in STATES}
    for current, following in zip(path, path[1:]):
        table[current].add(following)
    table[DONE].add(INVOICED)
    for state in path:
        if state not in FINAL_STATES:
            table[state].add(CANCEL)
    return {state: frozenset(targets) for state, targets in table.items()}


TRANSITIONS: dict[str, dict[str, frozenset[str]]] = {
    flow: _build_table(path) for flow, path in _PATHS.items()
}

# When the kitchen dimension is entered, the order keeps a timestamp for SLA
# figures (time to start cooking, cooking time, time to serve).
KITCHEN_TIMESTAMPS = {
    PREPARING: "kitchen_started_at",
    READY: "kitchen_ready_at",
    SERVED: "served_at",
}

# Odoo ``pos.order.state`` values that a lifecycle state accepts. Odoo moves a
# paid order to ``done`` itself when the session closes.
_ODOO_STATES_AFTER_PAYMENT = frozenset({"paid", "done"})


class IllegalTransition(Conflict):
    """A lifecycle move the table does not allow; nothing may be written."""

    code = "illegal_transition"

    def __init__(self, flow: str, current: str, target: str):
        self.flow, self.current, self.target = flow, current, target
        allowed = sorted(TRANSITIONS.get(flow, {}).get(current, ()))
        super().__init__(
            f"cannot move a {flow} order from {current!r} to {target!r}"
            f" (allowed: {', '.join(allowed) or 'none'})",
            details={"flow": flow, "from": current, "to": target, "allowed": allowed},
        )


@dataclass(frozen=True)
class Transition:
    flow: str
    current: str
    target: str

    @property
    def needs_payment(self) -> bool:
        """Entering ``paid`` requires Odoo's order to be fully paid first."""
        return self.target == PAID

    @property
    def needs_refund(self) -> bool:
        """Cancelling an order that was already paid must refund it."""
        return self.target == CANCEL and is_paid(self.flow, self.current)

    @property
    def timestamp_field(self) -> str | None:
        return KITCHEN_TIMESTAMPS.get(self.target)

    @property
    def is_recall(self) -> bool:
        """Back from ``ready`` to ``preparing`` (:func:`check_recall`): the
        ready time is cleared, the start time kept."""
        return (self.current, self.target) == (READY, PREPARING)


def allowed_targets(flow: str, current: str) -> frozenset[str]:
    return TRANSITIONS[flow][current]


def check_transition(flow: str, current: str, target: str) -> Transition:
    """Return the transition, or raise :class:`IllegalTransition`."""
    if flow not in TRANSITIONS or current not in STATES or target not in STATES:
        raise IllegalTransition(flow, current, target)
    if target not in TRANSITIONS[flow][current]:
        raise IllegalTransition(flow, current, target)
    return Transition(flow, current, target)


def check_recall(flow: str, current: str) -> Transition:
    """The kitchen takes back an order it bumped: ``ready`` returns to
    ``preparing``. Not in the table (no path goes back); raises
    :class:`IllegalTransition` from any other state."""
    if flow not in TRANSITIONS or current != READY:
        raise IllegalTransition(flow, current, PREPARING)
    return Transition(flow, READY, PREPARING)


def path_to(flow: str, current: str, target: str) -> list[Transition]:
    """The shortest chain of legal transitions from ``current`` to ``target``
    (without cancelling), or raise :class:`IllegalTransition`."""
    if flow not in TRANSITIONS or current not in STATES or target not in STATES:
        raise IllegalTransition(flow, current, target)
    previous: dict[str, str] = {current: current}
    frontier = [current]
    while frontier and target not in previous:
        following = []
        for state in frontier:
            for nxt in sorted(TRANSITIONS[flow][state] - {CANCEL}):
                if nxt not in previous:
                    previous[nxt] = state
                    following.append(nxt)
        frontier = following
    if target not in previous or target == current:
        raise IllegalTransition(flow, current, target)
    chain = [target]
    while chain[-1] != current:
        chain.append(previous[chain[-1]])
    chain.reverse()
    return [Transition(flow, a, b) for a, b in zip(chain, chain[1:])]


def is_paid(flow: str, state: str) -> bool:
    """Whether an order in ``state`` has been paid (Odoo state paid or later)."""
    if state in (PAID, DONE, INVOICED):
        return True
    return flow == PAY_FIRST and state in (PREPARING, READY)


def odoo_states_for(flow: str, state: str, refunded: bool = False) -> frozenset[str]:
    """Odoo ``pos.order.state`` values consistent with a lifecycle state.

    A paid order cancelled by refunding it stays paid in Odoo (the refund is
    a second, negative order), so ``refunded`` cancel accepts Odoo's paid
    states.
    """
    if state == CANCEL:
        return _ODOO_STATES_AFTER_PAYMENT | {"invoiced"} if refunded else frozenset({"cancel"})
    if state == INVOICED:
        return frozenset({"invoiced"})
    if is_paid(flow, state):
        return _ODOO_STATES_AFTER_PAYMENT
    return frozenset({"draft"})


def state_from_odoo(flow: str, odoo_state: str) -> str:
    """The lifecycle state an order takes when it only has Odoo's state.

    Used for orders that enter through Odoo's own POS UI (``sync_from_ui``):
    a paid UI order is ``paid`` in both flows (the kitchen has not bumped it
    yet), a draft UI order is ``draft``.
    """
    return {
        "draft": DRAFT,
        "paid": PAID,
        "done": PAID,
        "invoiced": INVOICED,
        "cancel": CANCEL,
    }.get(odoo_state, DRAFT)
