"""The sync log's wake-up messages and its Redis publisher, on a real Redis."""

import time

from conftest import free_port

from pos_core import sync_wake


def test_wake_message_round_trip():
    text = sync_wake.wake_message("d1", {3: 10, 1: 2})
    assert text == '{"db":"d1","heads":{"1":2,"3":10}}'
    assert sync_wake.parse_wake_message(text) == ("d1", {1: 2, 3: 10})


def test_publish_reaches_a_subscriber(redis_client):
    url = "redis://{host}:{port}/{db}".format(**redis_client.connection_pool.connection_kwargs)
    pubsub = redis_client.pubsub()
    pubsub.subscribe(sync_wake.REDIS_CHANNEL)
    assert pubsub.get_message(timeout=2)["type"] == "subscribe"
    assert sync_wake.Publisher(url).publish(sync_wake.wake_message("d1", {1: 5}))
    message = pubsub.get_message(timeout=2)
    assert sync_wake.parse_wake_message(message["data"].decode()) == ("d1", {1: 5})
    pubsub.close()


def test_redis_down_never_raises_and_backs_off():
    # A port nothing listens on: connection refused at once.
    port = free_port()
    publisher = sync_wake.Publisher(f"redis://127.0.0.1:{port}/0", backoff=30)
    started = time.monotonic()
    assert publisher.publish("{}") is False
    assert publisher.publish("{}") is False  # backing off: not even tried
    assert time.monotonic() - started < 2
