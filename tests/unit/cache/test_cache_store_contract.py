"""The cache store contract, run unchanged on the memory store and on Faust tables on RocksDB."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

import pytest

from tests.support.cache import STORES, RecordingChangelog
from worker.cache.base import CacheStore
from worker.errors import CacheError

MakeStore = Callable[..., CacheStore]


@pytest.fixture(params=STORES)
def store(request: pytest.FixtureRequest, make_store: MakeStore) -> CacheStore:
    return make_store(request.param)


def test_values_are_read_back_by_partition_and_space(store: CacheStore) -> None:
    asyncio.run(store.put_many(1, [("entries", "a/x", b"1"), ("index", "t\0a/x", b"2")]))
    assert store.get_many(1, "entries", ["a/x", "a/y"]) == [b"1", None]
    assert store.get_many(1, "index", ["t\0a/x"]) == [b"2"]
    assert store.get_many(2, "entries", ["a/x"]) == [None], "partitions are separate"
    assert store.get_many(1, "index", ["a/x"]) == [None], "spaces are separate"


def test_a_later_write_replaces_the_value(store: CacheStore) -> None:
    asyncio.run(store.put_many(0, [("entries", "k", b"old")]))
    asyncio.run(store.put_many(0, [("entries", "k", b"new")]))
    assert store.get_many(0, "entries", ["k"]) == [b"new"]


def test_scans_are_in_key_order_within_a_prefix_from_a_start_up_to_a_limit(
    store: CacheStore,
) -> None:
    keys = ["acme/b", "acme/a", "acmf/a", "acm/z", "acme/c"]
    asyncio.run(store.put_many(3, [("entries", key, key.encode()) for key in keys]))
    assert [k for k, _ in store.scan(3, "entries", prefix="acme/", limit=10)] == [
        "acme/a",
        "acme/b",
        "acme/c",
    ]
    assert [k for k, _ in store.scan(3, "entries", prefix="acme/", limit=2)] == ["acme/a", "acme/b"]
    assert store.scan(3, "entries", start="acme/b", limit=2) == [
        ("acme/b", b"acme/b"),
        ("acme/c", b"acme/c"),
    ]
    assert [k for k, _ in store.scan(3, "entries", start="acme/c\0", limit=5)] == ["acmf/a"]
    assert store.scan(3, "entries", limit=0) == []


def test_deleted_keys_are_gone_and_others_stay(store: CacheStore) -> None:
    asyncio.run(
        store.put_many(0, [("entries", "a", b"1"), ("entries", "b", b"2"), ("index", "t\0a", b"3")])
    )
    asyncio.run(store.delete_many(0, [("entries", "a"), ("index", "t\0a"), ("entries", "nope")]))
    assert store.get_many(0, "entries", ["a", "b"]) == [None, b"2"]
    assert store.get_many(0, "index", ["t\0a"]) == [None]


def test_count_tells_about_how_many_entries_a_partition_holds(store: CacheStore) -> None:
    asyncio.run(store.put_many(2, [("entries", f"k{i}", b"v") for i in range(20)]))
    asyncio.run(store.put_many(2, [("index", f"t\0k{i}", b"v") for i in range(20)]))
    assert store.count(2) == 20
    assert store.count(1) == 0


def test_the_store_says_which_partitions_it_owns(make_store: MakeStore) -> None:
    for kind in STORES:
        store = make_store(kind, partitions=6, owned=[1, 4])
        assert store.partitions == 6
        assert store.owned() == frozenset({1, 4})


# ----------------------------------------------------------------- RocksDB and its changelog


def test_every_write_and_removal_goes_to_the_changelog_of_its_partition(
    make_store: MakeStore, changelog: RecordingChangelog
) -> None:
    store = make_store("rocksdb")
    asyncio.run(store.put_many(2, [("entries", "a", b"1"), ("index", "t\0a", b"9")]))
    asyncio.run(store.delete_many(2, [("entries", "a")]))
    assert changelog.records == [
        ("cache-entries", 2, b"a", b"1"),
        ("cache-index", 2, b"t\0a", b"9"),
        ("cache-entries", 2, b"a", None),
    ]


def test_local_data_stays_when_the_changelog_does_not_take_the_tombstones(
    make_store: MakeStore, changelog: RecordingChangelog
) -> None:
    store = make_store("rocksdb")
    asyncio.run(store.put_many(0, [("entries", "a", b"1")]))
    changelog.fail = True
    with pytest.raises(CacheError):
        asyncio.run(store.delete_many(0, [("entries", "a")]))
    assert store.get_many(0, "entries", ["a"]) == [b"1"], "still there for the retry to find"


def test_partitions_are_separate_rocksdb_databases(make_store: MakeStore) -> None:
    store = make_store("rocksdb")
    asyncio.run(store.put_many(0, [("entries", "k", b"zero")]))
    asyncio.run(store.put_many(3, [("entries", "k", b"three")]))
    assert store.get_many(0, "entries", ["k"]) == [b"zero"]
    assert store.get_many(3, "entries", ["k"]) == [b"three"]
