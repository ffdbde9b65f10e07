"""What the pipeline hands to delivery: messages to publish and rows to persist."""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass, field
from datetime import datetime
from typing import NamedTuple

from worker.flow.records import Headers

#: The columns of one ``requests`` row, in insert order (see clickhouse/migrations).
REQUEST_COLUMNS: tuple[str, ...] = (
    "request_id",
    "tenant",
    "operation",
    "status",
    "error_code",
    "correlation_id",
    "created_at",
    "received_at",
    "processed_at",
    "latency_ms",
    "cache_status",
    "source_topic",
    "source_partition",
    "source_offset",
    "cache_key",
    "cache_params",
    "params",
    "result",
)

RequestRow = tuple[
    str,
    str,
    str,
    str,
    str,
    str,
    datetime,
    datetime,
    datetime,
    float,
    str,
    str,
    int,
    int,
    str,
    str,
    str,
    str,
]

#: The columns of one ``dead_letters`` row, in insert order (see clickhouse/migrations).
DEAD_LETTER_COLUMNS: tuple[str, ...] = (
    "received_at",
    "reason",
    "message",
    "request_id",
    "tenant",
    "operation",
    "source_topic",
    "source_partition",
    "source_offset",
    "key",
    "payload",
    "payload_bytes",
)

DeadLetterRow = tuple[datetime, str, str, str, str, str, str, int, int, bytes, bytes, int]

#: How much of a dead letter's original bytes its ClickHouse row keeps (the topic keeps all).
DEAD_LETTER_PAYLOAD_MAX = 64 * 1024


class OutboundMessage(NamedTuple):
    """A record to publish: a response or a dead letter.

    A named tuple: one is made per request, and a frozen dataclass costs three
    times as much to build.
    """

    topic: str
    key: bytes | None
    value: bytes
    headers: Headers = ()
    #: The partition of the request it answers: the publisher co-partitions by it.
    partition_hint: int | None = None


@dataclass(slots=True)
class PartitionRows:
    """The rows of one source topic-partition within a batch, with their source offsets.

    Every consumed record has one ``requests`` row; records the client layer
    rejected also have a ``dead_letters`` row at the same offset. The first and
    last offsets of the requests rows name the slice deterministically, which is
    what the insert deduplication tokens of both tables are built from.
    """

    topic: str
    partition: int
    rows: list[RequestRow] = field(default_factory=list)
    offsets: list[int] = field(default_factory=list)
    dead_letters: list[DeadLetterRow] = field(default_factory=list)
    dead_letter_offsets: list[int] = field(default_factory=list)

    def add(self, row: RequestRow, offset: int) -> None:
        """Append the row read at ``offset``."""
        self.rows.append(row)
        self.offsets.append(offset)

    def add_dead_letter(self, row: DeadLetterRow, offset: int) -> None:
        """Append the dead letter of the record read at ``offset``."""
        self.dead_letters.append(row)
        self.dead_letter_offsets.append(offset)

    @property
    def first_offset(self) -> int:
        return min(self.offsets)

    @property
    def last_offset(self) -> int:
        return max(self.offsets)

    def _subset(self, keep: set[int]) -> PartitionRows:
        """The rows and dead letters whose offsets are in ``keep``, in their order."""
        part = PartitionRows(self.topic, self.partition)
        for row, offset in zip(self.rows, self.offsets, strict=True):
            if offset in keep:
                part.add(row, offset)
        for letter, offset in zip(self.dead_letters, self.dead_letter_offsets, strict=True):
            if offset in keep:
                part.add_dead_letter(letter, offset)
        return part

    def without(self, stored: Collection[int]) -> PartitionRows | None:
        """The rows whose offsets are not in ``stored`` (already held), or None if none is left."""
        if not stored:
            return self
        keep = {source for source in self.offsets if source not in stored}
        if not keep:
            return None
        if len(keep) == len(self.offsets):
            return self
        return self._subset(keep)

    def chunks(self, max_rows: int) -> list[PartitionRows]:
        """The slice cut into runs of at most ``max_rows`` consecutive offsets.

        The cut depends only on the slice and ``max_rows``: the same slice cut
        with the same size gives the same chunks, hence the same tokens.
        """
        if len(self.rows) <= max_rows:
            return [self]
        ordered = sorted(self.offsets)
        return [
            self._subset(set(ordered[start : start + max_rows]))
            for start in range(0, len(ordered), max_rows)
        ]


@dataclass(slots=True)
class BatchOutput:
    """Everything one batch produced."""

    responses: list[OutboundMessage] = field(default_factory=list)
    dead_letters: list[OutboundMessage] = field(default_factory=list)
    rows: list[PartitionRows] = field(default_factory=list)

    @property
    def messages(self) -> list[OutboundMessage]:
        """Responses and dead letters together, as one publish."""
        return [*self.responses, *self.dead_letters]
