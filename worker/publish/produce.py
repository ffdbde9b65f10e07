"""A short-lived producer for commands and tests: publish some records, wait for every ack."""

from __future__ import annotations

from collections.abc import Sequence

from aiokafka import AIOKafkaProducer

from worker.connections.kafka import client_options
from worker.settings import KafkaSettings


async def send_records(
    settings: KafkaSettings,
    records: Sequence[tuple[str, bytes | None, bytes | None]],
    *,
    partition: int | None = None,
    headers: Sequence[Sequence[tuple[str, bytes]]] | None = None,
) -> None:
    """Publish ``(topic, key, value)`` records and wait until the broker has every one.

    ``headers``, if given, holds the headers of each record, in the same order.
    """
    producer = AIOKafkaProducer(
        **client_options(settings),
        acks="all",
        linger_ms=5,
    )
    await producer.start()
    try:
        futures = [
            await producer.send(
                topic,
                value,
                key=key,
                partition=partition,
                headers=list(headers[index]) if headers is not None else None,
            )
            for index, (topic, key, value) in enumerate(records)
        ]
        for future in futures:
            await future
    finally:
        await producer.stop()
