"""The cache memory measurement fills the worker's real RocksDB cache and reads RSS."""

from __future__ import annotations

import asyncio

from bench.cache_memory import fill


def test_every_entry_is_stored_and_rss_is_sampled_along_the_way() -> None:
    report = asyncio.run(fill(entries=3000, step=1000, batch=500, seed=3))
    assert report["entries"] == 3000
    assert report["entries_counted_by_rocksdb"] == 3000, "each answer is one RocksDB entry"
    assert [s["entries"] for s in report["samples"]] == [0, 1000, 2000, 3000]
    assert all(s["rss_mb"] > 0 for s in report["samples"])
    # Each figure is rounded to 0.1 MiB on its own.
    growth = report["rss_full_mb"] - report["rss_empty_mb"]
    assert abs(report["rss_growth_mb"] - growth) <= 0.11
    assert report["peak_rss_mb"] >= report["rss_full_mb"]
