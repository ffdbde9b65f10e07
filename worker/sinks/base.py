"""The row sink port, and the deduplication token every implementation uses."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

from worker.flow.output import PartitionRows

REQUESTS_TABLE = "requests"
DEAD_LETTERS_TABLE = "dead_letters"


def dedup_token(table: str, rows: PartitionRows) -> str:
    """The insert deduplication token of a partition slice: same slice, same token."""
    return f"{table}:{rows.topic}:{rows.partition}:{rows.first_offset}-{rows.last_offset}"


class RowSink(Protocol):
    """Persists rows; :meth:`write` returns only once they are durable.

    Each slice is cut into chunks of a bounded size; every chunk is stored
    once however often it is written (its deduplication token), and rows at or
    below the highest source offset already held for their topic-partition are
    skipped (a redelivery after a crash, cut differently). A slice's dead
    letters are stored with it, before its ``requests`` rows. Implementations
    retry transient failures themselves.
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
