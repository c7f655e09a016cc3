"""A circuit breaker: after a run of failures, stop calling a dependency for
a cool-down, then let one probe through to see whether it is back.

Why: a Redis (or printer, or external API) that does not answer costs every
caller a full socket timeout. With the breaker open, callers skip the call at
once and take their fallback; only the half-open probe pays a timeout, once
per cool-down, until the dependency answers again.

The breaker holds no opinion on what a failure is: the caller reports
:meth:`CircuitBreaker.record_success` and :meth:`CircuitBreaker.record_failure`
around the calls that :meth:`CircuitBreaker.allow` let through.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

_logger = logging.getLogger(__name__)

CLOSED, OPEN, HALF_OPEN = "closed", "open", "half_open"


@dataclass(frozen=True)
class BreakerPolicy:
    """When the breaker opens and how long it stays open: data, not code."""

    failure_threshold: int = 3  # consecutive failures that open the breaker
    cooldown: float = 5.0  # seconds open before one probe is let through


class CircuitBreaker:
    """Thread-safe closed / open / half-open state machine.

    ``on_recover`` is called (outside the lock) when a success follows one or
    more failures: the dependency is back, and whatever the caller missed
    while it was away (invalidation messages, for the cache) must be made up
    for.
    """

    def __init__(
        self,
        name: str,
        policy: BreakerPolicy | None = None,
        *,
        clock: Callable[[], float] = time.monotonic,
        on_recover: Callable[[], None] | None = None,
    ):
        self.name = name
        self.policy = policy or BreakerPolicy()
        self.clock = clock
        self.on_recover = on_recover
        self._lock = threading.Lock()
        self._state = CLOSED
        self._failures = 0  # consecutive
        self._opened_at = 0.0
        self._probe_in_flight = False
        self.opened = 0  # how many times it opened
        self.rejected = 0  # calls refused while open

    @property
    def state(self) -> str:
        with self._lock:
            return self._state

    def allow(self) -> bool:
        """True if the caller may try the dependency now. While open, after
        the cool-down, exactly one caller gets True (the probe); the others
        keep taking their fallback until the probe reports."""
        with self._lock:
            if self._state == CLOSED:
                return True
            if self._state == OPEN and self.clock() - self._opened_at >= self.policy.cooldown:
                self._state = HALF_OPEN
                self._probe_in_flight = False
            if self._state == HALF_OPEN and not self._probe_in_flight:
                self._probe_in_flight = True
                return True
            self.rejected += 1
            return False

    def record_success(self) -> None:
        with self._lock:
            recovered = self._failures > 0 or self._state != CLOSED
            self._state = CLOSED
            self._failures = 0
            self._probe_in_flight = False
        if recovered:
            _logger.info("%s: available again", self.name)
            if self.on_recover is not None:
                self.on_recover()

    def record_failure(self, error: BaseException | None = None) -> None:
        with self._lock:
            self._failures += 1
            self._probe_in_flight = False
            if self._state == HALF_OPEN or (
                self._state == CLOSED and self._failures >= self.policy.failure_threshold
            ):
                self._state = OPEN
                self._opened_at = self.clock()
                self.opened += 1
                opened = True
            else:
                opened = False
        if opened:
            _logger.warning(
                "%s: unavailable (%s); not tried again for %ss",
                self.name,
                error,
                self.policy.cooldown,
            )

    def stats(self) -> dict[str, object]:
        with self._lock:
            return {
                "state": self._state,
                "consecutive_failures": self._failures,
                "opened": self.opened,
                "rejected": self.rejected,
            }
