"""The port every stage implements."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

from worker.flow.records import Work


class Stage(Protocol):
    """A step of the flow. It sees the whole batch and fills in the pending items."""

    name: str

    async def __call__(self, batch: Sequence[Work]) -> None:
        """Process every pending item of ``batch`` in place."""
