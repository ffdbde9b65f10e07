"""Publishes a batch's messages as record batches through the Faust app's producer."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

from worker.errors import PublishError
from worker.flow.output import OutboundMessage
from worker.publish.batches import BatchProducer, Record


class KafkaPublisher:
    """Sends a batch's messages as one record batch per topic-partition, then waits for all.

    A message answering a request goes to the partition of that request (modulo
    the topic's partition count): answers are co-partitioned with requests,
    and nothing hashes each key (see :mod:`worker.publish.batches`).
    """

    def __init__(self, producer: BatchProducer) -> None:
        self._producer = producer

    async def publish(self, messages: Sequence[OutboundMessage]) -> None:
        if not messages:
            return
        records = [
            Record(m.topic, m.key, m.value, m.headers, hint=m.partition_hint) for m in messages
        ]
        try:
            sent = await self._producer.send(records)
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            raise PublishError(f"publishing {len(messages)} messages failed: {exc!r}") from exc
        # Every batch's report, failed or not: what the broker confirmed is not sent again.
        reports = await asyncio.gather(*(s.delivery for s in sent), return_exceptions=True)
        failed = [
            (batch, report)
            for batch, report in zip(sent, reports, strict=True)
            if isinstance(report, BaseException)
        ]
        if failed:
            undelivered = sorted(i for batch, _ in failed for i in batch.positions)
            raise PublishError(
                f"the broker refused {len(undelivered)} of {len(messages)} messages: "
                f"{failed[0][1]!r}",
                undelivered=undelivered,
            )
