"""The kitchen engines: ticket layout in ESC/POS, delivery to real TCP
printers on 127.0.0.1 (the emulator), status queries, routing, failover
and the retry schedule. Every ticket is checked by parsing the bytes the
printer received."""

import random
import threading
import time
from datetime import datetime
from types import SimpleNamespace

import pytest
from conftest import free_port

from pos_core import escpos_text, escpos_transport, kitchen_routing, kitchen_ticket, print_retry
from pos_core.kitchen_ticket import CANCEL, DELTA, NEW, Ticket, TicketLine
from pos_core.printer_emulator import PrinterEmulator, save_ticket

AT = datetime(2026, 12, 3, 19, 5)


def ticket(kind=NEW, **overrides):
    values = {
        "kind": kind,
        "order_ref": "Order 00012-001-0003",
        "station": "Kitchen",
        "at": AT,
        "table": "5",
        "seat": "2",
        "guests": 4,
        "waiter": "Marc",
        "lines": (
            TicketLine(
                "Margherita",
                2,
                attributes=("Large",),
                modifiers=("extra cheese",),
                note="no basil, allergy",
            ),
            TicketLine("Crème brûlée", 1),
            TicketLine("Lunch menu", 1, combo=((1, "Soup of the day"), (1, "Steak frites"))),
        ),
    }
    values.update(overrides)
    return Ticket(**values)


def printed(data):
    (printout,) = escpos_text.parse(data)
    assert printout.cut
    return printout


@pytest.fixture
def printer():
    with PrinterEmulator() as emulator:
        yield emulator


# ---------------------------------------------------------------- layout
@pytest.mark.parametrize(("paper", "columns"), [(58, 32), (80, 48)])
def test_a_new_ticket_shows_everything_the_kitchen_needs(paper, columns):
    printout = printed(kitchen_ticket.render(ticket(), paper))
    lines = [line.text for line in printout.lines]
    assert lines[0] == "NEW ORDER"
    title = printout.lines[1]
    assert (title.text, title.large, title.bold, title.centred) == (
        "TABLE 5 / SEAT 2",
        True,
        True,
        True,
    )
    assert "19:05 - Marc - 4 guests" in lines
    assert "-" * columns in lines
    body = lines[lines.index("-" * columns) + 1 :]
    assert body == [
        "2 x Margherita",
        "   Large",
        "   extra cheese",
        "   ! no basil, allergy",
        "1 x Crème brûlée",
        "1 x Lunch menu",
        "   - 1 x Soup of the day",
        "   - 1 x Steak frites",
    ]
    bold = {line.text for line in printout.lines if line.bold}
    assert {"2 x Margherita", "   ! no basil, allergy", "1 x Lunch menu"} <= bold
    assert all(len(line.text) <= columns for line in printout.lines if not line.large)
    assert all(len(line.text) <= columns // 2 for line in printout.lines if line.large)


def test_long_text_wraps_within_the_paper():
    long_name = "Slow-roasted shoulder of lamb with rosemary potatoes and seasonal greens"
    printout = printed(
        kitchen_ticket.render(ticket(lines=(TicketLine(long_name, 1, note="x " * 40),)), 58)
    )
    texts = [line.text for line in printout.lines]
    assert all(len(text) <= 32 for text in texts)
    joined = " ".join(text.strip() for text in texts)
    assert long_name in joined


def test_delta_cancel_reprint_and_backup_tickets_say_so():
    delta = printed(
        kitchen_ticket.render(
            ticket(
                DELTA,
                lines=(
                    TicketLine("Margherita", 1),
                    TicketLine("Tiramisu", -2),
                    TicketLine("Lasagne", 2, note="no cheese", note_changed=True),
                ),
            )
        )
    )
    texts = [line.text for line in delta.lines]
    assert texts[0] == "CHANGES"
    assert {"+1 x Margherita", "-2 x Tiramisu", "2 x Lasagne"} <= set(texts)
    assert texts[texts.index("2 x Lasagne") + 1].strip() == "! NOTE CHANGED: no cheese"
    cancel = printed(kitchen_ticket.render(ticket(CANCEL)))
    assert cancel.lines[0].text == "*** CANCELLED ***"
    again = printed(
        kitchen_ticket.render(ticket(reprint=True, station="Kitchen", intended_station="Bar"))
    )
    assert [line.text for line in again.lines[:3]] == [
        "REPRINT",
        "FOR BAR (BACKUP)",
        "NEW ORDER",
    ]
    duplicate = printed(kitchen_ticket.render(ticket(possible_duplicate=True)))
    assert [line.text for line in duplicate.lines[:2]] == ["POSSIBLE DUPLICATE", "NEW ORDER"]
    # Printed where it was meant to: no backup banner.
    plain = printed(kitchen_ticket.render(ticket(intended_station="Kitchen")))
    assert "BACKUP" not in plain.text


def test_a_line_kept_as_json_comes_back_the_same():
    line = TicketLine(
        "Menu", 2, ("Size: L",), ("Sauce: extra",), "no ice", ((2, "Burger"), (2, "Fries")), True
    )
    data = line.as_json()
    assert data["combo"] == [[2, "Burger"], [2, "Fries"]]
    assert TicketLine.from_json(data) == line
    # Keys a ticket left out are empty.
    assert TicketLine.from_json({"name": "Soup", "qty": -1}) == TicketLine("Soup", -1)


def test_bad_tickets_are_refused():
    with pytest.raises(kitchen_ticket.TicketError):
        kitchen_ticket.render(ticket(kind="later"))
    with pytest.raises(kitchen_ticket.TicketError):
        kitchen_ticket.render(ticket(), paper_mm=72)
    with pytest.raises(escpos_text.EscposParseError):
        escpos_text.parse(b"\x1b\x99\x00text")


# -------------------------------------------------------------- delivery
def test_a_ticket_reaches_the_printer_over_tcp(printer):
    data = kitchen_ticket.render(ticket())
    seconds = escpos_transport.send(printer.host, printer.port, data, timeout=5)
    assert 0 <= seconds < 5
    (received,) = printer.wait_for(1)
    assert received.text == printed(data).text
    assert printer.received[0].data == data


def test_tickets_from_many_threads_all_arrive_whole(printer):
    datas = [kitchen_ticket.render(ticket(order_ref=f"Order {n}")) for n in range(20)]
    threads = [
        threading.Thread(target=escpos_transport.send, args=(printer.host, printer.port, data, 5))
        for data in datas
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    received = printer.wait_for(20)
    assert sorted(item.lines[2].text for item in received) == sorted(
        f"Kitchen - Order {n}" for n in range(20)
    )


def test_unreachable_printers_fail_with_a_health_state():
    data = kitchen_ticket.render(ticket())
    with pytest.raises(escpos_transport.PrinterUnavailable) as refused:
        escpos_transport.send("127.0.0.1", free_port(), data, timeout=2)
    assert refused.value.reason == escpos_transport.REFUSED


def test_a_printer_that_never_reads_times_out_and_blocks_no_other():
    with (
        PrinterEmulator(mode="stalled") as stalled,
        PrinterEmulator() as healthy,
    ):
        data = kitchen_ticket.render(ticket())
        outcome = {}

        def stuck():
            started = time.monotonic()
            try:
                escpos_transport.send(stalled.host, stalled.port, data, timeout=1.5)
            except escpos_transport.PrinterUnavailable as exc:
                outcome["reason"] = exc.reason
            outcome["seconds"] = time.monotonic() - started

        thread = threading.Thread(target=stuck)
        thread.start()
        # Meanwhile another station prints at once.
        assert escpos_transport.send(healthy.host, healthy.port, data, timeout=5) < 1.0
        thread.join()
        assert outcome["reason"] == escpos_transport.TIMEOUT
        assert 1.4 <= outcome["seconds"] < 3
        assert healthy.wait_for(1) and not stalled.received


@pytest.mark.parametrize(
    ("mode", "expected", "refusal"),
    [
        ("normal", (True, "ok"), None),
        ("offline", (False, "ok"), escpos_transport.OFFLINE),
        ("no_paper", (True, "out"), escpos_transport.NO_PAPER),
        ("silent", (None, None), None),
    ],
)
def test_status_where_the_printer_answers(mode, expected, refusal):
    with PrinterEmulator(mode=mode) as emulator:
        status = escpos_transport.status(emulator.host, emulator.port, timeout=0.5)
        assert (status.online, status.paper) == expected
        assert status.refusal == refusal
        assert not emulator.received  # queries are not tickets
    with pytest.raises(escpos_transport.PrinterUnavailable):
        escpos_transport.status("127.0.0.1", free_port(), timeout=0.5)


# ------------------------------------------------------- routing, failover
def line(product_id, *category_ids):
    return SimpleNamespace(product_id=product_id, category_ids=category_ids)


def test_an_order_is_split_across_stations_by_category_with_exceptions():
    kitchen = kitchen_routing.StationRule(
        1, category_ids=frozenset({10, 11}), excluded_product_ids=frozenset({104})
    )
    bar = kitchen_routing.StationRule(2, category_ids=frozenset({20}), product_ids=frozenset({104}))
    pizza, pasta, beer, affogato, candle = (
        line(101, 10),
        line(102, 11),
        line(103, 20),
        line(104, 11),
        line(105, 99),
    )
    routed, unrouted = kitchen_routing.route([pizza, beer, pasta, affogato, candle], [kitchen, bar])
    assert routed == {1: [pizza, pasta], 2: [beer, affogato]}
    assert unrouted == [candle]


def test_failover_to_the_backup_and_back():
    failover = kitchen_routing.Failover(threshold=2)
    assert failover.target(2, backup_id=1) == 2
    failover.failed(2, escpos_transport.REFUSED)
    assert (failover.target(2, 1), failover.state(2)) == (2, "degraded")
    failover.failed(2, escpos_transport.REFUSED)
    assert (failover.target(2, 1), failover.state(2)) == (1, escpos_transport.REFUSED)
    # No backup, or the backup down too: the primary keeps its tickets.
    assert failover.target(2, None) == 2
    failover.observed(1, escpos_transport.NO_PAPER)
    assert failover.target(2, 1) == 2
    failover.observed(1, None)
    # A status saying the primary is fine brings its tickets back.
    failover.observed(2, None)
    assert (failover.target(2, 1), failover.state(2)) == (2, "ok")
    # An offline status sends them away before any failure.
    failover.observed(2, escpos_transport.OFFLINE)
    assert failover.target(2, 1) == 1
    failover.succeeded(2)
    assert failover.target(2, 1) == 2
    failover.unreachable(2, escpos_transport.TIMEOUT)
    assert (failover.target(2, 1), failover.state(2)) == (1, escpos_transport.TIMEOUT)
    # Probes of a station that is down: at most one per interval.
    assert failover.due_probe(2, 100.0, 10)
    assert not failover.due_probe(2, 105.0, 10)
    assert failover.due_probe(2, 110.0, 10)


def test_failover_with_real_printers():
    """The bar's printer is down: after the threshold its tickets print on
    the kitchen's, marked for the bar; back on the bar once it answers."""
    failover = kitchen_routing.Failover(threshold=2)
    bar_port = free_port()
    with PrinterEmulator() as kitchen_printer:
        ports = {1: kitchen_printer.port, 2: bar_port}

        def print_for_bar(n):
            station = failover.target(2, backup_id=1)
            names = {1: "Kitchen", 2: "Bar"}
            data = kitchen_ticket.render(
                ticket(order_ref=f"Order {n}", station=names[station], intended_station="Bar")
            )
            try:
                escpos_transport.send("127.0.0.1", ports[station], data, timeout=1)
            except escpos_transport.PrinterUnavailable as exc:
                failover.failed(station, exc.reason)
                return False
            failover.succeeded(station)
            return True

        assert [print_for_bar(n) for n in range(4)] == [False, False, True, True]
        backup_tickets = kitchen_printer.wait_for(2)
        assert all("FOR BAR (BACKUP)" in item.text for item in backup_tickets)
        with PrinterEmulator(port=0) as bar_printer:
            ports[2] = bar_printer.port
            failover.observed(2, escpos_transport.status("127.0.0.1", ports[2]).refusal)
            assert print_for_bar(5)
            (back_home,) = bar_printer.wait_for(1)
            assert "BACKUP" not in back_home.text


# ------------------------------------------------------------ retries
def test_the_retry_schedule_starts_in_seconds_and_ends_in_a_dead_letter():
    pattern = print_retry.retry_pattern()
    bounds = [print_retry.delay_bounds(retry, pattern) for retry in range(1, 9)]
    assert bounds == [(1, 3), (3, 7), (7, 13), (15, 25), (15, 25), (15, 25), (15, 25), (15, 25)]
    # Never more than 25 s between two tries: within 30 s of a printer's return.
    assert max(high for _low, high in bounds) <= 25
    # Jittered: a (min, max) pair, as queue_job draws a delay from it.
    rng = random.Random(1)
    draws = {rng.randint(*print_retry.delay_bounds(1, pattern)) for _ in range(50)}
    assert len(draws) > 1
    assert not print_retry.is_dead(0, 899)
    assert print_retry.is_dead(0, 900)
    # The first retries of a 15-minute window come in under 2 minutes.
    assert sum(high for _low, high in bounds[:5]) < 120
    for bad in ({"delays": ()}, {"delays": (0, 5)}, {"jitter": 1.0}):
        with pytest.raises(ValueError):
            print_retry.retry_pattern(**bad)


def test_priorities_new_orders_then_changes_then_reprints():
    priority = print_retry.PRIORITY
    assert priority["new"] == priority["cancel"] < priority["delta"] < priority["reprint"]


def test_the_emulator_writes_each_ticket_as_text(tmp_path):
    saved = []
    with PrinterEmulator(
        on_ticket=lambda printout: saved.append(save_ticket(tmp_path, "kitchen", printout, 1))
    ) as printer:
        escpos_transport.send(printer.host, printer.port, kitchen_ticket.render(ticket()), 2)
        printer.wait_for(1)
    (path,) = saved
    assert path.parent == tmp_path and path.name.startswith("kitchen-")
    text = path.read_text(encoding="utf-8")
    assert "NEW ORDER" in text and "2 x Margherita" in text and "! no basil, allergy" in text
