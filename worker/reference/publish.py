"""Loading reference data into its compacted topics (``worker reference load`` / ``seed``)."""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path

import orjson
import pydantic
from pydantic import BaseModel, ConfigDict, Field

from worker.errors import ConfigurationError
from worker.publish.produce import send_records
from worker.reference.base import ProductRecord, RateRecord, encode_product, encode_rate
from worker.reference.memory import MemoryCatalog, demo_catalog
from worker.settings import KafkaSettings
from worker.topology import Topology


class ReferenceData(BaseModel):
    """A file of reference records: ``{"products": [...], "rates": [...]}``.

    A record published again with other values replaces the old one (the topics
    are compacted by key); ``delete_products`` / ``delete_rates`` publish
    tombstones for keys that should disappear.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    products: list[ProductRecord] = Field(default_factory=list)
    rates: list[RateRecord] = Field(default_factory=list)
    delete_products: list[str] = Field(default_factory=list)
    delete_rates: list[str] = Field(default_factory=list)

    @classmethod
    def from_file(cls, path: Path) -> ReferenceData:
        try:
            return cls.model_validate_json(path.read_bytes())
        except FileNotFoundError as exc:
            raise ConfigurationError(f"reference data file not found: {path}") from exc
        except pydantic.ValidationError as exc:
            raise ConfigurationError(f"{path} is not valid reference data: {exc}") from exc

    @classmethod
    def from_catalog(cls, catalog: MemoryCatalog) -> ReferenceData:
        return cls(
            products=[
                ProductRecord.model_validate_json(encode_product(p)) for p in catalog.all_products
            ],
            rates=[
                RateRecord.model_validate_json(encode_rate(c, r))
                for c, r in catalog.all_rates.items()
            ],
        )

    def records(
        self, products_topic: str, rates_topic: str
    ) -> list[tuple[str, bytes, bytes | None]]:
        """``(topic, key, value)`` of every record to publish; a None value is a tombstone."""
        out: list[tuple[str, bytes, bytes | None]] = []
        for product in self.products:
            out.append((products_topic, product.sku.encode(), encode_product(product.to_product())))
        for rate in self.rates:
            out.append(
                (
                    rates_topic,
                    rate.currency.encode(),
                    encode_rate(rate.currency, Decimal(rate.per_eur)),
                )
            )
        out.extend((products_topic, sku.encode(), None) for sku in self.delete_products)
        out.extend((rates_topic, currency.encode(), None) for currency in self.delete_rates)
        return out


def demo_reference_data() -> ReferenceData:
    """The demo catalog as reference data (what ``worker reference seed`` publishes)."""
    return ReferenceData.from_catalog(demo_catalog())


def reference_topics(settings: KafkaSettings, topology: Topology) -> tuple[str, str]:
    """The full names of the products and rates topics."""
    return (
        settings.topic(topology.by_role("reference_products").name),
        settings.topic(topology.by_role("reference_rates").name),
    )


async def publish_reference(
    settings: KafkaSettings, topology: Topology, data: ReferenceData
) -> int:
    """Publish ``data`` to the reference topics; returns the number of records sent."""
    records = data.records(*reference_topics(settings, topology))
    await send_records(settings, records)
    return len(records)


def dump(data: ReferenceData) -> bytes:
    """``data`` as a file ``worker reference load`` reads."""
    return orjson.dumps(data.model_dump(exclude_defaults=True), option=orjson.OPT_INDENT_2) + b"\n"
