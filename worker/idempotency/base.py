"""The outcome store port, and how an outcome is keyed and serialised."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Protocol

import orjson

from worker.flow.records import StoredOutcome


def outcome_key(tenant: str, request_id: str) -> str:
    """The store key of a tenant's request id (length-prefixed: ids may contain ':')."""
    return f"{len(tenant)}:{tenant}:{request_id}"


def dump(outcome: StoredOutcome) -> bytes:
    return orjson.dumps(
        {
            "fp": outcome.fingerprint,
            "src": [outcome.topic, outcome.partition, outcome.offset],
            "status": outcome.status,
            "data": outcome.data,
            "error": outcome.error,
        }
    )


def load(raw: bytes | str) -> StoredOutcome:
    body: dict[str, Any] = orjson.loads(raw)
    topic, partition, offset = body["src"]
    return StoredOutcome(
        body["fp"], topic, int(partition), int(offset), body["status"], body["data"], body["error"]
    )


class OutcomeStore(Protocol):
    """Answers by key, kept ``ttl_s`` seconds. Unreachable storage raises CacheError."""

    async def get_many(self, keys: Sequence[str]) -> list[StoredOutcome | None]:
        """The stored outcome of each key, in order, in one round trip."""

    async def put_many(self, items: Sequence[tuple[str, StoredOutcome]], ttl_s: int) -> None:
        """Store each outcome unless its key already holds one (the first answer wins)."""

    async def close(self) -> None:
        """Release connections."""
