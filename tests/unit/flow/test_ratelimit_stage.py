"""The rate-limit stage: one acquire per batch, the excess answered ``rate_limited``."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Sequence
from typing import Any

import pytest

from worker.errors import RateLimitedError, RateLimiterError
from worker.flow.ratelimit import RateLimitStage
from worker.flow.records import Work
from worker.flow.validate import ValidateStage
from worker.operations.registry import default_registry
from worker.ratelimit.base import Grant
from worker.ratelimit.memory import MemoryRateLimiter

MakeEnvelope = Callable[..., dict[str, Any]]
MakeWork = Callable[[dict[str, Any]], Work]


class CountingLimiter(MemoryRateLimiter):
    """A memory limiter that remembers what each call asked for."""

    def __init__(self, rate: float, burst: int) -> None:
        super().__init__(rate, burst, clock=lambda: 0.0)
        self.calls: list[list[tuple[str, int]]] = []

    async def acquire(self, wants: Sequence[tuple[str, int]]) -> list[Grant]:
        self.calls.append(list(wants))
        return await super().acquire(wants)


class UnreachableLimiter:
    """A limiter whose store is down."""

    async def acquire(self, wants: Sequence[tuple[str, int]]) -> list[Grant]:
        raise RateLimiterError("connection refused")

    async def close(self) -> None:
        return None


def validated(make_work: MakeWork, payloads: list[dict[str, Any]]) -> list[Work]:
    batch = [make_work(payload) for payload in payloads]
    asyncio.run(ValidateStage(default_registry())(batch))
    return batch


def test_one_acquire_per_batch_counts_each_tenants_pending_requests(
    make_envelope: MakeEnvelope, make_work: MakeWork
) -> None:
    tenants = ["acme", "globex", "acme", "acme"]
    batch = validated(make_work, [make_envelope(tenant=t) for t in tenants])
    batch.append(validated(make_work, [make_envelope(tenant="initech", extra=1)])[0])
    limiter = CountingLimiter(rate=1.0, burst=100)
    asyncio.run(RateLimitStage(limiter)(batch))
    assert limiter.calls == [[("tenant:acme", 3), ("tenant:globex", 1)]]
    assert all(work.error is None for work in batch[:4])


def test_the_requests_past_the_grant_are_rate_limited_in_batch_order(
    make_envelope: MakeEnvelope, make_work: MakeWork
) -> None:
    batch = validated(make_work, [make_envelope(tenant="acme") for _ in range(4)])
    asyncio.run(RateLimitStage(MemoryRateLimiter(rate=2.0, burst=2, clock=lambda: 0.0))(batch))
    assert [work.error is None for work in batch] == [True, True, False, False]
    for work in batch[2:]:
        assert isinstance(work.error, RateLimitedError)
        assert work.error.retry_after_ms == 500
        assert work.dead_letter is False


def test_an_unreachable_store_serves_the_batch_when_the_policy_is_allow(
    make_envelope: MakeEnvelope, make_work: MakeWork
) -> None:
    batch = validated(make_work, [make_envelope()])
    asyncio.run(RateLimitStage(UnreachableLimiter(), "allow")(batch))
    assert batch[0].error is None


def test_an_unreachable_store_stops_the_batch_when_the_policy_is_reject(
    make_envelope: MakeEnvelope, make_work: MakeWork
) -> None:
    batch = validated(make_work, [make_envelope()])
    with pytest.raises(RateLimiterError):
        asyncio.run(RateLimitStage(UnreachableLimiter(), "reject")(batch))
    assert batch[0].error is None


def test_a_batch_with_nothing_pending_does_not_ask_the_limiter(make_work: MakeWork) -> None:
    limiter = CountingLimiter(rate=1.0, burst=1)
    batch = validated(make_work, [{"not": "an envelope"}])
    asyncio.run(RateLimitStage(limiter)(batch))
    assert limiter.calls == []
