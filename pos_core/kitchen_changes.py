"""What the kitchen has been sent, and what changed since. Plain Python, no
Odoo.

Odoo's POS UI keeps on each order, in ``last_order_preparation_change``, the
lines it last sent to the kitchen: a JSON object whose ``lines`` map
``"<line uuid> - <note>"`` to the line's uuid, product, name, note and
quantity. The Order button writes the new state there, and ``sync_from_ui``
carries it to the server. :func:`parse` reads that state (whatever a client
put in it), :func:`changes` compares two states line by line, and
:func:`dump` writes a state in the POS UI's own form, so that an order sent
through the API shows in the POS UI as sent.

A state whose ``NO_TICKET`` key is true was written without sending
anything (Odoo's split bill marks both orders as sent): it moves what the
kitchen is known to have without printing.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

NO_TICKET = "posApiNoTicket"


@dataclass(frozen=True)
class Sent:
    """One line as the kitchen has it."""

    uuid: str
    product_id: int
    name: str
    note: str
    qty: float
    combo_item: bool = False  # a combo's chosen item: printed with its combo line


@dataclass(frozen=True)
class Change:
    """A line whose quantity or note changed since it was last sent:
    ``delta`` is the change in quantity (negative: fewer, or removed);
    ``note_changed`` with ``delta`` 0 is a new note on the same quantity."""

    uuid: str
    product_id: int
    name: str
    note: str
    qty: float
    delta: float
    note_changed: bool = False
    combo_item: bool = False


@dataclass(frozen=True)
class State:
    lines: dict[str, Sent]
    general_note: str = ""
    no_ticket: bool = False


EMPTY = State({})


def _number(value, default=0.0):
    if isinstance(value, bool):
        return default
    if isinstance(value, int | float):
        return float(value)
    return default


def parse(raw) -> State:
    """The state in ``raw`` (the field's JSON text, or already decoded).
    Anything unreadable counts as nothing sent; entries are merged by line
    uuid (Odoo keys them by uuid and note)."""
    if isinstance(raw, str | bytes):
        try:
            raw = json.loads(raw or "{}")
        except ValueError:
            return EMPTY
    if not isinstance(raw, dict):
        return EMPTY
    entries = raw.get("lines")
    lines: dict[str, Sent] = {}
    if isinstance(entries, dict):
        for key, entry in entries.items():
            if not isinstance(entry, dict):
                continue
            uuid = entry.get("uuid") or str(key).split(" - ", 1)[0]
            if not isinstance(uuid, str) or not uuid:
                continue
            product_id = entry.get("product_id")
            qty = _number(entry.get("quantity"))
            previous = lines.get(uuid)
            lines[uuid] = Sent(
                uuid=uuid,
                product_id=product_id if isinstance(product_id, int) else 0,
                name=str(entry.get("name") or entry.get("basic_name") or ""),
                note=str(entry.get("note") or "").strip(),
                qty=qty + (previous.qty if previous else 0.0),
                combo_item=bool(entry.get("isCombo")),
            )
    note = raw.get("generalNote")
    return State(
        lines={uuid: sent for uuid, sent in lines.items() if sent.qty},
        general_note=note.strip() if isinstance(note, str) else "",
        no_ticket=raw.get(NO_TICKET) is True,
    )


def changes(before: State, after: State) -> list[Change]:
    """What ``after`` sends on top of ``before``: lines added (positive
    delta), lines with fewer or none (negative), notes changed; in the
    order of ``after``, then the lines it no longer has."""
    result = []
    for uuid, sent in after.lines.items():
        old = before.lines.get(uuid)
        delta = sent.qty - (old.qty if old else 0.0)
        note_changed = bool(old) and old.note != sent.note
        if delta or note_changed:
            result.append(
                Change(
                    uuid=uuid,
                    product_id=sent.product_id,
                    name=sent.name,
                    note=sent.note,
                    qty=sent.qty,
                    delta=delta,
                    note_changed=note_changed and not delta,
                    combo_item=sent.combo_item,
                )
            )
    for uuid, old in before.lines.items():
        if uuid not in after.lines:
            result.append(
                Change(
                    uuid=uuid,
                    product_id=old.product_id,
                    name=old.name,
                    note=old.note,
                    qty=0.0,
                    delta=-old.qty,
                    combo_item=old.combo_item,
                )
            )
    return result


def dump(lines: list[Sent], general_note: str = "", takeaway: bool = False) -> str:
    """A state in the POS UI's form (as pos_restaurant's
    ``_set_last_order_preparation_change`` writes it)."""
    return json.dumps(
        {
            "lines": {
                f"{line.uuid} - {line.note}": {
                    "uuid": line.uuid,
                    "name": line.name,
                    "note": line.note,
                    "product_id": line.product_id,
                    "quantity": line.qty,
                    **({"isCombo": True} if line.combo_item else {}),
                }
                for line in lines
                if line.qty
            },
            "generalNote": general_note,
            "sittingMode": "takeaway" if takeaway else "dine in",
        }
    )
