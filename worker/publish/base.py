"""The publisher port."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

from worker.flow.output import OutboundMessage


class Publisher(Protocol):
    """Publishes a batch of messages and returns once the broker confirmed all of them."""

    async def publish(self, messages: Sequence[OutboundMessage]) -> None:
        """Send every message; raise :class:`~worker.errors.PublishError` if any failed."""
