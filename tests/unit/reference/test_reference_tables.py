"""Reference data in global tables on RocksDB: the catalog it serves and the changes it reports."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from decimal import Decimal
from pathlib import Path
from types import SimpleNamespace

import faust
import pytest
from faust.types import TP

from worker.reference.base import Product, encode_product, encode_rate
from worker.reference.memory import demo_catalog
from worker.reference.publish import ReferenceData
from worker.reference.tables import ReferenceTables, TableCatalog
from worker.settings import CacheSettings
from worker.state.rocksdb import MemoryBudget

Feed = Callable[..., None]


@pytest.fixture
def tables(tmp_path: Path) -> ReferenceTables:
    app = faust.App("ref", datadir=str(tmp_path), autodiscover=False, topic_allow_declare=False)
    return ReferenceTables(
        app,
        products=("t.reference.products", 1),
        rates=("t.reference.rates", 1),
        budget=MemoryBudget(CacheSettings(block_cache_mb=4, memtable_budget_mb=8)),
    )


@pytest.fixture
def feed(tables: ReferenceTables) -> Feed:
    """Apply records as Faust's recovery does: ``feed("products", (key, value), ...)``."""
    offsets = {"products": 0, "rates": 0}

    def apply(which: str, *records: tuple[bytes, bytes | None]) -> None:
        table = tables.products if which == "products" else tables.rates
        events = []
        for key, value in records:
            offsets[which] += 1
            message = SimpleNamespace(
                tp=TP(table.changelog_topic_name, 0),
                partition=0,
                offset=offsets[which],
                key=key,
                value=value,
            )
            events.append(SimpleNamespace(message=message))
        table.apply_changelog_batch(events)

    return apply


def seed(feed: Feed) -> None:
    catalog = demo_catalog()
    feed("products", *((p.sku.encode(), encode_product(p)) for p in catalog.all_products))
    feed("rates", *((c.encode(), encode_rate(c, r)) for c, r in catalog.all_rates.items()))


def go_live(tables: ReferenceTables) -> None:
    for table in (tables.products, tables.rates):
        asyncio.run(table.on_recovery_completed(set(), set()))


def test_the_table_catalog_answers_like_the_memory_catalog_with_the_same_revisions(
    tables: ReferenceTables, feed: Feed
) -> None:
    seed(feed)
    catalog, memory = TableCatalog(tables), demo_catalog()
    skus, currencies = ["SKU-1", "SKU-3", "SKU-404"], ["USD", "GBP", "XXX"]
    assert catalog.products(skus) == memory.products(skus)
    assert catalog.eur_rates(currencies) == memory.eur_rates(currencies)
    assert catalog.products(["SKU-404"])["SKU-404"].revision == ""


def test_restoring_reports_nothing_and_later_changes_report_their_tags(
    tables: ReferenceTables, feed: Feed
) -> None:
    changed: list[list[str]] = []
    tables.on_change(changed.append)
    seed(feed)
    assert changed == [], "a restore has nothing to compare with"
    go_live(tables)

    same = demo_catalog().products(["SKU-2"])["SKU-2"].value
    assert same is not None
    feed("products", (b"SKU-2", encode_product(same)))  # published again, unchanged
    feed("products", (b"SKU-1", encode_product(Product("SKU-1", "Beans", Decimal("30"), "EUR"))))
    feed("products", (b"SKU-9", encode_product(Product("SKU-9", "Jug", Decimal("12"), "EUR"))))
    feed("rates", (b"GBP", encode_rate("GBP", Decimal("0.9"))), (b"USD", None))
    assert changed == [["product:SKU-1"], ["product:SKU-9"], ["rate:GBP", "rate:USD"]]
    rates = TableCatalog(tables).eur_rates(["GBP", "USD"])
    assert (rates["GBP"].value, rates["USD"].value) == (Decimal("0.9"), None)


def test_a_record_that_is_not_valid_counts_as_absent(tables: ReferenceTables, feed: Feed) -> None:
    feed("products", (b"SKU-X", b'{"sku": "SKU-X"}'))
    [found] = TableCatalog(tables).products(["SKU-X"]).values()
    assert found.value is None
    assert found.revision != "", "still a revision: a fix of the record changes it"


def test_the_reference_data_file_becomes_keyed_records_and_tombstones(tmp_path: Path) -> None:
    path = tmp_path / "ref.json"
    path.write_text(
        '{"products": [{"sku": "A", "name": "a", "unit_price": "1.50", "currency": "EUR"}],'
        ' "rates": [{"currency": "USD", "per_eur": "1.1"}], "delete_products": ["B"]}'
    )
    records = ReferenceData.from_file(path).records("p", "r")
    assert [(topic, key) for topic, key, _ in records] == [("p", b"A"), ("r", b"USD"), ("p", b"B")]
    assert records[2][2] is None
