"""``worker cache``: invalidate cached answers."""

from __future__ import annotations

import asyncio

import click

from worker.settings import load_settings


@click.group()
def cache() -> None:
    """The result cache (RocksDB tables in each worker, changelogs in Kafka)."""


@cache.command()
@click.option("--key", "key", help="An exact cache key: <tenant>/<operation>/v<version>/<digest>.")
@click.option("--tag", "tag", help="Everything that depends on a tag, e.g. product:SKU-1.")
@click.option("--operation", "operation", help="Every answer of an operation, e.g. price.quote.")
@click.option("--tenant", "tenant", help="Every answer of a tenant.")
@click.option("--reason", default=None, help="Why, for the logs.")
def invalidate(
    key: str | None, tag: str | None, operation: str | None, tenant: str | None, reason: str | None
) -> None:
    """Publish one invalidation; the workers apply it in every partition."""
    from worker.cache.invalidation import Invalidation
    from worker.publish.produce import send_records
    from worker.topology import load_topology

    given = {"key": key, "tag": tag, "operation": operation, "tenant": tenant}
    chosen = [(kind, value) for kind, value in given.items() if value]
    if len(chosen) != 1:
        raise click.UsageError("give exactly one of --key, --tag, --operation, --tenant")
    [(kind, value)] = chosen
    invalidation = Invalidation.model_validate({"kind": kind, "value": value, "reason": reason})
    settings = load_settings()
    topology = load_topology(settings.worker.topics_file)
    topic = settings.kafka.topic(topology.by_role("cache_invalidations").name)
    # Keyed by the cache key, a key invalidation lands on the partition that owns the key.
    message_key = value.encode() if kind == "key" else None
    asyncio.run(send_records(settings.kafka, [(topic, message_key, invalidation.encode())]))
    click.echo(f"published invalidation of {kind} {value!r} to {topic}")
