"""Reference data in global tables fed from compacted topics, read by every worker in full.

Each reference topic is the changelog of a global table: Faust restores it
into local RocksDB at start-up (every partition, on every worker) and keeps
applying new records as they arrive. Nothing in the worker writes these
tables; ``worker reference load`` publishes to the topics.

When a record changes after start-up, the table tells its listeners which
tags changed (``product:SKU-1``, ``rate:USD``), so that the cache can remove
the answers that depend on them. A worker restored from an empty state
directory has nothing to compare with and stays silent while restoring: the
revisions inside cached entries cover that case (see docs/cache.md).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Collection, Iterable
from decimal import Decimal
from typing import Any, TypeVar

from worker.reference.base import (
    Product,
    Revised,
    decode_product,
    decode_rate,
    product_tag,
    rate_tag,
    revision_of,
)
from worker.state.rocksdb import MemoryBudget
from worker.state.tables import DeclaredGlobalTable

log = logging.getLogger(__name__)

ChangeListener = Callable[[list[str]], None]
T = TypeVar("T")


class ReferenceTable(DeclaredGlobalTable):
    """A global table of reference records that reports changed keys as tags."""

    def __init__(self, app: Any, *, tag: Callable[[str], str], **kwargs: Any) -> None:
        super().__init__(app, **kwargs)
        self._tag = tag
        self._listeners: list[ChangeListener] = []
        #: False until the first restore completed: until then there is nothing to compare with.
        self.live = False

    def on_change(self, listener: ChangeListener) -> None:
        """Call ``listener(tags)`` after records changed."""
        self._listeners.append(listener)

    def apply_changelog_batch(self, batch: Iterable[Any]) -> None:
        events = list(batch)
        keys = [event.message.key for event in events if event.message.key is not None]
        before = dict(zip(keys, self.store.get_any(keys), strict=True)) if keys else {}
        super().apply_changelog_batch(events)
        changed: dict[str, None] = {}
        for event in events:
            key, value = event.message.key, event.message.value
            if key is None:
                continue
            old = before.get(key)
            # A key first seen while restoring is not a change, only new to this worker.
            if old != value and (old is not None or self.live):
                changed[self._tag(key.decode(errors="replace"))] = None
            before[key] = value
        if changed and self.live:
            tags = list(changed)
            log.info("reference data changed: %s", ", ".join(tags[:20]))
            for listener in self._listeners:
                listener(tags)

    async def on_recovery_completed(self, active_tps: Any, standby_tps: Any) -> None:
        await super().on_recovery_completed(active_tps, standby_tps)
        self.live = True


class ReferenceTables:
    """The product catalog and the EUR rates as global tables: a :class:`Catalog` on RocksDB."""

    def __init__(
        self,
        app: Any,
        *,
        products: tuple[str, int],
        rates: tuple[str, int],
        budget: MemoryBudget,
    ) -> None:
        """``products`` and ``rates`` are each a declared topic name and its partition count."""
        self.products: ReferenceTable = app.tables.add(
            ReferenceTable(
                app,
                name="reference-products",
                topic=products[0],
                partitions=products[1],
                budget=budget,
                tag=product_tag,
            )
        )
        self.rates: ReferenceTable = app.tables.add(
            ReferenceTable(
                app,
                name="reference-rates",
                topic=rates[0],
                partitions=rates[1],
                budget=budget,
                tag=rate_tag,
            )
        )

    def on_change(self, listener: ChangeListener) -> None:
        """Call ``listener(tags)`` whenever products or rates change after start-up."""
        self.products.on_change(listener)
        self.rates.on_change(listener)

    def products_of(self, skus: Collection[str]) -> dict[str, Revised[Product]]:
        return _read(self.products, skus, decode_product, "product")

    def rates_of(self, currencies: Collection[str]) -> dict[str, Revised[Decimal]]:
        return _read(self.rates, currencies, decode_rate, "rate")


def _read(
    table: ReferenceTable, keys: Collection[str], decode: Callable[[bytes], T | None], kind: str
) -> dict[str, Revised[T]]:
    """``keys`` in one multi-get, each decoded with its revision; an invalid record is absent."""
    ordered = list(keys)
    raw = table.store.get_any([key.encode() for key in ordered])
    found: dict[str, Revised[T]] = {}
    for key, value in zip(ordered, raw, strict=True):
        decoded = decode(value) if value is not None else None
        if value is not None and decoded is None:
            log.warning("reference %s %r is not a valid record; treated as absent", kind, key)
        found[key] = Revised(decoded, revision_of(value))
    return found


class TableCatalog:
    """The :class:`~worker.reference.base.Catalog` the worker's operations read."""

    def __init__(self, tables: ReferenceTables) -> None:
        self._tables = tables

    def products(self, skus: Collection[str]) -> dict[str, Revised[Product]]:
        return self._tables.products_of(skus)

    def eur_rates(self, currencies: Collection[str]) -> dict[str, Revised[Decimal]]:
        return self._tables.rates_of(currencies)
