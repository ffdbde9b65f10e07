"""API layer: a token bucket per tenant, asked once per batch."""

from __future__ import annotations

import logging
from collections import defaultdict
from collections.abc import Sequence
from typing import Literal

from worker.errors import RateLimitedError, RateLimiterError
from worker.flow.records import Work
from worker.ratelimit.base import RateLimiter

log = logging.getLogger(__name__)

#: What to do with a batch when the limiter's store is unreachable.
OnUnavailable = Literal["allow", "reject"]


class RateLimitStage:
    """Counts each tenant's pending requests and takes that many tokens in one call.

    Requests beyond the granted count, in batch order, are answered
    ``rate_limited`` with ``retry_after_ms``. When the store is unreachable,
    ``on_unavailable`` decides: ``allow`` serves the batch unlimited (and logs),
    ``reject`` raises so the batch is retried and consumption stalls until the
    store is back (nothing is answered wrongly).
    """

    name = "ratelimit"

    def __init__(self, limiter: RateLimiter, on_unavailable: OnUnavailable = "allow") -> None:
        self._limiter = limiter
        self._on_unavailable = on_unavailable

    async def __call__(self, batch: Sequence[Work]) -> None:
        by_tenant: dict[str, list[Work]] = defaultdict(list)
        for work in batch:
            if work.pending and work.request is not None:
                by_tenant[f"tenant:{work.request.tenant}"].append(work)
        if not by_tenant:
            return
        keys = list(by_tenant)
        try:
            grants = await self._limiter.acquire([(key, len(by_tenant[key])) for key in keys])
        except RateLimiterError:
            if self._on_unavailable == "reject":
                raise
            log.warning("rate limiter unavailable; serving %d requests unlimited", len(batch))
            return
        for key, grant in zip(keys, grants, strict=True):
            for work in by_tenant[key][grant.granted :]:
                work.fail(RateLimitedError(grant.retry_after_ms))
