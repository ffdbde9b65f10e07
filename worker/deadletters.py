"""Dead letters: read them from their topic, filter them, and replay them as requests.

A dead letter is the original message (key, value and headers unchanged) plus
``dlq-*`` headers the worker added: ``dlq-reason`` (an error code of
docs/errors.md), ``dlq-message``, and the source position. Replaying one
publishes it to the requests topic again with its key, its value and its
original headers, the ``dlq-*`` ones removed, and ``replayed-from``
(``topic:partition:offset`` of the dead letter) and ``replayed-at`` added, so
consumers and operators can tell a replay from a first delivery.

Reading takes a snapshot of the end offsets first: dead letters written while
the command runs (a replayed message failing again, say) are never read, so a
replay publishes exactly the dead letters that matched when it started.
"""

from __future__ import annotations

import re
from collections.abc import AsyncIterator, Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import orjson
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition

from worker.connections.kafka import client_options
from worker.errors import ConfigurationError
from worker.flow.output import OutboundMessage
from worker.settings import KafkaSettings

DLQ_HEADER_PREFIX = "dlq-"
REPLAYED_FROM = "replayed-from"
REPLAYED_AT = "replayed-at"

_RELATIVE = re.compile(r"^(\d+(?:\.\d+)?)\s*([smhdw])$")
_UNITS = {"s": "seconds", "m": "minutes", "h": "hours", "d": "days", "w": "weeks"}

Headers = tuple[tuple[str, bytes], ...]


def parse_time(text: str, now: datetime | None = None) -> datetime:
    """An ISO 8601 time (UTC when it has no offset) or a duration ago: ``90s``, ``15m``, ``2h``."""
    now = now or datetime.now(UTC)
    match = _RELATIVE.match(text.strip())
    if match:
        return now - timedelta(**{_UNITS[match[2]]: float(match[1])})
    try:
        parsed = datetime.fromisoformat(text.strip().replace("Z", "+00:00"))
    except ValueError as exc:
        raise ConfigurationError(
            f"not a time: {text!r} (use ISO 8601 like 2026-11-27T12:00:00Z, or 30m, 2h, 7d)"
        ) from exc
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def _header(headers: Headers, name: str) -> str | None:
    # The worker's dlq-* headers come after the original ones: the last one wins.
    for key, value in reversed(headers):
        if key == name:
            return value.decode("utf-8", "replace")
    return None


def _claimed(value: bytes) -> dict[str, Any]:
    """The top-level fields of the original value, when it is a JSON object at all."""
    try:
        body = orjson.loads(value)
    except orjson.JSONDecodeError:
        return {}
    return body if isinstance(body, dict) else {}


@dataclass(frozen=True, slots=True)
class DeadLetter:
    """One record of the dead-letter topic."""

    topic: str
    partition: int
    offset: int
    timestamp_ms: int
    key: bytes | None
    value: bytes
    headers: Headers
    tenant: str | None
    request_id: str | None

    @classmethod
    def from_record(cls, record: Any) -> DeadLetter:
        """From a consumed record (aiokafka's ``ConsumerRecord``)."""
        value = record.value or b""
        body = _claimed(value)
        tenant = body.get("tenant")
        request_id = body.get("request_id")
        return cls(
            record.topic,
            record.partition,
            record.offset,
            record.timestamp,
            record.key,
            value,
            tuple((str(k), bytes(v or b"")) for k, v in record.headers),
            tenant if isinstance(tenant, str) else None,
            request_id if isinstance(request_id, str) else None,
        )

    @property
    def reason(self) -> str:
        """The error code the worker dead-lettered it with (``dlq-reason``)."""
        return _header(self.headers, "dlq-reason") or "unknown"

    @property
    def message(self) -> str:
        """Why, for people (``dlq-message``)."""
        return _header(self.headers, "dlq-message") or ""

    @property
    def position(self) -> str:
        """``topic:partition:offset`` of this dead letter."""
        return f"{self.topic}:{self.partition}:{self.offset}"

    @property
    def time(self) -> datetime:
        """When it was dead-lettered (its Kafka timestamp)."""
        return datetime.fromtimestamp(self.timestamp_ms / 1000.0, UTC)

    def as_dict(self) -> dict[str, Any]:
        """A JSON-friendly view, for ``worker dlq inspect --format json``."""
        return {
            "position": self.position,
            "time": self.time.isoformat(timespec="milliseconds"),
            "reason": self.reason,
            "message": self.message,
            "tenant": self.tenant,
            "request_id": self.request_id,
            "key": None if self.key is None else self.key.decode("utf-8", "replace"),
            "value": self.value.decode("utf-8", "replace"),
            "headers": {k: v.decode("utf-8", "replace") for k, v in self.headers},
        }


@dataclass(frozen=True, slots=True)
class DeadLetterFilter:
    """Which dead letters to take: every given criterion must hold (empty = any)."""

    reasons: frozenset[str] = frozenset()
    tenants: frozenset[str] = frozenset()
    since: datetime | None = None
    until: datetime | None = None

    def matches(self, letter: DeadLetter) -> bool:
        """Whether ``letter`` passes the filter."""
        if self.reasons and letter.reason not in self.reasons:
            return False
        if self.tenants and letter.tenant not in self.tenants:
            return False
        if self.since is not None and letter.time < self.since:
            return False
        return self.until is None or letter.time < self.until

    def describe(self) -> str:
        """The filter in words, for the command's summary."""
        parts = []
        if self.reasons:
            parts.append("reason in " + ", ".join(sorted(self.reasons)))
        if self.tenants:
            parts.append("tenant in " + ", ".join(sorted(self.tenants)))
        if self.since is not None:
            parts.append(f"since {self.since.isoformat(timespec='seconds')}")
        if self.until is not None:
            parts.append(f"until {self.until.isoformat(timespec='seconds')}")
        return "; ".join(parts) or "every dead letter"


def replay_message(letter: DeadLetter, requests_topic: str, now: datetime) -> OutboundMessage:
    """The request to publish again: same key and value, original headers, marked replayed."""
    kept = tuple(
        (key, value)
        for key, value in letter.headers
        if not key.startswith(DLQ_HEADER_PREFIX) and key not in (REPLAYED_FROM, REPLAYED_AT)
    )
    marks = (
        (REPLAYED_FROM, letter.position.encode()),
        (REPLAYED_AT, now.isoformat(timespec="milliseconds").encode()),
    )
    return OutboundMessage(requests_topic, letter.key, letter.value, (*kept, *marks))


def _consumer(settings: KafkaSettings) -> AIOKafkaConsumer:
    return AIOKafkaConsumer(
        **client_options(settings),
        group_id=None,
        enable_auto_commit=False,
        client_id="request-worker-dlq",
    )


async def _start_offsets(
    consumer: AIOKafkaConsumer,
    tps: list[TopicPartition],
    ends: dict[TopicPartition, int],
    since: datetime | None,
) -> dict[TopicPartition, int]:
    """Where to start reading: the log start, or the first record at or after ``since``."""
    if since is None:
        return dict(await consumer.beginning_offsets(tps))
    found = await consumer.offsets_for_times({tp: int(since.timestamp() * 1000) for tp in tps})
    return {tp: (found[tp].offset if found[tp] else ends[tp]) for tp in tps}


async def read_dead_letters(
    settings: KafkaSettings,
    topic: str,
    *,
    since: datetime | None = None,
    on_total: Callable[[int], None] = lambda total: None,
    on_read: Callable[[int], None] = lambda count: None,
) -> AsyncIterator[DeadLetter]:
    """Every dead letter in ``topic`` up to its end offsets as of now (from ``since``, if set).

    ``on_total`` gets the number of records to read once known, ``on_read`` the
    count of each chunk read (for a progress bar).
    """
    consumer = _consumer(settings)
    await consumer.start()
    try:
        partitions = consumer.partitions_for_topic(topic)
        if not partitions:
            await consumer._client.force_metadata_update()
            partitions = consumer.partitions_for_topic(topic)
        if not partitions:
            raise ConfigurationError(
                f"topic {topic} does not exist. Operator action: run `worker topics create`"
            )
        tps = [TopicPartition(topic, p) for p in sorted(partitions)]
        consumer.assign(tps)
        ends = await consumer.end_offsets(tps)
        starts = await _start_offsets(consumer, tps, ends, since)
        remaining = {tp: starts[tp] for tp in tps if starts[tp] < ends[tp]}
        on_total(sum(ends[tp] - offset for tp, offset in remaining.items()))
        for tp, offset in remaining.items():
            consumer.seek(tp, offset)
        for tp in set(tps) - set(remaining):
            consumer.pause(tp)
        while remaining:
            batch = await consumer.getmany(*remaining, timeout_ms=1000)
            for tp, records in batch.items():
                wanted = [r for r in records if r.offset < ends[tp]]
                for record in wanted:
                    yield DeadLetter.from_record(record)
                on_read(len(wanted))
            for tp in list(remaining):
                # By position, not by the last record: gaps (transaction markers) end no record.
                if await consumer.position(tp) >= ends[tp]:
                    del remaining[tp]
                    consumer.pause(tp)
    finally:
        await consumer.stop()


async def publish(
    settings: KafkaSettings,
    messages: Sequence[OutboundMessage],
    *,
    on_sent: Callable[[int], None] = lambda count: None,
) -> None:
    """Publish ``messages`` and return once the broker confirmed every one of them."""
    producer = AIOKafkaProducer(
        **client_options(settings),
        acks="all",
        enable_idempotence=True,
        linger_ms=5,
        client_id="request-worker-dlq",
    )
    await producer.start()
    try:
        futures = []
        for message in messages:
            future = await producer.send(
                message.topic, message.value, key=message.key, headers=list(message.headers)
            )
            future.add_done_callback(lambda done: on_sent(1))
            futures.append(future)
        for future in futures:
            await future
    finally:
        await producer.stop()
