"""``price.quote``: price a quantity of a catalog item in a currency."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from decimal import ROUND_HALF_EVEN, Decimal
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field

from worker.errors import ClientError, NotFoundError
from worker.operations.base import Operation

Currency = Literal["EUR", "USD", "GBP", "JPY", "CHF"]
_CENT = Decimal("0.01")


@dataclass(frozen=True, slots=True)
class Product:
    sku: str
    name: str
    unit_price: Decimal
    currency: str


@dataclass(frozen=True, slots=True)
class PriceBook:
    """Products by SKU and exchange rates to EUR: the reference data a quote needs."""

    products: Mapping[str, Product]
    eur_rates: Mapping[str, Decimal]

    def convert(self, amount: Decimal, source: str, target: str) -> Decimal:
        """``amount`` in ``source`` currency expressed in ``target`` currency."""
        if source == target:
            return amount
        return amount / self.eur_rates[source] * self.eur_rates[target]


def demo_price_book() -> PriceBook:
    """A small fixed catalog, so that the example runs with no reference topics."""
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
    return PriceBook({p.sku: p for p in products}, rates)


class QuoteParams(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True, frozen=True)

    sku: Annotated[str, Field(min_length=1, max_length=64)]
    quantity: Annotated[int, Field(ge=1, le=1_000_000)]
    currency: Currency = "EUR"


class QuoteResult(BaseModel):
    sku: str
    name: str
    quantity: int
    currency: str
    unit_price: str = Field(description="Decimal string, two places.")
    total: str = Field(description="Decimal string, two places.")


class QuoteOperation(Operation[QuoteParams, QuoteResult]):
    """Quote ``quantity`` units of ``sku`` in ``currency``; unknown SKUs are ``not_found``."""

    name = "price.quote"
    version = 1
    description = "Price a quantity of a catalog item in a currency."
    scopes = frozenset({"price:read"})
    params_model = QuoteParams
    result_model = QuoteResult

    def __init__(self, book: PriceBook) -> None:
        self._book = book

    async def handle(
        self, tenant_params: Sequence[tuple[str, QuoteParams]]
    ) -> Sequence[QuoteResult | ClientError]:
        return [self._one(params) for _, params in tenant_params]

    def _one(self, params: QuoteParams) -> QuoteResult | ClientError:
        product = self._book.products.get(params.sku)
        if product is None:
            return NotFoundError(
                f"no product with sku {params.sku!r}", details={"path": "params.sku"}
            )
        unit = self._book.convert(product.unit_price, product.currency, params.currency)
        unit = unit.quantize(_CENT, rounding=ROUND_HALF_EVEN)
        return QuoteResult(
            sku=product.sku,
            name=product.name,
            quantity=params.quantity,
            currency=params.currency,
            unit_price=str(unit),
            total=str((unit * params.quantity).quantize(_CENT, rounding=ROUND_HALF_EVEN)),
        )
