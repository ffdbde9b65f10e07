"""Outcomes in a dict with expiry, for the unit tests and the broker-free harness."""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence

from worker.flow.records import StoredOutcome
from worker.idempotency.base import dump, load


class MemoryOutcomeStore:
    """The in-memory :class:`~worker.idempotency.base.OutcomeStore`; the clock is injectable."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._values: dict[str, tuple[float, bytes]] = {}
        self.round_trips = 0

    async def get_many(self, keys: Sequence[str]) -> list[StoredOutcome | None]:
        self.round_trips += 1
        now = self._clock()
        out: list[StoredOutcome | None] = []
        for key in keys:
            entry = self._values.get(key)
            out.append(load(entry[1]) if entry is not None and entry[0] > now else None)
        return out

    async def put_many(self, items: Sequence[tuple[str, StoredOutcome]], ttl_s: int) -> None:
        self.round_trips += 1
        now = self._clock()
        for key, outcome in items:
            entry = self._values.get(key)
            if entry is None or entry[0] <= now:
                self._values[key] = (now + ttl_s, dump(outcome))

    async def close(self) -> None:
        return None
