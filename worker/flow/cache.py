"""Cache layer: answer from the result cache before processing, store fresh answers after.

Two stages around :class:`~worker.flow.process.ProcessStage`: the lookup reads
the cache once for the whole batch (one local multi-get per partition), and
the store writes back every fresh answer of the batch in one write per
partition. A hit is answered like a processed request (``meta.cache: "hit"``);
a cached not_found is answered as the not_found it was.
"""

from __future__ import annotations

from collections.abc import Sequence

from worker.cache.service import CacheRequest, Lookup, ResultCache
from worker.errors import NotFoundError
from worker.flow.records import Work

#: Where the lookup leaves its result for the store stage, in ``Work.extra``.
_LOOKUP = "cache.lookup"


class CacheLookupStage:
    """Serves hits; marks misses so that :class:`CacheStoreStage` stores their answers."""

    name = "cache"

    def __init__(self, cache: ResultCache) -> None:
        self._cache = cache

    async def __call__(self, batch: Sequence[Work]) -> None:
        candidates = []
        requests = []
        for work in batch:
            operation = work.operation
            if (
                work.pending
                and operation is not None
                and work.params is not None
                and work.request is not None
                and self._cache.cacheable(operation)
            ):
                candidates.append(work)
                requests.append(CacheRequest(work.request.tenant, operation, work.params))
        if not candidates:
            return
        for work, lookup in zip(candidates, self._cache.lookup(requests), strict=True):
            work.cache_key = lookup.key.text
            work.cache_params = lookup.key.canonical_params
            if lookup.status == "hit":
                assert lookup.entry is not None  # noqa: S101 - a hit has its entry
                work.result = lookup.entry.body
                work.cache = "hit"
            elif lookup.status == "negative":
                work.fail(lookup.not_found())
                work.cache = "hit"
            elif lookup.status == "bypass":
                work.cache = "bypass"
            else:
                work.cache = "miss"
                work.extra[_LOOKUP] = lookup


class CacheStoreStage:
    """Writes back the answers of the batch's misses: results and not_found errors."""

    name = "cache_store"

    def __init__(self, cache: ResultCache) -> None:
        self._cache = cache

    async def __call__(self, batch: Sequence[Work]) -> None:
        answers: list[tuple[Lookup, dict[str, object] | NotFoundError]] = []
        for work in batch:
            lookup = work.extra.pop(_LOOKUP, None)
            if not isinstance(lookup, Lookup):
                continue
            if work.result is not None:
                answers.append((lookup, work.result))
            elif isinstance(work.error, NotFoundError):
                answers.append((lookup, work.error))
        if answers:
            await self._cache.store_answers(answers)
