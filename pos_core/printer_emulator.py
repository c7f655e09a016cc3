"""A network ESC/POS printer on a TCP port: the demo restaurant's kitchen
and bar printers, and the tests' and benchmarks' printers. Plain Python.

It behaves as a raw-port (9100) printer does: it reads what a connection
sends until the sender closes its side, then closes its own; it answers the
real-time status queries DLE EOT 1 (online) and DLE EOT 4 (paper) with one
byte each. What it received is kept per connection, parsed into tickets
(:mod:`.escpos_text`), and, from the command line, printed as text.

Modes, for tests of what goes wrong: ``offline`` and ``no_paper`` (what the
status answers), ``silent`` (never answers a status query), ``stalled``
(accepts connections and never reads).

    python -m pos_core.printer_emulator --port 9100 --name kitchen --out .local/printers
"""

from __future__ import annotations

import argparse
import itertools
import logging
import socket
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

from .escpos_text import Printout, parse

_logger = logging.getLogger(__name__)

DLE_EOT = b"\x10\x04"
_ONLINE, _OFFLINE = 0x12, 0x1A
_PAPER_OK, _PAPER_OUT = 0x12, 0x72
MODES = ("normal", "offline", "no_paper", "silent", "stalled")


@dataclass
class Received:
    """One connection's bytes and when they arrived."""

    data: bytes
    first_byte_at: float | None
    closed_at: float
    tickets: list[Printout] = field(default_factory=list)


class PrinterEmulator:
    def __init__(self, host="127.0.0.1", port=0, mode="normal", on_ticket=None):
        if mode not in MODES:
            raise ValueError(f"mode must be one of {MODES}")
        self.mode = mode
        self.on_ticket = on_ticket
        self.received: list[Received] = []
        self._lock = threading.Lock()
        self._changed = threading.Condition(self._lock)
        self._sock = socket.create_server((host, port), backlog=64)
        self._sock.settimeout(0.2)
        self.host, self.port = self._sock.getsockname()[:2]
        self._stop = threading.Event()
        self._stalled: list[socket.socket] = []
        self._thread = threading.Thread(
            target=self._serve, name=f"printer:{self.port}", daemon=True
        )

    # ------------------------------------------------------------ control
    def start(self):
        self._thread.start()
        return self

    def stop(self):
        self._stop.set()
        self._thread.join(5)
        self._sock.close()
        for conn in self._stalled:
            conn.close()

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()

    @property
    def tickets(self) -> list[Printout]:
        with self._lock:
            return [ticket for item in self.received for ticket in item.tickets]

    def wait_for(self, count, timeout=10.0) -> list[Printout]:
        """The tickets once at least ``count`` arrived (or what there is
        after ``timeout`` seconds)."""
        deadline = time.monotonic() + timeout
        with self._changed:
            while sum(len(item.tickets) for item in self.received) < count:
                left = deadline - time.monotonic()
                if left <= 0:
                    break
                self._changed.wait(left)
        return self.tickets

    # ------------------------------------------------------------ serving
    def _serve(self):
        while not self._stop.is_set():
            try:
                conn, _addr = self._sock.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            if self.mode == "stalled":
                self._stalled.append(conn)  # never read, never closed
                continue
            threading.Thread(target=self._handle, args=(conn,), daemon=True).start()

    def _handle(self, conn):
        data = bytearray()
        first = None
        conn.settimeout(30)
        try:
            while True:
                chunk = conn.recv(65536)
                if not chunk:
                    break
                if first is None:
                    first = time.monotonic()
                data += chunk
                self._answer_status(conn, data)
        except OSError as exc:  # the sender went away: keep what arrived
            _logger.debug("printer %s: connection ended: %s", self.port, exc)
        finally:
            conn.close()
        payload = bytes(data)
        if not payload:
            return
        received = Received(payload, first, time.monotonic(), parse(payload))
        if self.on_ticket:
            for ticket in received.tickets:
                self.on_ticket(ticket)
        with self._changed:
            self.received.append(received)
            self._changed.notify_all()

    def _answer_status(self, conn, data):
        """Answer (and take out of ``data``) the status queries in it."""
        while True:
            at = data.find(DLE_EOT)
            if at < 0 or at + 2 >= len(data):
                return
            kind = data[at + 2]
            del data[at : at + 3]
            if self.mode == "silent":
                continue
            if kind == 1:
                conn.sendall(bytes([_OFFLINE if self.mode == "offline" else _ONLINE]))
            elif kind == 4:
                conn.sendall(bytes([_PAPER_OUT if self.mode == "no_paper" else _PAPER_OK]))


def save_ticket(out_dir, name, ticket, number, at=None):
    """Write ``ticket`` as text to ``out_dir/<name>-<time>-<number>.txt``;
    returns the file's path."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    stamp = time.strftime("%Y%m%d-%H%M%S", time.localtime(at))
    path = out / f"{name}-{stamp}-{number:05d}.txt"
    path.write_text(ticket.text + "\n", encoding="utf-8")
    return path


def main(argv=None):
    parser = argparse.ArgumentParser(description="An ESC/POS network printer on a TCP port.")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=9100)
    parser.add_argument("--name", default="printer")
    parser.add_argument("--out", help="a directory: each ticket is also written there as text")
    args = parser.parse_args(argv)
    count = itertools.count(1)

    def show(ticket):
        stamp = time.strftime("%H:%M:%S")
        sys.stdout.write(f"===== {args.name} {stamp} =====\n{ticket.text}\n\n")
        sys.stdout.flush()
        if args.out:
            save_ticket(args.out, args.name, ticket, next(count))

    printer = PrinterEmulator(args.host, args.port, on_ticket=show).start()
    where = f"{printer.host}:{printer.port}"
    sys.stderr.write(f"{args.name}: ESC/POS printer on {where}\n")
    try:
        while True:
            time.sleep(3600)
    except KeyboardInterrupt:
        printer.stop()


if __name__ == "__main__":
    main()
