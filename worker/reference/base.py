"""Reference records, their wire format, their revisions, and the catalog port."""

from __future__ import annotations

import hashlib
from collections.abc import Collection, Mapping
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from typing import Annotated, Generic, Protocol, TypeVar

import orjson
import pydantic
from pydantic import BaseModel, ConfigDict, Field, field_validator

T = TypeVar("T")

CurrencyCode = Annotated[str, Field(pattern=r"^[A-Z]{3}$")]
DecimalText = Annotated[str, Field(pattern=r"^\d{1,12}(\.\d{1,8})?$")]


@dataclass(frozen=True, slots=True)
class Product:
    """A catalog item: its price is in its own currency."""

    sku: str
    name: str
    unit_price: Decimal
    currency: str


@dataclass(frozen=True, slots=True)
class Revised(Generic[T]):
    """A reference value (None if absent) with the revision it was read at."""

    value: T | None
    revision: str


class ProductRecord(BaseModel):
    """A product on ``reference.products`` (key: the SKU)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    sku: Annotated[str, Field(min_length=1, max_length=64)]
    name: Annotated[str, Field(min_length=1, max_length=256)]
    unit_price: DecimalText = Field(description="Decimal string, in the product's currency.")
    currency: CurrencyCode

    def to_product(self) -> Product:
        return Product(self.sku, self.name, Decimal(self.unit_price), self.currency)


class RateRecord(BaseModel):
    """An exchange rate on ``reference.rates`` (key: the currency code): units per 1 EUR."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    currency: CurrencyCode
    per_eur: DecimalText

    @field_validator("per_eur")
    @classmethod
    def _positive(cls, value: str) -> str:
        if Decimal(value) <= 0:
            raise ValueError("a rate must be positive")
        return value


def revision_of(raw: bytes | None) -> str:
    """The revision of a stored record: a hash of its bytes; "" while it does not exist."""
    return "" if raw is None else hashlib.blake2b(raw, digest_size=8).hexdigest()


def product_tag(sku: str) -> str:
    """The cache tag of answers that depend on product ``sku``."""
    return f"product:{sku}"


def rate_tag(currency: str) -> str:
    """The cache tag of answers that depend on the rate of ``currency``."""
    return f"rate:{currency}"


def encode_product(product: Product) -> bytes:
    record = ProductRecord(
        sku=product.sku,
        name=product.name,
        unit_price=str(product.unit_price),
        currency=product.currency,
    )
    return orjson.dumps(record.model_dump(), option=orjson.OPT_SORT_KEYS)


def encode_rate(currency: str, per_eur: Decimal) -> bytes:
    record = RateRecord(currency=currency, per_eur=str(per_eur))
    return orjson.dumps(record.model_dump(), option=orjson.OPT_SORT_KEYS)


def decode_product(raw: bytes) -> Product | None:
    """The product in a record's bytes, or None if they are not a valid record."""
    try:
        return ProductRecord.model_validate_json(raw).to_product()
    except (pydantic.ValidationError, InvalidOperation):
        return None


def decode_rate(raw: bytes) -> Decimal | None:
    """The rate in a record's bytes, or None if they are not a valid record."""
    try:
        return Decimal(RateRecord.model_validate_json(raw).per_eur)
    except (pydantic.ValidationError, InvalidOperation):
        return None


class Catalog(Protocol):
    """Products and EUR exchange rates, read in batches from local state."""

    def products(self, skus: Collection[str]) -> Mapping[str, Revised[Product]]:
        """Every SKU asked for, with its product (or None) and revision."""

    def eur_rates(self, currencies: Collection[str]) -> Mapping[str, Revised[Decimal]]:
        """Every currency asked for, with its units per EUR (or None) and revision."""
