"""Token buckets shared by every worker through Redis, with a per-process
fallback.

One bucket per key (the API uses database, device and route class). In Redis
the bucket is a hash updated by one Lua script, atomic across workers and
timed by the Redis server's clock. When Redis cannot be reached, the limiter
counts in this process instead, and leaves Redis alone for ``backoff``
seconds: a request never waits for more than one short Redis timeout.
"""

from __future__ import annotations

import logging
import math
import threading
import time
from collections import OrderedDict
from dataclasses import dataclass

from .limits import Rate

_logger = logging.getLogger(__name__)

REDIS, LOCAL = "redis", "local"

# KEYS[1]: the bucket; ARGV: refill per second, burst. Returns
# {allowed (0/1), seconds until one token is back, tokens left}.
TOKEN_BUCKET_LUA = """
local rate = tonumber(ARGV[1])
local burst = tonumber(ARGV[2])
local clock = redis.call('TIME')
local now = tonumber(clock[1]) + tonumber(clock[2]) / 1000000
local state = redis.call('HMGET', KEYS[1], 'tokens', 'at')
local tokens = tonumber(state[1]) or burst
local at = tonumber(state[2]) or now
tokens = math.min(burst, tokens + math.max(0, now - at) * rate)
local allowed = 0
local wait = 0
if tokens >= 1 then
    tokens = tokens - 1
    allowed = 1
else
    wait = (1 - tokens) / rate
end
redis.call('HSET', KEYS[1], 'tokens', tostring(tokens), 'at', tostring(now))
redis.call('PEXPIRE', KEYS[1], math.ceil(burst / rate * 1000) + 1000)
return {allowed, tostring(wait), tostring(tokens)}
"""


@dataclass(frozen=True)
class Decision:
    allowed: bool
    retry_after: float  # seconds until the next request would be allowed (0 when allowed)
    remaining: int
    backend: str  # REDIS or LOCAL: where the bucket was counted

    @property
    def retry_after_header(self) -> int:
        """Whole seconds for ``Retry-After``, never 0 for a refusal."""
        return max(1, math.ceil(self.retry_after))


class LocalBuckets:
    """Token buckets of one process, at most ``max_keys`` of them (the
    least recently used go first)."""

    def __init__(self, max_keys: int = 10_000, clock=time.monotonic):
        self.max_keys = max_keys
        self.clock = clock
        self._buckets: OrderedDict[str, tuple[float, float]] = OrderedDict()
        self._lock = threading.Lock()

    def hit(self, key: str, rate: Rate) -> Decision:
        with self._lock:
            now = self.clock()
            tokens, at = self._buckets.pop(key, (float(rate.burst), now))
            tokens = min(rate.burst, tokens + max(0.0, now - at) * rate.per_second)
            allowed = tokens >= 1
            wait = 0.0
            if allowed:
                tokens -= 1
            else:
                wait = (1 - tokens) / rate.per_second
            self._buckets[key] = (tokens, now)
            while len(self._buckets) > self.max_keys:
                self._buckets.popitem(last=False)
        return Decision(allowed, wait, int(tokens), LOCAL)


class RateLimiter:
    """``hit(key, rate)`` takes one token from the bucket ``key``."""

    def __init__(
        self,
        redis_url: str = "",
        *,
        prefix: str = "pos_api:rl:",
        timeout: float = 0.1,
        backoff: float = 10.0,
        local: LocalBuckets | None = None,
    ):
        self.prefix = prefix
        self.backoff = backoff
        self.local = local or LocalBuckets()
        self._redis = None
        self._script = None
        self._down_until = 0.0
        if redis_url:
            import redis  # only needed with a Redis URL

            self._errors = redis.RedisError
            self._redis = redis.Redis.from_url(
                redis_url, socket_timeout=timeout, socket_connect_timeout=timeout
            )
            self._script = self._redis.register_script(TOKEN_BUCKET_LUA)

    @property
    def redis_available(self) -> bool:
        """False while backing off after a Redis failure."""
        return self._redis is not None and time.monotonic() >= self._down_until

    def hit(self, key: str, rate: Rate) -> Decision:
        if self.redis_available:
            try:
                allowed, wait, tokens = self._script(
                    keys=[self.prefix + key], args=[repr(rate.per_second), rate.burst]
                )
                return Decision(bool(allowed), float(wait), int(float(tokens)), REDIS)
            except self._errors as exc:
                self._down_until = time.monotonic() + self.backoff
                _logger.warning(
                    "Rate limits: Redis unavailable (%s), counting per worker for %ss",
                    exc,
                    self.backoff,
                )
        return self.local.hit(key, rate)
