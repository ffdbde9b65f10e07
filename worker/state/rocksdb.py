"""RocksDB for Faust tables with one memory budget for the whole process.

Faust's rocksdict options give every partition database its own 2 GiB block
cache and up to three 64 MiB memtables, and leave index and filter blocks on
the heap, unaccounted: with result, index and reference tables, actives and
standbys, a worker opens a dozen or more databases, each free to grow. Here
every database opened by this process shares one LRU block cache (index and
filter blocks are charged to it too) and one write-buffer manager that caps
the memtables of all databases together, so RocksDB's memory is about
``block_cache_mb + memtable_budget_mb`` however many partitions move in.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator, Sequence
from typing import Any

import rocksdict
from faust.stores import rocksdb as faust_rocksdb

from worker.settings import CacheSettings

log = logging.getLogger(__name__)

_MB = 1024 * 1024
#: Bits per key of the bloom filters: about 1% false positives (Faust uses 3, about 15%).
_BLOOM_BITS = 10


class MemoryBudget:
    """The block cache and memtable budget every database of this process shares."""

    def __init__(self, settings: CacheSettings) -> None:
        self.block_cache_bytes = settings.block_cache_mb * _MB
        self.memtable_bytes = settings.memtable_budget_mb * _MB
        self.write_buffer_bytes = min(settings.write_buffer_mb * _MB, self.memtable_bytes // 2)
        self.max_open_files = settings.max_open_files
        self.block_cache = rocksdict.Cache(self.block_cache_bytes)
        # allow_stall: writers wait for a flush rather than overrun the budget.
        self.write_buffers = rocksdict.WriteBufferManager(self.memtable_bytes, True)

    def options(self) -> rocksdict.Options:
        """Options for one database, drawing on the shared budget."""
        options = rocksdict.Options(raw_mode=True)
        options.create_if_missing(True)
        options.set_max_open_files(self.max_open_files)
        options.set_write_buffer_size(self.write_buffer_bytes)
        options.set_max_write_buffer_number(2)
        options.set_write_buffer_manager(self.write_buffers)
        options.set_keep_log_file_num(2)
        options.set_max_log_file_size(4 * _MB)
        table = rocksdict.BlockBasedOptions()
        table.set_block_cache(self.block_cache)
        table.set_bloom_filter(_BLOOM_BITS, False)
        # Index and filter blocks live in the block cache, so they count against it;
        # level-0 ones stay pinned because every read consults them.
        table.set_cache_index_and_filter_blocks(True)
        table.set_pin_l0_filter_and_index_blocks_in_cache(True)
        options.set_block_based_table_factory(table)
        return options

    def usage(self) -> dict[str, int]:
        """Bytes in use now: block cache (with pinned blocks) and memtables."""
        return {
            "block_cache": int(self.block_cache.get_usage()),
            "memtables": int(self.write_buffers.get_usage()),
        }


class BoundedRocksStore(faust_rocksdb.Store):
    """Faust's RocksDB store on the rocksdict driver, opened within a :class:`MemoryBudget`.

    Everything else (partition databases, persisted changelog offsets,
    recovery, standbys) is Faust's.
    """

    def __init__(self, *args: Any, budget: MemoryBudget, **kwargs: Any) -> None:
        kwargs.setdefault("driver", "rocksdict")
        super().__init__(*args, **kwargs)
        self.budget = budget

    def _open_for_partition(self, partition: int) -> Any:
        path = self.partition_path(partition)
        path.parent.mkdir(parents=True, exist_ok=True)
        db = rocksdict.Rdict(
            str(path),
            options=self.budget.options(),
            access_type=rocksdict.AccessType.read_write(),
        )
        db.set_read_options(rocksdict.ReadOptions())
        return db

    def db(self, partition: int) -> Any:
        """The database of ``partition``, opened on first use."""
        return self._db_for_partition(partition)

    def open_partitions(self) -> list[int]:
        """The partitions whose databases are open in this process."""
        return sorted(self._dbs)

    def get_many(self, partition: int, keys: Sequence[bytes]) -> list[bytes | None]:
        """Values of ``keys`` in ``partition``, in one multi-get."""
        if not keys:
            return []
        found: list[bytes | None] = self.db(partition).get(list(keys))
        return found

    def get_any(self, keys: Sequence[bytes]) -> list[bytes | None]:
        """Values of ``keys`` from whichever open partition holds them (global tables)."""
        values: list[bytes | None] = [None] * len(keys)
        for partition in self.open_partitions():
            missing = [i for i, value in enumerate(values) if value is None]
            if not missing:
                break
            found = self.get_many(partition, [keys[i] for i in missing])
            for i, value in zip(missing, found, strict=True):
                values[i] = value
        return values

    def iterate(self, partition: int, start: bytes = b"") -> Iterator[tuple[bytes, bytes]]:
        """Pairs of ``partition`` in key order from ``start`` on, skipping Faust's offset key."""
        offset_key = self.offset_key
        for key, value in self.db(partition).items(from_key=start):
            if key != offset_key:
                yield key, value

    def persist_offset(self, tp: Any, offset: int) -> None:
        """Record a confirmed changelog offset, unless the partition was closed meanwhile.

        Faust's own callback would reopen a database that a rebalance or a
        shutdown just closed.
        """
        if tp.partition in self._dbs:
            self.set_persisted_offset(tp, offset)

    def approximate_count(self, partition: int) -> int:
        """RocksDB's estimate of the keys in ``partition`` (cheap, no scan)."""
        db = self.db(partition)
        estimate = int(db.property_int_value("rocksdb.estimate-num-keys") or 0)
        offset_keys = 1 if db.get(self.offset_key) is not None else 0
        return max(0, estimate - offset_keys)
