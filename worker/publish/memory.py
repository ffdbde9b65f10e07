"""An in-memory publisher for tests and the broker-free harness."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence

from worker.flow.output import OutboundMessage


class MemoryPublisher:
    """Keeps every published message, by topic, in publish order."""

    def __init__(self) -> None:
        self.topics: dict[str, list[OutboundMessage]] = defaultdict(list)

    async def publish(self, messages: Sequence[OutboundMessage]) -> None:
        for message in messages:
            self.topics[message.topic].append(message)
