"""Sending ESC/POS bytes to a network printer (raw TCP, port 9100) through
python-escpos' ``Network`` printer, with timeouts; and asking the printer
for its status where it answers. Plain Python, no Odoo.

A ticket counts as delivered when the printer has read all of it: after the
bytes, the connection's write side is closed and the printer's end of the
connection is awaited (a raw-port printer closes it once it has read what
was sent). A printer that accepts the connection but never reads therefore
times out instead of passing for printed.
"""

from __future__ import annotations

import contextlib
import logging
import socket
import time
from dataclasses import dataclass

from escpos.constants import RT_MASK_LOWPAPER, RT_MASK_NOPAPER, RT_MASK_ONLINE
from escpos.exceptions import DeviceNotFoundError
from escpos.printer import Network

_logger = logging.getLogger(__name__)

# Why a send failed: the health states a station shows.
REFUSED, UNREACHABLE, TIMEOUT, RESET, OFFLINE, NO_PAPER = (
    "refused",
    "unreachable",
    "timeout",
    "reset",
    "offline",
    "no_paper",
)
DLE_EOT_ONLINE, DLE_EOT_PAPER = b"\x10\x04\x01", b"\x10\x04\x04"


class PrinterUnavailable(Exception):
    """The printer did not take the ticket; ``reason`` is one of the
    module's health states."""

    def __init__(self, reason: str, message: str):
        super().__init__(message)
        self.reason = reason


@dataclass(frozen=True)
class PrinterStatus:
    """What the printer said of itself; None where it did not answer."""

    online: bool | None
    paper: str | None  # "ok", "low", "out"

    @property
    def refusal(self) -> str | None:
        """The health state that keeps tickets away from it, if any."""
        if self.online is False:
            return OFFLINE
        if self.paper == "out":
            return NO_PAPER
        return None


def _classify(exc: BaseException) -> str:
    if isinstance(exc, (socket.timeout, TimeoutError)):
        return TIMEOUT
    if isinstance(exc, ConnectionRefusedError):
        return REFUSED
    if isinstance(exc, (ConnectionResetError, BrokenPipeError)):
        return RESET
    cause = exc.__cause__ or exc.__context__
    if cause is not None and cause is not exc:
        return _classify(cause)
    if isinstance(exc, DeviceNotFoundError) and "refused" in str(exc).lower():
        return REFUSED
    if isinstance(exc, DeviceNotFoundError) and "timed out" in str(exc).lower():
        return TIMEOUT
    return UNREACHABLE


def _open(host: str, port: int, timeout: float) -> Network:
    printer = Network(host, port=port, timeout=timeout)
    try:
        printer.open()
    except DeviceNotFoundError as exc:
        raise PrinterUnavailable(_classify(exc), f"{host}:{port}: {exc}") from exc
    return printer


def send(host: str, port: int, data: bytes, timeout: float) -> float:
    """Deliver ``data``; returns the seconds it took. Raises
    :class:`PrinterUnavailable` when the printer did not read all of it
    within ``timeout`` seconds (of each socket operation, and in all)."""
    started = time.monotonic()
    printer = _open(host, port, timeout)
    try:
        sock = printer.device
        printer._raw(data)
        sock.shutdown(socket.SHUT_WR)
        while True:
            left = timeout - (time.monotonic() - started)
            if left <= 0:
                raise TimeoutError("the printer did not read the whole ticket")
            sock.settimeout(left)
            if not sock.recv(256):
                break
    except OSError as exc:
        raise PrinterUnavailable(_classify(exc), f"{host}:{port}: {exc}") from exc
    finally:
        _close(printer)
    return time.monotonic() - started


def status(host: str, port: int, timeout: float = 1.0) -> PrinterStatus:
    """The printer's online and paper state (DLE EOT 1 and 4, as
    python-escpos asks them). A printer that does not answer within
    ``timeout`` gives None for what it did not answer; one that cannot be
    reached raises :class:`PrinterUnavailable`."""
    printer = _open(host, port, timeout)
    try:
        online = paper = None
        try:
            answer = printer.query_status(DLE_EOT_ONLINE)
            if answer:
                online = not answer[0] & RT_MASK_ONLINE
            answer = printer.query_status(DLE_EOT_PAPER)
            if answer:
                byte = answer[0]
                if byte & RT_MASK_NOPAPER == RT_MASK_NOPAPER:
                    paper = "out"
                elif byte & RT_MASK_LOWPAPER == RT_MASK_LOWPAPER:
                    paper = "low"
                else:
                    paper = "ok"
        except TimeoutError:
            _logger.debug("printer %s:%s answers no status query", host, port)
        except OSError as exc:
            raise PrinterUnavailable(_classify(exc), f"{host}:{port}: {exc}") from exc
        return PrinterStatus(online, paper)
    finally:
        _close(printer)


def _close(printer: Network) -> None:
    with contextlib.suppress(OSError, AttributeError):
        printer.device.close()
