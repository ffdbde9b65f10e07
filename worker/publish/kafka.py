"""Publishes through the Faust app's producer, without awaiting each send."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from typing import Any

from worker.errors import PublishError
from worker.flow.output import OutboundMessage


class KafkaPublisher:
    """Schedules every send of a batch, then waits for all delivery reports together."""

    def __init__(self, producer: Any) -> None:
        # faust's producer: ``send()`` schedules and returns a delivery future.
        self._producer = producer

    async def publish(self, messages: Sequence[OutboundMessage]) -> None:
        if not messages:
            return
        send = self._producer.send
        try:
            futures = [
                await send(m.topic, m.key, m.value, None, None, list(m.headers)) for m in messages
            ]
            await asyncio.gather(*futures)
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            raise PublishError(f"publishing {len(messages)} messages failed: {exc!r}") from exc
