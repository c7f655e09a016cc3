"""How the sync log wakes its readers once new events have their seq.

The sequencer NOTIFYs PostgreSQL's channel :data:`NOTIFY_CHANNEL` inside its
own transaction (PostgreSQL delivers it at commit) and, when Redis is
configured, PUBLISHes the same message on :data:`REDIS_CHANNEL` after commit:
readers of other servers sharing the database wake through either. The
message names the database and the new head of every config it advanced, so a
reader that is already past a head reads nothing.
"""

from __future__ import annotations

import json
import logging
import time

_logger = logging.getLogger(__name__)

NOTIFY_CHANNEL = "pos_sync_log"
REDIS_CHANNEL = "pos_api:sync_log"


def wake_message(dbname: str, heads: dict[int, int]) -> str:
    """``{"db": "<dbname>", "heads": {"<config_id>": <last_seq>, ...}}``."""
    return json.dumps(
        {"db": dbname, "heads": {str(config): seq for config, seq in sorted(heads.items())}},
        separators=(",", ":"),
    )


def parse_wake_message(text: str) -> tuple[str, dict[int, int]]:
    """The database and heads of a wake message; ``ValueError`` if malformed."""
    data = json.loads(text)
    if not isinstance(data, dict) or not isinstance(data.get("heads"), dict):
        raise ValueError("not a sync log wake message")
    return str(data.get("db")), {int(key): int(value) for key, value in data["heads"].items()}


class Publisher:
    """Redis PUBLISH that never fails its caller: the events are committed
    already and PostgreSQL's NOTIFY wakes readers anyway, so a Redis outage
    is logged and Redis left alone for ``backoff`` seconds."""

    def __init__(self, redis_url: str, *, timeout: float = 0.2, backoff: float = 10.0):
        import redis  # only needed with a Redis URL

        self._errors = (redis.RedisError, OSError)
        self._redis = redis.Redis.from_url(
            redis_url, socket_timeout=timeout, socket_connect_timeout=timeout
        )
        self.backoff = backoff
        self._down_until = 0.0

    def publish(self, message: str, channel: str = REDIS_CHANNEL) -> bool:
        if time.monotonic() < self._down_until:
            return False
        try:
            self._redis.publish(channel, message)
        except self._errors as exc:
            self._down_until = time.monotonic() + self.backoff
            _logger.warning(
                "Sync log: Redis publish failed (%s); readers wake through PostgreSQL, "
                "Redis is retried in %ss",
                exc,
                self.backoff,
            )
            return False
        return True
