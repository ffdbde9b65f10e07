"""``price.quote``: prices from the catalog, converted and rounded half-even to cents."""

from __future__ import annotations

import asyncio
from decimal import Decimal

import pydantic
import pytest

from worker.errors import NotFoundError
from worker.operations.quote import QuoteOperation, QuoteParams, QuoteResult
from worker.reference.base import Product
from worker.reference.memory import MemoryCatalog, demo_catalog


def quote(
    *params: QuoteParams, book: MemoryCatalog | None = None
) -> list[QuoteResult | NotFoundError]:
    operation = QuoteOperation(book or demo_catalog())
    return list(asyncio.run(operation.handle([("acme", p) for p in params])))  # type: ignore[arg-type]


def test_a_quote_in_the_product_currency() -> None:
    (result,) = quote(QuoteParams(sku="SKU-2", quantity=3))
    assert result == QuoteResult(
        sku="SKU-2",
        name="Pour-over kettle",
        quantity=3,
        currency="EUR",
        unit_price="59.00",
        total="177.00",
    )


def test_a_quote_converted_through_eur_rounds_the_unit_price_first() -> None:
    # 24.90 EUR * 1.08 = 26.892 USD -> 26.89; three of them 80.67 (not 80.676 -> 80.68).
    (result,) = quote(QuoteParams(sku="SKU-1", quantity=3, currency="USD"))
    assert isinstance(result, QuoteResult)
    assert (result.unit_price, result.total) == ("26.89", "80.67")


def test_a_quote_between_two_foreign_currencies() -> None:
    # 4.50 GBP / 0.86 * 0.95 = 4.9709... CHF -> 4.97
    (result,) = quote(QuoteParams(sku="SKU-4", quantity=2, currency="CHF"))
    assert isinstance(result, QuoteResult)
    assert (result.unit_price, result.total) == ("4.97", "9.94")


def test_rounding_is_half_even() -> None:
    book = MemoryCatalog(
        {
            "A": Product("A", "a", Decimal("0.125"), "EUR"),
            "B": Product("B", "b", Decimal("0.135"), "EUR"),
        },
        {"EUR": Decimal("1")},
    )
    a, b = quote(QuoteParams(sku="A", quantity=1), QuoteParams(sku="B", quantity=1), book=book)
    assert isinstance(a, QuoteResult)
    assert isinstance(b, QuoteResult)
    assert (a.unit_price, b.unit_price) == ("0.12", "0.14")


def test_an_unknown_sku_is_not_found_in_place_of_its_result() -> None:
    found, missing, again = quote(
        QuoteParams(sku="SKU-1", quantity=1),
        QuoteParams(sku="SKU-404", quantity=1),
        QuoteParams(sku="SKU-3", quantity=1),
    )
    assert isinstance(found, QuoteResult)
    assert isinstance(missing, NotFoundError)
    assert missing.details == {"path": "params.sku"}
    assert isinstance(again, QuoteResult)
    assert again.sku == "SKU-3"


@pytest.mark.parametrize(
    "params",
    [
        {"sku": "SKU-1", "quantity": 0},
        {"sku": "SKU-1", "quantity": 1_000_001},
        {"sku": "SKU-1", "quantity": 1.0},
        {"sku": "SKU-1", "quantity": True},
        {"sku": "", "quantity": 1},
        {"sku": "SKU-1", "quantity": 1, "currency": "XYZ"},
        {"sku": "SKU-1"},
    ],
)
def test_params_are_strict(params: dict[str, object]) -> None:
    with pytest.raises(pydantic.ValidationError):
        QuoteParams.model_validate(params)
