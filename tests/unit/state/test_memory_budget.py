"""RocksDB within one memory budget: every database of the process shares it."""

from __future__ import annotations

from pathlib import Path

import faust

from worker.settings import CacheSettings
from worker.state.rocksdb import MemoryBudget
from worker.state.tables import DeclaredTable

MB = 1024 * 1024


def tables(tmp_path: Path, budget: MemoryBudget) -> list[DeclaredTable]:
    app = faust.App("budget", datadir=str(tmp_path), autodiscover=False, topic_allow_declare=False)
    return [
        app.tables.add(
            DeclaredTable(app, name=name, topic=f"t.{name}", partitions=4, budget=budget)
        )
        for name in ("one", "two")
    ]


def test_every_partition_of_every_table_shares_one_bounded_block_cache(tmp_path: Path) -> None:
    budget = MemoryBudget(CacheSettings(block_cache_mb=3, memtable_budget_mb=8))
    one, two = tables(tmp_path, budget)
    dbs = [one.store.db(p) for p in range(4)] + [two.store.db(p) for p in range(4)]
    assert {db.property_int_value("rocksdb.block-cache-capacity") for db in dbs} == {3 * MB}

    writer = dbs[0]
    for i in range(20_000):
        writer.put(b"key-%06d" % i, b"v" * 100)
    writer.flush()
    for i in range(20_000):
        writer.get(b"key-%06d" % i)
    used = budget.usage()["block_cache"]
    assert 0 < used <= 3 * MB
    # One cache: what one database loaded shows in every other's usage.
    assert {db.property_int_value("rocksdb.block-cache-usage") for db in dbs} == {used}


def test_memtables_are_small_and_capped_together(tmp_path: Path) -> None:
    budget = MemoryBudget(CacheSettings(memtable_budget_mb=8, write_buffer_mb=64))
    assert budget.write_buffer_bytes == 4 * MB, "a memtable is at most half the budget"
    one, _ = tables(tmp_path, budget)
    db = one.store.db(0)
    for i in range(2_000):
        db.put(b"k%d" % i, b"v" * 1000)
    assert 0 < budget.usage()["memtables"] <= 8 * MB
