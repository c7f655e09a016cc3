"""Which station prints what, and where a station's tickets go while it is
down. Plain Python, no Odoo.

Routing: a station takes the products of its POS categories, as Odoo's
``pos.printer`` does, plus the products it names and minus those it
excludes; an order is split across stations, a product taken by several
stations prints on each.

Failover: after ``threshold`` consecutive failures of a station, or while
its printer says it is offline or out of paper, its tickets go to its
backup (marked with the station they were meant for), unless the backup is
down too. The first success of the primary, or a status saying it is fine,
brings them back.
"""

from __future__ import annotations

import threading
from collections.abc import Iterable
from dataclasses import dataclass, field

DEFAULT_FAILOVER_THRESHOLD = 3


@dataclass(frozen=True)
class StationRule:
    station_id: int
    category_ids: frozenset[int] = frozenset()
    product_ids: frozenset[int] = frozenset()  # always taken
    excluded_product_ids: frozenset[int] = frozenset()  # never taken

    def takes(self, product_id: int, category_ids: Iterable[int]) -> bool:
        if product_id in self.excluded_product_ids:
            return False
        return product_id in self.product_ids or not self.category_ids.isdisjoint(category_ids)


def route(lines, rules: Iterable[StationRule]):
    """``{station_id: [line, ...]}`` of ``lines`` (each with ``product_id``
    and ``category_ids``), in the order given, and the lines no station
    takes."""
    rules = list(rules)
    routed: dict[int, list] = {}
    unrouted = []
    for line in lines:
        taken = False
        for rule in rules:
            if rule.takes(line.product_id, line.category_ids):
                routed.setdefault(rule.station_id, []).append(line)
                taken = True
        if not taken:
            unrouted.append(line)
    return routed, unrouted


@dataclass
class _Health:
    failures: int = 0
    refusal: str | None = None  # offline / no paper, from the printer's status
    last_error: str | None = None
    probed_at: float = float("-inf")


@dataclass
class Failover:
    """Per station health, shared by the print jobs of one process."""

    threshold: int = DEFAULT_FAILOVER_THRESHOLD
    _health: dict[int, _Health] = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def _of(self, station_id: int) -> _Health:
        return self._health.setdefault(station_id, _Health())

    def down(self, station_id: int) -> bool:
        with self._lock:
            health = self._of(station_id)
            return health.refusal is not None or health.failures >= self.threshold

    def target(self, station_id: int, backup_id: int | None) -> int:
        """The station that prints ``station_id``'s next ticket."""
        usable_backup = backup_id and backup_id != station_id
        if usable_backup and self.down(station_id) and not self.down(backup_id):
            return backup_id
        return station_id

    def succeeded(self, station_id: int) -> None:
        with self._lock:
            self._health[station_id] = _Health(probed_at=self._of(station_id).probed_at)

    def failed(self, station_id: int, reason: str) -> int:
        """Record a failure; returns the consecutive failures."""
        with self._lock:
            health = self._of(station_id)
            health.failures += 1
            health.last_error = reason
            return health.failures

    def unreachable(self, station_id: int, reason: str) -> None:
        """Down at once (a check that could not reach the printer)."""
        with self._lock:
            health = self._of(station_id)
            health.failures = max(health.failures, self.threshold)
            health.last_error = reason

    def due_probe(self, station_id: int, now: float, interval: float) -> bool:
        """Whether a station that is down is due for a status probe (at
        most one per ``interval`` seconds); records the probe."""
        with self._lock:
            health = self._of(station_id)
            if now - health.probed_at < interval:
                return False
            health.probed_at = now
            return True

    def observed(self, station_id: int, refusal: str | None) -> None:
        """What the printer's status said (None: fine)."""
        with self._lock:
            health = self._of(station_id)
            health.refusal = refusal
            if refusal is None:
                health.failures = 0

    def state(self, station_id: int) -> str:
        """``ok``, ``degraded`` (failing, below the threshold), or the
        reason it is down."""
        with self._lock:
            health = self._of(station_id)
            if health.refusal:
                return health.refusal
            if health.failures >= self.threshold:
                return health.last_error or "down"
            return "degraded" if health.failures else "ok"
