"""The rate-limit stage: one acquire per batch, the excess answered ``rate_limited``."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import pytest

from worker.errors import ConfigurationError, RateLimitedError, RateLimiterError
from worker.flow.ratelimit import RateLimitStage
from worker.flow.records import Work
from worker.flow.validate import ValidateStage
from worker.operations.registry import default_registry
from worker.ratelimit.base import Ask, Grant
from worker.ratelimit.memory import MemoryRateLimiter
from worker.ratelimit.plans import RatePlans, load_plans
from worker.settings import LimitsSettings

MakeEnvelope = Callable[..., dict[str, Any]]
MakeWork = Callable[[dict[str, Any]], Work]


def plans(rate: float, burst: int, plans_file: Path | None = None) -> RatePlans:
    return RatePlans.from_settings(
        LimitsSettings(rate_per_second=rate, rate_burst=burst, plans_file=plans_file)
    )


class CountingLimiter(MemoryRateLimiter):
    """A memory limiter that remembers what each call asked for."""

    def __init__(self) -> None:
        super().__init__(clock=lambda: 0.0)
        self.calls: list[list[tuple[tuple[str, ...], int]]] = []

    async def acquire(self, asks: Sequence[Ask]) -> list[Grant]:
        self.calls.append([(tuple(key for key, _ in a.buckets), a.count) for a in asks])
        return await super().acquire(asks)


class UnreachableLimiter:
    """A limiter whose store is down."""

    async def acquire(self, asks: Sequence[Ask]) -> list[Grant]:
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
    limiter = CountingLimiter()
    asyncio.run(RateLimitStage(limiter, plans(1.0, 100))(batch))
    assert limiter.calls == [[(("tenant:acme",), 3), (("tenant:globex",), 1)]]
    assert all(work.error is None for work in batch[:4])


def test_the_requests_past_the_grant_are_rate_limited_in_batch_order(
    make_envelope: MakeEnvelope, make_work: MakeWork
) -> None:
    batch = validated(make_work, [make_envelope(tenant="acme") for _ in range(4)])
    asyncio.run(RateLimitStage(MemoryRateLimiter(clock=lambda: 0.0), plans(2.0, 2))(batch))
    assert [work.error is None for work in batch] == [True, True, False, False]
    for work in batch[2:]:
        assert isinstance(work.error, RateLimitedError)
        assert work.error.retry_after_ms == 500
        assert work.dead_letter is False


def test_a_plan_adds_a_bucket_per_tenant_and_operation(
    make_envelope: MakeEnvelope, make_work: MakeWork, tmp_path: Path
) -> None:
    plans_file = tmp_path / "plans.toml"
    plans_file.write_text(
        'default_plan = "standard"\n'
        "[plans.standard]\nrate_per_second = 1000\nburst = 1000\n"
        "[plans.free]\nrate_per_second = 0.001\nburst = 5\n"
        '[plans.free.operations."price.quote"]\nrate_per_second = 0.001\nburst = 2\n'
        '[tenants]\nacme = "free"\n'
    )
    quotes = [make_envelope(tenant="acme") for _ in range(4)]
    stats = [
        make_envelope(tenant="acme", operation="text.stats", params={"text": "x"}) for _ in range(4)
    ]
    others = [make_envelope(tenant="globex") for _ in range(4)]
    batch = validated(make_work, [*quotes, *stats, *others])
    limiter = CountingLimiter()
    asyncio.run(RateLimitStage(limiter, plans(1.0, 1, plans_file))(batch))
    assert limiter.calls == [
        [
            (("tenant:acme", "op:4:acme:price.quote"), 4),
            (("tenant:acme",), 4),
            (("tenant:globex",), 4),
        ]
    ]
    ok = [work.error is None for work in batch]
    # acme: 2 quotes (operation bucket), then 3 stats (the tenant's 5 minus 2); globex: standard.
    assert ok == [True, True, False, False, True, True, True, False, True, True, True, True]


def test_a_plans_file_naming_an_undefined_plan_is_a_configuration_error(tmp_path: Path) -> None:
    plans_file = tmp_path / "plans.toml"
    plans_file.write_text('[tenants]\nacme = "gold"\n')
    with pytest.raises(ConfigurationError, match="gold"):
        load_plans(plans_file)


def test_an_unreachable_store_serves_the_batch_when_the_policy_is_allow(
    make_envelope: MakeEnvelope, make_work: MakeWork
) -> None:
    batch = validated(make_work, [make_envelope()])
    asyncio.run(RateLimitStage(UnreachableLimiter(), plans(1.0, 1), "allow")(batch))
    assert batch[0].error is None


def test_an_unreachable_store_stops_the_batch_when_the_policy_is_reject(
    make_envelope: MakeEnvelope, make_work: MakeWork
) -> None:
    batch = validated(make_work, [make_envelope()])
    with pytest.raises(RateLimiterError):
        asyncio.run(RateLimitStage(UnreachableLimiter(), plans(1.0, 1), "reject")(batch))
    assert batch[0].error is None


def test_a_batch_with_nothing_pending_does_not_ask_the_limiter(make_work: MakeWork) -> None:
    limiter = CountingLimiter()
    batch = validated(make_work, [{"not": "an envelope"}])
    asyncio.run(RateLimitStage(limiter, plans(1.0, 1))(batch))
    assert limiter.calls == []
