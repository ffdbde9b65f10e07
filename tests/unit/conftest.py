"""Factories for the unit tests: records, envelopes, pipelines, rows and chDB databases.

Every fixture here returns a factory, so that a test states the one thing it
varies and takes sensible defaults for the rest.

chDB runs one embedded server per process, on one directory at a time: while
any client is open on a directory, opening a different one fails. The unit
session therefore shares a single chDB directory, gives every test its own
database, and closes every client it opened when the test ends.
"""

from __future__ import annotations

import itertools
import uuid
from collections.abc import Callable, Iterator, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import orjson
import pytest

from tests.support.keys import KeyKit
from tests.support.settings import default_settings
from worker.app import TopicNames, build_pipeline
from worker.auth.credentials.base import CredentialStore
from worker.cache.service import ResultCache
from worker.clickhouse.client import connect
from worker.flow.output import DeadLetterRow, PartitionRows, RequestRow
from worker.flow.pipeline import Pipeline
from worker.flow.records import Headers, InboundRecord, Work
from worker.idempotency.base import OutcomeStore
from worker.idempotency.memory import MemoryOutcomeStore
from worker.operations.registry import OperationRegistry, default_registry
from worker.ratelimit.memory import MemoryRateLimiter
from worker.settings import (
    ClickHouseSettings,
    KafkaSettings,
    LimitsSettings,
    SecuritySettings,
    Settings,
)

TOPICS = TopicNames("requests", "responses", "dead")
CREATED_AT = "2024-05-01T12:00:00+00:00"
#: When fixture rows were received: recent, or ClickHouse's TTL would drop them on insert.
ROW_TIME = datetime.now(UTC).replace(microsecond=0)
_UNSET: Any = object()


@pytest.fixture
def make_envelope() -> Callable[..., dict[str, Any]]:
    """A valid ``price.quote`` request envelope as a dict; keyword arguments replace fields."""
    ids = itertools.count(1)

    def make(**overrides: Any) -> dict[str, Any]:
        body: dict[str, Any] = {
            "request_id": f"req-{next(ids):05d}",
            "tenant": "acme",
            "operation": "price.quote",
            "params": {"sku": "SKU-1", "quantity": 2},
            "created_at": CREATED_AT,
        }
        body.update(overrides)
        return body

    return make


@pytest.fixture
def make_record() -> Callable[..., InboundRecord]:
    """An inbound record; dict values are JSON-encoded, offsets count up per partition.

    The key defaults to the request id of a dict value (as producers are told to
    key), and to ``None`` otherwise.
    """
    offsets: dict[tuple[str, int], Iterator[int]] = {}

    def make(
        value: bytes | dict[str, Any] | None,
        *,
        topic: str = "requests",
        partition: int = 0,
        offset: int | None = None,
        key: bytes | None = _UNSET,
        headers: Headers = (),
    ) -> InboundRecord:
        if key is _UNSET:
            claimed = value.get("request_id") if isinstance(value, dict) else None
            key = claimed.encode() if isinstance(claimed, str) else None
        raw = orjson.dumps(value) if isinstance(value, dict) else value
        if offset is None:
            offset = next(offsets.setdefault((topic, partition), itertools.count()))
        return InboundRecord(topic, partition, offset, 1_700_000_000_000, key, raw, headers)

    return make


@pytest.fixture
def make_work(make_record: Callable[..., InboundRecord]) -> Callable[..., Work]:
    """A work item as the decode stage leaves it: ``payload`` set, nothing else."""

    def make(payload: dict[str, Any]) -> Work:
        return Work(record=make_record(payload), received_at=1_700_000_000.0, payload=payload)

    return make


@pytest.fixture
def make_settings() -> Callable[..., Settings]:
    """Settings with the documented defaults; keyword arguments override the limits.

    Limits are passed explicitly so that a ``LIMITS_*`` variable in the
    environment cannot change what the tests check. Security defaults to the
    anonymous mode, so that a test about something else need not sign.
    """

    def make(
        *,
        security: SecuritySettings | None = None,
        kafka: KafkaSettings | None = None,
        **limits: Any,
    ) -> Settings:
        values: dict[str, Any] = {
            "max_message_bytes": 256 * 1024,
            "max_json_depth": 32,
            "max_string_length": 128 * 1024,
            "max_array_length": 1000,
            "rate_per_second": 1_000_000.0,
            "rate_burst": 1_000_000,
            "plans_file": None,
        }
        values.update(limits)
        return default_settings(
            kafka=kafka or KafkaSettings(reply_to_allowlist=""),
            limits=LimitsSettings(**values),
            security=security or SecuritySettings(auth_modes="none", idempotency_ttl_s=3600),
        )

    return make


@pytest.fixture
def make_pipeline(make_settings: Callable[..., Settings]) -> Callable[..., Pipeline]:
    """The production pipeline (``build_pipeline``) on in-memory ports.

    The tenant bucket is large enough that no test is limited unless it asks.
    Without a ``cache`` the pipeline has no cache stages.
    """

    def make(
        registry: OperationRegistry | None = None,
        *,
        rate: float = 1_000_000.0,
        burst: int = 1_000_000,
        credentials: CredentialStore | None = None,
        outcomes: OutcomeStore | None = None,
        cache: ResultCache | None = None,
        **settings: Any,
    ) -> Pipeline:
        return build_pipeline(
            make_settings(rate_per_second=rate, rate_burst=burst, **settings),
            TOPICS,
            registry if registry is not None else default_registry(),
            limiter=MemoryRateLimiter(),
            credentials=credentials,
            outcomes=outcomes if outcomes is not None else MemoryOutcomeStore(),
            cache=cache,
        )

    return make


@pytest.fixture
def make_row() -> Callable[..., RequestRow]:
    """A ``requests`` row read from ``topic[partition]`` at ``offset``."""

    def make(offset: int, *, topic: str = "requests", partition: int = 0) -> RequestRow:
        at = ROW_TIME
        return (
            f"req-{topic}-{partition}-{offset}",
            "acme",
            "price.quote",
            "ok",
            "",
            "",
            at,
            at,
            at,
            1.5,
            "bypass",
            topic,
            partition,
            offset,
            "",
            "",
            '{"sku":"SKU-1","quantity":1}',
            '{"total":"1.00"}',
        )

    return make


@pytest.fixture
def make_dead_letter_row() -> Callable[..., DeadLetterRow]:
    """A ``dead_letters`` row for the record read from ``topic[partition]`` at ``offset``."""

    def make(offset: int, *, topic: str = "requests", partition: int = 0) -> DeadLetterRow:
        at = ROW_TIME
        payload = b'{"request_id": "x", oops'
        return (
            at,
            "invalid_payload",
            "not JSON",
            "",
            "",
            "",
            topic,
            partition,
            offset,
            f"key-{offset}".encode(),
            payload,
            len(payload),
        )

    return make


@pytest.fixture
def make_slice(
    make_row: Callable[..., RequestRow], make_dead_letter_row: Callable[..., DeadLetterRow]
) -> Callable[..., PartitionRows]:
    """The rows of one topic-partition at ``offsets``, as the responder groups them.

    ``dead`` names the offsets (among ``offsets``) whose records were dead-lettered.
    """

    def make(
        offsets: range | list[int],
        *,
        topic: str = "requests",
        partition: int = 0,
        dead: Sequence[int] = (),
    ) -> PartitionRows:
        part = PartitionRows(topic, partition)
        for offset in offsets:
            part.add(make_row(offset, topic=topic, partition=partition), offset)
            if offset in dead:
                part.add_dead_letter(
                    make_dead_letter_row(offset, topic=topic, partition=partition), offset
                )
        return part

    return make


@pytest.fixture(scope="session")
def chdb_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The one chDB directory of the unit session (see the module docstring)."""
    return tmp_path_factory.mktemp("chdb")


@pytest.fixture
def chdb_settings(chdb_dir: Path) -> Callable[[], ClickHouseSettings]:
    """Embedded chDB settings on the session directory, each with a database of its own."""

    def make() -> ClickHouseSettings:
        return ClickHouseSettings(url=None, path=chdb_dir, database=f"t_{uuid.uuid4().hex[:12]}")

    return make


@pytest.fixture
def open_chdb() -> Iterator[Callable[[ClickHouseSettings], Any]]:
    """Opens clickhouse-connect clients on chDB and closes all of them after the test."""
    clients: list[Any] = []

    def make(settings: ClickHouseSettings) -> Any:
        client = connect(settings)
        clients.append(client)
        return client

    yield make
    for client in clients:
        client.close()


@pytest.fixture
def make_keys() -> Callable[[], KeyKit]:
    """A factory of in-memory key kits."""
    return KeyKit
