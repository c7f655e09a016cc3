import time
import uuid

import pytest
from conftest import free_port

from pos_core.exceptions import InvalidInput, PosApiError
from pos_core.limits import Rate, decode_json, json_depth, rates
from pos_core.ratelimit import LOCAL, REDIS, LocalBuckets, RateLimiter


def _key():
    return f"test:{uuid.uuid4().hex}"


def _redis_url(redis_client):
    kwargs = redis_client.connection_pool.connection_kwargs
    return f"redis://{kwargs['host']}:{kwargs['port']}/{kwargs.get('db', 0)}"


def test_redis_bucket_allows_a_burst_then_refuses_with_retry_after(redis_client):
    limiter = RateLimiter(_redis_url(redis_client))
    key, rate = _key(), Rate(3, 30)  # 3 at once, one every 10 s
    decisions = [limiter.hit(key, rate) for _ in range(4)]
    assert [d.allowed for d in decisions] == [True, True, True, False]
    assert {d.backend for d in decisions} == {REDIS}
    refused = decisions[-1]
    assert 9 < refused.retry_after <= 10
    assert refused.retry_after_header == 10
    assert redis_client.exists(limiter.prefix + key)


def test_redis_bucket_is_shared_by_limiters_of_different_workers(redis_client):
    url = _redis_url(redis_client)
    worker_a, worker_b = RateLimiter(url), RateLimiter(url)
    key, rate = _key(), Rate(2, 60)
    assert worker_a.hit(key, rate).allowed
    assert worker_b.hit(key, rate).allowed
    assert not worker_a.hit(key, rate).allowed
    assert not worker_b.hit(key, rate).allowed
    # Another key has its own bucket.
    assert worker_b.hit(_key(), rate).allowed


def test_redis_bucket_refills_over_time(redis_client):
    limiter = RateLimiter(_redis_url(redis_client))
    key, rate = _key(), Rate(2, 0.2)  # 10 a second
    assert limiter.hit(key, rate).allowed
    assert limiter.hit(key, rate).allowed
    assert not limiter.hit(key, rate).allowed
    time.sleep(0.15)
    assert limiter.hit(key, rate).allowed


def test_unreachable_redis_falls_back_to_the_worker_and_backs_off():
    limiter = RateLimiter(f"redis://127.0.0.1:{free_port()}/0", backoff=30)
    key, rate = _key(), Rate(2, 60)
    first = limiter.hit(key, rate)
    assert first.allowed and first.backend == LOCAL
    assert not limiter.redis_available  # no second attempt for 30 s
    started = time.monotonic()
    decisions = [limiter.hit(key, rate) for _ in range(2)]
    assert time.monotonic() - started < 0.05
    assert [d.allowed for d in decisions] == [True, False]
    assert decisions[-1].backend == LOCAL and decisions[-1].retry_after > 29


def test_local_buckets_forget_the_least_recently_used_keys():
    buckets = LocalBuckets(max_keys=2)
    rate = Rate(1, 60)
    assert buckets.hit("a", rate).allowed
    assert not buckets.hit("a", rate).allowed
    buckets.hit("b", rate)
    buckets.hit("c", rate)  # pushes "a" out
    assert buckets.hit("a", rate).allowed


def test_rates_parse_count_per_seconds_and_refuse_nonsense():
    assert rates({"write": "10/2"})["write"] == Rate(10, 2.0)
    assert rates({"write": "10/2"})["write"].per_second == 5
    assert rates({})["read"] == rates({"read": ""})["read"]
    assert rates({"read": "many"})["read"] == rates({})["read"]  # a typo keeps the default
    for bad in ("0/1", "5/0", "x/1"):
        with pytest.raises(ValueError):
            Rate.parse(bad)


def test_json_depth_skips_strings():
    assert json_depth(b'{"a": [1, {"b": "[[[[{{{{"}]}') == 3
    assert json_depth(b'"\\"[[["') == 0
    assert json_depth(b"[" * 100_000) == 100_000


def test_decode_json_refuses_deep_nesting_and_non_numbers_with_4xx():
    with pytest.raises(InvalidInput) as deep:
        decode_json(b"[" * 200_000 + b"]" * 200_000)
    assert deep.value.code == "json_too_deep" and deep.value.status == 422
    for literal in (b"NaN", b"Infinity", b"-Infinity", b'{"a": NaN}'):
        with pytest.raises(PosApiError) as bad:
            decode_json(literal)
        assert bad.value.code == "malformed_json" and 400 <= bad.value.status < 500
    assert str(decode_json(b'{"amount": 1.10}')["amount"]) == "1.10"
