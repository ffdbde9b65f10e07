"""What the pipeline hands to delivery: messages to publish and rows to persist."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

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
)

RequestRow = tuple[
    str, str, str, str, str, str, datetime, datetime, datetime, float, str, str, int, int, str, str
]


@dataclass(frozen=True, slots=True)
class OutboundMessage:
    """A record to publish: a response or a dead letter."""

    topic: str
    key: bytes | None
    value: bytes
    headers: Headers = ()


@dataclass(slots=True)
class PartitionRows:
    """The rows of one source topic-partition within a batch, with their source offsets.

    The first and last offsets name the slice deterministically, which is what
    the insert deduplication token is built from.
    """

    topic: str
    partition: int
    rows: list[RequestRow] = field(default_factory=list)
    offsets: list[int] = field(default_factory=list)

    def add(self, row: RequestRow, offset: int) -> None:
        """Append the row read at ``offset``."""
        self.rows.append(row)
        self.offsets.append(offset)

    @property
    def first_offset(self) -> int:
        return min(self.offsets)

    @property
    def last_offset(self) -> int:
        return max(self.offsets)

    def above(self, offset: int) -> PartitionRows | None:
        """The rows past ``offset`` (the high-water mark already stored), or None."""
        if self.first_offset > offset:
            return self
        keep = [i for i, source in enumerate(self.offsets) if source > offset]
        if not keep:
            return None
        return PartitionRows(
            self.topic,
            self.partition,
            [self.rows[i] for i in keep],
            [self.offsets[i] for i in keep],
        )


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
