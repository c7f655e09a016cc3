import threading

from pos_core.cache import VersionedLRU


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
