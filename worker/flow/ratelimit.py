"""API layer: token buckets per tenant and per tenant+operation, asked once per batch."""

from __future__ import annotations

import logging
from collections import defaultdict
from collections.abc import Sequence
from typing import Literal

from worker.errors import RateLimitedError, RateLimiterError
from worker.flow.records import Work
from worker.ratelimit.base import Ask, RateLimiter
from worker.ratelimit.plans import RatePlans

log = logging.getLogger(__name__)

#: What to do with a batch when the limiter's store is unreachable.
OnUnavailable = Literal["allow", "reject"]


class RateLimitStage:
    """Groups pending requests by tenant and operation and asks for all of them in one call.

    Each request needs a token from its tenant's bucket and, when its plan
    limits the operation, from the tenant+operation bucket (see
    :mod:`worker.ratelimit.plans`). Requests beyond a group's grant, in batch
    order, are answered ``rate_limited`` with ``retry_after_ms``. When the store
    is unreachable, ``on_unavailable`` decides: ``allow`` serves the batch
    unlimited (and logs a warning), ``reject`` raises, so the batch is retried
    and, once the retry budget is spent, dead-lettered with
    ``rate_limiter_unavailable`` (nothing is answered wrongly).
    """

    name = "ratelimit"

    def __init__(
        self, limiter: RateLimiter, plans: RatePlans, on_unavailable: OnUnavailable = "allow"
    ) -> None:
        self._limiter = limiter
        self._plans = plans
        self._on_unavailable = on_unavailable

    async def __call__(self, batch: Sequence[Work]) -> None:
        groups: dict[tuple[str, str], list[Work]] = defaultdict(list)
        for work in batch:
            if work.pending and work.request is not None:
                groups[(work.request.tenant, work.request.operation)].append(work)
        if not groups:
            return
        keys = list(groups)
        asks = [
            Ask(self._plans.buckets(tenant, operation), len(groups[(tenant, operation)]))
            for tenant, operation in keys
        ]
        try:
            grants = await self._limiter.acquire(asks)
        except RateLimiterError:
            if self._on_unavailable == "reject":
                raise
            log.warning(
                "rate limiter unavailable; serving %d requests unlimited",
                sum(ask.count for ask in asks),
            )
            return
        for key, grant in zip(keys, grants, strict=True):
            for work in groups[key][grant.granted :]:
                work.fail(RateLimitedError(grant.retry_after_ms))
