"""``price.quote``: price a quantity of a catalog item in a currency, from reference data."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from decimal import ROUND_HALF_EVEN, Decimal
from typing import Annotated, ClassVar, Literal

from pydantic import BaseModel, ConfigDict, Field

from worker.errors import ClientError, NotFoundError
from worker.operations.base import Operation
from worker.reference.base import Catalog, Product, Revised, product_tag, rate_tag

Currency = Literal["EUR", "USD", "GBP", "JPY", "CHF"]
_CENT = Decimal("0.01")


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
    """Quote ``quantity`` units of ``sku`` in ``currency``.

    Joins each request with the product catalog and the EUR exchange rates
    (reference data, looked up once per batch). An unknown SKU, or a currency
    without a rate, is ``not_found``. An answer depends on the product and on
    the rates of the two currencies involved; their tags and revisions are
    what the cache checks before serving it.
    """

    name = "price.quote"
    version = 1
    description = "Price a quantity of a catalog item in a currency."
    scopes = frozenset({"price:read"})
    params_model = QuoteParams
    result_model = QuoteResult
    cache_ttl_s: ClassVar[float] = 300.0
    cache_not_found_ttl_s: ClassVar[float] = 60.0

    def __init__(self, catalog: Catalog) -> None:
        self._catalog = catalog

    def _lookup(
        self, tenant_params: Sequence[tuple[str, QuoteParams]]
    ) -> tuple[Mapping[str, Revised[Product]], Mapping[str, Revised[Decimal]]]:
        products = self._catalog.products({params.sku for _, params in tenant_params})
        currencies: set[str] = {params.currency for _, params in tenant_params}
        currencies.update(p.value.currency for p in products.values() if p.value is not None)
        return products, self._catalog.eur_rates(currencies)

    async def handle(
        self, tenant_params: Sequence[tuple[str, QuoteParams]]
    ) -> Sequence[QuoteResult | ClientError]:
        products, rates = self._lookup(tenant_params)
        return [self._one(params, products, rates) for _, params in tenant_params]

    def cache_dependencies(
        self, tenant_params: Sequence[tuple[str, QuoteParams]]
    ) -> Sequence[Mapping[str, str]]:
        products, rates = self._lookup(tenant_params)
        dependencies = []
        for _, params in tenant_params:
            found = products[params.sku]
            depends = {product_tag(params.sku): found.revision}
            if found.value is not None and found.value.currency != params.currency:
                for currency in (found.value.currency, params.currency):
                    depends[rate_tag(currency)] = rates[currency].revision
            dependencies.append(depends)
        return dependencies

    @staticmethod
    def _one(
        params: QuoteParams,
        products: Mapping[str, Revised[Product]],
        rates: Mapping[str, Revised[Decimal]],
    ) -> QuoteResult | ClientError:
        product = products[params.sku].value
        if product is None:
            return NotFoundError(
                f"no product with sku {params.sku!r}", details={"path": "params.sku"}
            )
        unit = product.unit_price
        if product.currency != params.currency:
            source, target = rates[product.currency].value, rates[params.currency].value
            if source is None or target is None:
                missing = product.currency if source is None else params.currency
                return NotFoundError(
                    f"no exchange rate for {missing}",
                    details={"path": "params.currency", "currency": missing},
                )
            unit = unit / source * target
        unit = unit.quantize(_CENT, rounding=ROUND_HALF_EVEN)
        return QuoteResult(
            sku=product.sku,
            name=product.name,
            quantity=params.quantity,
            currency=params.currency,
            unit_price=str(unit),
            total=str((unit * params.quantity).quantize(_CENT, rounding=ROUND_HALF_EVEN)),
        )
