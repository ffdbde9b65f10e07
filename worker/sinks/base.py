"""The row sink port, and the deduplication token every implementation uses."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

from worker.errors import DatabaseError
from worker.flow.output import PartitionRows

REQUESTS_TABLE = "requests"
DEAD_LETTERS_TABLE = "dead_letters"


#: A block: the slices stored by one INSERT per table.
Block = Sequence[PartitionRows]


def dedup_token(table: str, *parts: PartitionRows) -> str:
    """The insert deduplication token of a block of slices: same slices, same token."""
    return f"{table}:" + ";".join(
        f"{part.topic}:{part.partition}:{part.first_offset}-{part.last_offset}" for part in parts
    )


def pack(slices: Sequence[PartitionRows], max_rows: int) -> list[list[PartitionRows]]:
    """``slices`` cut into chunks of at most ``max_rows`` rows, packed into blocks as large.

    One INSERT per block, not per partition: an insert has a fixed cost (about
    8 ms of CPU on chDB whatever its size), so a batch from many partitions is
    one block when it fits. The cut depends only on the slices and ``max_rows``
    (slices in topic and partition order, chunks packed greedily): the same
    batch packed again gives the same blocks, hence the same tokens.
    """
    blocks: list[list[PartitionRows]] = []
    current: list[PartitionRows] = []
    size = 0
    for part in sorted(slices, key=lambda s: (s.topic, s.partition)):
        for chunk in part.chunks(max_rows):
            if current and size + len(chunk.rows) > max_rows:
                blocks.append(current)
                current, size = [], 0
            current.append(chunk)
            size += len(chunk.rows)
    if current:
        blocks.append(current)
    return blocks


def describe(block: Block) -> str:
    """``topic[p] first-last, ...``: a block's slices, for logs."""
    return ", ".join(
        f"{part.topic}[{part.partition}] {part.first_offset}-{part.last_offset}" for part in block
    )


class RowSink(Protocol):
    """Persists rows; :meth:`write` returns only once they are durable.

    The slices are packed into blocks of a bounded size (:func:`pack`), one
    insert each; every block is stored once however often it is written (its
    deduplication token), and rows at or
    below the highest source offset already held for their topic-partition are
    skipped (a redelivery after a crash, cut differently). A slice's dead
    letters are stored with it, before its ``requests`` rows. Implementations
    retry transient failures themselves, and say in :attr:`failing` what the
    database last failed with while they do (None once it accepts again): the
    reason a batch is dead-lettered with if its retry budget runs out meanwhile.
    """

    failing: DatabaseError | None

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
