"""When a kitchen ticket that did not print is tried again, and when it is
given up on. Plain Python, no Odoo.

A kitchen cannot wait minutes: the first retries come seconds apart (2, 5,
10 s), then every 20 s, each jittered (by a quarter at most, so never more
than 25 s apart) so that the tickets of a printer that comes back do not
all retry in the same second, and a ticket prints within 30 s of its
printer's return even when no other ticket of the station wakes it. After 15
minutes a ticket is dead-lettered: shown in the backend, announced, and
reprinted by hand. :func:`retry_pattern` writes the schedule in OCA
queue_job's ``retry_pattern`` form (retry count -> seconds, a (min, max)
pair for a random delay), which the job function's data record holds.
"""

from __future__ import annotations

import math

DELAYS = (2, 5, 10)
THEN_EVERY = 20
JITTER = 0.25
DEAD_AFTER = 15 * 60

# queue_job priorities (lower runs first): new orders, then changes, then
# reprints; a cancellation is as urgent as a new order.
PRIORITY = {"new": 5, "cancel": 5, "delta": 10, "reprint": 20}


def retry_pattern(delays=DELAYS, then_every=THEN_EVERY, jitter=JITTER):
    """``{retry count: (min seconds, max seconds)}``: retry n waits the
    n-th delay, and every retry after the last waits ``then_every``."""
    if not delays or any(delay <= 0 for delay in (*delays, then_every)):
        raise ValueError("Retry delays must be positive")
    if not 0 <= jitter < 1:
        raise ValueError("The jitter is a fraction of the delay, in [0, 1)")
    pattern = {}
    for count, delay in enumerate((*delays, then_every), start=1):
        pattern[count] = (max(1, math.floor(delay * (1 - jitter))), math.ceil(delay * (1 + jitter)))
    return pattern


def delay_bounds(retry, pattern):
    """The (min, max) seconds before retry number ``retry`` (1-based), as
    queue_job reads ``pattern``: the entry of the largest count not above
    it."""
    chosen = None
    for count in sorted(pattern):
        if retry >= count:
            chosen = pattern[count]
    if chosen is None:
        raise ValueError(f"No delay for retry {retry}")
    return chosen


def is_dead(first_try_at, now, dead_after=DEAD_AFTER):
    """Whether a ticket first tried at ``first_try_at`` (seconds) is given
    up on at ``now``."""
    return now - first_try_at >= dead_after
