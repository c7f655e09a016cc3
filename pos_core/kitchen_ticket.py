"""Kitchen tickets: what a station prints, laid out as ESC/POS bytes through
python-escpos, for 58 mm and 80 mm paper. Plain Python, no Odoo.

A ticket is one order's lines for one station: a new order (``NEW``), the
lines added, changed or removed afterwards (``DELTA``), or the order's
cancellation (``CANCEL``). Each line shows its quantity (a delta line its
change, ``+2``, ``-1``, or a new note on the same quantity), the product,
its attributes and modifiers, its note and a combo's contents. The header
shows the table and seat, the guests, the waiter and the time; a reprint
says ``REPRINT``, and a ticket printed by a backup station names the
station it was meant for.

Text is encoded in code page 858 (Western European and the euro sign); a
character it lacks prints as ``?``.
"""

from __future__ import annotations

import textwrap
from dataclasses import dataclass
from datetime import datetime

from escpos.printer import Dummy

NEW, DELTA, CANCEL = "new", "delta", "cancel"
KINDS = (NEW, DELTA, CANCEL)
# Characters per line in the printer's font A (12 dots wide at 203 dpi).
PAPER_COLUMNS = {58: 32, 80: 48}
CODE_PAGE = "CP858"
_BANNERS = {NEW: "NEW ORDER", DELTA: "CHANGES", CANCEL: "*** CANCELLED ***"}


class TicketError(ValueError):
    """A ticket that cannot be laid out (unknown kind or paper width)."""


@dataclass(frozen=True)
class TicketLine:
    """One product on a ticket. ``qty`` is the quantity to make; on a delta
    ticket it is the change (negative: fewer, or removed)."""

    name: str
    qty: float
    attributes: tuple[str, ...] = ()
    modifiers: tuple[str, ...] = ()
    note: str = ""
    combo: tuple[tuple[float, str], ...] = ()  # (qty, name) of each chosen item
    # On a delta ticket: the same quantity with a new note (``qty`` is the
    # line's quantity, not a change).
    note_changed: bool = False

    @classmethod
    def from_json(cls, data: dict) -> TicketLine:
        """A line as a ticket keeps it (plain JSON; keys left out are
        empty)."""
        return cls(
            name=data["name"],
            qty=data["qty"],
            attributes=tuple(data.get("attributes", ())),
            modifiers=tuple(data.get("modifiers", ())),
            note=data.get("note", ""),
            combo=tuple((qty, name) for qty, name in data.get("combo", ())),
            note_changed=data.get("note_changed", False),
        )

    def as_json(self) -> dict:
        return {
            "name": self.name,
            "qty": self.qty,
            "attributes": list(self.attributes),
            "modifiers": list(self.modifiers),
            "note": self.note,
            "note_changed": self.note_changed,
            "combo": [[qty, name] for qty, name in self.combo],
        }


@dataclass(frozen=True)
class Ticket:
    kind: str
    order_ref: str
    station: str
    at: datetime
    lines: tuple[TicketLine, ...]
    table: str = ""
    seat: str = ""
    guests: int = 0
    waiter: str = ""
    note: str = ""
    reprint: bool = False
    # An earlier attempt died while printing: the kitchen may have it already.
    possible_duplicate: bool = False
    # The station a backup prints for (empty: printed where it was meant to).
    intended_station: str = ""


def quantity(qty, signed=False):
    """``2``, ``0.5``; with ``signed``, ``+2`` / ``-1``."""
    text = f"{float(qty):g}"
    if signed and qty > 0:
        text = "+" + text
    return text


def layout(ticket: Ticket, columns: int) -> list[tuple[str, str]]:
    """The ticket as ``(style, text)`` lines: style ``title`` (large, bold,
    centred), ``banner`` (bold, centred), ``bold`` or ``plain``. The
    renderer and the tests share it."""
    if ticket.kind not in KINDS:
        raise TicketError(f"Unknown ticket kind {ticket.kind!r}")
    rows: list[tuple[str, str]] = []

    def add(style, text, indent=""):
        width = columns if style not in ("title",) else columns // 2
        for part in textwrap.wrap(text, width - len(indent)) or [""]:
            rows.append((style, indent + part))
            indent = " " * len(indent)

    if ticket.reprint:
        add("banner", "REPRINT")
    if ticket.possible_duplicate:
        add("banner", "POSSIBLE DUPLICATE")
    if ticket.intended_station and ticket.intended_station != ticket.station:
        add("banner", f"FOR {ticket.intended_station.upper()} (BACKUP)")
    add("banner", _BANNERS[ticket.kind])
    where = f"TABLE {ticket.table}" if ticket.table else ticket.order_ref
    if ticket.seat:
        where += f" / SEAT {ticket.seat}"
    add("title", where)
    add("plain", f"{ticket.station} - {ticket.order_ref}")
    facts = [ticket.at.strftime("%H:%M")]
    if ticket.waiter:
        facts.append(ticket.waiter)
    if ticket.guests:
        facts.append(f"{ticket.guests} guests")
    add("plain", " - ".join(facts))
    rows.append(("plain", "-" * columns))
    signed = ticket.kind == DELTA
    for line in ticket.lines:
        qty = quantity(line.qty, signed=signed and not line.note_changed)
        add("bold", f"{qty} x {line.name}")
        for detail in (*line.attributes, *line.modifiers):
            add("plain", detail, indent="   ")
        for combo_qty, combo_name in line.combo:
            add("plain", f"- {quantity(combo_qty)} x {combo_name}", indent="   ")
        if line.note_changed:
            add("bold", f"! NOTE CHANGED: {line.note or '(none)'}", indent="   ")
        elif line.note:
            add("bold", f"! {line.note}", indent="   ")
    if ticket.note:
        rows.append(("plain", "-" * columns))
        add("bold", f"NOTE: {ticket.note}")
    return rows


def render(ticket: Ticket, paper_mm: int = 80) -> bytes:
    """The ticket's ESC/POS bytes, ending with a paper cut."""
    if paper_mm not in PAPER_COLUMNS:
        raise TicketError(f"Paper of {paper_mm} mm is not supported: {sorted(PAPER_COLUMNS)}")
    printer = Dummy(profile="default")
    printer.hw("INIT")
    printer.charcode(CODE_PAGE)
    for style, text in layout(ticket, PAPER_COLUMNS[paper_mm]):
        if style == "title":
            printer.set(align="center", bold=True, double_height=True, double_width=True)
        elif style == "banner":
            printer.set(align="center", bold=True)
        else:
            printer.set(align="left", bold=style == "bold")
        printer.textln(text)
        printer.set_with_default()
    printer.cut()
    return printer.output
