"""Cache entries: bytes with the expiry up front, tags from dependencies and the operation."""

from __future__ import annotations

from worker.cache.entries import (
    CacheEntry,
    encode_expiry,
    expiry_of,
    index_key,
    index_prefix,
    split_index_key,
)


def test_an_entry_survives_its_bytes_and_its_expiry_reads_without_parsing() -> None:
    entry = CacheEntry("ok", {"total": "1.00"}, 1234.5, 1000.0, {"product:SKU-1": "ab12"})
    raw = entry.encode()
    assert CacheEntry.decode(raw) == entry
    assert expiry_of(raw) == 1234.5
    assert expiry_of(encode_expiry(99.25)) == 99.25


def test_expiry_is_inclusive() -> None:
    entry = CacheEntry("not_found", {"message": "x"}, 100.0, 40.0)
    assert not entry.expired(99.999)
    assert entry.expired(100.0)


def test_the_tags_of_an_entry_are_its_dependencies() -> None:
    entry = CacheEntry("ok", {}, 1.0, 0.0, {"product:SKU-1": "r1", "rate:USD": "r2"})
    assert entry.tags == ["product:SKU-1", "rate:USD"]


def test_index_keys_group_under_their_tag() -> None:
    key = index_key("product:SKU-1", "acme/price.quote/v1/abc")
    assert key.startswith(index_prefix("product:SKU-1"))
    assert not key.startswith(index_prefix("product:SKU-10"))
    assert split_index_key(key) == ("product:SKU-1", "acme/price.quote/v1/abc")
