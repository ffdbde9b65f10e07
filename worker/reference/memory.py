"""Reference data in memory: for tests, the broker-free harness and the demo's seed."""

from __future__ import annotations

from collections.abc import Collection, Mapping
from decimal import Decimal

from worker.reference.base import (
    Product,
    Revised,
    encode_product,
    encode_rate,
    revision_of,
)


class MemoryCatalog:
    """A :class:`~worker.reference.base.Catalog` over dictionaries.

    Revisions are computed from the same bytes the topics carry, so they match
    those of a table-backed catalog holding the same records.
    """

    def __init__(self, products: Mapping[str, Product], eur_rates: Mapping[str, Decimal]) -> None:
        self._products = dict(products)
        self._rates = dict(eur_rates)

    def products(self, skus: Collection[str]) -> dict[str, Revised[Product]]:
        found = {}
        for sku in skus:
            product = self._products.get(sku)
            raw = encode_product(product) if product is not None else None
            found[sku] = Revised(product, revision_of(raw))
        return found

    def eur_rates(self, currencies: Collection[str]) -> dict[str, Revised[Decimal]]:
        found = {}
        for currency in currencies:
            rate = self._rates.get(currency)
            raw = encode_rate(currency, rate) if rate is not None else None
            found[currency] = Revised(rate, revision_of(raw))
        return found

    def put_product(self, product: Product) -> None:
        """Add or change a product (as a new record on the topic would)."""
        self._products[product.sku] = product

    def put_rate(self, currency: str, per_eur: Decimal) -> None:
        """Add or change a rate."""
        self._rates[currency] = per_eur

    @property
    def all_products(self) -> list[Product]:
        return list(self._products.values())

    @property
    def all_rates(self) -> dict[str, Decimal]:
        return dict(self._rates)


def demo_catalog() -> MemoryCatalog:
    """The small catalog the demo, the sample workload and the tests use."""
    products = [
        Product("SKU-1", "Espresso beans 1 kg", Decimal("24.90"), "EUR"),
        Product("SKU-2", "Pour-over kettle", Decimal("59.00"), "EUR"),
        Product("SKU-3", "Grinder", Decimal("129.00"), "USD"),
        Product("SKU-4", "Paper filters x100", Decimal("4.50"), "GBP"),
    ]
    rates = {
        "EUR": Decimal("1"),
        "USD": Decimal("1.08"),
        "GBP": Decimal("0.86"),
        "JPY": Decimal("162.5"),
        "CHF": Decimal("0.95"),
    }
    return MemoryCatalog({p.sku: p for p in products}, rates)
