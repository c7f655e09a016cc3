"""The per-process hub: fan-out by room, order, no duplicate, backpressure."""

import json
import threading
import time

from pos_core import events, fanout


def _event(seq, rooms=("config:1",), config_id=1, size=0):
    return fanout.Event(
        config_id,
        seq,
        events.ORDER_UPDATED,
        rooms,
        at="2026-01-01T00:00:00Z",
        payload={"pad": "x" * size},
    )


def _seqs(items):
    return [seq for seq, _data in items]


def test_fan_out_by_room_under_the_most_specific_room():
    hub = fanout.Hub()
    whole = fanout.Subscriber(1, ["config:1"])
    table = fanout.Subscriber(1, ["table:5"])
    both = fanout.Subscriber(1, ["table:5", "config:1"])
    other = fanout.Subscriber(1, ["table:6"])
    for subscriber in (whole, table, both, other):
        assert hub.attach(subscriber, 0)
    hub.publish(1, [_event(1, ("table:5", "session:3", "config:1")), _event(2)])
    items, cursor, closed = whole.take(0)
    assert _seqs(items) == [1, 2] and cursor == 2 and closed is None
    assert [json.loads(data)["room"] for _seq, data in items] == ["config:1", "config:1"]
    items, _cursor, _closed = both.take(0)
    assert [json.loads(data)["room"] for _seq, data in items] == ["table:5", "config:1"]
    items, cursor, _closed = table.take(0)
    assert _seqs(items) == [1] and cursor == 2  # seq 2 skipped, but counted
    items, cursor, _closed = other.take(0)
    assert items == [] and cursor == 2
    envelope = json.loads(_event(7).encoded("config:1"))
    assert envelope == {
        "seq": 7,
        "type": events.ORDER_UPDATED,
        "room": "config:1",
        "at": "2026-01-01T00:00:00Z",
        "payload": {"pad": ""},
    }


def test_no_duplicate_and_order_across_overlapping_reads():
    hub = fanout.Hub()
    subscriber = fanout.Subscriber(1, ["config:1"])
    assert hub.attach(subscriber, 3)  # its own read delivered 1..3
    hub.publish(1, [_event(seq) for seq in (1, 2, 3, 4, 5)])  # a read from before it attached
    hub.publish(1, [_event(seq) for seq in (4, 5, 6)])  # the same wake-up read twice
    items, cursor, _closed = subscriber.take(0)
    assert _seqs(items) == [4, 5, 6] and cursor == 6


def test_attach_behind_the_hub_fills_from_the_ring_or_asks_for_a_read():
    hub = fanout.Hub(ring_size=3)
    live = fanout.Subscriber(1, ["config:1"])
    assert hub.attach(live, 0)
    hub.publish(1, [_event(seq) for seq in range(1, 6)])  # ring holds 3..5
    late = fanout.Subscriber(1, ["config:1"])
    assert hub.attach(late, 2)  # read up to 2, then the hub published 3..5
    assert _seqs(late.take(0)[0]) == [3, 4, 5]
    too_late = fanout.Subscriber(1, ["config:1"])
    assert not hub.attach(too_late, 1)  # 2 is gone from the ring: read again
    assert hub.subscriber_count(1) == 2
    resumed = fanout.Subscriber(1, ["config:1"])
    assert hub.attach_from_memory(resumed, 4)
    assert _seqs(resumed.take(0)[0]) == [5]
    assert not hub.attach_from_memory(fanout.Subscriber(1, ["config:1"]), 9)  # ahead: ask the db
    assert not hub.attach_from_memory(fanout.Subscriber(2, ["config:2"]), 0)  # not followed


def test_announced_heads_make_a_newly_followed_config_read():
    woken = []
    hub = fanout.Hub(on_pending=lambda: woken.append(True))
    # The wake-up of seq 4 arrived while nobody followed config 1 here.
    assert hub.announce({1: 4}) == set()
    assert hub.attach(fanout.Subscriber(1, ["config:1"]), 3)
    assert woken == [True]
    assert hub.announce({}) == {1}
    assert hub.heads() == {1: 3}
    assert hub.announce({1: 3}) == set()


def test_a_slow_subscriber_is_cut_off_and_never_delays_the_others():
    hub = fanout.Hub()
    slow = fanout.Subscriber(1, ["config:1"], max_bytes=10_000)
    fast = fanout.Subscriber(1, ["config:1"])
    assert hub.attach(slow, 0) and hub.attach(fast, 0)
    received = []

    def reader():
        while len(received) < 50:
            items, _cursor, closed = fast.take(5)
            received.extend(_seqs(items))
            if closed:
                return

    thread = threading.Thread(target=reader)
    thread.start()
    for seq in range(1, 51):
        hub.publish(1, [_event(seq, size=1000)])
    thread.join(5)
    assert received == list(range(1, 51))
    items, _cursor, closed = slow.take(0)
    assert closed == events.CLOSE_RESYNC and items == []
    assert hub.subscriber_count(1) == 1


def test_long_poll_waiter_stops_when_full_and_keeps_its_cursor():
    hub = fanout.Hub()
    waiter = fanout.Subscriber(1, ["config:1"], max_items=2, stop_when_full=True)
    assert hub.attach(waiter, 0)
    hub.publish(1, [_event(seq) for seq in (1, 2, 3, 4)])
    items, cursor, closed = waiter.take(0)
    assert _seqs(items) == [1, 2] and cursor == 2 and closed is None
    assert hub.subscriber_count(1) == 0


def test_a_waiter_wakes_on_its_first_event_and_times_out_with_the_cursor():
    hub = fanout.Hub()
    waiter = fanout.Subscriber(1, ["table:5"], stop_when_full=True)
    assert hub.attach(waiter, 0)
    started = time.monotonic()
    items, cursor, _closed = waiter.take(0.2)
    assert items == [] and cursor == 0 and time.monotonic() - started >= 0.19
    hub.publish(1, [_event(1)])  # not its room: no wake-up, but the cursor moves
    assert waiter.take(0.05)[:2] == ([], 1)
    timer = threading.Timer(0.1, hub.publish, (1, [_event(2, ("table:5", "config:1"))]))
    timer.start()
    started = time.monotonic()
    items, cursor, _closed = waiter.take(5)
    assert _seqs(items) == [2] and cursor == 2 and time.monotonic() - started < 2
    timer.join()


def test_close_wakes_the_waiter_and_detaches():
    hub = fanout.Hub()
    subscriber = fanout.Subscriber(1, ["config:1"])
    assert hub.attach(subscriber, 0)
    threading.Timer(0.05, subscriber.close, (events.CLOSE_UNAUTHORIZED,)).start()
    items, _cursor, closed = subscriber.take(5)
    assert closed == events.CLOSE_UNAUTHORIZED and items == []
    assert hub.subscriber_count() == 0
    hub.publish(1, [_event(1)])
    assert subscriber.take(0)[0] == []


def test_fan_out_to_many_subscribers_in_one_pass():
    hub = fanout.Hub()
    subscribers = [fanout.Subscriber(1, ["config:1"]) for _ in range(2000)]
    for subscriber in subscribers:
        assert hub.attach(subscriber, 0)
    event = _event(1)
    hub.publish(1, [event])
    assert all(_seqs(subscriber.take(0)[0]) == [1] for subscriber in subscribers)
    assert list(event._encoded) == ["config:1"]  # encoded once for all of them


def test_slots_cap_connections_per_device():
    hub = fanout.Hub()
    assert hub.acquire("device:1", 2) and hub.acquire("device:1", 2)
    assert not hub.acquire("device:1", 2)
    hub.release("device:1")
    assert hub.acquire("device:1", 2)


def test_a_parked_subscriber_is_notified_and_drained_without_waiting():
    """A WebSocket parked with no greenlet learns of its events through
    ``notify`` (called under the hub's lock) and drains them at once."""
    hub = fanout.Hub()
    calls = []
    subscriber = fanout.Subscriber(1, ["config:1"], notify=lambda: calls.append("notified"))
    assert hub.attach(subscriber, 0)
    assert calls == [] and not subscriber.pending()
    started = time.monotonic()
    assert subscriber.drain() == ([], 0, None)
    assert time.monotonic() - started < 0.5
    hub.publish(1, [_event(1), _event(2, ("table:9",))])
    assert calls == ["notified"] and subscriber.pending()  # one call for its one event
    items, cursor, closed = subscriber.drain()
    assert (_seqs(items), cursor, closed) == ([1], 2, None)
    assert not subscriber.pending()
    subscriber.close(events.CLOSE_RESYNC)
    assert calls == ["notified", "notified"] and subscriber.pending()
    assert subscriber.drain() == ([], 2, events.CLOSE_RESYNC)
    hub.publish(1, [_event(3)])
    assert len(calls) == 2  # detached: no more events, no more calls


def test_events_read_while_nobody_followed_reach_the_next_subscriber():
    """Between two long-polls nobody follows the point of sale, but the
    dispatcher still reads its wake-ups; a subscriber whose own read
    finished before such a read gets those events from the ring."""
    hub = fanout.Hub()
    first = fanout.Subscriber(1, ["config:1"])
    assert hub.attach(first, 0)
    hub.publish(1, [_event(1)])
    first.close()  # answered: nobody follows now
    assert hub.heads() == {1: 1}  # still read on wake-ups
    hub.publish(1, [_event(2)])  # a wake-up read after the next poll's own read
    second = fanout.Subscriber(1, ["config:1"])
    assert hub.attach(second, 1)  # that read saw up to 1
    items, cursor, _closed = second.take(0)
    assert (_seqs(items), cursor) == ([2], 2)
    # A subscriber whose read is ahead of the hub starts the ring afresh.
    second.close()
    third = fanout.Subscriber(1, ["config:1"])
    assert hub.attach(third, 5)
    assert hub.heads() == {1: 5}
    hub.publish(1, [_event(seq) for seq in (4, 5, 6)])
    items, cursor, _closed = third.take(0)
    assert (_seqs(items), cursor) == ([6], 6)
    assert not hub.attach_from_memory(fanout.Subscriber(1, ["config:1"]), 3)  # no gap served
