"""API layer: a request id already answered for the tenant is answered the same way again.

Two stages around the service layer share an :class:`OutcomeStore`:

- :class:`ReplayStage` (before rate limiting, so replays are not charged) looks
  up every pending request's ``(tenant, request_id)`` in one round trip:

  - stored at the same topic, partition and offset: a redelivery after a crash.
    It is answered with the stored outcome, so the answer equals the first one;
  - stored from another position with the same fingerprint (operation, params
    and field selection): a replay, answered with the original outcome,
    ``meta.cache = "hit"`` and ``meta.replayed_from`` naming the original;
  - stored with another fingerprint: ``conflict`` (the id was reused for a
    different request).

  Within one batch the second request with an id waits for the first.
- :class:`RememberStage` (after the service layer) stores what the service
  answered, ``ok`` or a client error such as ``not_found``, in one pipeline of
  ``SET NX EX``. Requests refused before the service layer (``rate_limited``,
  ``forbidden``, ...) are not stored: the client may send them again.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from typing import Any

import orjson

from worker.errors import ConflictError, RateLimitedError
from worker.flow.records import StoredOutcome, Work
from worker.idempotency.base import OutcomeStore, outcome_key

_KEY = "idempotency_key"


def fingerprint(work: Work) -> str:
    """What makes two requests with one id the same request."""
    request = work.request
    assert request is not None  # noqa: S101 - only validated requests are fingerprinted
    body = {"operation": request.operation, "params": request.params, "fields": request.fields}
    return hashlib.sha256(orjson.dumps(body, option=orjson.OPT_SORT_KEYS)).hexdigest()[:32]


def _position(work: Work) -> tuple[str, int, int]:
    record = work.record
    return (record.topic, record.partition, record.offset)


def _conflict(work: Work, original: tuple[str, int, int]) -> ConflictError:
    assert work.request is not None  # noqa: S101
    topic, partition, offset = original
    return ConflictError(
        f"request id {work.request.request_id!r} was already used for a different request",
        details={
            "path": "request_id",
            "original": {"topic": topic, "partition": partition, "offset": offset},
        },
    )


class ReplayStage:
    """Answers replays and redeliveries from the store; see the module docstring."""

    name = "replay"

    def __init__(self, store: OutcomeStore) -> None:
        self._store = store

    async def __call__(self, batch: Sequence[Work]) -> None:
        firsts: dict[str, Work] = {}
        for work in batch:
            if not work.pending or work.request is None:
                continue
            key = outcome_key(work.request.tenant, work.request.request_id)
            work.extra[_KEY] = key
            work.extra["fingerprint"] = fingerprint(work)
            first = firsts.get(key)
            if first is None:
                firsts[key] = work
            else:
                work.duplicate_of = first
        if not firsts:
            return
        keys = list(firsts)
        stored = await self._store.get_many(keys)
        for key, outcome in zip(keys, stored, strict=True):
            if outcome is None:
                continue
            work = firsts[key]
            if outcome.position == _position(work):
                work.replayed = outcome
            elif outcome.fingerprint == work.extra["fingerprint"]:
                work.replayed = outcome
                work.cache = "hit"
            else:
                work.fail(_conflict(work, outcome.position))


class RememberStage:
    """Stores the service's answers and settles in-batch duplicates; see the module docstring."""

    name = "remember"

    def __init__(self, store: OutcomeStore, ttl_s: int) -> None:
        self._store = store
        self._ttl_s = ttl_s

    async def __call__(self, batch: Sequence[Work]) -> None:
        items: list[tuple[str, StoredOutcome]] = []
        for work in batch:
            key = work.extra.get(_KEY)
            if key is None or work.duplicate_of is not None or work.replayed is not None:
                continue
            outcome = self._outcome(work)
            if outcome is not None:
                work.extra["outcome"] = outcome
                items.append((key, outcome))
        if items:
            await self._store.put_many(items, self._ttl_s)
        for work in batch:
            if work.duplicate_of is not None:
                self._settle_duplicate(work, work.duplicate_of)

    @staticmethod
    def _outcome(work: Work) -> StoredOutcome | None:
        error = work.error
        if isinstance(error, (RateLimitedError, ConflictError)):
            return None
        if error is None and work.result is None:
            return None
        topic, partition, offset = _position(work)
        return StoredOutcome(
            fingerprint=work.extra["fingerprint"],
            topic=topic,
            partition=partition,
            offset=offset,
            status="ok" if error is None else "error",
            data=work.result,
            error=None if error is None else error.to_dict(),
        )

    @staticmethod
    def _settle_duplicate(work: Work, first: Work) -> None:
        if work.extra.get("fingerprint") != first.extra.get("fingerprint"):
            work.fail(_conflict(work, _position(first)))
            return
        outcome: Any = first.replayed or first.extra.get("outcome")
        if outcome is not None:
            work.replayed = outcome
            work.cache = "hit"
        elif first.error is not None:
            work.fail(first.error)
        work.duplicate_of = None
