"""The row sink port, and the deduplication token every implementation uses."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

from worker.flow.output import PartitionRows


def dedup_token(table: str, rows: PartitionRows) -> str:
    """The insert deduplication token of a partition slice: same slice, same token."""
    return f"{table}:{rows.topic}:{rows.partition}:{rows.first_offset}-{rows.last_offset}"


class RowSink(Protocol):
    """Persists rows; :meth:`write` returns only once they are durable.

    Implementations skip rows at or below the highest source offset they already
    hold for a topic-partition (a redelivery after a crash), and retry
    transient failures themselves.
    """

    async def start(self) -> None:
        """Connect and prepare (for ClickHouse: apply migrations)."""

    async def write(self, slices: Sequence[PartitionRows]) -> None:
        """Persist every slice, exactly once in effect."""

    async def ping(self) -> None:
        """Reach the database once (a readiness check); raise when it cannot be reached."""

    def forget_positions(self) -> None:
        """Drop cached high-water offsets (partitions moved; read them again)."""

    async def close(self) -> None:
        """Release the connection."""
