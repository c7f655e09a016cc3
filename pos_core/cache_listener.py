"""The subscriber thread through which every process drops the L1 entries
that another process invalidated.

Redis pub/sub delivers a message only to the subscribers connected at that
moment: whatever was published while this process was not subscribed is lost.
So every (re)subscription calls ``on_connect`` (the cache flushes its L1), and
the cache trusts its L1 beyond the short outage TTL only while
:attr:`InvalidationListener.connected` is true. A Redis that stops answering
without closing the connection (hung, or a lost network path) is noticed by
a PING every ``ping_interval`` seconds: no answer for three of them and the
listener counts as disconnected, and resubscribes.
"""

from __future__ import annotations

import contextlib
import logging
import threading
import time
from collections.abc import Callable

import redis

_logger = logging.getLogger(__name__)


class InvalidationListener:
    """A daemon thread subscribed to one channel, reconnecting with a
    bounded back-off; every blocking call has a timeout, so :meth:`stop`
    returns within about ``poll_timeout``."""

    def __init__(
        self,
        client_factory: Callable[[], redis.Redis],
        channel: str,
        on_message: Callable[[bytes], None],
        *,
        on_connect: Callable[[], None] | None = None,
        poll_timeout: float = 0.5,
        ping_interval: float = 1.0,
        max_backoff: float = 5.0,
    ):
        self.client_factory = client_factory
        self.channel = channel
        self.on_message = on_message
        self.on_connect = on_connect
        self.poll_timeout = poll_timeout
        self.ping_interval = ping_interval
        self.max_backoff = max_backoff
        self.connected = False
        self.subscriptions = 0  # successful (re)subscriptions
        self.received = 0
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        if self._thread is not None and self._thread.is_alive():
            return
        self._stop.clear()
        self._thread = threading.Thread(
            target=self._run, name=f"cache-listener {self.channel}", daemon=True
        )
        self._thread.start()

    def stop(self, timeout: float = 5.0) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout)
        self._thread = None
        self.connected = False

    def _run(self) -> None:
        backoff = min(0.1, self.max_backoff)
        while not self._stop.is_set():
            client = pubsub = None
            try:
                client = self.client_factory()
                pubsub = client.pubsub()
                pubsub.subscribe(self.channel)
                last_ping = last_seen = time.monotonic()
                while not self._stop.is_set():
                    now = time.monotonic()
                    if now - last_seen > 3 * self.ping_interval:
                        raise redis.ConnectionError("no answer to PING")
                    if now - last_ping >= self.ping_interval:
                        pubsub.ping()
                        last_ping = now
                    message = pubsub.get_message(timeout=self.poll_timeout)
                    if message is None:
                        continue
                    last_seen = time.monotonic()
                    if message["type"] == "subscribe":
                        self._connected()
                        backoff = min(0.1, self.max_backoff)
                    elif message["type"] == "message":
                        self.received += 1
                        self._deliver(message["data"])
            except (redis.RedisError, OSError) as exc:
                if self.connected:
                    _logger.warning("Cache listener: Redis lost (%s), resubscribing", exc)
            finally:
                self.connected = False
                for closable in (pubsub, client):
                    if closable is not None:
                        with contextlib.suppress(redis.RedisError, OSError):
                            closable.close()
            self._stop.wait(backoff)
            backoff = min(backoff * 2, self.max_backoff)

    def _connected(self) -> None:
        # Flush first: an entry must not be trusted on the strength of a
        # subscription that came after the message that would have dropped it.
        if self.on_connect is not None:
            self.on_connect()
        self.connected = True
        self.subscriptions += 1

    def _deliver(self, data: bytes) -> None:
        try:
            self.on_message(data)
        except Exception:  # one bad message must not end the thread
            _logger.exception("Cache listener: could not apply %r", data[:200])
