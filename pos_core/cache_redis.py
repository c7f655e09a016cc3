"""L2 of the tiered cache: Redis, with the version stamps that keep it honest.

Layout, under a prefix (``pos_api:cache:`` by default):

- ``v:<namespace>``: a hash of version counters. Field ``*`` counts the
  invalidations of the whole namespace, field ``<key>`` those of one key,
  field ``@`` holds an epoch, a random token written once (``HSETNX``).
- ``d:<namespace>:<key>``: ``<token>|<value>``, with the namespace's TTL.
- ``invalidations``: the pub/sub channel of :meth:`RedisTier.invalidate`.

A key's version token is ``<epoch>.<namespace count>.<key count>``. A value
is served from L2 only if the token stored with it is the current one; a
value is written back only if the token its loader started from is still
current, checked and written in one Lua script (atomic in Redis). Should the
hash be lost (a Redis restart without persistence, an eviction), the next
reader writes a new epoch: every older token stops matching, so a lost hash
can make entries look stale, never fresh.

Every call goes through one blocking connection pool whose connections have
connect and socket timeouts and no retries: a Redis that does not answer
costs one timeout, and the circuit breaker of the caller takes it from there.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import redis
from redis.backoff import NoBackoff
from redis.retry import Retry

# Reserved fields of the version hash: they cannot be cache keys.
EPOCH_FIELD, NAMESPACE_FIELD = "@", "*"
RESERVED_KEYS = frozenset((EPOCH_FIELD, NAMESPACE_FIELD))

# KEYS[1]: version hash; KEYS[2..]: data keys to read. ARGV[1]: an epoch,
# written only if the hash has none; ARGV[2..]: the key fields.
# Returns {{epoch, namespace count, key counts...}, {data...}}.
READ_LUA = """
redis.call('HSETNX', KEYS[1], '@', ARGV[1])
local fields = {'@', '*'}
for i = 2, #ARGV do fields[#fields + 1] = ARGV[i] end
local versions = redis.call('HMGET', KEYS[1], unpack(fields))
local data = {}
if #KEYS > 1 then data = redis.call('MGET', unpack(KEYS, 2)) end
return {versions, data}
"""

# KEYS[1]: version hash; KEYS[2..]: data keys. ARGV[1]: TTL in ms, then for
# every data key: its field, the token its value was loaded under, the value.
# Writes ``token|value`` only where the token is still current. Returns 1/0
# per data key.
WRITE_IF_CURRENT_LUA = """
local head = redis.call('HMGET', KEYS[1], '@', '*')
local prefix = (head[1] or '') .. '.' .. (head[2] or '0') .. '.'
local written = {}
for i = 2, #KEYS do
  local base = 2 + (i - 2) * 3
  local token = prefix .. (redis.call('HGET', KEYS[1], ARGV[base]) or '0')
  if token == ARGV[base + 1] then
    redis.call('SET', KEYS[i], token .. '|' .. ARGV[base + 2], 'PX', ARGV[1])
    written[#written + 1] = 1
  else
    written[#written + 1] = 0
  end
end
return written
"""

# Lua's unpack() has a limit of a few thousand values: larger requests are
# split into chunks of this many keys (one round trip each).
MAX_KEYS_PER_CALL = 1000


@dataclass(frozen=True)
class Versions:
    """What one read found: the token of every key asked for, and the stored
    values of the keys whose data was asked for (``None``: absent, or stored
    under an older token)."""

    tokens: dict[str, str]
    values: dict[str, bytes | None]


def token(epoch: bytes | None, namespace_count: bytes | None, key_count: bytes | None) -> str:
    """The version token, spelt exactly as :data:`WRITE_IF_CURRENT_LUA` spells it."""
    parts = (epoch or b"", namespace_count or b"0", key_count or b"0")
    return b".".join(parts).decode()


def invalidation_message(origin: str, namespace: str, keys: Sequence[str] | None) -> str:
    return json.dumps({"origin": origin, "ns": namespace, "keys": keys}, separators=(",", ":"))


def parse_invalidation_message(data: bytes | str) -> tuple[str, str, list[str] | None]:
    """``(origin, namespace, keys or None)``; ``ValueError`` if malformed."""
    message = json.loads(data)
    keys = message.get("keys")
    if not isinstance(message.get("ns"), str) or not (keys is None or isinstance(keys, list)):
        raise ValueError("not a cache invalidation message")
    return str(message.get("origin")), message["ns"], keys


class RedisTier:
    """The Redis side of the cache. Every method makes one round trip per
    :data:`MAX_KEYS_PER_CALL` keys and raises one of :attr:`errors` when
    Redis fails; ``calls`` counts the round trips tried (the circuit-breaker
    tests assert on it)."""

    errors: tuple[type[BaseException], ...] = (redis.RedisError, OSError)

    def __init__(
        self,
        url: str,
        *,
        prefix: str = "pos_api:cache:",
        timeout: float = 0.1,
        max_connections: int = 32,
    ):
        self.url = url
        self.prefix = prefix
        self.timeout = timeout
        self.channel = prefix + "invalidations"
        self.pool = redis.BlockingConnectionPool.from_url(
            url,
            max_connections=max_connections,
            timeout=timeout,  # waiting for a free connection of the pool
            socket_timeout=timeout,
            socket_connect_timeout=timeout,
            retry=Retry(NoBackoff(), 0),
        )
        self.client = redis.Redis(connection_pool=self.pool)
        self._read = self.client.register_script(READ_LUA)
        self._write = self.client.register_script(WRITE_IF_CURRENT_LUA)
        self.calls = 0
        self.failures = 0

    def version_key(self, namespace: str) -> str:
        return f"{self.prefix}v:{namespace}"

    def data_key(self, namespace: str, key: str) -> str:
        return f"{self.prefix}d:{namespace}:{key}"

    def _call(self, function, *args, **kwargs):
        self.calls += 1
        try:
            return function(*args, **kwargs)
        except self.errors:
            self.failures += 1
            raise

    def read_versions(
        self, namespace: str, keys: Sequence[str], with_data: Iterable[str]
    ) -> Versions:
        """The tokens of ``keys`` and the current values of ``with_data``."""
        wanted = set(with_data)
        tokens: dict[str, str] = {}
        values: dict[str, bytes | None] = {}
        for start in range(0, len(keys), MAX_KEYS_PER_CALL):
            chunk = list(keys[start : start + MAX_KEYS_PER_CALL])
            data_of = [key for key in chunk if key in wanted]
            versions, data = self._call(
                self._read,
                keys=[self.version_key(namespace)]
                + [self.data_key(namespace, key) for key in data_of],
                args=[uuid.uuid4().hex, *chunk],
            )
            epoch, namespace_count, *key_counts = versions
            for key, count in zip(chunk, key_counts):
                tokens[key] = token(epoch, namespace_count, count)
            for key, stored in zip(data_of, data):
                stamp, _sep, value = (stored or b"").partition(b"|")
                values[key] = (
                    value if stored is not None and stamp.decode() == tokens[key] else None
                )
        return Versions(tokens, values)

    def write_if_current(
        self, namespace: str, loaded: dict[str, tuple[str, bytes]], ttl: float
    ) -> dict[str, bool]:
        """Write ``{key: (token it was loaded under, value)}`` where the token
        is still current; ``{key: written}``."""
        written: dict[str, bool] = {}
        items = list(loaded.items())
        for start in range(0, len(items), MAX_KEYS_PER_CALL):
            chunk = items[start : start + MAX_KEYS_PER_CALL]
            args: list[object] = [max(1, int(ttl * 1000))]
            for key, (stamp, value) in chunk:
                args += [key, stamp, value]
            flags = self._call(
                self._write,
                keys=[self.version_key(namespace)]
                + [self.data_key(namespace, key) for key, _loaded in chunk],
                args=args,
            )
            written.update((key, bool(flag)) for (key, _loaded), flag in zip(chunk, flags))
        return written

    def invalidate(self, namespace: str, keys: Sequence[str] | None, message: str) -> None:
        """Bump the versions (of ``keys``, or of the whole namespace), delete
        the values of ``keys`` and publish ``message``, in one transaction."""
        pipe = self.client.pipeline(transaction=True)
        if keys is None:
            pipe.hincrby(self.version_key(namespace), NAMESPACE_FIELD, 1)
        else:
            for key in keys:
                pipe.hincrby(self.version_key(namespace), key, 1)
            if keys:
                pipe.delete(*(self.data_key(namespace, key) for key in keys))
        pipe.publish(self.channel, message)
        self._call(pipe.execute)

    def ping(self) -> None:
        self._call(self.client.ping)

    def server_stats(self) -> dict[str, int]:
        """Server-wide figures (the cache shares the server): memory used and
        keys evicted by Redis's own policy."""
        memory = self._call(self.client.info, "memory")
        stats = self._call(self.client.info, "stats")
        return {
            "used_memory": int(memory.get("used_memory", 0)),
            "evicted_keys": int(stats.get("evicted_keys", 0)),
        }

    def pubsub_client(self, timeout: float) -> redis.Redis:
        """A client of its own for the subscriber thread: its connection
        blocks on reads and must not hold one of the pool's."""
        return redis.Redis.from_url(
            self.url,
            socket_timeout=timeout,
            socket_connect_timeout=timeout,
            retry=Retry(NoBackoff(), 0),
        )

    def close(self) -> None:
        self.pool.disconnect()
