"""An in-memory row sink with the same skip and deduplication rules as ClickHouse."""

from __future__ import annotations

from collections.abc import Sequence

from worker.flow.output import PartitionRows, RequestRow
from worker.sinks.base import dedup_token


class MemorySink:
    """Keeps rows in a list; remembers tokens and high-water offsets like the real sink."""

    table = "requests"

    def __init__(self) -> None:
        self.rows: list[RequestRow] = []
        self.tokens: set[str] = set()
        self.high_water: dict[tuple[str, int], int] = {}
        self.deduplicated = 0

    async def start(self) -> None:
        return None

    async def write(self, slices: Sequence[PartitionRows]) -> None:
        for part in slices:
            fresh = part.above(self.high_water.get((part.topic, part.partition), -1))
            if fresh is None:
                continue
            token = dedup_token(self.table, fresh)
            if token in self.tokens:
                self.deduplicated += 1
                continue
            self.tokens.add(token)
            self.rows.extend(fresh.rows)
            self.high_water[(part.topic, part.partition)] = fresh.last_offset

    async def ping(self) -> None:
        return None

    def forget_positions(self) -> None:
        return None

    async def close(self) -> None:
        return None
