"""The caches: VersionedLRU, and the tiered cache against real Redis servers
(the shared one of the suite, and servers of the tests' own that they stop,
restart and pause)."""

import os
import shutil
import signal
import subprocess
import threading
import time
import uuid

import pytest
from conftest import free_port

from pos_core import cache as tiered
from pos_core.breaker import CLOSED, HALF_OPEN, OPEN, BreakerPolicy, CircuitBreaker
from pos_core.cache import L1, L2, L3, MENU, PRODUCTS, TieredCache, VersionedLRU
from pos_core.cache_lru import BoundedLRU, entry_size
from pos_core.settings import CacheSettings, load_settings


def test_entries_are_rebuilt_when_the_version_changes():
    cache = VersionedLRU()
    builds = []

    def build(value):
        def _build():
            builds.append(value)
            return value

        return _build

    assert cache.get("menu", 1, build("a")) == "a"
    assert cache.get("menu", 1, build("b")) == "a"
    assert cache.get("menu", 2, build("c")) == "c"
    assert builds == ["a", "c"]
    assert (cache.hits, cache.misses) == (1, 2)


def test_entries_older_than_max_age_are_rebuilt_under_the_same_version():
    clock = Clock()
    cache = VersionedLRU(max_age=60, clock=clock)
    assert cache.get("menu", 1, lambda: "a") == "a"
    clock.advance(59)
    assert cache.get("menu", 1, lambda: "b") == "a"
    clock.advance(2)
    assert cache.get("menu", 1, lambda: "c") == "c"


def test_least_recently_used_entry_is_evicted():
    cache = VersionedLRU(max_entries=2)
    cache.get("a", 0, lambda: 1)
    cache.get("b", 0, lambda: 2)
    cache.get("a", 0, lambda: 99)  # touch a: b is now the oldest
    cache.get("c", 0, lambda: 3)
    assert len(cache) == 2
    assert cache.get("b", 0, lambda: "rebuilt") == "rebuilt"
    assert cache.get("c", 0, lambda: "rebuilt") == 3


def test_concurrent_readers_see_a_complete_value():
    cache = VersionedLRU()
    seen = []

    def reader():
        for version in range(200):
            value = cache.get("k", version // 10, lambda v=version // 10: {"version": v})
            seen.append(value["version"] in range(20))

    threads = [threading.Thread(target=reader) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert seen and all(seen)


# ------------------------------------------------------------------ tiered cache


class Clock:
    """A monotonic clock the test moves by hand."""

    def __init__(self):
        self.now = 1000.0

    def __call__(self):
        return self.now

    def advance(self, seconds):
        self.now += seconds


class Loader:
    """A database stand-in: ``rows`` is the truth, ``calls`` what was asked."""

    def __init__(self, **rows):
        self.rows = {key: value.encode() for key, value in rows.items()}
        self.calls = []

    def one(self, key):
        def load():
            self.calls.append([key])
            return self.rows.get(key)

        return load

    def many(self, keys):
        self.calls.append(sorted(keys))
        return {key: self.rows.get(key) for key in keys}


def get(cache, namespace, key, loader, **options):
    return cache.fetch(namespace, key, loader, **options).value


def get_many(cache, namespace, keys, loader):
    return {key: hit.value for key, hit in cache.fetch_many(namespace, keys, loader).items()}


def wait_for(condition, timeout=5.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.02)
    return condition()


@pytest.fixture
def redis_url(redis_client):
    return os.environ["POS_API_TEST_REDIS_URL"]


@pytest.fixture
def make_cache():
    """TieredCache factory on a prefix of the test's own; closes what it made."""
    prefix = f"test:{uuid.uuid4().hex[:8]}:"
    made = []

    def make(url, **kwargs):
        kwargs.setdefault("prefix", prefix)
        instance = TieredCache(url, **kwargs)
        made.append(instance)
        return instance

    yield make
    for instance in made:
        instance.close()


class RedisProcess:
    """A redis-server of the test's own, which it can stop, restart and pause."""

    def __init__(self, directory):
        self.directory = directory
        self.port = free_port()
        self.url = f"redis://127.0.0.1:{self.port}/0"
        self.process = None

    def start(self):
        self.process = subprocess.Popen(
            [
                *("redis-server", "--bind", "127.0.0.1", "--port", str(self.port)),
                *("--dir", str(self.directory), "--save", "", "--appendonly", "no"),
            ],
            stdout=subprocess.DEVNULL,
        )
        import redis

        client = redis.Redis(port=self.port, socket_timeout=1, socket_connect_timeout=1)
        assert wait_for(lambda: self._answers(client, redis)), "redis-server did not start"
        client.close()

    @staticmethod
    def _answers(client, redis):
        try:
            return client.ping()
        except redis.RedisError:
            return False

    def stop(self):
        self.process.terminate()
        self.process.wait(10)

    def pause(self):
        os.kill(self.process.pid, signal.SIGSTOP)

    def resume(self):
        os.kill(self.process.pid, signal.SIGCONT)


@pytest.fixture
def own_redis(tmp_path):
    if not shutil.which("redis-server"):
        pytest.skip("redis-server is not installed")
    server = RedisProcess(tmp_path)
    server.start()
    try:
        yield server
    finally:
        if server.process.poll() is None:
            server.resume()
            server.stop()


# --------------------------------------------------------------------- settings
def test_namespace_ttls_are_defined_once_and_configurable():
    ttls = CacheSettings().namespace_ttls()
    assert ttls == {
        "menu": 900,
        "products": 900,
        "categories": 3600,
        "taxes": 3600,
        "settings": 3600,
        "permissions": 1800,
    }
    namespaces = {
        tiered.MENU,
        tiered.PRODUCTS,
        tiered.CATEGORIES,
        tiered.TAXES,
        tiered.SETTINGS,
        tiered.PERMISSIONS,
    }
    assert namespaces == set(ttls)
    settings = load_settings(
        {"cache_ttl_menu": "60", "cache_outage_ttl": "2.5"},
        {"POS_API_CACHE_TTL_TAXES": "120"},
        CacheSettings,
    )
    assert settings.namespace_ttls()["menu"] == 60
    assert settings.namespace_ttls()["taxes"] == 120
    assert settings.cache_outage_ttl == 2.5
    assert TieredCache(settings=settings).ttls["menu"] == 60


def test_unknown_namespace_and_reserved_keys_are_refused():
    cache = TieredCache()
    with pytest.raises(ValueError, match="Unknown cache namespace"):
        get(cache, "menus", "1", lambda: b"x")
    with pytest.raises(ValueError, match="reserved"):
        get(cache, MENU, "*", lambda: b"x")
    with pytest.raises(ValueError):
        TieredCache(ttls={"a:b": 1})


# ---------------------------------------------------------------------------- L1
def test_l1_entry_bound_evicts_least_recently_used():
    lru = BoundedLRU(max_entries=2, max_bytes=10_000, clock=Clock())
    for key in "abc":
        if key == "c":
            assert lru.get("ns", "a") is not None  # a is now the most recent
        lru.put("ns", key, key.encode(), version="1", ttl=60)
    assert ("ns", "b") not in lru
    assert ("ns", "a") in lru and ("ns", "c") in lru
    assert lru.stats()["evictions"] == 1
    assert lru.stats()["entries"] == 2


def test_l1_byte_bound_counts_value_and_key_bytes():
    lru = BoundedLRU(max_entries=100, max_bytes=100, clock=Clock())
    assert entry_size("ns", "k1", b"x" * 36) == 40
    lru.put("ns", "k1", b"x" * 36, version=None, ttl=60)
    lru.put("ns", "k2", b"y" * 36, version=None, ttl=60)
    assert lru.bytes == 80
    lru.put("ns", "k3", b"z" * 36, version=None, ttl=60)  # 120 > 100: k1 goes
    assert ("ns", "k1") not in lru
    assert lru.bytes == 80
    assert lru.stats()["evictions"] == 1
    # Larger than the whole bound: refused, nothing evicted for it.
    assert not lru.put("ns", "big", b"b" * 200, version=None, ttl=60)
    assert len(lru) == 2 and lru.stats()["refused"] == 1
    # Replacing an entry does not count it twice.
    lru.put("ns", "k2", b"w" * 10, version=None, ttl=60)
    assert lru.bytes == 40 + 14
    with pytest.raises(TypeError):
        lru.put("ns", "k4", "not bytes", version=None, ttl=60)


def test_l1_ttl_expiry_follows_the_injected_clock():
    clock = Clock()
    lru = BoundedLRU(max_entries=10, max_bytes=1000, clock=clock)
    lru.put("ns", "k", b"v", version="1", ttl=30)
    clock.advance(29.9)
    assert lru.get("ns", "k").value == b"v"
    clock.advance(0.2)
    assert lru.get("ns", "k") is None
    stats = lru.stats()
    assert (stats["hits"], stats["misses"], stats["expirations"]) == (1, 1, 1)
    assert stats["hit_ratio"] == 0.5
    assert stats["bytes"] == 0


def test_l1_put_is_refused_after_an_invalidation_of_its_namespace():
    lru = BoundedLRU(max_entries=10, max_bytes=1000, clock=Clock())
    generation = lru.generation("menu")
    other = lru.generation("taxes")
    lru.drop("menu", ["k"])
    assert not lru.put("menu", "k", b"stale", version="1", ttl=60, generation=generation)
    assert lru.put("taxes", "k", b"fine", version="1", ttl=60, generation=other)
    lru.clear()
    assert not lru.put("taxes", "k", b"late", version="1", ttl=60, generation=other)


# ----------------------------------------------------------------------- breaker
def test_breaker_opens_after_threshold_and_probes_once_after_cooldown():
    clock = Clock()
    recovered = []
    breaker = CircuitBreaker(
        "test",
        BreakerPolicy(failure_threshold=2, cooldown=10),
        clock=clock,
        on_recover=lambda: recovered.append(True),
    )
    assert breaker.allow()
    breaker.record_failure()
    assert breaker.state == CLOSED and breaker.allow()
    breaker.record_failure()
    assert breaker.state == OPEN
    assert not breaker.allow()
    clock.advance(10)
    assert breaker.allow()  # the probe
    assert breaker.state == HALF_OPEN
    assert not breaker.allow()  # only one probe at a time
    breaker.record_failure()  # the probe failed: open again for a full cool-down
    assert breaker.state == OPEN
    clock.advance(9)
    assert not breaker.allow()
    clock.advance(1)
    assert breaker.allow()
    breaker.record_success()
    assert breaker.state == CLOSED and recovered == [True]
    assert breaker.stats()["opened"] == 2


# ------------------------------------------------------------------ tiers, Redis
def test_a_miss_is_loaded_once_written_to_l2_and_promoted_from_l2_to_l1(
    redis_url, redis_client, make_cache
):
    loader = Loader(k="menu of config 1")
    first = make_cache(redis_url)
    assert first.fetch(MENU, "k", loader.one("k")).tier == L3
    hit = first.fetch(MENU, "k", loader.one("k"))
    assert (hit.tier, hit.value) == (L1, b"menu of config 1")
    assert hit.version is not None
    # In Redis, with the namespace's TTL.
    data_key = first.l2.data_key(MENU, "k")
    assert redis_client.get(data_key).endswith(b"|menu of config 1")
    assert 890_000 < redis_client.pttl(data_key) <= 900_000
    # Another process: an L2 hit, then L1.
    second = make_cache(redis_url)
    assert second.fetch(MENU, "k", loader.one("k")).tier == L2
    assert second.fetch(MENU, "k", loader.one("k")).tier == L1
    assert loader.calls == [["k"]]


def test_tracking_names_the_tiers_of_this_threads_fetches(redis_url, make_cache):
    loader = Loader(a="A", b="B")
    first, second = make_cache(redis_url), make_cache(redis_url)
    with first.tracking() as outer:
        first.fetch(MENU, "a", loader.one("a"))
        with first.tracking() as inner:
            # A loader that fetches (a menu's pointer building its bytes).
            first.fetch(MENU, "b", lambda: get(first, MENU, "a", loader.one("a")) and b"B")
        assert inner == [L1, L3]
    assert outer == [L3, L1, L3]
    with second.tracking() as tiers:
        get_many(second, MENU, ["a", "b"], loader.many)
    assert tiers == [L2, L2]
    # Another thread's fetches are not this block's.
    with second.tracking() as tiers:
        worker = threading.Thread(target=get, args=(second, MENU, "a", loader.one("a")))
        worker.start()
        worker.join()
    assert tiers == []
    # Outside a block nothing is collected.
    assert get(first, MENU, "a", loader.one("a")) == b"A"


def test_l1_ttl_per_namespace_with_injected_clock(redis_url, make_cache):
    clock = Clock()
    cache = make_cache(redis_url, ttls={PRODUCTS: 60}, clock=clock)
    loader = Loader(a="A")
    get(cache, PRODUCTS, "a", loader.one("a"))
    clock.advance(59)
    assert cache.fetch(PRODUCTS, "a", loader.one("a")).tier == L1
    clock.advance(2)
    # L1 expired; Redis's own TTL (real time) has not.
    assert cache.fetch(PRODUCTS, "a", loader.one("a")).tier == L2
    assert cache.stats()["l1"]["expirations"] == 1
    assert len(loader.calls) == 1


def test_several_keys_take_one_round_trip(redis_url, make_cache):
    loader = Loader(**{f"p{i}": f"product {i}" for i in range(5)})
    keys = [f"p{i}" for i in range(5)]
    writer = make_cache(redis_url)
    assert get_many(writer, PRODUCTS, keys[:3], loader.many) == {
        f"p{i}": f"product {i}".encode() for i in range(3)
    }
    assert writer.l2.calls == 2  # one read, one write-back
    reader = make_cache(redis_url)
    values = get_many(reader, PRODUCTS, keys, loader.many)
    assert values == {f"p{i}": f"product {i}".encode() for i in range(5)}
    assert loader.calls == [["p0", "p1", "p2"], ["p3", "p4"]]  # L3 only for the two new ones
    assert reader.l2.calls == 2
    # All in L1 now: validating them is one round trip for the five.
    hits = reader.fetch_many(PRODUCTS, keys, loader.many)
    assert {hit.tier for hit in hits.values()} == {L1}
    assert reader.l2.calls == 3


def test_unknown_rows_are_answered_and_not_cached(redis_url, make_cache):
    cache = make_cache(redis_url)
    loader = Loader()
    assert get(cache, MENU, "nothing", loader.one("nothing")) is None
    assert get(cache, MENU, "nothing", loader.one("nothing")) is None
    assert len(loader.calls) == 2
    assert cache.stats()["l3"]["misses"] == 2


def test_invalidating_keys_or_a_namespace_reaches_every_tier(redis_url, redis_client, make_cache):
    loader = Loader(a="A1", b="B1")
    cache = make_cache(redis_url)
    other = make_cache(redis_url)  # another process, no listener: validates against Redis
    for instance in (cache, other):
        get_many(instance, MENU, ["a", "b"], loader.many)
    version_a = cache.version(MENU, "a")
    loader.rows["a"] = b"A2"
    assert cache.invalidate(MENU, ["a"])
    assert redis_client.get(cache.l2.data_key(MENU, "a")) is None
    assert cache.version(MENU, "a") != version_a
    hit = other.fetch(MENU, "a", loader.one("a"))
    assert (hit.value, hit.tier) == (b"A2", L3)
    assert other.fetch(MENU, "b", loader.one("b")).tier == L1  # untouched
    loader.rows["b"] = b"B2"
    assert other.invalidate(MENU)
    assert get(cache, MENU, "b", loader.one("b")) == b"B2"
    assert get(cache, MENU, "a", loader.one("a")) == b"A2"


@pytest.mark.parametrize("scope", ["key", "namespace"])
@pytest.mark.parametrize("who", ["same process", "other process"])
def test_a_slow_load_started_before_an_invalidation_is_not_written_back(
    redis_url, redis_client, make_cache, scope, who
):
    cache = make_cache(redis_url)
    invalidator = cache if who == "same process" else make_cache(redis_url)
    entered, release = threading.Event(), threading.Event()
    truth = {"k": b"old"}

    def slow_loader():
        value = truth["k"]  # reads the database before the change commits
        entered.set()
        assert release.wait(10)
        return value

    answers = []
    reader = threading.Thread(target=lambda: answers.append(cache.fetch(MENU, "k", slow_loader)))
    reader.start()
    assert entered.wait(10)
    truth["k"] = b"new"  # the change commits, then invalidates
    assert invalidator.invalidate(MENU, ["k"] if scope == "key" else None)
    release.set()
    reader.join(10)
    assert answers[0].value == b"old"  # its own caller asked before the change
    stored = redis_client.get(cache.l2.data_key(MENU, "k"))
    assert stored is None or stored.endswith(b"|new")
    assert (MENU, "k") not in cache.l1
    assert cache.stats()["l2"]["stale_writes_refused"] == 1
    # Every later reader sees the change.
    assert get(cache, MENU, "k", lambda: truth["k"]) == b"new"
    assert get(invalidator, MENU, "k", lambda: truth["k"]) == b"new"


def test_listener_drops_other_process_l1_entry(redis_url, make_cache):
    loader = Loader(k="v1")
    first, second = make_cache(redis_url), make_cache(redis_url)
    for instance in (first, second):
        instance.start_listener(poll_timeout=0.1)
    assert wait_for(lambda: first.listener.connected and second.listener.connected)
    get(first, MENU, "k", loader.one("k"))
    get(second, MENU, "k", loader.one("k"))
    # Subscribed: an unvalidated L1 hit costs no Redis call.
    calls = second.l2.calls
    assert second.fetch(MENU, "k", loader.one("k"), validate=False).tier == L1
    assert second.l2.calls == calls
    loader.rows["k"] = b"v2"
    first.invalidate(MENU, ["k"])
    assert wait_for(lambda: (MENU, "k") not in second.l1, timeout=2.0)
    assert second.listener.received >= 1
    assert get(second, MENU, "k", loader.one("k"), validate=False) == b"v2"
    # A namespace-wide invalidation too.
    get(second, MENU, "other", lambda: b"o")
    first.invalidate(MENU)
    assert wait_for(lambda: len(second.l1) == 0, timeout=2.0)


def test_no_stale_read_after_invalidate_with_two_processes_and_a_racing_writer(
    redis_url, make_cache
):
    """A reader that starts after the writer's invalidate() returned never
    gets an older value, whichever process and tier answers it."""
    processes = [make_cache(redis_url), make_cache(redis_url)]
    for instance in processes:
        instance.start_listener(poll_timeout=0.05)
    assert wait_for(lambda: all(instance.listener.connected for instance in processes))
    truth = {"version": 0}
    invalidated = {"version": 0}  # the last version whose invalidate() returned
    stop = threading.Event()
    stale, reads, tiers = [], [0], set()

    def loader():
        return str(truth["version"]).encode()

    def reader(instance):
        while not stop.is_set():
            floor = invalidated["version"]
            hit = instance.fetch(MENU, "menu", loader)
            reads[0] += 1
            tiers.add(hit.tier)
            if int(hit.value) < floor:
                stale.append((floor, hit.value, hit.tier))

    threads = [threading.Thread(target=reader, args=(processes[index % 2],)) for index in range(4)]
    for thread in threads:
        thread.start()
    for version in range(1, 151):
        truth["version"] = version  # commit
        assert processes[version % 2].invalidate(MENU, ["menu"])
        invalidated["version"] = version
        time.sleep(0.002)
    stop.set()
    for thread in threads:
        thread.join(10)
    assert stale == []
    assert reads[0] > 150
    assert tiers == {L1, L2, L3}
    assert get(processes[0], MENU, "menu", loader) == b"150"


def test_without_listener_unvalidated_reads_still_ask_redis(redis_url, make_cache):
    cache = make_cache(redis_url)
    get(cache, MENU, "k", lambda: b"v")
    calls = cache.l2.calls
    assert cache.fetch(MENU, "k", lambda: b"v", validate=False).tier == L1
    assert cache.l2.calls == calls + 1


def test_stats_per_tier(redis_url, make_cache):
    cache = make_cache(redis_url)
    loader = Loader(a="aaaa", b="bb")
    get(cache, MENU, "a", loader.one("a"))  # L1 miss, L2 miss, L3 hit
    get(cache, MENU, "a", loader.one("a"))  # L1 hit
    get(cache, MENU, "a", loader.one("a"))  # L1 hit
    get(cache, MENU, "b", loader.one("b"))  # misses, L3 hit
    get(cache, MENU, "c", loader.one("c"))  # misses, L3 miss
    stats = cache.stats(server=True)
    assert stats["l1"]["hits"] == 2 and stats["l1"]["misses"] == 3
    assert stats["l1"]["hit_ratio"] == pytest.approx(2 / 5)
    assert stats["l1"]["bytes"] == entry_size(MENU, "a", b"aaaa") + entry_size(MENU, "b", b"bb")
    assert stats["l2"]["hits"] == 0 and stats["l2"]["misses"] == 3
    assert stats["l2"]["bytes_written"] == 6
    assert stats["l2"]["bytes"] > 0 and stats["l2"]["evictions"] >= 0
    assert stats["l3"] == {
        "hits": 2,
        "misses": 1,
        "hit_ratio": pytest.approx(2 / 3),
        "evictions": 0,
        "bytes": 6,
    }
    assert stats["l2"]["breaker"]["state"] == CLOSED
    other = make_cache(redis_url)
    get(other, MENU, "a", loader.one("a"))
    assert other.stats()["l2"]["hits"] == 1 and other.stats()["l2"]["hit_ratio"] == 1.0
    assert other.stats()["l2"]["bytes_read"] == 4


def test_without_redis_a_load_overtaken_by_an_invalidation_stays_out_of_l1():
    cache = TieredCache()
    entered, release = threading.Event(), threading.Event()
    truth = {"k": b"old"}

    def slow_loader():
        value = truth["k"]
        entered.set()
        assert release.wait(10)
        return value

    reader = threading.Thread(target=get, args=(cache, MENU, "k", slow_loader))
    reader.start()
    assert entered.wait(10)
    truth["k"] = b"new"
    assert cache.invalidate(MENU, ["k"])
    release.set()
    reader.join(10)
    assert (MENU, "k") not in cache.l1
    assert cache.stats()["l1"]["refused"] == 1
    assert get(cache, MENU, "k", lambda: truth["k"]) == b"new"


def test_without_redis_the_cache_is_l1_over_the_loader_with_the_outage_ttl():
    clock = Clock()
    cache = TieredCache(clock=clock)
    loader = Loader(k="v")
    assert cache.fetch(MENU, "k", loader.one("k")).tier == L3
    assert cache.fetch(MENU, "k", loader.one("k")).tier == L1
    clock.advance(CacheSettings().cache_outage_ttl + 0.1)
    assert cache.fetch(MENU, "k", loader.one("k")).tier == L3
    assert len(loader.calls) == 2


def test_stable_keys_stay_in_l1_without_redis_for_their_namespace_ttl():
    clock = Clock()
    cache = TieredCache(clock=clock)
    loader = Loader(k="v")
    assert cache.fetch(MENU, "k", loader.one("k"), stable=True).tier == L3
    clock.advance(CacheSettings().cache_outage_ttl + 0.1)
    assert cache.fetch(MENU, "k", loader.one("k"), stable=True).tier == L1
    clock.advance(CacheSettings().cache_ttl_menu)
    assert cache.fetch(MENU, "k", loader.one("k"), stable=True).tier == L3
    assert len(loader.calls) == 2


def test_a_stable_l1_hit_does_not_ask_redis(own_redis, make_cache):
    cache = make_cache(own_redis.url, settings=OUTAGE)
    loader = Loader(a="A")
    assert cache.fetch(MENU, "a", loader.one("a"), stable=True).tier == L3
    own_redis.stop()
    started = time.monotonic()
    hit = cache.fetch(MENU, "a", loader.one("a"), stable=True)
    assert (hit.value, hit.tier) == (b"A", L1)
    assert time.monotonic() - started < OUTAGE.cache_redis_timeout
    assert cache.breaker.state == CLOSED  # nothing was asked of the stopped server
    assert len(loader.calls) == 1


# --------------------------------------------------------------- Redis outage
OUTAGE = CacheSettings(
    cache_breaker_failures=2,
    cache_breaker_cooldown=10,
    cache_outage_ttl=5,
    cache_redis_timeout=0.3,
)


def test_redis_stopped_and_restarted(own_redis, make_cache):
    clock = Clock()
    cache = make_cache(own_redis.url, settings=OUTAGE, clock=clock)
    cache.start_listener(poll_timeout=0.1, max_backoff=0.2)
    assert wait_for(lambda: cache.listener.connected)
    loader = Loader(a="A", b="B")
    assert cache.fetch(MENU, "a", loader.one("a")).tier == L3
    assert cache.fetch(MENU, "a", loader.one("a")).tier == L1

    own_redis.stop()
    calls = cache.l2.calls
    for _ in range(2):  # the failures that open the breaker, answered from L1
        hit = cache.fetch(MENU, "a", loader.one("a"))
        assert (hit.tier, hit.value, hit.version) == (L1, b"A", None)
    assert cache.breaker.state == OPEN
    assert cache.l2.calls == calls + 2
    started = time.monotonic()
    for _ in range(50):
        assert get(cache, MENU, "a", loader.one("a")) == b"A"
    assert cache.fetch(MENU, "b", loader.one("b")).tier == L3  # answered by the loader
    assert cache.fetch(MENU, "b", loader.one("b")).tier == L1
    assert cache.version(MENU, "a") is None  # unknown while Redis cannot be asked
    assert cache.l2.calls == calls + 2  # not one Redis attempt while open
    assert time.monotonic() - started < 1.0
    assert wait_for(lambda: not cache.listener.connected)

    # Bounded staleness: past the outage TTL, L1 is not trusted.
    clock.advance(OUTAGE.cache_outage_ttl + 0.1)
    loads = len(loader.calls)
    assert cache.fetch(MENU, "a", loader.one("a")).tier == L3
    assert cache.fetch(MENU, "b", loader.one("b")).tier == L3
    assert len(loader.calls) == loads + 2
    assert len(cache.l1) == 2

    own_redis.start()
    # The listener resubscribes on its own and flushes L1: it missed messages.
    assert wait_for(lambda: cache.listener.subscriptions == 2)
    assert len(cache.l1) == 0
    get(cache, MENU, "b", loader.one("b"))
    assert cache.breaker.state == OPEN  # still cooling down: not asked
    assert cache.l2.calls == calls + 2

    clock.advance(OUTAGE.cache_breaker_cooldown)
    assert len(cache.l1) == 1
    hit = cache.fetch(MENU, "a", loader.one("a"))  # the probe
    assert hit.tier == L3 and hit.version is not None  # the restarted Redis is empty
    assert cache.breaker.state == CLOSED
    assert cache.l2.calls == calls + 4  # the probe's read and its write-back
    assert len(cache.l1) == 0  # flushed on reconnect
    assert cache.stats()["l2"]["recoveries"] == 1
    assert cache.fetch(MENU, "a", loader.one("a")).tier == L2
    assert cache.fetch(MENU, "a", loader.one("a")).tier == L1


def test_listener_notices_a_redis_that_stops_answering(own_redis, make_cache):
    cache = make_cache(own_redis.url, settings=OUTAGE, clock=Clock())
    cache.start_listener(poll_timeout=0.05, ping_interval=0.2, max_backoff=0.2)
    assert wait_for(lambda: cache.listener.connected)
    cache.fetch(MENU, "a", lambda: b"A")
    calls = cache.l2.calls
    assert cache.fetch(MENU, "a", lambda: b"A", validate=False).tier == L1
    assert cache.l2.calls == calls  # trusted without asking Redis
    own_redis.pause()  # the connection stays open, nothing answers
    assert wait_for(lambda: not cache.listener.connected, timeout=3.0)
    # No longer trusted on the listener's word: Redis is asked (and fails).
    assert cache.fetch(MENU, "a", lambda: b"A", validate=False).value == b"A"
    assert cache.l2.calls == calls + 1
    own_redis.resume()
    assert wait_for(lambda: cache.listener.subscriptions == 2, timeout=5.0)
    assert cache.listener.connected and len(cache.l1) == 0


def test_redis_that_stops_answering_costs_no_timeout_while_the_breaker_is_open(
    own_redis, make_cache
):
    clock = Clock()
    cache = make_cache(own_redis.url, settings=OUTAGE, clock=clock)
    other = make_cache(own_redis.url, settings=OUTAGE)
    loader = Loader(a="A1")
    get(cache, MENU, "a", loader.one("a"))
    assert other.fetch(MENU, "a", loader.one("a")).tier == L2

    own_redis.pause()  # connections are accepted, nothing is answered
    started = time.monotonic()
    assert get(cache, MENU, "a", loader.one("a")) == b"A1"
    assert time.monotonic() - started >= OUTAGE.cache_redis_timeout * 0.9
    loader.rows["a"] = b"A2"
    assert not cache.invalidate(MENU, ["a"])  # the second failure: kept for later
    assert cache.breaker.state == OPEN
    calls = cache.l2.calls
    started = time.monotonic()
    for _ in range(20):
        assert get(cache, MENU, "a", loader.one("a")) == b"A2"
    cache.invalidate(MENU, ["a"])
    assert time.monotonic() - started < OUTAGE.cache_redis_timeout  # not even one timeout
    assert cache.l2.calls == calls

    own_redis.resume()
    clock.advance(OUTAGE.cache_breaker_cooldown)
    assert get(cache, MENU, "a", loader.one("a")) == b"A2"
    assert cache.breaker.state == CLOSED
    # The invalidation made while Redis was away reached it before anything else.
    hit = other.fetch(MENU, "a", loader.one("a"))
    assert (hit.value, hit.tier) != (b"A1", L1)
    assert hit.value == b"A2"
