"""Kitchen print benchmark: order commit to the first ticket byte at the
printer, and what printing adds to the request that sends an order to the
kitchen. Run against a running Odoo with the demo restaurant and queue_job's
job runner (``scripts/run``, without ``--printers``: this script is the
printers, on the demo stations' ports 127.0.0.1:9100 and 9101).

For each order: ``POST /orders`` (validated, a pizza and a drink, at a
table), ``POST /orders/{id}/payments`` (cash, the demo flow is pay first),
then ``POST /orders/{id}/prepare``, timed. The kitchen ticket's latency runs
from the moment the prepare response is read (after Odoo's commit) to the
first byte at the kitchen printer; from the request's start is the upper
bound. Printing off: the demo stations are detached from the point of sale
(``config_ids``) through JSON-RPC as admin, then restored; the two modes
alternate in blocks.

    .venv/bin/python bench/bench_print.py --url http://127.0.0.1:8069 \\
        --token ACCESS_TOKEN --db pos_api_demo --orders 100
"""

import argparse
import contextlib
import json
import sys
import time
import urllib.request
import uuid
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench_orders import summary_ms

from pos_core.printer_emulator import PrinterEmulator

API = "/pos_api/v1"


class Client:
    def __init__(self, url, token):
        self.url, self.token = url, token
        self.cookie = None

    def api(self, method, path, body=None, headers=None):
        request = urllib.request.Request(
            self.url + API + path,
            method=method,
            data=json.dumps(body).encode() if body is not None else None,
            headers={
                "Authorization": f"Bearer {self.token}",
                "Content-Type": "application/json",
                **(headers or {}),
            },
        )
        with urllib.request.urlopen(request, timeout=60) as reply:
            return json.loads(reply.read())

    def rpc(self, path, params):
        request = urllib.request.Request(
            self.url + path,
            data=json.dumps({"jsonrpc": "2.0", "method": "call", "params": params}).encode(),
            headers={
                "Content-Type": "application/json",
                **({"Cookie": self.cookie} if self.cookie else {}),
            },
        )
        with urllib.request.urlopen(request, timeout=60) as reply:
            if not self.cookie:
                self.cookie = reply.headers["Set-Cookie"].split(";")[0]
            answer = json.loads(reply.read())
        if "error" in answer:
            raise SystemExit(f"BENCH_ERROR {path}: {answer['error']}")
        return answer["result"]


def outage(one_order, kitchen_port, bar_port, args):
    """Both printers down while orders arrive, then back: when each ticket
    printed after the return, whether in order, whether any is missing."""
    refs = []
    started = time.monotonic()
    while time.monotonic() - started < args.outage or len(refs) < args.outage_orders:
        if len(refs) < args.outage_orders:
            one_order()
            refs.append(len(refs))
        else:
            time.sleep(0.2)
    with PrinterEmulator(port=kitchen_port) as kitchen, PrinterEmulator(port=bar_port) as bar:
        back = time.monotonic()
        kitchen.wait_for(len(refs), timeout=120)
        bar.wait_for(len(refs), timeout=120)
        # Each station's tickets (those its backup printed included), in the
        # order they reached a printer.
        arrived = sorted(
            (item.first_byte_at, name, ticket)
            for name, printer in (("kitchen", kitchen), ("bar", bar))
            for item in printer.received
            for ticket in item.tickets
        )
        streams = {}
        for _at, name, ticket in arrived:
            texts = [line.text for line in ticket.lines]
            backup = next((t for t in texts if t.startswith("FOR ") and "(BACKUP)" in t), "")
            intended = backup[4:].split(" (BACKUP)")[0].lower() if backup else name
            ref = next(t for t in texts if "/" in t and " - " in t).split(" - ", 1)[1]
            streams.setdefault(intended, []).append(ref)
        last = max(item.closed_at for item in (*kitchen.received, *bar.received))
        return {
            "down_s": round(back - started, 1),
            "orders": len(refs),
            "kitchen_tickets": len(kitchen.tickets),
            "bar_tickets": len(bar.tickets),
            "all_printed_after_return_s": round(last - back, 2),
            "backup_printed": sum(
                1
                for item in kitchen.received
                for ticket in item.tickets
                if any("(BACKUP)" in line.text for line in ticket.lines)
            ),
            "in_order_per_station": {
                station: refs_seen == sorted(refs_seen) for station, refs_seen in streams.items()
            },
        }


def throughput(client, one_order, stations, count):
    """Tickets per second through one station, then across 4: ``count``
    reprints of one ticket per station queued in one transaction, timed
    from its commit to the end of the last ticket at the printers. Stations
    3 and 4 are added for it (taking what the kitchen and the bar take) and
    archived after."""

    def call(model, method, *args):
        return client.rpc(
            f"/web/dataset/call_kw/{model}/{method}",
            {"model": model, "method": method, "args": list(args), "kwargs": {}},
        )

    fields = ["id", "name", "config_ids", "category_ids", "company_id"]
    base = call("pos.api.printer", "read", [s["id"] for s in stations], fields)
    with contextlib.ExitStack() as stack:
        printers = {}
        for station in base:
            printer = stack.enter_context(PrinterEmulator(port=station_port(stations, station)))
            printers[station["id"]] = printer
        for index, station in enumerate(base, start=3):
            printer = stack.enter_context(PrinterEmulator())
            new_id = call(
                "pos.api.printer",
                "create",
                {
                    "name": f"Bench {index}",
                    "company_id": station["company_id"][0],
                    "host": "127.0.0.1",
                    "port": printer.port,
                    "config_ids": [(6, 0, station["config_ids"])],
                    "category_ids": [(6, 0, station["category_ids"])],
                },
            )
            printers[new_id] = printer
        try:
            one_order()
            for printer in printers.values():
                printer.wait_for(1, timeout=30)
            latest = {
                station_id: call(
                    "pos.api.print.ticket",
                    "search",
                    [("station_id", "=", station_id)],
                )[0]
                for station_id in printers
            }

            def burst(station_ids):
                before = {sid: len(printers[sid].tickets) for sid in station_ids}
                call(
                    "pos.api.print.ticket",
                    "action_reprint",
                    [latest[sid] for sid in station_ids] * count,
                )
                committed = time.monotonic()
                for sid in station_ids:
                    printers[sid].wait_for(before[sid] + count, timeout=300)
                printed = sum(len(printers[sid].tickets) - before[sid] for sid in station_ids)
                last = max(item.closed_at for sid in station_ids for item in printers[sid].received)
                seconds = last - committed
                return {
                    "stations": len(station_ids),
                    "tickets": printed,
                    "seconds": round(seconds, 2),
                    "tickets_per_s": round(printed / seconds, 1),
                }

            first = next(iter(printers))
            return {"one_station": burst([first]), "four_stations": burst(list(printers))}
        finally:
            extra = [sid for sid in printers if sid not in {s["id"] for s in base}]
            call("pos.api.printer", "write", extra, {"active": False, "config_ids": [(5,)]})


def station_port(stations, station):
    return next(s["port"] for s in stations if s["id"] == station["id"])


def main():
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--url", required=True)
    parser.add_argument("--token", required=True)
    parser.add_argument("--db", required=True)
    parser.add_argument("--orders", type=int, default=100, help="per mode")
    parser.add_argument("--block", type=int, default=10)
    parser.add_argument(
        "--outage",
        type=float,
        default=0,
        help="then: both printers down for this many seconds while --outage-orders arrive",
    )
    parser.add_argument("--outage-orders", type=int, default=20)
    parser.add_argument(
        "--throughput",
        type=int,
        default=0,
        help="then: this many tickets per station queued at once, on 1 then 4 stations",
    )
    parser.add_argument(
        "--settle", type=float, default=0.2, help="seconds between two orders, in both modes"
    )
    parser.add_argument("--out")
    args = parser.parse_args()

    client = Client(args.url.rstrip("/"), args.token)
    client.rpc("/web/session/authenticate", {"db": args.db, "login": "admin", "password": "admin"})
    stations = client.rpc(
        "/web/dataset/call_kw/pos.api.printer/search_read",
        {
            "model": "pos.api.printer",
            "method": "search_read",
            "args": [[], ["id", "name", "config_ids", "port"]],
            "kwargs": {},
        },
    )

    def attach(on):
        for station in stations:
            client.rpc(
                "/web/dataset/call_kw/pos.api.printer/write",
                {
                    "model": "pos.api.printer",
                    "method": "write",
                    "args": [
                        [station["id"]],
                        {"config_ids": [(6, 0, station["config_ids"] if on else [])]},
                    ],
                    "kwargs": {},
                },
            )

    menu = client.api("GET", "/menu")
    categories = {item["id"]: item["name"] for item in menu["categories"]}

    def product(word):
        return next(
            item["id"]
            for item in menu["products"]
            if any(word in categories.get(categ, "") for categ in item["category_ids"])
        )

    pizza, drink = product("Pizza"), product("Soft")
    table = client.api("GET", "/floors")["floors"][0]["tables"][0]["id"]
    cash = next(m for m in client.api("GET", "/config")["payment_methods"] if m["is_cash"])

    def one_order():
        created = client.api(
            "POST",
            "/orders",
            {
                "uuid": str(uuid.uuid4()),
                "state": "validated",
                "table_id": table,
                "lines": [
                    {"product_id": pizza, "qty": "1"},
                    {"product_id": drink, "qty": "1"},
                ],
            },
        )["order"]
        client.api(
            "POST",
            f"/orders/{created['id']}/payments",
            {"payments": [{"payment_method_id": cash["id"], "amount": created["amount_total"]}]},
            {"Idempotency-Key": str(uuid.uuid4())},
        )
        started = time.monotonic()
        client.api("POST", f"/orders/{created['id']}/prepare", {})
        return started, time.monotonic()

    kitchen_port = next(s["port"] for s in stations if s["name"] == "Kitchen")
    bar_port = next(s["port"] for s in stations if s["name"] == "Bar")
    results = {"on": [], "off": [], "latency_after_commit": [], "latency_from_request": []}
    with PrinterEmulator(port=kitchen_port) as kitchen, PrinterEmulator(port=bar_port) as bar:
        for _warm in range(3):
            one_order()
        kitchen.wait_for(3, timeout=30)
        done = {"on": 0, "off": 0}
        while min(done.values()) < args.orders:
            for mode in ("on", "off"):
                attach(mode == "on")
                for _ in range(args.block):
                    before, bar_before = len(kitchen.received), len(bar.tickets)
                    started, answered = one_order()
                    results[mode].append(answered - started)
                    if mode == "on":
                        deadline = time.monotonic() + 30
                        while len(kitchen.received) <= before and time.monotonic() < deadline:
                            time.sleep(0.001)
                        if len(kitchen.received) <= before:
                            raise SystemExit("BENCH_ERROR a kitchen ticket did not arrive in 30 s")
                        first = kitchen.received[before].first_byte_at
                        results["latency_after_commit"].append(first - answered)
                        results["latency_from_request"].append(first - started)
                        # The next order is timed once this one's jobs are
                        # done: what is measured is the request, not the CPU
                        # the previous order's print jobs take.
                        bar.wait_for(bar_before + 1, timeout=30)
                    time.sleep(args.settle)
                done[mode] += args.block
        attach(True)
        bar.wait_for(done["on"] + 3, timeout=30)
        printed = {"kitchen": len(kitchen.tickets), "bar": len(bar.tickets)}
    report = {key: summary_ms(values) for key, values in results.items() if values}
    report["printed"] = printed
    if results["off"]:
        report["prepare_p50_on_vs_off"] = round(report["on"]["p50"] / report["off"]["p50"], 3)
    if args.outage:
        report["outage"] = outage(one_order, kitchen_port, bar_port, args)
    if args.throughput:
        report["throughput"] = throughput(client, one_order, stations, args.throughput)
    text = json.dumps(report, indent=2)
    print(text)
    if args.out:
        Path(args.out).write_text(text + "\n", encoding="utf-8")


if __name__ == "__main__":
    main()
