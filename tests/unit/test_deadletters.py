"""Dead letters: what is read from their headers and body, filters, and the replayed message."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

import orjson
import pytest

from worker.deadletters import DeadLetter, DeadLetterFilter, parse_time, replay_message
from worker.errors import ConfigurationError

NOW = datetime(2026, 11, 27, 12, 0, tzinfo=UTC)


@dataclass
class Record:
    """The fields of aiokafka's ConsumerRecord that a dead letter is read from."""

    value: bytes | None
    headers: list[tuple[str, bytes]] = field(default_factory=list)
    topic: str = "requests.dead-letter"
    partition: int = 0
    offset: int = 7
    timestamp: int = int(NOW.timestamp() * 1000)
    key: bytes | None = b"r-1"


def letter(
    reason: str = "validation_failed", tenant: str | None = "acme", **kw: object
) -> DeadLetter:
    body = {"request_id": "r-1", "operation": "x"} | ({"tenant": tenant} if tenant else {})
    headers = [
        ("trace", b"t-1"),
        ("dlq-reason", reason.encode()),
        ("dlq-message", b"tenant: field required"),
        ("dlq-source-offset", b"41"),
    ]
    return DeadLetter.from_record(Record(orjson.dumps(body), headers, **kw))  # type: ignore[arg-type]


def test_a_dead_letter_reads_its_reason_and_the_claimed_tenant() -> None:
    dead = letter()
    assert (dead.reason, dead.message) == ("validation_failed", "tenant: field required")
    assert (dead.tenant, dead.request_id) == ("acme", "r-1")
    assert dead.position == "requests.dead-letter:0:7"
    assert dead.time == NOW


@pytest.mark.parametrize("value", [b"{oops", b"[1, 2]", b'{"tenant": 42}', None])
def test_a_body_without_a_tenant_string_has_no_tenant(value: bytes | None) -> None:
    dead = DeadLetter.from_record(Record(value, [("dlq-reason", b"invalid_payload")]))
    assert dead.tenant is None
    assert dead.reason == "invalid_payload"


def test_filters_combine_reason_tenant_and_time() -> None:
    hour = int(timedelta(hours=1).total_seconds() * 1000)
    old = letter(timestamp=int(NOW.timestamp() * 1000) - 3 * hour)
    new = letter()
    other_reason = letter("unknown_operation")
    no_tenant = letter(tenant=None)
    everything = [old, new, other_reason, no_tenant]

    def chosen(selection: DeadLetterFilter) -> list[DeadLetter]:
        return [d for d in everything if selection.matches(d)]

    assert chosen(DeadLetterFilter()) == everything
    assert chosen(DeadLetterFilter(reasons=frozenset({"unknown_operation"}))) == [other_reason]
    assert chosen(DeadLetterFilter(tenants=frozenset({"acme"}))) == [old, new, other_reason]
    since = NOW - timedelta(hours=1)
    assert chosen(DeadLetterFilter(since=since)) == [new, other_reason, no_tenant]
    assert chosen(DeadLetterFilter(until=since)) == [old]
    assert chosen(
        DeadLetterFilter(
            reasons=frozenset({"validation_failed"}), tenants=frozenset({"acme"}), since=since
        )
    ) == [new]


def test_a_replay_keeps_key_value_and_original_headers_and_marks_itself() -> None:
    dead = letter()
    replayed_before = DeadLetter.from_record(
        Record(dead.value, [*dead.headers, ("replayed-from", b"old:0:1")])
    )
    for source in (dead, replayed_before):
        message = replay_message(source, "requests", NOW)
        assert (message.topic, message.key, message.value) == ("requests", b"r-1", source.value)
        assert message.headers == (
            ("trace", b"t-1"),
            ("replayed-from", source.position.encode()),
            ("replayed-at", b"2026-11-27T12:00:00.000+00:00"),
        )


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("30m", NOW - timedelta(minutes=30)),
        ("2h", NOW - timedelta(hours=2)),
        ("1.5d", NOW - timedelta(days=1.5)),
        ("2026-11-27T10:00:00Z", datetime(2026, 11, 27, 10, tzinfo=UTC)),
        ("2026-11-27T10:00:00", datetime(2026, 11, 27, 10, tzinfo=UTC)),
        ("2026-11-27T11:00:00+01:00", datetime(2026, 11, 27, 10, tzinfo=UTC)),
    ],
)
def test_times_are_iso_or_a_duration_ago(text: str, expected: datetime) -> None:
    assert parse_time(text, NOW) == expected


def test_an_unreadable_time_names_the_accepted_forms() -> None:
    with pytest.raises(ConfigurationError, match="ISO 8601"):
        parse_time("yesterday", NOW)
